"""Email replies and bounces through the real capture servers and the real inbound SMTP
server, on both databases: a reminder email carries the contact's signed Reply-To and
envelope sender; the customer's own reply pauses its reminders (the SMS planned before is
then not sent) with a `reply` task, once however often it is delivered; an out-of-office
answer pauses nothing; a bounce makes the address undeliverable (no more email to it, a
`fix_address` task) until another address is imported; bad mail is answered cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, session_factory, transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.capture_replies import build_reply, deliver
from cobro.dunning import delivery
from cobro.dunning.signals import SIGNAL, workflow_id
from cobro.dunning.store import Trace, load_customer_facts
from cobro.models import Communication, DunningPause, InboundEmail, Task, TimelineEvent
from cobro.models import UndeliverableAddress as Undeliverable
from cobro.replies.inbound_smtp import InboundSmtpServer
from cobro.replies.tokens import communication_of
from cobro.settings import Settings, get_settings
from cobro.users import UserError, create_api_token, create_user
from cobro.web.app import create_app
from tests.dunning.test_email_once_kill import _email_and_sms_policy
from tests.helpers.dunning import import_rows, point_settings_at
from tests.helpers.web import logged_in
from tests.replies.test_incoming_sms import planned, seed

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

DOMAIN = "reply.cobro.localhost"
TRACE = Trace("email-test", "run")


@pytest.fixture
async def inbound(  # type: ignore[no-untyped-def]
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InboundSmtpServer]:
    """The inbound SMTP server on a free loopback port, the capture inbox answering to it,
    two Spanish customers each owing an invoice due two days ago (email + SMS due)."""
    zone, policy = _email_and_sms_policy()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")  # recorded without Temporal
    monkeypatch.setenv("COBRO_REPLY_DOMAIN", DOMAIN)
    get_settings.cache_clear()
    server = InboundSmtpServer(default_engine(), get_settings(), host="127.0.0.1", port=0)
    await server.start()
    capture_servers.mailbox.inbound = ("127.0.0.1", server.port or 0)
    seed(tmp_path, zone)
    yield server
    await server.stop()


def _run(function, *args):  # type: ignore[no-untyped-def]
    return asyncio.to_thread(lambda: function(session_factory()(), *args))


async def send_due(account: str) -> tuple[dict[str, delivery.ActionSpec], str]:
    """Send the due email (claim, send, confirm); the SMS planned with it, the mail's id."""
    before = {a.kind: a for a in planned(account)}
    assert set(before) == {"email", "sms"}, "an email and an SMS are due"
    claimed = await _run(delivery.claim, before["email"], datetime.now(UTC), TRACE)
    assert claimed.outcome is None, claimed.summary
    provider_id = await delivery.send(claimed)
    await _run(delivery.confirm, claimed, provider_id, TRACE)
    return before, provider_id


def mail_to(capture: CaptureServers, address: str) -> str:
    [mail] = capture.mail.find(to=address)
    return mail.id


async def test_a_human_reply_pauses_and_opens_a_task_once(
    capture_servers: CaptureServers, inbound: InboundSmtpServer
) -> None:
    before, message_id = await send_due("S1")
    mail = capture_servers.mail.get(mail_to(capture_servers, "pagos@nunez.example"))
    reply_to = mail.header("Reply-To") or ""
    key = get_settings().web_secret_key.get_secret_value().encode()  # type: ignore[union-attr]
    with transaction() as s:
        [comm] = s.scalars(select(Communication).where(Communication.channel == "email"))
        assert communication_of(key, reply_to, DOMAIN) == comm.id
        assert communication_of(key, mail.summary.envelope_from, DOMAIN) == comm.id
        assert mail.summary.envelope_from.startswith("bounce+")
        assert mail.summary.message_id == message_id == comm.provider_id

    answer = build_reply(mail, "human", "Pagamos ayer.")
    assert await deliver(answer, "127.0.0.1", inbound.port or 0) == (250, "2.0.0 reply")
    assert events_of("S1") == [("email.reply", "customer"), ("dunning.paused", "customer:S1")]
    with transaction() as s:
        [pause] = s.scalars(select(DunningPause)).all()
        assert pause.status == "active" and pause.until is not None
        assert pause.until > datetime.now(UTC).date()
        [task] = s.scalars(select(Task)).all()
        assert task.kind == "reply" and "Pagamos ayer." in task.note
        [row] = s.scalars(select(InboundEmail)).all()
        assert row.kind == "human" and row.text.startswith("Pagamos ayer.")
        assert "> " not in row.text, "the quoted original is left out"
        reply = s.scalar(select(TimelineEvent).where(TimelineEvent.kind == "email.reply"))
        assert reply is not None and reply.data["communication_id"] == comm.id
        assert reply.data["template"] == "due"
    assert planned("S1") == [], "paused: nothing is due"
    sms = await _run(delivery.claim, before["sms"], datetime.now(UTC), TRACE)
    assert sms.outcome == "stale", "the SMS planned before the reply is not sent"
    assert capture_servers.sms.list() == []

    # the customer's MTA delivers the same message again: recorded once
    assert await deliver(answer, "127.0.0.1", inbound.port or 0) == (250, "2.0.0 duplicate")
    with transaction() as s:
        assert len(s.scalars(select(InboundEmail)).all()) == 1
        assert len(s.scalars(select(Task)).all()) == 1
        assert len(s.scalars(select(DunningPause)).all()) == 1
    assert {a.kind for a in planned("S2")} == {"email", "sms"}, "the other customer goes on"
    file = api_client(default_engine()).get("/api/customers/S1").json()
    [reply] = file["inbound_emails"]
    assert reply["kind"] == "human" and reply["text"].startswith("Pagamos ayer.")
    assert file["email_addresses"] == [
        {"address": "pagos@nunez.example", "undeliverable": False, "since": None,
         "status": None, "reason": None}
    ]  # fmt: skip
    assert file["dunning_paused"] is True
    assert "Email from the customer" in [e["title"] for e in file["timeline"]]


