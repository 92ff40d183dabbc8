"""The collector's dunning actions (pause, resume, promise to pay) are one implementation:
the CLI, the dashboard pages and the JSON API refuse the same input with the same one-line
message and record nothing; what they accept lands on the timeline with who did it and
wakes the customer's workflow. Both databases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.dunning.collector import ActionError, check_pause, check_promise
from cobro.dunning.signals import SIGNAL, workflow_id
from cobro.models import Customer, DunningPause, Invoice, TimelineEvent
from cobro.settings import Settings, get_settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers.web import said

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

TODAY = date(2026, 6, 30)
ACCOUNT = "K1"


# ------------------------------------------------------------------------------ pure checks


@pytest.mark.parametrize(
    ("reason", "until", "message"),
    [
        ("", None, "the reason is required (it goes on the customer timeline)"),
        ("   ", None, "the reason is required (it goes on the customer timeline)"),
        ("a\x00b", None, "the reason contains a NUL character"),
        ("x" * 1001, None, "the reason is too long (1001 characters, at most 1000)"),
        ("ok", "2026-13-01", "the last paused day: '2026-13-01' is not a date (YYYY-MM-DD)"),
        ("ok", "2026-06-29", "the last paused day (2026-06-29) is in the past"),
        ("ok", date(3000, 1, 1), "the last paused day must be between 1900-01-01 and 2999-12-31"),
    ],
)
def test_pause_refusals(reason: str, until: Any, message: str) -> None:
    with pytest.raises(ActionError) as refused:
        check_pause(reason, until, TODAY)
    assert str(refused.value) == message and refused.value.status == 422


def test_pause_accepted() -> None:
    asked = check_pause("  customer on holiday ", "2026-06-30", TODAY)
    assert (asked.reason, asked.until) == ("customer on holiday", TODAY)
    assert check_pause("x", None, TODAY).until is None


@pytest.mark.parametrize(
    ("until", "amount", "currency", "message"),
    [
        (None, None, None, "give the promised payment date"),
        ("", "10", None, "give the promised payment date"),
        ("2026-06-29", None, None, "the promised date (2026-06-29) is in the past"),
        ("2026-07-01", "0", None, "the promised amount must be positive"),
        ("2026-07-01", "-5", None, "the promised amount must be positive"),
        ("2026-07-01", Decimal("-0.01"), None, "the promised amount must be positive"),
        ("2026-07-01", "abc", None, "the amount 'abc' is not a number"),
        ("2026-07-01", "NaN", None, "the amount 'NaN' is not a number"),
        ("2026-07-01", "inf", None, "the amount 'inf' is not a number"),
        ("2026-07-01", "1e30", None, "the promised amount must be below 1,000,000,000,000"),
        ("2026-07-01", "10.005", None, "the promised amount has more than two decimals"),
        ("2026-07-01", "10", "EURO", "the currency 'EURO' is not an ISO 4217 code (EUR, USD...)"),
    ],
)
def test_promise_refusals(until: Any, amount: Any, currency: Any, message: str) -> None:
    with pytest.raises(ActionError) as refused:
        check_promise(until, amount, currency, "", TODAY, ["EUR"])
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("amount", "currency", "open_currencies", "message"),
    [
        (None, "EUR", ["EUR"], "give the promised amount"),
        (" ", "EUR", ["EUR"], "give the promised amount"),
        (
            "10",
            None,
            ["USD", "EUR"],
            "give the currency of the promised amount (the customer has open invoices in EUR, USD)",
        ),
        (
            "10",
            "",
            [],
            "give the currency of the promised amount (the customer has no open invoice)",
        ),
    ],
)
def test_a_promise_needs_an_amount_and_a_currency(
    amount: Any, currency: Any, open_currencies: list[str], message: str
) -> None:
    with pytest.raises(ActionError) as refused:
        check_promise("2026-07-01", amount, currency, "", TODAY, open_currencies)
    assert str(refused.value) == message


def test_promise_accepted() -> None:
    asked = check_promise("2026-06-30", " 1200.5 ", "eur", " will pay ", TODAY)
    assert asked == type(asked)(TODAY, Decimal("1200.50"), "EUR", "will pay")
    by_default = check_promise(date(2026, 7, 3), "5", None, None, TODAY, ["CHF", "CHF"])
    assert (by_default.amount, by_default.currency) == (Decimal("5.00"), "CHF")


# ---------------------------------------------------------------- the three front ends


@pytest.fixture
def seeded(use_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """One customer with an open invoice; Temporal unreachable unless a test says so."""
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    engine = default_engine()
    with transaction(engine) as s:
        c = Customer(
            account=ACCOUNT, name="K One", country="FR", language="fr", timezone="Europe/Paris"
        )
        s.add(c)
        s.flush()
        s.add(
            Invoice(
                number="F1",
                customer_id=c.id,
                issue_date=date.today() - timedelta(days=60),
                due_date=date.today() - timedelta(days=30),
                currency="EUR",
                amount=Decimal("500.00"),
                open_amount=Decimal("500.00"),
            )
        )
    create_user(engine, "maria", "correct horse battery", "collector")
    yield engine
    get_settings.cache_clear()


def _web(engine: Engine) -> tuple[TestClient, str, TestClient]:
    """A logged-in browser with its CSRF token, and an API client with a token."""
    application = create_app(
        Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine
    )
    browser = TestClient(application)
    browser.get("/login")
    done = browser.post(
        "/login",
        data={
            "username": "maria",
            "password": "correct horse battery",
            "csrf_token": browser.cookies.get("cobro_login_csrf"),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    match = re.search(
        r'name="csrf_token" value="([^"]+)"', browser.get(f"/customers/{ACCOUNT}").text
    )
    assert match
    token = create_api_token(engine, "maria", "tests", scope="act")
    api = TestClient(application, headers={"Authorization": f"Bearer {token}"})
    return browser, match.group(1), api


def _notice(response: Any) -> str:
    return said(response)


def _pauses(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(DunningPause)) or 0


PAST = (date.today() - timedelta(days=3)).isoformat()
LATER = (date.today() + timedelta(days=10)).isoformat()

REFUSED = [
    # (action, CLI options, form / JSON fields, the one message)
    (
        "pause",
        ["--reason", ""],
        {"reason": ""},
        "the reason is required (it goes on the customer timeline)",
    ),
    (
        "pause",
        ["--reason", "holiday", "--until", PAST],
        {"reason": "holiday", "until": PAST},
        f"the last paused day ({PAST}) is in the past",
    ),
    (
        "promise",
        ["--until", PAST, "--amount", "100"],
        {"until": PAST, "amount": "100"},
        f"the promised date ({PAST}) is in the past",
    ),
    (
        "promise",
        ["--until", LATER, "--amount", "0"],
        {"until": LATER, "amount": "0"},
        "the promised amount must be positive",
    ),
    (
        "promise",
        ["--until", LATER, "--amount", "-20"],
        {"until": LATER, "amount": "-20"},
        "the promised amount must be positive",
    ),
]


@pytest.mark.parametrize(("action", "options", "fields", "message"), REFUSED)
def test_cli_pages_and_api_refuse_alike(
    seeded: Engine, action: str, options: list[str], fields: dict[str, str], message: str
) -> None:
    cli = CliRunner().invoke(app, ["dunning", action, "--customer", ACCOUNT, *options])
    assert cli.exit_code == 1, cli.output
    assert cli.output.splitlines() == [f"error: {message}"]

    browser, csrf, api = _web(seeded)
    page = browser.post(
        f"/customers/{ACCOUNT}/{action}",
        data={**fields, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert _notice(page) == f"not done: {message}"

    refused = api.post(f"/api/customers/{ACCOUNT}/{action}", json=fields)
    assert refused.status_code == 422 and refused.json() == {"detail": message}

    assert _pauses(seeded) == 0, "a refused action records nothing"


def test_unknown_customer_is_one_line_and_a_404(seeded: Engine) -> None:
    cli = CliRunner().invoke(app, ["dunning", "pause", "--customer", "NOPE", "--reason", "x"])
    assert cli.exit_code == 1 and cli.output.splitlines() == ["error: no customer 'NOPE'"]
    _, _, api = _web(seeded)
    assert api.post("/api/customers/NOPE/pause", json={"reason": "x"}).status_code == 404


def test_recorded_but_not_signalled_when_temporal_is_down(seeded: Engine) -> None:
    """The fact is in the database (the workflow re-reads it); the CLI says, in one line and
    exit 1, that the workflow was not told; the web says so in its notice."""
    cli = CliRunner().invoke(
        app, ["dunning", "pause", "--customer", ACCOUNT, "--reason", "call Monday"]
    )
    assert cli.exit_code == 1 and len(cli.output.splitlines()) == 1, cli.output
    assert cli.output.startswith(f"error: {ACCOUNT}: dunning paused, but the workflow could not")
    assert _pauses(seeded) == 1
    browser, csrf, _ = _web(seeded)
    notice = _notice(
        browser.post(
            f"/customers/{ACCOUNT}/resume", data={"csrf_token": csrf}, follow_redirects=False
        )
    )
    assert notice.startswith("1 pause(s) lifted (recorded; the reminders follow it")
    assert "cannot reach Temporal at" in notice and "tonic" not in notice  # one readable line


@pytest.mark.temporal
async def test_each_front_end_records_signals_and_names_who(
    seeded: Engine, dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = dev_server_env.client.service_client.config.target_host
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", target)
    get_settings.cache_clear()
    account = f"{ACCOUNT}-{uuid.uuid4().hex[:8]}"  # the dev server lives for the session
    with transaction(seeded) as s:
        s.add(
            Customer(
                account=account, name="K", country="FR", language="fr", timezone="Europe/Paris"
            )
        )

    cli = CliRunner().invoke(
        app,
        [
            *("dunning", "promise", "--customer", account, "--until", LATER),
            *("--amount", "120.50", "--currency", "eur", "--by", "ops"),
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert cli.output.splitlines() == [f"{account}: promise to pay 120.50 EUR by {LATER} recorded"]

    browser, csrf, api = _web(seeded)
    page = browser.post(
        f"/customers/{account}/pause",
        data={"reason": "dispute on F1", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert _notice(page) == "dunning paused"
    resumed = api.post(f"/api/customers/{account}/resume", json={"reason": "settled"})
    assert resumed.json() == {
        "ok": True,
        "message": f"1 pause(s) lifted; the promise to pay by {LATER} stays"
        " (cancel it to resume reminders)",
    }

    with seeded.connect() as conn:
        rows = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor)
            .join(Customer, Customer.id == TimelineEvent.customer_id)
            .where(Customer.account == account)
            .order_by(TimelineEvent.id)
        ).all()
        promised = conn.execute(
            select(DunningPause.promised_amount, DunningPause.currency).where(
                DunningPause.kind == "promise"
            )
        ).one()
    assert [tuple(r) for r in rows] == [
        ("promise.recorded", "ops"),
        ("dunning.paused", "maria"),
        ("dunning.resumed", "maria"),
    ]
    assert tuple(promised) == (Decimal("120.50"), "EUR")

    history = await dev_server_env.client.get_workflow_handle(workflow_id(account)).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "Dunning"
    assert signals == [SIGNAL] * 3, "signal-with-start (promise), then pause and resume"


def test_who_did_it_is_checked_too(seeded: Engine) -> None:
    for who in ("", "x" * 129):
        cli = CliRunner().invoke(
            app, ["dunning", "pause", "--customer", ACCOUNT, "--reason", "r", "--by", who]
        )
        assert cli.exit_code == 1 and len(cli.output.splitlines()) == 1, cli.output
        assert cli.output.startswith("error: who did it (")
    assert _pauses(seeded) == 0
