"""A failed SMS is recorded and surfaced: the capture server (like Twilio) calls our status
webhook with a real X-Twilio-Signature; a forged callback is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning import delivery
from cobro.dunning.store import Trace
from cobro.models import Communication, Customer, TimelineEvent
from cobro.settings import get_settings
from cobro.web.app import serve_web
from tests.helpers import free_port
from tests.helpers.dunning import point_settings_at


async def _status(key: str) -> str:
    with transaction() as s:
        return s.scalar(select(Communication.status).where(Communication.idempotency_key == key))


@pytest.mark.parametrize(
    ("number", "final"), [("+15005550010", "failed"), ("+33612345678", "delivered")]
)
async def test_sms_status_callbacks_update_the_communication(
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    number: str,
    final: str,
) -> None:
    point_settings_at(monkeypatch, capture_servers, tmp_path)
    port = free_port()
    monkeypatch.setenv("COBRO_WEB_PORT", str(port))
    monkeypatch.setenv("COBRO_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    key = f"test:{number}"
    with transaction() as s:
        customer = Customer(
            account="S1", name="SMS", country="FR", language="fr", timezone="Europe/Paris"
        )
        s.add(customer)
        s.flush()
        s.add(
            Communication(
                customer_id=customer.id,
                channel="sms",
                template="due",
                recipient=number,
                idempotency_key=key,
                body="Votre facture est échue.",
            )
        )
        s.flush()
        communication_id = s.scalar(select(Communication.id))
    stop = asyncio.Event()
    web = asyncio.create_task(serve_web(get_settings(), stop))
    try:
        http = httpx.AsyncClient(timeout=5)
        for _ in range(50):  # wait for the web server
            try:
                await http.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        claim = delivery.Claim(
            communication_id, "sms", number, None, "Votre facture est échue.", None, key, False
        )
        sid = await delivery.send(claim)
        from cobro.db import session_factory

        with session_factory()() as session:
            delivery.confirm(session, claim, sid, Trace("wf", "run"))
        for _ in range(100):
            if await _status(key) == final:
                break
            await asyncio.sleep(0.1)
        assert await _status(key) == final
        if final == "failed":
            with transaction() as s:
                kinds = s.scalars(select(TimelineEvent.kind)).all()
            assert "dunning.sms_failed" in kinds
        forged = await http.post(
            f"http://127.0.0.1:{port}/webhooks/twilio/status",
            data={"MessageSid": sid, "MessageStatus": "delivered"},
            headers={"X-Twilio-Signature": "forged"},
        )
        assert forged.status_code == 403
        await http.aclose()
    finally:
        stop.set()
        await web
