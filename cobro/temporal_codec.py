"""Payload encryption: an AES-256-GCM payload codec with several keys at once.

Every payload that Cobro's clients and workers send to Temporal (workflow and activity
inputs and results, signals, queries, updates, memos, failure messages) is encrypted here,
outside the workflow sandbox, before it leaves the process; Temporal stores only ciphertext.
Search attributes are not payloads of this kind: they stay in clear text (the account id,
risk class, dunning stage and overdue amount), so that visibility queries keep working.

Keys are `ID=BASE64` (32 random bytes), listed oldest first: the last one encrypts new
payloads, and every listed one decrypts, so a key is rotated by appending a new one and
dropping the old one only once no history that needs it is kept. The key id travels in the
payload's metadata (`encryption-key-id`) and is bound to the ciphertext (associated data).
Keys never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from cobro.errors import TemporalConfigError
from cobro.settings import Settings

ENCODING = b"binary/encrypted"
CIPHER = b"AES256-GCM"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
DEV_KEYS_FILE = "payload-keys"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PayloadKeyError(TemporalConfigError):
    """A key is malformed or missing, or a payload needs a key that is not configured."""


@dataclass(frozen=True)
class PayloadKey:
    id: str
    secret: bytes = field(repr=False)


class KeyRing:
    """The configured keys, oldest first; `current` (the last) encrypts."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise PayloadKeyError("no payload encryption key configured")
        self.keys = list(keys)
        self.by_id: dict[str, PayloadKey] = {}
        for key in self.keys:
            if key.id in self.by_id:
                raise PayloadKeyError(f"payload key id {key.id!r} is listed twice")
            self.by_id[key.id] = key

    @property
    def current(self) -> PayloadKey:
        return self.keys[-1]

    @property
    def ids(self) -> list[str]:
        return [key.id for key in self.keys]

    def __repr__(self) -> str:
        return f"KeyRing(ids={self.ids})"

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, str]]) -> KeyRing:
        """`entries`: (where, "ID=BASE64") pairs; `where` names the setting or file:line."""
        return cls([parse_key(text, where) for where, text in entries])


def parse_key(text: str, where: str) -> PayloadKey:
    key_id, sep, encoded = text.strip().partition("=")
    key_id = key_id.strip()
    if not sep or not key_id:
        raise PayloadKeyError(f"{where}: a payload key is ID=BASE64 (32 bytes, base64)")
    if not _KEY_ID_RE.match(key_id):
        raise PayloadKeyError(
            f"{where}: payload key id {key_id[:64]!r}: letters, digits, '.', '_', '-' only"
        )
    try:
        secret = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError(f"{where}: payload key {key_id!r} is not valid base64") from None
    if len(secret) != KEY_BYTES:
        raise PayloadKeyError(
            f"{where}: payload key {key_id!r} has {len(secret)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return PayloadKey(key_id, secret)


def new_key_line(key_id: str | None = None) -> str:
    """A fresh `ID=BASE64` line (id: `k` and the UTC time, unless given)."""
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if not _KEY_ID_RE.match(key_id):
        raise PayloadKeyError(f"payload key id {key_id[:64]!r}: letters, digits, '.', '_', '-'")
    return f"{key_id}={base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialised payload (data and metadata alike)."""

    def __init__(self, keys: KeyRing) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.keys = keys
        self._ciphers = {key.id: AESGCM(key.secret) for key in keys.keys}

    def __repr__(self) -> str:
        return f"EncryptionCodec({self.keys!r})"

    def encrypt(self, payload: Payload) -> Payload:
        key = self.keys.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key.id].encrypt(nonce, payload.SerializeToString(), key.id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: key.id.encode(), "encryption-cipher": CIPHER},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """An encrypted payload opened; any other payload (written before encryption was
        turned on, or by a client without it) as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which is not configured "
                f"(configured: {', '.join(self.keys.ids)})"
            )
        from cryptography.exceptions import InvalidTag

        try:
            plain = cipher.decrypt(
                payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r} does not decrypt with the configured "
                "key of that id (another key under the same id, or altered data)"
            ) from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]


def keys_file(settings: Settings) -> Path:
    return settings.payload_keys_file or Path(settings.var_dir) / DEV_KEYS_FILE


def key_ring(settings: Settings) -> KeyRing | None:
    """The keys the settings name, or None when payloads go unencrypted."""
    if settings.payload_encryption == "off":
        return None
    entries: list[tuple[str, str]] = []
    path = keys_file(settings)
    if settings.payload_keys_file is not None or path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise PayloadKeyError(
                f"COBRO_PAYLOAD_KEYS_FILE: cannot read {path}: {exc.strerror}"
            ) from None
        entries += [
            (f"{path}:{n}", line)
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if settings.payload_keys is not None:
        listed = settings.payload_keys.get_secret_value().split(",")
        entries += [(f"COBRO_PAYLOAD_KEYS[{n}]", e) for n, e in enumerate(listed) if e.strip()]
    if not entries:
        if settings.payload_encryption == "on":
            raise PayloadKeyError(
                "COBRO_PAYLOAD_ENCRYPTION=on but no key is set: set COBRO_PAYLOAD_KEYS or "
                f"COBRO_PAYLOAD_KEYS_FILE (or create {path})"
            )
        return None
    return KeyRing.parse(entries)


def codec(settings: Settings) -> EncryptionCodec | None:
    ring = key_ring(settings)
    return None if ring is None else EncryptionCodec(ring)


def ensure_dev_keys(settings: Settings) -> Path | None:
    """`cobro dev`: unless encryption is off or keys are set, a key generated once in
    var/payload-keys (mode 0600), which every `cobro` command run from here then uses."""
    if settings.payload_encryption == "off" or settings.payload_keys is not None:
        return None
    path = keys_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                "# Cobro payload encryption keys (cobro dev), oldest first: the last encrypts\n"
                f"{new_key_line()}\n"
            )
    return path
