"""Payment plans as collector actions, on both databases: a plan outside the policy's limits
waits for a collector (a task), who approves it from the CLI (the timeline says it is
outside the rules), cancels it from the API, rejects another from the customer file (CSRF);
a plan approved on insured invoices queues their rescheduling (RES) for the insurer."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.dunning import plan_actions
from cobro.dunning.collector import ActionError
from cobro.dunning.store import Trace, _escalation_pending, housekeeping, load_customer_facts
from cobro.insurers.declarations import installments_of
from cobro.models import (
    InsurerDeclaration,
    Invoice,
    PaymentPlan,
    PaymentPlanInstalment,
    Task,
    TimelineEvent,
)
from cobro.settings import Settings, get_settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers import RULES
from tests.helpers.dunning import TEST_POLICY
from tests.helpers.exposure import add_cover, add_customer, add_invoice

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PLANS = (
    "    payment_plans: {auto_approve: true, max_instalments: 3, min_instalment: 100,"
    " max_duration: 3m}\n"
)
POLICY = TEST_POLICY.replace("    steps:\n", PLANS + "    steps:\n", 1)


@pytest.fixture
def live(
    use_database: str,
    dev_server_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[Engine, str]]:
    """The test database, rules with payment plans, a Temporal dev server (signals only
    recorded), a collector user, a customer with 900 EUR open."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for shipped in ("risk_classes.yaml", "alerts.yaml", "insurance.yaml", "exposure.yaml"):
        shutil.copy(RULES / shipped, rules / shipped)
    (rules / "dunning.yaml").write_text(POLICY)
    monkeypatch.setenv("COBRO_RULES_DIR", str(rules))
    monkeypatch.setenv(
        "COBRO_TEMPORAL_ADDRESS", dev_server_env.client.service_client.config.target_host
    )
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", f"plans-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    engine = default_engine()
    create_user(engine, "maria", "correct horse battery", "collector")
    account = f"PA-{uuid.uuid4().hex[:6]}"
    with transaction(engine) as s:
        c = add_customer(s, account, email="ap@pa.example")
        add_invoice(s, c, f"{account}-1", date.today() - timedelta(days=20), "900.00", "900.00")
    yield engine, account
    get_settings.cache_clear()


def _cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["dunning", "payment-plan", *args])
    return done.exit_code, done.output.strip()


def _events(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor, TimelineEvent.summary)
            .where(TimelineEvent.kind.like("plan.%"))
            .order_by(TimelineEvent.id)
        ).all()
    return [tuple(r) for r in rows]


