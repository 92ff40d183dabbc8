"""The per-contact token of a reminder email's Reply-To and envelope sender (pure: the key
is given).

`reply+<token>@<reply domain>` (Reply-To: the customer's answer) and
`bounce+<token>@<reply domain>` (MAIL FROM: the relays' delivery-status notifications)
carry `<token>` = `<communication id, base 36>-<signature>`, the signature the first 60
bits of an HMAC-SHA256 of the id under the portal key (`cobro.portal.links.portal_key`),
written in lower-case base 32: addresses are compared without case by many mail systems.
A token is checked without reading the database; a forged or damaged one reads as no
token at all (the message may still thread by its In-Reply-To).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

Role = Literal["reply", "bounce"]
TOKEN = re.compile(r"^(reply|bounce)\+([0-9a-z]{1,13})-([a-z2-7]{12})@(.+)$", re.IGNORECASE)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def signature(key: bytes, communication_id: int) -> str:
    digest = hmac.new(key, f"cobro-reply|{communication_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:8]).decode().lower()[:12]


def token_for(key: bytes, communication_id: int) -> str:
    if communication_id < 1:
        raise ValueError(f"no token for communication {communication_id}")
    return f"{_base36(communication_id)}-{signature(key, communication_id)}"


def address_for(key: bytes, communication_id: int, domain: str, role: Role = "reply") -> str:
    """`reply+<token>@domain` (or `bounce+...`): the same on every retry of the send."""
    return f"{role}+{token_for(key, communication_id)}@{domain}"


def communication_of(key: bytes, address: str, domain: str) -> int | None:
    """The communication a recipient address at `domain` names, if its token is ours."""
    match = TOKEN.match(address.strip().strip("<>"))
    if match is None or match[4].lower() != domain.lower():
        return None
    try:
        communication_id = int(match[2], 36)
    except ValueError:
        return None
    expected = signature(key, communication_id)
    if not hmac.compare_digest(match[3].lower().encode(), expected.encode()):
        return None
    return communication_id