def api_client(engine):  # type: ignore[no-untyped-def]
    with contextlib.suppress(UserError):  # made by an earlier call
        create_user(engine, "api-viewer", "correct horse battery", "viewer")
    token = create_api_token(engine, "api-viewer", "tests", scope="read")
    app = create_app(Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def events_of(account: str) -> list[tuple[str, str]]:
    with transaction() as s:
        return [
            (e.kind, e.actor)
            for e in s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.kind.like("email.%") | TimelineEvent.kind.like("dunning.p%"))
                .order_by(TimelineEvent.id)
            )
            if e.customer_id == _id(s, account)
        ]


def _id(s, account: str) -> int:  # type: ignore[no-untyped-def]
    from cobro.models import Customer

    return s.scalar(select(Customer.id).where(Customer.account == account))


async def test_an_out_of_office_reply_pauses_nothing(
    capture_servers: CaptureServers, inbound: InboundSmtpServer
) -> None:
    before, _ = await send_due("S1")
    mail_id = mail_to(capture_servers, "pagos@nunez.example")
    async with httpx.AsyncClient(base_url=capture_servers.base_url, trust_env=False) as http:
        answered = await http.post(f"/_capture/mail/{mail_id}/reply", data={"kind": "auto"})
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"kind": "auto", "code": 250, "message": "2.0.0 auto_reply"}
        wrong = await http.post(f"/_capture/mail/{mail_id}/reply", data={"kind": "angry"})
        assert wrong.status_code == 400
        missing = await http.post("/_capture/mail/20260101T000000000000Z-00000000/reply")
        assert missing.status_code == 404
    assert events_of("S1") == [("email.auto_reply", "customer")]
    with transaction() as s:
        assert s.scalars(select(DunningPause)).all() == []
        assert s.scalars(select(Task)).all() == []
        [row] = s.scalars(select(InboundEmail)).all()
        assert row.kind == "auto_reply" and row.why == "Auto-Submitted: auto-replied"
    assert [a.kind for a in planned("S1")] == ["sms"], "the SMS is still due"
    sms = await _run(delivery.claim, before["sms"], datetime.now(UTC), TRACE)
    assert sms.outcome is None, "and it is sent"


async def test_a_bounce_stops_email_to_the_address_and_opens_a_task(
    capture_servers: CaptureServers, inbound: InboundSmtpServer, tmp_path: Path
) -> None:
    before, _ = await send_due("S1")
    mail_id = mail_to(capture_servers, "pagos@nunez.example")
    code, said = await capture_servers.customer_replies(mail_id, "bounce")
    assert (code, said) == (250, "2.0.0 bounced")
    assert events_of("S1") == [("email.bounced", "system")]
    with transaction() as s:
        [gone] = s.scalars(select(Undeliverable)).all()
        assert gone.address == "pagos@nunez.example" and gone.status == "5.1.1"
        [task] = s.scalars(select(Task)).all()
        assert task.kind == "fix_address" and "pagos@nunez.example" in task.note
        [comm] = s.scalars(select(Communication).where(Communication.channel == "email"))
        assert comm.status == "bounced"
        facts = load_customer_facts(s, "S1")
        assert facts is not None and facts.deliverable_email is None
    # the customer file and the API say so
    engine = default_engine()
    page = logged_in(engine, str(engine.url)).get("/customers/S1")
    assert page.status_code == 200
    assert "<s>pagos@nunez.example</s>" in page.text and "undeliverable since" in page.text
    assert "Replies and bounces" in page.text and "Email bounced" in page.text
    file = api_client(engine).get("/api/customers/S1").json()
    [address] = file["email_addresses"]
    assert address["address"] == "pagos@nunez.example" and address["undeliverable"]
    assert address["status"] == "5.1.1"
    [came_back] = file["inbound_emails"]
    assert came_back["kind"] == "bounce" and came_back["communication_id"] == comm.id

    later = dataclasses.replace(
        before["email"], idempotency_key=before["email"].idempotency_key + "+1"
    )
    claimed = await _run(delivery.claim, later, datetime.now(UTC), TRACE)
    assert claimed.outcome == "skipped" and "undeliverable" in claimed.summary
    assert len(capture_servers.mail.list()) == 1, "no email after the bounce"
    assert {a.kind for a in planned("S2")} == {"email", "sms"}

    # the collector imports the customer's right address: email goes again
    import_rows(tmp_path, "customers", [
        {"account": "S1", "name": "Ferretería Núñez", "country": "ES", "language": "es",
         "email": "cobros@nunez.example", "phone": "+34612345678"},
    ])  # fmt: skip
    with transaction() as s:
        facts = load_customer_facts(s, "S1")
        assert facts is not None and facts.deliverable_email == "cobros@nunez.example"


