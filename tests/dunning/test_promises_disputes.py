"""Promises and disputes that users can see, on both databases: a promise has an amount and a
currency (the open invoices' one by default), shown by `dunning show`, the customer file and
the API with what was paid towards it; paid in part by its date it is "partly kept"; `resume`
never ends it, `promise cancel` does. A dispute (who, why) takes one invoice out of dunning
until resolved, survives the ERP's re-import, and wakes the customer's workflow."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.dunning import collector
from cobro.dunning.signals import workflow_id
from cobro.dunning.store import Trace, _escalation_pending, housekeeping, load_customer_facts
from cobro.models import (
    Customer,
    DunningPause,
    Invoice,
    InvoiceDispute,
    Payment,
    Task,
    TimelineEvent,
)
from cobro.settings import Settings, get_settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers.dunning import import_rows
from tests.helpers.web import said

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

# the customers are in Paris: their today, which is what the actions compare with
TODAY = datetime.now(ZoneInfo("Europe/Paris")).date()
LATER = (TODAY + timedelta(days=10)).isoformat()


def _customer(engine: Engine, account: str, invoices: list[tuple[str, str, str]]) -> None:
    """A French customer with open invoices (number, currency, open amount), 30 days late."""
    with transaction(engine) as s:
        c = Customer(
            account=account, name=f"{account} SARL", country="FR", language="fr",
            timezone="Europe/Paris",
        )  # fmt: skip
        s.add(c)
        s.flush()
        for number, currency, amount in invoices:
            s.add(
                Invoice(
                    number=number,
                    customer_id=c.id,
                    issue_date=TODAY - timedelta(days=60),
                    due_date=TODAY - timedelta(days=30),
                    currency=currency,
                    amount=Decimal(amount),
                    open_amount=Decimal(amount),
                )
            )


def _pay(engine: Engine, account: str, amount: str, currency: str = "EUR") -> None:
    with transaction(engine) as s:
        c = s.scalar(select(Customer).where(Customer.account == account))
        assert c is not None
        s.add(
            Payment(
                reference=f"P-{uuid.uuid4().hex[:8]}",
                customer_id=c.id,
                date=TODAY,
                currency=currency,
                amount=Decimal(amount),
                unallocated_amount=Decimal(amount),
            )
        )


@pytest.fixture
def live(
    use_database: str, dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, str]]:
    """The test database, a Temporal dev server (no worker: the signals are only recorded),
    a collector user, and a fresh account (the dev server lives for the whole session)."""
    monkeypatch.setenv(
        "COBRO_TEMPORAL_ADDRESS", dev_server_env.client.service_client.config.target_host
    )
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", f"actions-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    engine = default_engine()
    create_user(engine, "maria", "correct horse battery", "collector")
    yield engine, f"K-{uuid.uuid4().hex[:8]}"
    get_settings.cache_clear()


def _cli(*args: str) -> tuple[int, list[str]]:
    done = CliRunner().invoke(app, ["dunning", *args])
    return done.exit_code, done.output.splitlines()


def _web(engine: Engine, account: str) -> tuple[TestClient, str, TestClient]:
    application = create_app(Settings(web_secret_key="k" * 32), engine)
    browser = TestClient(application)
    browser.get("/login")
    logged = browser.post(
        "/login",
        data={
            "username": "maria",
            "password": "correct horse battery",
            "csrf_token": browser.cookies.get("cobro_login_csrf"),
        },
        follow_redirects=False,
    )
    assert logged.status_code == 303, logged.text
    page = browser.get(f"/customers/{account}").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    token = create_api_token(engine, "maria", f"t-{uuid.uuid4().hex[:6]}", scope="act")
    return (
        browser,
        match.group(1),
        TestClient(application, headers={"Authorization": f"Bearer {token}"}),
    )


def _notice(response: Any) -> str:
    return said(response)


async def _signal_kinds(env: WorkflowEnvironment, account: str) -> list[str]:
    history = await env.client.get_workflow_handle(workflow_id(account)).fetch_history()
    return [
        json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data)["kind"]
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]


@pytest.mark.temporal
async def test_a_promise_everywhere_and_what_ends_it(
    live: tuple[Engine, str], dev_server_env: WorkflowEnvironment
) -> None:
    engine, account = live
    _customer(engine, account, [("F1-" + account, "EUR", "500.00")])

    code, out = _cli("promise", "--customer", account, "--until", LATER, "--amount", "300")
    assert (code, out) == (0, [f"{account}: promise to pay 300.00 EUR by {LATER} recorded"])
    _pay(engine, account, "100.00")

    code, out = _cli("show", "--customer", account, "--json")
    assert code == 0, out
    (hold,) = json.loads("\n".join(out))["holds"]
    assert (hold["kind"], hold["until"], hold["currency"], hold["by"]) == (
        "promise",
        LATER,
        "EUR",
        "cli",
    )
    assert Decimal(hold["amount"]) == 300 and Decimal(hold["paid"]) == 100
    sentence = f"promise to pay 300.00 EUR by {LATER} (100.00 paid so far: partly kept)"
    assert hold["sentence"].startswith(sentence)
    code, out = _cli("show", "--customer", account)
    assert code == 0 and any(line.startswith(sentence) for line in out), out

    browser, _, api = _web(engine, account)
    held = api.get(f"/api/customers/{account}").json()["holds"]
    assert [(h["kind"], Decimal(h["amount"]), h["currency"], Decimal(h["paid"])) for h in held] == [
        ("promise", Decimal(300), "EUR", Decimal(100))
    ]
    page = browser.get(f"/customers/{account}").text
    assert sentence in page and 'id="promise-cancel"' in page and 'id="resume"' not in page
    assert f"promise to pay of 300.00 EUR until {LATER}" in page, "the timeline says it too"

    code, out = _cli("resume", "--customer", account)
    assert (code, out) == (
        1,
        [
            f"error: {account} has no manual pause to lift; the promise to pay by {LATER} stays"
            " (cancel it to resume reminders)"
        ],
    )
    code, out = _cli("promise", "cancel", "--customer", account, "--reason", "renegotiated")
    assert (code, out) == (0, [f"{account}: promise to pay by {LATER} cancelled"])
    code, out = _cli("promise", "cancel", "--customer", account)
    assert (code, out) == (1, [f"error: {account} has no promise to pay to cancel"])
    with engine.connect() as conn:
        assert conn.scalars(select(DunningPause.status)).all() == ["cancelled"]
    assert await _signal_kinds(dev_server_env, account) == ["promise_to_pay", "promise_cancelled"]


def test_a_new_promise_replaces_the_last_and_currency_must_be_said_when_mixed(
    use_database: str,
) -> None:
    engine = default_engine()
    _customer(engine, "MIX", [("M1", "EUR", "100.00"), ("M2", "USD", "100.00")])
    with pytest.raises(collector.ActionError, match="open invoices in EUR, USD"):
        collector.promise(engine, "MIX", "ops", LATER, "50", None)
    collector.promise(engine, "MIX", "ops", LATER, "50", "usd")
    message = collector.promise(engine, "MIX", "ops", TODAY, "20", "EUR")
    assert message == f"promise to pay 20.00 EUR by {TODAY} recorded"
    with engine.connect() as conn:
        rows = conn.execute(
            select(DunningPause.status, DunningPause.currency).order_by(DunningPause.id)
        ).all()
        summary = conn.scalars(
            select(TimelineEvent.summary).order_by(TimelineEvent.id.desc()).limit(1)
        ).one()
    assert [tuple(r) for r in rows] == [("replaced", "USD"), ("active", "EUR")]
    assert (
        summary == f"promise to pay of 20.00 EUR until {TODAY} (replaces the promise until {LATER})"
    )


def _housekeeping(engine: Engine, account: str, now: datetime) -> list[str]:
    with transaction(engine) as s:
        facts = load_customer_facts(s, account)
        assert facts is not None
        return housekeeping(s, facts, now, Trace())


def test_partly_kept_kept_and_broken(use_database: str) -> None:
    engine = default_engine()
    now = datetime.now(UTC)
    for account in ("PART", "FULL", "NONE"):
        _customer(engine, account, [(f"{account}-1", "EUR", "500.00")])
        collector.promise(engine, account, "ops", TODAY + timedelta(days=2), "300", None)
    _pay(engine, "PART", "100.00")
    _pay(engine, "PART", "999.00", "USD")  # another currency does not count
    _pay(engine, "FULL", "300.00")

    assert _housekeeping(engine, "PART", now) == [], "paid in part, not yet due: still active"
    assert _housekeeping(engine, "FULL", now) == ["promise kept"]
    later = now + timedelta(days=5)
    assert _housekeeping(engine, "PART", later) == ["promise partly kept: escalation and task"]
    assert _housekeeping(engine, "NONE", later) == ["promise not kept: escalation and task"]

    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(Customer.account, DunningPause.status).join(
                    Customer, Customer.id == DunningPause.customer_id
                )
            ).all()
        )
        events = conn.execute(
            select(Customer.account, TimelineEvent.kind, TimelineEvent.summary)
            .join(Customer, Customer.id == TimelineEvent.customer_id)
            .where(TimelineEvent.kind.like("promise.%"), TimelineEvent.kind != "promise.recorded")
        ).all()
        tasks = conn.scalars(select(Task.note).order_by(Task.id)).all()
    assert statuses == {"PART": "partly_kept", "FULL": "kept", "NONE": "broken"}
    until = TODAY + timedelta(days=2)
    assert sorted(tuple(e) for e in events) == [
        ("FULL", "promise.kept", "promise to pay kept (300.00 of 300.00 EUR paid)"),
        ("NONE", "promise.broken", f"promise to pay by {until} not kept (0.00 of 300.00 EUR paid)"),
        (
            "PART",
            "promise.partly_kept",
            f"promise to pay by {until} partly kept (100.00 of 300.00 EUR paid)",
        ),
    ]
    assert tasks == [
        f"promise to pay by {until} partly kept (100.00 of 300.00 EUR paid): call the customer",
        f"promise to pay by {until} not kept (0.00 of 300.00 EUR paid): call the customer",
    ]
    with transaction(engine) as s:
        part = load_customer_facts(s, "PART")
        assert part is not None and _escalation_pending(part), "partly kept escalates one step"


@pytest.mark.temporal
async def test_a_dispute_takes_one_invoice_out_until_resolved(
    live: tuple[Engine, str], dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    engine, account = live
    f1, f2 = f"{account}-F1", f"{account}-F2"
    _customer(engine, account, [(f1, "EUR", "500.00"), (f2, "EUR", "200.00")])
    _customer(engine, f"{account}-other", [(f"{account}-X", "EUR", "10.00")])

    code, out = _cli("dispute", "--invoice", f1, "--reason", "")
    assert (code, out) == (1, ["error: the reason is required (it goes on the customer timeline)"])
    browser, csrf, api = _web(engine, account)
    blank = browser.post(
        f"/customers/{account}/dispute",
        data={"invoice": f1, "reason": " ", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert _notice(blank) == "not done: the reason is required (it goes on the customer timeline)"
    refused = api.post(f"/api/invoices/{f1}/dispute", json={"reason": ""})
    assert refused.status_code == 422
    assert refused.json() == {"detail": "the reason is required (it goes on the customer timeline)"}
    elsewhere = browser.post(
        f"/customers/{account}/dispute",
        data={"invoice": f"{account}-X", "reason": "x", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert _notice(elsewhere) == f"not done: no invoice '{account}-X' for customer '{account}'"
    assert api.post("/api/invoices/NOPE/dispute", json={"reason": "x"}).status_code == 404

    code, out = _cli("dispute", "--invoice", f1, "--reason", "wrong unit price", "--by", "ops")
    assert (code, out) == (0, [f"invoice {f1} disputed: it leaves dunning until resolved"])
    code, out = _cli("dispute", "--invoice", f1, "--reason", "again")
    assert (code, out) == (
        1,
        [f"error: invoice {f1} is already disputed (since {TODAY}, by ops: wrong unit price)"],
    )
    code, out = _cli("plan", "--customer", account, "--json")
    planned = json.loads("\n".join(out))
    assert planned["excluded"] == {f1: "disputed"}
    assert all(f1 not in a["invoices"] for a in planned["actions"])
    assert any(f2 in a["invoices"] for a in planned["actions"])

    # the ERP still says "not disputed": the collector's dispute stays
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": f1,
                "account": account,
                "issue_date": (TODAY - timedelta(days=60)).isoformat(),
                "due_date": (TODAY - timedelta(days=30)).isoformat(),
                "currency": "EUR",
                "amount": "500.00",
                "open_amount": "500.00",
                "disputed": "false",
            }
        ],
    )
    code, out = _cli("show", "--customer", account, "--json")
    (hold,) = json.loads("\n".join(out))["holds"]
    assert (hold["kind"], hold["invoice"], hold["by"], hold["reason"]) == (
        "dispute",
        f1,
        "ops",
        "wrong unit price",
    )
    page = browser.get(f"/customers/{account}").text
    assert f"disputed by ops since {TODAY}: wrong unit price" in page
    assert [h["invoice"] for h in api.get(f"/api/customers/{account}").json()["holds"]] == [f1]

    resolved = api.post(f"/api/invoices/{f1}/resolve", json={"reason": "credit note sent"})
    assert resolved.status_code == 200
    assert resolved.json()["message"] == f"invoice {f1} dispute resolved: back in dunning"
    code, out = _cli("resolve", "--invoice", f1)
    assert (code, out) == (1, [f"error: invoice {f1} is not disputed"])
    again = browser.post(
        f"/customers/{account}/dispute",
        data={"invoice": f2, "reason": "not delivered", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert _notice(again) == f"invoice {f2} disputed: it leaves dunning until resolved"

    with engine.connect() as conn:
        flags = dict(conn.execute(select(Invoice.number, Invoice.disputed)).all())
        disputes = conn.execute(
            select(
                Invoice.number,
                InvoiceDispute.opened_by,
                InvoiceDispute.resolved_by,
                InvoiceDispute.resolution,
            )
            .join(Invoice, Invoice.id == InvoiceDispute.invoice_id)
            .order_by(InvoiceDispute.id)
        ).all()
        timeline = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor, TimelineEvent.summary)
            .where(TimelineEvent.kind.like("dispute.%"))
            .order_by(TimelineEvent.id)
        ).all()
    assert (flags[f1], flags[f2]) == (False, True)
    assert [tuple(d) for d in disputes] == [
        (f1, "ops", "maria", "credit note sent"),
        (f2, "maria", None, ""),
    ]
    assert [tuple(t) for t in timeline] == [
        ("dispute.opened", "ops", f"invoice {f1} disputed: wrong unit price"),
        ("dispute.resolved", "maria", f"invoice {f1} dispute resolved: credit note sent"),
        ("dispute.opened", "maria", f"invoice {f2} disputed: not delivered"),
    ]
    assert await _signal_kinds(dev_server_env, account) == [
        "dispute_opened",
        "dispute_closed",
        "dispute_opened",
    ]
