"""Payload encryption (AES-256-GCM, several keys): rotation and clear errors; a customer's
dunning run on the time-skipping server through the codec leaves no e-mail address, phone
number or customer name in the raw history, and that history replays with the codec only."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.settings import Settings, get_settings
from cobro.temporal_client import data_converter
from cobro.temporal_codec import (
    ENCODING,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    ensure_dev_keys,
    key_ring,
    new_key_line,
)
from tests.helpers import eventually
from tests.helpers.dunning import import_rows, point_settings_at, running_worker
from workflows.dunning import Dunning


def _ring(*lines: str) -> KeyRing:
    return KeyRing.parse((f"test[{i}]", line) for i, line in enumerate(lines))


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email": "ap@client.example"}')


def test_rotation_new_writes_use_the_newest_key_old_payloads_still_open() -> None:
    old, new = new_key_line("k2026a"), new_key_line("k2026b")
    sealed_old = EncryptionCodec(_ring(old)).encrypt(PLAIN)
    assert sealed_old.metadata["encoding"] == ENCODING
    assert b"ap@client.example" not in sealed_old.SerializeToString()
    rotated = EncryptionCodec(_ring(old, new))
    sealed_new = rotated.encrypt(PLAIN)
    assert sealed_new.metadata["encryption-key-id"] == b"k2026b"
    assert rotated.decrypt(sealed_old) == PLAIN and rotated.decrypt(sealed_new) == PLAIN
    # the old key dropped too early: a clear error naming the key, never its bytes
    with pytest.raises(PayloadKeyError, match="'k2026a', which is not configured"):
        EncryptionCodec(_ring(new)).decrypt(sealed_old)
    # another key under the same id, or altered data
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        EncryptionCodec(_ring(new_key_line("k2026a"))).decrypt(sealed_old)
    # a payload written before encryption was turned on passes as it is
    assert rotated.decrypt(PLAIN) == PLAIN


def test_keys_are_checked_and_never_shown(tmp_path: Path) -> None:
    line = new_key_line("k1")
    secret = line.split("=", 1)[1]
    assert secret not in repr(_ring(line)) and secret not in repr(EncryptionCodec(_ring(line)))
    for bad, message in [
        ("k1", "ID=BASE64"),
        ("k 1=AAAA", "letters, digits"),
        ("k1=not base64!", "not valid base64"),
        ("k1=" + "QUFB", "3 bytes; AES-256 needs 32"),
    ]:
        with pytest.raises(PayloadKeyError, match=message):
            _ring(bad)
    with pytest.raises(PayloadKeyError, match="listed twice"):
        _ring(line, line)
    keys = tmp_path / "keys"
    keys.write_text(f"# comment\n{line}\nbroken\n")
    with pytest.raises(PayloadKeyError, match=rf"{keys}:3: a payload key is ID=BASE64"):
        key_ring(Settings(payload_keys_file=keys))
    with pytest.raises(PayloadKeyError, match="COBRO_PAYLOAD_ENCRYPTION=on but no key"):
        key_ring(Settings(payload_encryption="on", var_dir=str(tmp_path / "none")))
    assert key_ring(Settings(payload_encryption="off", payload_keys_file=keys)) is None


def test_dev_keys_are_made_once_private(tmp_path: Path) -> None:
    settings = Settings(var_dir=str(tmp_path))
    path = ensure_dev_keys(settings)
    assert path is not None and path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert ensure_dev_keys(settings) == path and path.read_text() == first
    ring = key_ring(settings)
    assert ring is not None and len(ring.ids) == 1


@pytest.mark.temporal
async def test_an_encrypted_history_shows_no_customer_data_and_replays_with_the_codec(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path)
    monkeypatch.setenv("COBRO_PAYLOAD_KEYS", new_key_line("ktest"))
    get_settings.cache_clear()
    converter = data_converter(get_settings())
    assert converter.payload_codec is not None
    config = env.client.config()
    client = Client(**{**config, "data_converter": converter})
    start = await env.get_current_time()
    due = start.date() + timedelta(days=10)
    name, email, phone = "Ferretería Núñez Hermanos SL", "pagos@nunez-hnos.example", "+34612345678"
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": "CODEC1",
                "name": name,
                "country": "ES",
                "language": "es",
                "timezone": "Europe/Madrid",
                "email": email,
                "phone": phone,
            }
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": "F-CODEC-1",
                "account": "CODEC1",
                "issue_date": (start.date() - timedelta(days=20)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": "1234.56",
            }
        ],
    )
    async with running_worker(client, queue):
        await notify(client, ["CODEC1"], FactsChanged("invoices_changed", "codec test"))
        await env.sleep(timedelta(days=6))  # the pre-due email goes out (due - 5 days)
        await eventually(lambda: len(capture_servers.mail.list()) == 1)
        handle = client.get_workflow_handle(workflow_id("CODEC1"))
        await handle.terminate("checked")
    history = await handle.fetch_history()  # fetching decodes nothing
    raw = _proto(history).SerializeToString()  # every payload's bytes as Temporal keeps them
    assert raw.count(ENCODING) > 10  # inputs, results, signals: encrypted
    for secret in (email, phone, name, "Núñez", "1234.56", "F-CODEC-1", "pagos@"):
        assert secret.encode() not in raw, secret
    assert b"CODEC1" in raw  # the account id stays readable (workflow id, search attribute)

    await Replayer(workflows=[Dunning], data_converter=converter).replay_workflow(history)
    plain = dataclasses.replace(converter, payload_codec=None)
    with pytest.raises(Exception):  # noqa: B017  (undecodable payloads: any failure)
        await Replayer(workflows=[Dunning], data_converter=plain).replay_workflow(history)


def _proto(history):  # type: ignore[no-untyped-def]
    return History(events=history.events)
