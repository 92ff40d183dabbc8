"""Exactly once for email, step by step, on both databases and the real capture servers:
what a later attempt does with a claim an earlier one left unconfirmed (accepted or not),
with a relay that can answer and one that cannot, a live claim, a temporary refusal, and
the capture inbox's lookup by Message-ID. (The kill tests run the same under SIGKILL.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from cobro.channels.email import SmtpPool, message_id_for, send_email
from cobro.db import session_factory, transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.capture_smtp import CaptureRelayLookup
from cobro.dunning import delivery
from cobro.dunning.actions import ActionSpec
from cobro.dunning.store import Trace, current_plan, load_customer_facts
from cobro.models import Communication, Task, TimelineEvent
from cobro.settings import get_settings
from tests.dunning.test_kill import _policy_for_now
from tests.helpers.dunning import import_rows, point_settings_at

T = TypeVar("T")
TRACE = Trace("dunning-test", "run")


async def _run(function: Callable[..., T], *args: Any) -> T:
    def call() -> T:
        with session_factory()() as session:
            return function(session, *args)

    return await asyncio.to_thread(call)


@pytest.fixture
def setup(
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], ActionSpec]:
    """`due_email(email)`: a customer with that address and one overdue invoice, and the
    due email the planner gives for it."""
    zone, policy = _policy_for_now()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    counter = iter(range(1000))

    def due_email(email: str) -> ActionSpec:
        account = f"E{next(counter):03d}"
        import_rows(
            tmp_path,
            "customers",
            [
                {
                    "account": account,
                    "name": account,
                    "country": "FR",
                    "timezone": zone,
                    "language": "en",
                    "email": email,
                }
            ],
        )
        import_rows(
            tmp_path,
            "invoices",
            [
                {
                    "number": f"INV-{account}",
                    "account": account,
                    "issue_date": due.isoformat(),
                    "due_date": due.isoformat(),
                    "currency": "EUR",
                    "amount": "10.00",
                }
            ],
        )
        with session_factory()() as session:
            facts = load_customer_facts(session, account)
            assert facts is not None
            [action] = current_plan(facts, datetime.now(UTC)).due
        return action

    return due_email


def _row(action: ActionSpec) -> Communication:
    with transaction() as s:
        row = s.scalar(
            select(Communication).where(Communication.idempotency_key == action.idempotency_key)
        )
        assert row is not None
        return row


def _lease_expired(action: ActionSpec) -> None:
    """The attempt that held the claim died: its lease ran out (time moves on)."""
    with transaction() as s:
        s.execute(
            update(Communication)
            .where(Communication.idempotency_key == action.idempotency_key)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


def _captured(capture: CaptureServers, action: ActionSpec) -> int:
    return len(capture.mail.find(message_id=message_id_for(action.idempotency_key)))


async def _claim_and_send(action: ActionSpec, send: bool) -> None:
    """What an attempt killed right after the relay's 250 (or right after its claim) did."""
    claim = await _run(delivery.claim, action, datetime.now(UTC), TRACE)
    assert claim.outcome is None and not claim.resend
    if send:
        await delivery.send(claim)


@pytest.mark.parametrize("accepted", [True, False], ids=["accepted", "never-sent"])
async def test_an_unconfirmed_claim_is_resolved_by_asking_the_relay(
    setup: Callable[[str], ActionSpec], capture_servers: CaptureServers, accepted: bool
) -> None:
    action = setup("ap@once.example")
    await _claim_and_send(action, send=accepted)
    assert _captured(capture_servers, action) == int(accepted)
    _lease_expired(action)

    done = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)

    assert done.status == "sent"
    assert _captured(capture_servers, action) == 1, "exactly once, whatever happened before"
    row = _row(action)
    # accepted: attempt 2 finds it and confirms; never sent: attempt 2 finds nothing, the
    # facts are read again and attempt 3 sends
    assert (row.status, row.attempts, row.provider_id) == (
        "sent",
        2 if accepted else 3,
        message_id_for(action.idempotency_key),
    )
    again = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert again.status == "sent" and _captured(capture_servers, action) == 1


async def test_a_live_claim_is_left_to_its_attempt(
    setup: Callable[[str], ActionSpec], capture_servers: CaptureServers
) -> None:
    action = setup("ap@live.example")
    await _claim_and_send(action, send=False)
    with pytest.raises(delivery.ClaimInFlight):
        await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert _captured(capture_servers, action) == 0
    assert (_row(action).status, _row(action).attempts) == ("claimed", 1)


