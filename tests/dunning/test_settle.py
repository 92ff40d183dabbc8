"""A collector settles an uncertain email (`cobro.dunning.settle`), on both databases and
the real capture servers: marked sent (never resent), resent exactly once with the same
Message-ID, not resent once its invoice is paid, refused for anything not uncertain; and
the CLI command's one-line answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cobro.channels.email import message_id_for
from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning import delivery
from cobro.dunning.actions import ActionSpec
from cobro.dunning.collector import ActionError
from cobro.dunning.settle import mark_sent, settle_contact
from cobro.models import Invoice, Task, TimelineEvent
from cobro.settings import get_settings
from cobro.users import create_api_token
from tests.dunning import test_email_once
from tests.dunning.test_email_once import (
    TRACE,
    _captured,
    _claim_and_send,
    _lease_expired,
    _row,
    _run,
)
from tests.helpers.web import csrf_of, logged_in, said

setup = test_email_once.setup  # the fixture: a customer with one due email


async def _uncertain(
    setup: Callable[[str], ActionSpec], email: str, monkeypatch: pytest.MonkeyPatch, sent: bool
) -> ActionSpec:
    """A due email claimed (and handed to the relay when `sent`) by an attempt that died;
    the relay cannot be asked, so the next attempt holds it as uncertain."""
    monkeypatch.setenv("COBRO_SMTP_LOOKUP", "")
    get_settings.cache_clear()
    action = setup(email)
    await _claim_and_send(action, send=sent)
    _lease_expired(action)
    assert (await delivery.deliver(action, datetime.now(UTC), TRACE, _run)).status == "uncertain"
    return action


def _task_status(action: ActionSpec) -> str:
    with transaction() as s:
        task = s.scalar(
            select(Task).where(Task.source_key == f"uncertain:{action.idempotency_key}")
        )
        assert task is not None
        return task.status


async def test_marked_sent_is_never_resent(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    action = await _uncertain(setup, "ap@went.example", monkeypatch, sent=True)
    said = mark_sent(default_engine(), message_id_for(action.idempotency_key), "ana", "relay log")
    assert "marked as sent" in said
    row = _row(action)
    assert row.status == "sent" and "ana" in (row.error or "")
    assert _task_status(action) == "done"
    assert (await delivery.deliver(action, datetime.now(UTC), TRACE, _run)).status == "sent"
    assert _captured(capture_servers, action) == 1
    with pytest.raises(ActionError, match="is sent, not uncertain"):
        mark_sent(default_engine(), action.idempotency_key, "ana")


async def test_resend_sends_once_with_the_same_message_id(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    action = await _uncertain(setup, "ap@lost.example", monkeypatch, sent=False)
    assert _captured(capture_servers, action) == 0
    done = await settle_contact(default_engine(), action.idempotency_key, "resend", "ana")
    assert "resent" in done.message
    assert _captured(capture_servers, action) == 1
    row = _row(action)
    assert row.status == "sent" and row.provider_id == message_id_for(action.idempotency_key)
    assert _task_status(action) == "done"
    with transaction() as s:
        kinds = list(s.scalars(select(TimelineEvent.kind)))
    assert "dunning.email_settled" in kinds
    with pytest.raises(ActionError, match="not uncertain"):  # a second resend is refused
        await settle_contact(default_engine(), action.idempotency_key, "resend", "ana")
    assert _captured(capture_servers, action) == 1


async def test_no_resend_after_payment(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    action = await _uncertain(setup, "ap@paid.example", monkeypatch, sent=False)
    with transaction() as s:
        s.execute(update(Invoice).values(open_amount=0))
    done = await settle_contact(default_engine(), action.idempotency_key, "resend", "ana")
    assert "not resent" in done.message
    assert _captured(capture_servers, action) == 0
    assert _row(action).status == "cancelled"
    assert _task_status(action) == "done"


async def test_bad_decisions_are_refused(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ActionError, match="no uncertain contact"):
        await settle_contact(default_engine(), "dunning:NOPE", "sent", "ana")
    with pytest.raises(ActionError, match="decision must be"):
        await settle_contact(default_engine(), "dunning:NOPE", "maybe", "ana")


async def test_cli_settle(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    action = await _uncertain(setup, "ap@cli.example", monkeypatch, sent=True)
    runner = CliRunner()
    both = runner.invoke(app, ["dunning", "settle", "--contact", "x", "--sent", "--resend"])
    assert both.exit_code == 1 and "exactly one of --sent or --resend" in both.output
    missing = runner.invoke(app, ["dunning", "settle", "--contact", "dunning:NOPE", "--sent"])
    assert (
        missing.exit_code == 1
        and missing.output.strip() == "error: no uncertain contact 'dunning:NOPE'"
    )
    ok = runner.invoke(
        app, ["dunning", "settle", "--contact", action.idempotency_key, "--sent", "--by", "ana"]
    )
    assert ok.exit_code == 0, ok.output
    assert "marked as sent" in ok.output
    assert _row(action).status == "sent" and _captured(capture_servers, action) == 1


async def test_customer_file_and_api_settle(
    setup: Callable[[str], ActionSpec],
    capture_servers: CaptureServers,
    use_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    went = await _uncertain(setup, "ap@page.example", monkeypatch, sent=True)
    lost = await _uncertain(setup, "ap@api.example", monkeypatch, sent=False)
    browser = logged_in(default_engine(), use_database)
    page = browser.get("/customers/E000")
    assert "It went out" in page.text and went.idempotency_key in page.text
    done = browser.post(
        "/customers/E000/settle",
        data={
            "csrf_token": csrf_of(browser, "/customers/E000"),
            "contact": went.idempotency_key,
            "decision": "sent",
            "reason": "seen in the relay log",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and "marked as sent" in said(done)
    assert "went.example" not in unquote(done.headers["location"]), "no address in a URL"
    assert _row(went).status == "sent" and _captured(capture_servers, went) == 1
    # the API, by Message-ID; another customer's contact is not settled from this page
    wrong = browser.post(
        "/customers/E000/settle",
        data={
            "csrf_token": csrf_of(browser, "/customers/E000"),
            "contact": lost.idempotency_key,
            "decision": "resend",
        },
        follow_redirects=False,
    )
    assert wrong.status_code == 404 and "no uncertain contact" in said(wrong)
    token = create_api_token(default_engine(), "collector1", "tests", scope="act")
    api = TestClient(browser.app, headers={"Authorization": f"Bearer {token}"})
    answer = await asyncio.to_thread(  # the capture SMTP server runs on this test's loop
        api.post,
        f"/api/communications/{message_id_for(lost.idempotency_key)}/settle",
        json={"decision": "resend"},
    )
    assert answer.status_code == 200, answer.text
    assert "resent" in answer.json()["message"]
    assert _row(lost).status == "sent" and _captured(capture_servers, lost) == 1
    again = api.post(
        f"/api/communications/{lost.idempotency_key}/settle", json={"decision": "resend"}
    )
    assert again.status_code == 409 and "not uncertain" in again.json()["detail"]
