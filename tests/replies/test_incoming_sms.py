"""A customer's SMS to our number, through the real capture servers (Twilio-compatible,
signed webhook) and the real dashboard on a loopback port, on both databases: "BAJA" opts
the number out and the SMS planned before is then never sent (the email still is); a
repeated webhook is recorded once; a free reply goes to the timeline with a task; START
allows SMS again; an unsigned or tampered webhook changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from cobro.db import session_factory, transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.loopback import EmbeddedHttpServer
from cobro.dunning import delivery
from cobro.dunning.store import Trace, current_plan, load_customer_facts
from cobro.models import Customer, Task, TimelineEvent
from cobro.settings import get_settings
from cobro.web.app import create_app
from tests.dunning.test_email_once_kill import _email_and_sms_policy
from tests.helpers import free_port
from tests.helpers.capture import CAPTURE_AUTH_TOKEN
from tests.helpers.dunning import import_rows, point_settings_at

ANA, BEA = "+34612345678", "+34699111222"


def seed(tmp_path: Path, zone: str) -> None:
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    import_rows(tmp_path, "customers", [
        {"account": "S1", "name": "Ferretería Núñez", "country": "ES", "language": "es",
         "timezone": zone, "email": "pagos@nunez.example", "phone": ANA},
        {"account": "S2", "name": "Bodegas Beatriz", "country": "ES", "language": "es",
         "timezone": zone, "email": "admin@beatriz.example", "phone": BEA},
    ])  # fmt: skip
    import_rows(tmp_path, "invoices", [
        {"number": f"F-{a}", "account": a, "issue_date": (due - timedelta(days=30)).isoformat(),
         "due_date": due.isoformat(), "currency": "EUR", "amount": "1359.36"}
        for a in ("S1", "S2")
    ])  # fmt: skip


def planned(account: str) -> list:  # type: ignore[type-arg]
    with session_factory()() as session:
        facts = load_customer_facts(session, account)
        assert facts is not None
        return current_plan(facts, datetime.now(UTC)).due


def events(account: str) -> list[tuple[str, str]]:
    with transaction() as s:
        cid = s.scalar(select(Customer.id).where(Customer.account == account))
        return [
            (e.kind, e.actor)
            for e in s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.customer_id == cid, TimelineEvent.kind.like("sms.%"))
                .order_by(TimelineEvent.id)
            )
        ]


def opted_out(account: str) -> bool:
    with transaction() as s:
        return bool(s.scalar(select(Customer.opt_out_sms).where(Customer.account == account)))


@pytest.fixture
async def web(  # type: ignore[no-untyped-def]
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The dashboard on a loopback port, the capture server's incoming webhook pointing at
    it, two Spanish customers each owing an invoice due two days ago (email + SMS due)."""
    zone, policy = _email_and_sms_policy()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("COBRO_PUBLIC_BASE_URL", public)
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", "k" * 32)
    get_settings.cache_clear()
    server = EmbeddedHttpServer(create_app(get_settings()), "127.0.0.1", port, "web")
    await server.start()
    capture_servers.http.twilio.incoming_url = public + "/webhooks/twilio/incoming"
    seed(tmp_path, zone)
    yield public + "/webhooks/twilio/incoming"
    await server.stop()


async def test_baja_opts_out_and_the_planned_sms_is_never_sent(
    capture_servers: CaptureServers, web: str
) -> None:
    before = {a.kind: a for a in planned("S1")}
    assert set(before) == {"email", "sms"}, "an email and an SMS are due"

    sid, status = await capture_servers.customer_sends(ANA, "  Baja. ")
    assert status == 200
    assert opted_out("S1") and not opted_out("S2")
    assert events("S1") == [("sms.opted_out", "customer")]
    assert [a.kind for a in planned("S1")] == ["email"], "the plan leaves the SMS out"

    trace = Trace("sms-test", "run")
    for kind in ("sms", "email"):  # what the workflow planned before the opt-out
        claim = await asyncio.to_thread(
            lambda k=kind: delivery.claim(session_factory()(), before[k], datetime.now(UTC), trace)
        )
        if kind == "sms":
            assert claim.outcome == "skipped", claim.summary
        else:
            assert claim.outcome is None
            await delivery.send(claim)
    assert capture_servers.sms.list() == [], "no SMS after the opt-out"
    assert len(capture_servers.mail.list()) == 1, "the email still goes"

    # Twilio repeats a webhook it got no answer for: recorded once
    params = {"AccountSid": "AC1", "Body": "BAJA", "From": ANA, "MessageSid": sid, "To": ""}
    signature = RequestValidator(CAPTURE_AUTH_TOKEN).compute_signature(web, params)
    async with httpx.AsyncClient(trust_env=False) as http:
        again = await http.post(web, data=params, headers={"X-Twilio-Signature": signature})
        assert again.status_code == 200 and again.text == "<Response/>"
        forged = await http.post(web, data={**params, "From": BEA, "MessageSid": "SMx"},
                                 headers={"X-Twilio-Signature": signature})  # fmt: skip
        assert forged.status_code == 403
        unsigned = await http.post(web, data={**params, "From": BEA})
        assert unsigned.status_code == 403
    assert events("S1") == [("sms.opted_out", "customer")]
    assert not opted_out("S2"), "a forged webhook changed nothing"

    _, status = await capture_servers.customer_sends(ANA, "START")
    assert status == 200 and not opted_out("S1")
    assert events("S1") == [("sms.opted_out", "customer"), ("sms.opted_in", "customer")]


async def test_a_free_reply_goes_to_the_timeline_with_a_task(
    capture_servers: CaptureServers, web: str
) -> None:
    _, status = await capture_servers.customer_sends(BEA, "¿Puedo pagar el viernes? Gracias")
    assert status == 200 and not opted_out("S2")
    assert events("S2") == [("sms.reply", "customer")]
    with transaction() as s:
        [task] = s.scalars(select(Task)).all()
        assert task.kind == "reply" and "¿Puedo pagar el viernes?" in task.note
        assert task.assignee_role == "collector" and task.status == "open"
    _, status = await capture_servers.customer_sends("+34600000000", "STOP")
    assert status == 200, "an unknown number is answered, and nothing is recorded"