async def test_a_relay_that_cannot_tell_leaves_it_to_a_collector(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COBRO_SMTP_LOOKUP", "")
    get_settings.cache_clear()
    held, resent = setup("ap@held.example"), setup("ap@resent.example")
    for action in (held, resent):
        await _claim_and_send(action, send=True)
        _lease_expired(action)

    done = await delivery.deliver(held, datetime.now(UTC), TRACE, _run)

    assert done.status == "uncertain"
    assert _captured(capture_servers, held) == 1, "never resent by default"
    row = _row(held)
    assert row.status == "uncertain" and row.error.startswith("uncertain: the SMTP relay")
    with transaction() as s:
        task = s.scalar(select(Task).where(Task.source_key == f"uncertain:{held.idempotency_key}"))
        kinds = set(s.scalars(select(TimelineEvent.kind)))
    assert task is not None and task.kind == "email_uncertain" and task.status == "open"
    assert message_id_for(held.idempotency_key) in task.note
    assert "dunning.email_uncertain" in kinds
    # the task is the collector's; a later attempt changes nothing
    assert (await delivery.deliver(held, datetime.now(UTC), TRACE, _run)).status == "uncertain"

    monkeypatch.setenv("COBRO_EMAIL_RESEND_UNCERTAIN", "true")  # the policy switch
    get_settings.cache_clear()
    assert (await delivery.deliver(resent, datetime.now(UTC), TRACE, _run)).status == "sent"
    assert _captured(capture_servers, resent) == 2, "resent, as the switch allows"


async def test_a_temporary_refusal_shows_on_the_contact_with_its_attempt(
    setup: Callable[[str], ActionSpec], capture_servers: CaptureServers
) -> None:
    action = setup("reject-451@slow.example")
    for attempt in (1, 2, 3):
        with pytest.raises(delivery.TemporarySendError, match="SMTP refused"):
            await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
        row = _row(action)
        assert row.status == "delayed"
        assert row.error == f"delayed: SMTP refused (451), attempt {attempt}"
    assert _captured(capture_servers, action) == 0
    with transaction() as s:
        delays = s.scalars(
            select(TimelineEvent.summary).where(TimelineEvent.kind == "dunning.email_delayed")
        ).all()
    assert len(delays) == 1 and "SMTP refused (451)" in delays[0]


async def test_a_payment_before_the_resend_cancels_it(
    setup: Callable[[str], ActionSpec], capture_servers: CaptureServers
) -> None:
    from cobro.models import Invoice

    action = setup("ap@paid.example")
    await _claim_and_send(action, send=False)
    _lease_expired(action)
    with transaction() as s:
        s.execute(update(Invoice).where(Invoice.number == action.invoices[0]).values(open_amount=0))
    done = await delivery.deliver(action, datetime.now(UTC), TRACE, _run)
    assert done.status == "stale" and _row(action).status == "cancelled"
    assert _captured(capture_servers, action) == 0


async def test_the_capture_inbox_answers_by_message_id(
    capture_servers: CaptureServers, smtp_config
) -> None:
    sent = await send_email(
        to="ap@lookup.example", subject="s", text="t", idempotency_key="k1", config=smtp_config
    )
    async with httpx.AsyncClient(base_url=capture_servers.base_url) as http:
        found = (await http.get("/api/mail", params={"message_id": sent})).json()
        none = (await http.get("/api/mail", params={"message_id": "<nope@cobro>"})).json()
    assert [m["message_id"] for m in found] == [sent] and none == []
    lookup = CaptureRelayLookup(capture_servers.base_url)
    assert (await lookup.find_message(sent)).found is True
    assert (await lookup.find_message(message_id_for("other"))).found is False


async def test_pooled_connections_survive_a_relay_restart(
    capture_servers: CaptureServers, smtp_config
) -> None:
    pool = SmtpPool(smtp_config)
    try:
        first = [
            await send_email(
                to="ap@pool.example", subject="s", text="t", idempotency_key=f"p{i}", pool=pool
            )
            for i in range(3)
        ]
        assert len(pool._idle) == 1, "one connection, reused"
        port = capture_servers.smtp_port
        await capture_servers.smtp.stop()  # the relay drops every connection
        capture_servers.smtp.requested_port = port
        await capture_servers.smtp.start()
        second = await send_email(
            to="ap@pool.example", subject="s", text="t", idempotency_key="p9", pool=pool
        )
    finally:
        await pool.close()
    for message_id in [*first, second]:
        assert len(capture_servers.mail.find(message_id=message_id)) == 1
