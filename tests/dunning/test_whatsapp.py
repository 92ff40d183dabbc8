"""WhatsApp dunning on both databases and the real capture server: exactly once when an
attempt died between the provider's acceptance and its confirmation (the next one asks the
provider), no opt-in means no WhatsApp and a timeline event saying why, and a whole run on
the time-skipping server where the WhatsApp step reaches the capture server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from cobro.consent import record_whatsapp_opt_in
from cobro.db import session_factory, transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning import delivery
from cobro.dunning.actions import ActionSpec
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.dunning.store import Trace, current_plan, load_customer_facts
from cobro.models import Communication, TimelineEvent
from tests.helpers import eventually
from tests.helpers.dunning import (
    import_rows,
    midday_zone,
    point_settings_at,
    pydantic_client,
    running_worker,
)

T = TypeVar("T")
TRACE = Trace("dunning-test", "run")


def _policy(country: str) -> str:
    return f"""\
policies:
  - name: wa
    calendar: {country}
    business_days: false
    send_window: "06:00-20:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {{at: +1d, channel: whatsapp, template: due}}
"""


async def _run(function: Callable[..., T], *args: Any) -> T:
    def call() -> T:
        with session_factory()() as session:
            return function(session, *args)

    return await asyncio.to_thread(call)


@pytest.fixture
def due_whatsapp(
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str, bool], ActionSpec]:
    """`due_whatsapp(phone, opted_in)`: a customer with one overdue invoice, and the due
    WhatsApp the planner gives for it."""
    zone, country = midday_zone()
    point_settings_at(monkeypatch, capture_servers, tmp_path, _policy(country))
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    counter = iter(range(1000))

    def make(phone: str, opted_in: bool) -> ActionSpec:
        account = f"W{next(counter):03d}"
        customer = {"account": account, "name": f"{account} SL", "country": "ES"}
        customer |= {"timezone": zone, "language": "es", "phone": phone}
        import_rows(tmp_path, "customers", [customer])
        invoice = {"number": f"F-{account}", "account": account, "currency": "EUR"}
        invoice |= {"issue_date": due.isoformat(), "due_date": due.isoformat()}
        import_rows(tmp_path, "invoices", [invoice | {"amount": "120.00"}])
        if opted_in:
            record_whatsapp_opt_in(None, account, "signed form")
        with session_factory()() as session:
            facts = load_customer_facts(session, account)
            assert facts is not None
            [action] = current_plan(facts, datetime.now(UTC)).due
        assert action.kind == "whatsapp"
        return action

    return make


def _row(action: ActionSpec) -> Communication:
    with transaction() as s:
        row = s.scalar(
            select(Communication).where(Communication.idempotency_key == action.idempotency_key)
        )
        assert row is not None
        return row


async def test_a_send_accepted_but_not_confirmed_is_not_sent_again(
    due_whatsapp: Callable[[str, bool], ActionSpec], capture_servers: CaptureServers
) -> None:
    action = due_whatsapp("+34600111222", True)
    # attempt 1: claims, the provider accepts, the worker dies before the confirmation
    claim = await _run(delivery.claim, action, datetime.now(UTC), TRACE)
    assert claim.outcome is None and claim.recipient == "whatsapp:+34600111222"
    await delivery.send(claim)
    assert len(capture_servers.sms.list()) == 1
    with transaction() as s:  # its lease runs out
        s.execute(
            update(Communication)
            .where(Communication.idempotency_key == action.idempotency_key)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )

    done = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)

    assert done.status == "sent" and "earlier attempt" in done.summary
    [captured] = capture_servers.sms.list()
    assert captured.message["to"] == "whatsapp:+34600111222"
    assert captured.message["from"].startswith("whatsapp:")
    assert "F-" not in captured.message["body"] and "/p/" in captured.message["body"]
    row = _row(action)
    assert (row.channel, row.status, row.attempts, row.provider_id) == (
        "whatsapp",
        "sent",
        2,
        captured.sid,
    )
    again = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert again.status == "sent" and len(capture_servers.sms.list()) == 1


async def test_without_an_opt_in_nothing_is_sent_and_the_timeline_says_why(
    due_whatsapp: Callable[[str, bool], ActionSpec], capture_servers: CaptureServers
) -> None:
    action = due_whatsapp("+34600111333", False)
    done = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert done.status == "skipped" and "no WhatsApp opt-in" in done.summary
    assert capture_servers.sms.list() == [] and capture_servers.mail.list() == []
    assert (_row(action).status, _row(action).error) == ("skipped", done.summary)
    with transaction() as s:
        [event] = s.scalars(
            select(TimelineEvent).where(TimelineEvent.kind == "dunning.whatsapp_skipped")
        ).all()
        assert "no WhatsApp opt-in recorded for whatsapp:+34600111333" in event.summary
        facts = load_customer_facts(s, action.account)
        assert facts is not None
        assert current_plan(facts, datetime.now(UTC)).due == []  # the step is passed
    again = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert again.status == "skipped" and capture_servers.sms.list() == []


@pytest.mark.temporal
async def test_a_whatsapp_step_reaches_the_capture_server(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    policy = """\
policies:
  - name: standard
    calendar: FR
    business_days: false
    send_window: "09:00-18:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {at: +1d, channel: [email, whatsapp], template: due}
"""
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    client = pydantic_client(env)
    day0 = (await env.get_current_time()).date()
    due = day0 + timedelta(days=2)
    customers = [
        {"account": account, "name": f"Ferretería {account}", "country": "ES"}
        | {"language": "es", "timezone": "Europe/Madrid", "email": f"{account}@x.example"}
        | {"phone": phone}
        for account, phone in (("WA1", "+34600111444"), ("WA2", "+34600111555"))
    ]
    import_rows(tmp_path, "customers", customers)
    invoices = [
        {"number": f"F-{c['account']}", "account": c["account"], "currency": "EUR"}
        | {"issue_date": day0.isoformat(), "due_date": due.isoformat(), "amount": "300.00"}
        for c in customers
    ]
    import_rows(tmp_path, "invoices", invoices)
    record_whatsapp_opt_in(None, "WA1", "signed form")  # WA2 never opted in

    async with running_worker(client, queue):
        await notify(client, ["WA1", "WA2"], FactsChanged("invoices_changed", "import"))
        await env.sleep(timedelta(days=4))
        await eventually(lambda: len(capture_servers.mail.list()) == 2)
        await eventually(lambda: len(capture_servers.sms.list()) == 1)
        await eventually(lambda: _statuses() == {("WA1", "sent"), ("WA2", "skipped")})

    [captured] = capture_servers.sms.list()
    assert captured.message["to"] == "whatsapp:+34600111444"
    assert "ha vencido" in captured.message["body"]  # the Spanish template
    with transaction() as s:
        summaries = s.scalars(
            select(TimelineEvent.summary).where(TimelineEvent.kind == "dunning.whatsapp_skipped")
        ).all()
    assert len(summaries) == 1 and "+34600111555" in summaries[0]


def _statuses() -> set[tuple[str, str]]:
    from cobro.models import Customer

    with transaction() as s:
        rows = s.execute(
            select(Customer.account, Communication.status)
            .join(Customer, Customer.id == Communication.customer_id)
            .where(Communication.channel == "whatsapp")
        ).all()
    return {(a, st) for a, st in rows}
