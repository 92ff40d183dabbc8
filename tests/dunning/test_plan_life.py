"""A payment plan's life on the time-skipping server, both databases, the real capture
SMTP/SMS servers and the real import: a customer already at the `due` level asks on its
self-service page for a 3-instalment plan → approved by rule → its invoice is no longer
dunned on its own due date, each instalment gets its reminder → the first is paid → the
second is missed → the plan breaks: timeline, a collector's task, and dunning resumes one
level up (the `reminder` step after `due`, not from scratch)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.models import (
    Communication,
    Customer,
    InvoiceStepReached,
    PaymentPlan,
    PaymentPlanInstalment,
    Task,
    TimelineEvent,
)
from cobro.portal import actions as portal
from cobro.portal.statement import load_statement
from cobro.settings import get_settings
from tests.helpers import eventually
from tests.helpers.dunning import (
    TEST_POLICY,
    import_rows,
    point_settings_at,
    pydantic_client,
    running_worker,
)

pytestmark = pytest.mark.temporal

POLICY = (
    TEST_POLICY.rstrip("\n").replace(
        "    steps:\n",
        "    payment_plans:\n"
        "      auto_approve: true\n"
        "      max_instalments: 3\n"
        "      min_instalment: {EUR: 100}\n"
        "      max_duration: 90d\n"
        "      every: 30d\n"
        "      grace: 5d\n"
        "      reminder: {at: -3d, channel: email, template: instalment_due}\n"
        "    steps:\n",
    )
    + "\n"
)


def _comms() -> list[tuple[str, str, str]]:
    with transaction() as s:
        rows = s.execute(
            select(Communication.channel, Communication.template, Communication.status).order_by(
                Communication.id
            )
        ).all()
    return [tuple(r) for r in rows]


def _timeline() -> list[tuple[str, str]]:
    with transaction() as s:
        rows = s.execute(
            select(TimelineEvent.kind, TimelineEvent.actor)
            .where(TimelineEvent.kind.like("plan.%"))
            .order_by(TimelineEvent.id)
        ).all()
    return [tuple(r) for r in rows]


async def test_a_plan_approved_by_rule_then_broken_escalates(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path, POLICY)
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    get_settings.cache_clear()
    client = pydantic_client(env)
    day0 = (await env.get_current_time()).date()
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": "PLAN3",
                "name": "Menuiserie Martin SARL",
                "country": "FR",
                "language": "fr",
                "timezone": "Europe/Paris",
                "email": "compta@martin.example",
                "phone": "06 11 22 33 44",
            }
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": "F-P1",
                "account": "PLAN3",
                "issue_date": (day0 - timedelta(days=40)).isoformat(),
                "due_date": (day0 - timedelta(days=3)).isoformat(),
                "currency": "EUR",
                "amount": "1200.00",
            }
        ],
    )
    mails, sms = capture_servers.mail, capture_servers.sms
    engine = default_engine()

    async with running_worker(client, queue):
        await notify(client, ["PLAN3"], FactsChanged("invoices_changed", "import"))
        # 3 days late: the first level not yet received, `due` (email + SMS)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: len(mails.list()) == 1 and len(sms.list()) == 1)

        # the customer asks for 3 instalments on its self-service page: 400 EUR each,
        # every 30 days, within the policy's limits → approved by rule
        with transaction() as s:
            customer_id = s.scalar(select(Customer.id).where(Customer.account == "PLAN3"))
        statement = load_statement(engine, customer_id)
        done = await portal.ask_plan(
            engine, get_settings(), customer_id, statement, "trésorerie tendue", "3"
        )
        assert done.unsignalled is None, done.unsignalled
        assert "approved" in done.message or "approuvé" in done.message
        with transaction() as s:
            plan = s.scalar(select(PaymentPlan))
            assert plan is not None and plan.status == "approved"
            assert plan.decided_by == "rules" and plan.total_amount == Decimal("1200")
            instalments = s.execute(
                select(PaymentPlanInstalment.due_date, PaymentPlanInstalment.amount).order_by(
                    PaymentPlanInstalment.seq
                )
            ).all()
        first, second, _third = (d for d, _ in instalments)
        assert [a for _, a in instalments] == [Decimal("400")] * 3
        plan_start = first - timedelta(days=30)  # the request's (wall-clock) day

        # no `reminder` on the invoice's own dates while the plan holds: the next contact
        # is the reminder of instalment 1, 3 days before it
        now = (await env.get_current_time()).date()
        await env.sleep(timedelta(days=(first - now).days - 4))
        assert len(mails.list()) == 1, "nothing while the plan holds, before the reminder"
        await env.sleep(timedelta(days=2))
        await eventually(lambda: len(mails.list()) == 2)
        assert _comms()[-1] == ("email", "instalment_due", "sent")
        reminder = mails.get(mails.list()[0].id)
        assert "échéance 1 sur 3" in reminder.text and "F-P1" in reminder.text, reminder.text

        # instalment 1 is paid on time
        import_rows(
            tmp_path,
            "payments",
            [
                {
                    "reference": "PP1",
                    "account": "PLAN3",
                    "date": first.isoformat(),
                    "currency": "EUR",
                    "amount": "400.00",
                    "invoice": "F-P1",
                }
            ],
        )
        await notify(client, ["PLAN3"], FactsChanged("payment_received", "PP1"))
        await eventually(lambda: ("plan.instalment_paid", "system") in _timeline())

        # instalment 2: reminded, not paid; 5 days of grace, then the plan breaks
        now = (await env.get_current_time()).date()
        await env.sleep(timedelta(days=(second - now).days))
        await eventually(lambda: len(mails.list()) == 3)
        assert _comms()[-1] == ("email", "instalment_due", "sent")
        assert "échéance 2 sur 3" in mails.get(mails.list()[0].id).text
        await env.sleep(timedelta(days=5))
        assert ("plan.broken", "system") not in _timeline(), "still within the grace days"
        await env.sleep(timedelta(days=2))
        await eventually(lambda: ("plan.broken", "system") in _timeline())
        # escalation: one level up from `due`, right away (the next send window)
        await eventually(lambda: len(mails.list()) == 4)

    # the email and SMS of one step go out side by side: in either order
    assert sorted(_comms()[:2]) == [("email", "due", "sent"), ("sms", "due", "sent")]
    assert _comms()[2:] == [
        ("email", "instalment_due", "sent"),
        ("email", "instalment_due", "sent"),
        ("email", "reminder", "sent"),
    ]
    assert len(sms.list()) == 1, "the instalment reminders are emails (the rules say so)"
    assert _timeline() == [
        ("plan.requested", "customer:PLAN3"),
        ("plan.approved", "rules"),
        ("plan.instalment_paid", "system"),
        ("plan.broken", "system"),
    ]
    with transaction() as s:
        plan = s.scalar(select(PaymentPlan))
        assert plan is not None and plan.status == "broken"
        statuses = s.scalars(
            select(PaymentPlanInstalment.status).order_by(PaymentPlanInstalment.seq)
        ).all()
        task = s.scalar(select(Task).where(Task.source_key == f"plan-broken:{plan.id}"))
        broken = s.scalar(select(TimelineEvent.summary).where(TimelineEvent.kind == "plan.broken"))
        escalated = s.scalar(  # workflow time, as the plan's break
            select(InvoiceStepReached.at).where(InvoiceStepReached.label == "reminder")
        )
        broke_at = s.scalar(select(TimelineEvent.at).where(TimelineEvent.kind == "plan.broken"))
    assert statuses == ["paid", "missed", "due"]
    assert task is not None and task.status == "open" and task.assignee_role == "collector"
    assert broken is not None and f"instalment 2 of 400.00 EUR due {second}" in broken
    assert f"not paid by {second + timedelta(days=5)}" in broken
    assert plan_start <= day0 + timedelta(days=1)
    assert escalated is not None and broke_at is not None
    escalated, broke_at = (t.replace(tzinfo=None) for t in (escalated, broke_at))
    assert timedelta(0) <= escalated - broke_at < timedelta(days=1), "at the next send window"
