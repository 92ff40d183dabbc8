"""Declarations in a customer's life on the time-skipping server, both databases, the real
worker, connector and loopback insurer simulator: an insured invoice goes overdue and its
OVD is declared once, before its deadline, by the dunning `declare` step; a promise within
the MEP is an EXP; a repayment plan is a RES; an uninsured invoice is never declared (it
gets the policy's `not_insured` task)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.dunning.collector import promise
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.insurers import declarations_sql
from cobro.models import (
    Customer,
    InsurerDeclaration,
    Invoice,
    InvoiceStepReached,
    Task,
    TimelineEvent,
)
from cobro.settings import get_settings
from tests.helpers import RULES, eventually
from tests.helpers.dunning import point_settings_at, pydantic_client, running_worker
from tests.helpers.exposure import add_cover, add_customer

pytestmark = pytest.mark.temporal

D = Decimal
POLICY = """\
policies:
  - name: standard
    calendar: FR
    business_days: false
    send_window: "09:00-18:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    not_insured: {at: +20d, note: "not insured: decide on legal action", assignee_role: collector}
    steps:
      - {at: +1d, channel: email, template: due}
      - {at: deadline - 5d, action: declare}
"""


def _invoice(s, c: Customer, number: str, amount: str, due) -> None:  # type: ignore[no-untyped-def]
    s.add(
        Invoice(
            number=number,
            customer_id=c.id,
            issue_date=due - timedelta(days=30),
            due_date=due,
            currency="USD",
            amount=D(amount),
            open_amount=D(amount),
        )
    )


def _events(account: str) -> list[tuple[str, datetime, str]]:
    with transaction() as s:
        cid = s.scalar(select(Customer.id).where(Customer.account == account))
        return [
            (e.kind, e.at, e.summary)
            for e in s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.customer_id == cid)
                .order_by(TimelineEvent.id)
            )
        ]


def _declarations() -> dict[str, str]:
    with transaction() as s:
        return dict(
            s.execute(select(InsurerDeclaration.client_reference, InsurerDeclaration.status)).all()
        )


async def test_declarations_in_a_customers_life(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path, policy=POLICY)
    for shipped in ("insurance.yaml", "exposure.yaml"):  # the USD policy: automatic
        shutil.copy(RULES / shipped, tmp_path / "rules" / shipped)
    client = pydantic_client(env)
    start = await env.get_current_time()
    day0 = start.date()
    due = day0 + timedelta(days=2)
    async with InsurerSimulator(buyers=5, seed=4, job_delay_seconds=0.05) as sim:
        monkeypatch.setenv("COBRO_INSURER_BASE_URL", sim.base_url)
        monkeypatch.setenv("COBRO_INSURER_API_KEY", sim.api_key)
        get_settings.cache_clear()
        with transaction() as s:
            ins = add_customer(
                s, "INS", country="US", email="ap@ins.example",
                insurer_buyer_id=sim.portfolio.buyers[0].company_id,
            )  # fmt: skip
            add_cover(
                s, ins, "C-INS", "5012002", "granted", "20000", valid_from=day0 - timedelta(90)
            )
            _invoice(s, ins, "I1", "1000", due)
            _invoice(s, ins, "I2", "800", due + timedelta(days=3))
            _invoice(s, ins, "I3", "600", due + timedelta(days=1))
            uni = add_customer(s, "UNI", country="US", email="ap@uni.example")
            _invoice(s, uni, "U1", "5000", due)
        async with running_worker(client, queue):
            await notify(client, ["INS", "UNI"], FactsChanged("invoices_changed", "import"))
            await env.sleep(timedelta(days=4))
            # a promise to pay I2 twenty days after its due date, within the 30-day MEP:
            # an EXP for each invoice it moves (I1, I2, I3), filed when the workflow wakes
            until = due + timedelta(days=23)
            said = promise(default_engine(), "INS", "bob", until, "2400", "USD", "call")
            assert "the insurer's deadlines: see the timeline" in said  # the EXPs queued
            await notify(client, ["INS"], FactsChanged("promise_to_pay", "call"))
            await eventually(lambda: sim.declaration_counts()["declarations"]["EXP"] == 3, 30)
            # a repayment plan agreed for I3: its RES, from the CLI/API hook
            with transaction() as s:
                plan = f"{day0 + timedelta(30)}:300,{day0 + timedelta(60)}:300"
                declarations_sql.queue_rescheduling(s, "I3", plan, "bob")
            await notify(client, ["INS"], FactsChanged("repayment_plan", "I3"))
            await eventually(lambda: sim.declaration_counts()["declarations"]["RES"] == 1, 30)

            # the deadline: declare-by = due + 45 days (USD policy), the step at deadline - 5d
            await env.sleep(timedelta(days=50))
            await eventually(lambda: sim.declaration_counts()["declarations"]["OVD"] == 3, 30)
            await eventually(lambda: _declarations().get("cobro-ovd-I1") == "registered", 30)
            await env.sleep(timedelta(days=5))
            await client.get_workflow_handle(workflow_id("INS")).terminate("test over")
            await client.get_workflow_handle(workflow_id("UNI")).terminate("test over")

        counts = sim.declaration_counts()
        assert counts["declarations"] == {"OVD": 3, "EXP": 3, "RES": 1}
        assert counts["received"] == counts["declarations"]  # no POST was repeated
        assert not [r for r in counts["references"] if "U1" in r]  # never for the uninsured
        assert set(_declarations().values()) == {"registered"}
        with transaction() as s:
            reached = {
                n: at
                for n, at in s.execute(
                    select(Invoice.number, InvoiceStepReached.at)
                    .join(Invoice, Invoice.id == InvoiceStepReached.invoice_id)
                    .where(InvoiceStepReached.channel == "declare")
                ).all()
            }
            deadlines = dict(
                s.execute(
                    select(InsurerDeclaration.invoice_number, InsurerDeclaration.deadline).where(
                        InsurerDeclaration.category == "OVD"
                    )
                ).all()
            )
            tasks = s.execute(select(Task.kind, Task.note)).all()
        # each OVD declared once, five days before its declare-by date
        assert sorted(reached) == ["I1", "I2", "I3"]
        for number, at in reached.items():
            assert at.date() == deadlines[number] - timedelta(days=5), (number, at)
        assert deadlines["I1"] == due + timedelta(days=45)
        # the uninsured invoice: the not_insured task, no declaration
        assert [n for k, n in tasks if "not insured" in n] == [
            "not insured: decide on legal action: U1"
        ]
        kinds = [k for k, _, _ in _events("INS")]
        for kind in ("declaration.queued", "declaration.filed", "declaration.registered"):
            assert kinds.count(kind) == 7, (kind, kinds)
        assert "dunning.declare" in kinds
        assert not any(k.startswith("declaration.") for k, _, _ in _events("UNI"))
