"""Asking the email relay whether it already accepted a message (by our Message-ID).

After a crash between the relay's `250` and our confirmation, the sender does not know
whether its message went out. Resending blindly would duplicate it; not sending could lose
it. Where the relay can answer, it is asked: the capture server can (its inbox searches by
Message-ID), production relays can through their delivery events or message search keyed
by our Message-ID (every Cobro email carries `<sha256(idempotency key)[:32]@cobro>`).

A relay adapter implements `RelayLookup`; `relay_lookup_from_settings` builds the one the
settings name (`COBRO_SMTP_LOOKUP`): `capture` (the capture server's inbox at
`COBRO_SMTP_LOOKUP_URL`), `package.module:factory` (called with the settings, returns a
`RelayLookup`), or empty: the relay cannot be asked, and an unconfirmed email is held as
uncertain for a collector to decide.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cobro.settings import Settings

# built-in adapters, imported only when named (the capture server is a dev stand-in)
KNOWN_LOOKUPS = {"capture": "cobro.devkit.capture_smtp:CaptureRelayLookup.from_settings"}


@dataclass(frozen=True)
class RelayAnswer:
    """`found`: True the relay accepted it, False it certainly did not, None it cannot tell."""

    found: bool | None
    provider_id: str | None = None
    detail: str = ""


class RelayLookupError(Exception):
    """The relay could not be asked right now (unreachable, 5xx): ask again later."""


class RelayLookup(Protocol):
    """What an email relay adapter offers to resolve a claimed-but-unconfirmed send."""

    async def find_message(self, message_id: str) -> RelayAnswer:
        """Did the relay accept a message with this Message-ID? Raises RelayLookupError
        when it cannot be asked now."""
        ...


def relay_lookup_from_settings(settings: Settings) -> RelayLookup | None:
    spec = (settings.smtp_lookup or "").strip()
    if not spec:
        return None
    target = KNOWN_LOOKUPS.get(spec, spec)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ValueError(
            f"COBRO_SMTP_LOOKUP={spec!r}: expected 'capture' or 'package.module:factory'"
        )
    factory: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    assert callable(factory)
    return factory(settings)