async def test_bad_mail_is_answered_cleanly(
    capture_servers: CaptureServers, inbound: InboundSmtpServer
) -> None:
    port = inbound.port
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await aiosmtplib.send(b"Subject: hi\r\n\r\nhello\r\n", sender="a@b.example",
                              recipients=["someone@elsewhere.example"], hostname="127.0.0.1",
                              port=port)  # fmt: skip
    assert refused.value.recipients[0].code == 550
    garbage = [
        b"\x00\xff\xfe not an email at all \xc3\x28",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x",
        b"From: =?utf-8?B?!!!?= <\r\nSubject: =?klingon?Q?x?=\r\n\r\n\xff",
    ]
    for raw in garbage:
        _, said = await aiosmtplib.send(raw, sender="a@b.example", hostname="127.0.0.1",
                                        recipients=[f"reply+zz-aaaaaaaaaaaa@{DOMAIN}"],
                                        port=port)  # fmt: skip
        assert said.startswith("2.0.0"), said
    with transaction() as s:
        rows = s.scalars(select(InboundEmail)).all()
        assert len(rows) == 3 and all(r.customer_id is None for r in rows)
    # the server still works
    await send_due("S2")
    code, said = await capture_servers.customer_replies(
        mail_to(capture_servers, "admin@beatriz.example"), "human"
    )
    assert (code, said) == (250, "2.0.0 reply")


@pytest.mark.temporal
async def test_a_human_reply_tells_the_dunning_workflow(
    capture_servers: CaptureServers,
    inbound: InboundSmtpServer,
    dev_server_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pause is signalled (with start) to the customer's workflow, as a collector's."""
    monkeypatch.setenv(
        "COBRO_TEMPORAL_ADDRESS", dev_server_env.client.service_client.config.target_host
    )
    get_settings.cache_clear()
    inbound.settings = get_settings()  # the next connection's handler reads them
    handle = dev_server_env.client.get_workflow_handle(workflow_id("S1"))
    before = await _signals(handle)
    await send_due("S1")
    code, said = await capture_servers.customer_replies(
        mail_to(capture_servers, "pagos@nunez.example"), "human"
    )
    assert (code, said) == (250, "2.0.0 reply")
    signals = await _signals(handle)
    assert len(signals) == len(before) + 1
    assert signals[-1].signal_name == SIGNAL
    assert b"email reply" in signals[-1].input.payloads[0].data
    assert b"customer:S1" in signals[-1].input.payloads[0].data


async def _signals(handle: WorkflowHandle) -> list:  # type: ignore[type-arg]
    try:
        history = await handle.fetch_history()
    except RPCError:  # no such workflow yet
        return []
    return [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]


async def test_a_reply_without_the_token_threads_by_its_in_reply_to(
    capture_servers: CaptureServers, inbound: InboundSmtpServer
) -> None:
    """A mail client that answered the From (or a forwarded copy): our Message-ID in its
    In-Reply-To still names the reminder; a forged token is no token."""
    await send_due("S2")
    mail = capture_servers.mail.get(mail_to(capture_servers, "admin@beatriz.example"))
    answer = build_reply(mail, "human", "¿Puedo pagar el viernes?")
    plain = f"collections@{DOMAIN}"
    forged = f"reply+1-aaaaaaaaaaaa@{DOMAIN}"
    raw = answer.message.replace(mail.header("Reply-To").encode(), plain.encode())  # type: ignore[union-attr]
    moved = dataclasses.replace(answer, envelope_to=forged, message=raw)
    assert await deliver(moved, "127.0.0.1", inbound.port or 0) == (250, "2.0.0 reply")
    with transaction() as s:
        [comm] = s.scalars(select(Communication).where(Communication.channel == "email"))
        [row] = s.scalars(select(InboundEmail)).all()
        assert row.communication_id == comm.id and row.customer_id == comm.customer_id
    assert events_of("S2") == [("email.reply", "customer"), ("dunning.paused", "customer:S2")]


def test_only_the_bounced_address_of_several_stops() -> None:
    from cobro.dunning.store import CustomerFacts
    from cobro.models import Customer

    customer = Customer(account="M1", email="Pagos@nunez.example; cobros@nunez.example")
    facts = CustomerFacts(customer, [], {}, [], None, None)
    assert facts.deliverable_email == "Pagos@nunez.example;cobros@nunez.example"
    facts.undeliverable = frozenset({"pagos@nunez.example"})
    assert facts.deliverable_email == "cobros@nunez.example"
    facts.undeliverable = frozenset({"pagos@nunez.example", "cobros@nunez.example"})
    assert facts.deliverable_email is None