@pytest.mark.temporal
def test_outside_the_limits_a_collector_decides(live: tuple[Engine, str]) -> None:
    engine, account = live
    code, out = _cli("request", "--customer", account, "--instalments", "6")
    assert code == 0, out
    assert out.startswith(f"{account}: payment plan of 6 instalments requested: a collector")
    assert "6 instalments: at most 3" in out and "at least 100" not in out
    with engine.connect() as conn:
        (task,) = conn.execute(select(Task.kind, Task.source_key, Task.status)).all()
    assert task.kind == "payment_plan" and task.status == "open"

    code, out = _cli("request", "--customer", account, "--instalments", "2")
    assert (code, out) == (1, f"error: {account} already has a payment plan (requested)")
    code, out = _cli("approve", "--customer", account, "--by", "maria", "--note", "good payer")
    assert code == 0 and "payment plan approved" in out, out
    with engine.connect() as conn:
        assert conn.scalar(select(Task.status)) == "done"
        assert conn.scalar(select(PaymentPlan.status)) == "approved"
    kinds = [(k, a) for k, a, _ in _events(engine)]
    assert kinds == [("plan.requested", "cli"), ("plan.approved", "maria")]
    # the schedule: the invoice follows the plan, each instalment has its reminder
    shown = CliRunner().invoke(app, ["dunning", "plan", "--customer", account, "--json"])
    assert shown.exit_code == 0, shown.output
    planned = json.loads(shown.stdout)
    assert planned["excluded"] == {f"{account}-1": "payment_plan"} and planned["actions"] == []
    plan = planned["payment_plan"]
    assert [Decimal(i["amount"]) for i in plan["instalments"]] == [Decimal(150)] * 6
    assert [r["instalment"] for r in plan["reminders"]] == [1, 2, 3, 4, 5, 6]
    assert {r["template"] for r in plan["reminders"]} == {"instalment_due"}
    text = CliRunner().invoke(app, ["dunning", "plan", "--customer", account]).output
    assert "payment plan (approved)" in text and "reminder of instalment 6" in text
    assert "outside the rules: 6 instalments: at most 3" in _events(engine)[1][2]

    # the API cancels it; the customer file shows the next one and rejects it
    application = create_app(Settings(web_secret_key="k" * 32), engine)
    token = create_api_token(engine, "maria", f"t-{uuid.uuid4().hex[:6]}", scope="act")
    api = TestClient(application, headers={"Authorization": f"Bearer {token}"})
    held = api.get(f"/api/customers/{account}").json()["holds"]
    assert [(h["kind"], h["status"], h["instalments"]) for h in held] == [("plan", "approved", 6)]
    done = api.post(f"/api/customers/{account}/payment-plan/cancel", json={"note": "moved"})
    assert done.status_code == 200 and "payment plan cancelled" in done.json()["message"]
    again = api.post(f"/api/customers/{account}/payment-plan/cancel", json={})
    assert again.status_code == 409
    asked = api.post(f"/api/customers/{account}/payment-plan", json={"instalments": 5})
    assert asked.status_code == 200 and "a collector decides" in asked.json()["message"]

    browser = TestClient(application)
    browser.get("/login")
    browser.post(
        "/login",
        data={
            "username": "maria",
            "password": "correct horse battery",
            "csrf_token": browser.cookies.get("cobro_login_csrf"),
        },
    )
    page = browser.get(f"/customers/{account}").text
    assert 'id="plan-approve"' in page and 'id="plan-reject"' in page
    assert "payment plan of 5 instalments (900.00 EUR)" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    forged = browser.post(f"/customers/{account}/payment-plan/reject", data={"note": "no"})
    assert forged.status_code == 403
    rejected = browser.post(
        f"/customers/{account}/payment-plan/reject",
        data={"csrf_token": csrf.group(1), "note": "too long"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303, rejected.text
    assert 'id="plan-request"' in browser.get(f"/customers/{account}").text
    assert [k for k, _, _ in _events(engine)] == [
        "plan.requested",
        "plan.approved",
        "plan.cancelled",
        "plan.requested",
        "plan.rejected",
    ]


def test_bad_requests_say_why(live: tuple[Engine, str]) -> None:
    engine, account = live
    for count, why in [("1", "2 to 60 instalments"), ("x", "is not a number"), ("", "give")]:
        with pytest.raises(ActionError, match=why):
            plan_actions.request(engine, account, "cli", count)
    with pytest.raises(ActionError, match="no open undisputed invoice in USD"):
        plan_actions.request(engine, account, "cli", 2, "USD")
    with pytest.raises(ActionError, match="no customer"):
        plan_actions.request(engine, "NOPE", "cli", 2)
    with pytest.raises(ActionError, match="nothing to approve"):
        plan_actions.approve(engine, account, "maria")


def test_an_approved_plan_on_insured_invoices_queues_their_rescheduling(
    live: tuple[Engine, str],
) -> None:
    engine, _ = live
    today = date.today()
    with transaction(engine) as s:
        ins = add_customer(s, "INSP", email="ap@insp.example")
        ins.insurer_buyer_id = "B-1"
        add_cover(s, ins, "C-INSP", "5012001", "granted", "20000", valid_from=today - timedelta(90))
        add_invoice(s, ins, "IP1", today - timedelta(days=10), "600", "600")
        add_invoice(s, ins, "IP2", today - timedelta(days=5), "300", "300")
    said = plan_actions.request(engine, "INSP", "customer:INSP", 3)
    assert "approved by rule" in said and "rescheduling (RES) queued" in said, said
    with transaction(engine) as s:
        res = {
            d.client_reference: installments_of(d.installments)
            for d in s.scalars(
                select(InsurerDeclaration).where(InsurerDeclaration.category == "RES")
            )
        }
        kinds = s.scalars(select(TimelineEvent.kind).order_by(TimelineEvent.id)).all()
    assert len(res) == 2, res
    by_total = sorted(sum(a for _, a in p) for p in res.values())
    assert by_total == [Decimal(300), Decimal(600)]  # each invoice's own shares
    assert kinds[:2] == ["plan.requested", "plan.approved"]
    plans = res
    assert all(len(p) >= 1 for p in plans.values())


def _follow(engine: Engine, account: str, now: datetime) -> list[str]:
    with transaction(engine) as s:
        facts = load_customer_facts(s, account)
        assert facts is not None
        notes = housekeeping(s, facts, now, Trace("wf", "run"))
        pending = _escalation_pending(facts)
    return [*notes, f"escalation pending: {pending}"]


def test_paid_in_full_completes_the_plan_missed_breaks_it(live: tuple[Engine, str]) -> None:
    engine, account = live
    said = plan_actions.request(engine, account, "cli", 3)
    assert "approved by rule" in said
    with transaction(engine) as s:
        due = s.scalars(select(PaymentPlanInstalment.due_date).order_by(PaymentPlanInstalment.seq))
        first, second, _ = due.all()
        invoice = s.scalar(select(Invoice).where(Invoice.number == f"{account}-1"))
        assert invoice is not None
        invoice.open_amount = Decimal("600.00")  # instalment 1 (300) paid
    on_time = datetime.combine(first, time(12), tzinfo=UTC)
    assert _follow(engine, account, on_time) == ["instalment paid", "escalation pending: False"]
    assert _follow(engine, account, on_time) == ["escalation pending: False"], "recorded once"

    # instalment 2 unpaid on its 5th day of grace: still on; the 6th: broken
    grace_end = datetime.combine(second + timedelta(days=5), time(12), tzinfo=UTC)
    assert _follow(engine, account, grace_end) == ["escalation pending: False"]
    late = grace_end + timedelta(days=1)
    assert _follow(engine, account, late) == [
        "plan broken: escalation and task",
        "escalation pending: True",
    ]
    with transaction(engine) as s:
        assert s.scalar(select(PaymentPlan.status)) == "broken"
        assert s.scalar(select(Task.kind).where(Task.source_key.like("plan-broken:%"))) == "call"

    # a new plan for the rest, paid in full: completed
    said = plan_actions.request(engine, account, "cli", 2)
    with transaction(engine) as s:
        invoice = s.scalar(select(Invoice).where(Invoice.number == f"{account}-1"))
        assert invoice is not None
        invoice.open_amount = Decimal(0)
    assert _follow(engine, account, late)[0] == "plan completed"
    with transaction(engine) as s:
        statuses = s.scalars(select(PaymentPlan.status).order_by(PaymentPlan.id)).all()
    assert statuses == ["broken", "completed"]
    assert [k for k, _, _ in _events(engine)][-4:] == [
        "plan.approved",
        "plan.instalment_paid",
        "plan.instalment_paid",
        "plan.completed",
    ]


def test_the_next_contact_of_a_plan_is_its_first_instalment_reminder(
    live: tuple[Engine, str],
) -> None:
    """The customer file's "next contact" (`preview.next_contact`) knows the plan: the
    invoices wait for their instalments, and the first reminder is shown as it will be sent."""
    from cobro.dunning.preview import next_contact

    engine, account = live
    assert "approved by rule" in plan_actions.request(engine, account, "cli", 3)
    now = datetime.now(UTC)
    with transaction(engine) as s:
        first = s.scalar(select(PaymentPlanInstalment.due_date).order_by(PaymentPlanInstalment.seq))
        facts = load_customer_facts(s, account)
        assert facts is not None and first is not None
        shown = next_contact(facts, now)
    assert shown.contacts, "an approved plan has its reminders ahead"
    contact = shown.contacts[0]
    assert contact.template == "instalment_due", contact
    assert now < contact.at and contact.at.date() <= first
    assert f"{account}-1" in contact.invoices
