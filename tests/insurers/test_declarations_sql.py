"""Declarations on SQLite and PostgreSQL through the real connector and the loopback
simulator: an insured invoice's OVD is filed once and followed to the insurer's answer, a
retry after a kill between the POST and its record is still one declaration at the insurer,
a promise within the MEP is an EXP (beyond it, a warning), a repayment plan is a RES, an
approval policy waits for a collector, and an uninsured invoice is never declared."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from cobro.db import session_factory, transaction
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers import declarations_sql as store
from cobro.insurers.declaring import file_pending
from cobro.insurers.obligations_sql import ObligationRules, obligations_for
from cobro.models import Customer, InsurerDeclaration, Invoice, Task, TimelineEvent
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES
from tests.helpers.exposure import add_cover, add_customer
from tests.helpers.insurers import connector

D = Decimal
TODAY = date.today()
DUE = TODAY - timedelta(days=20)  # overdue; the USD policy's declare-by is DUE + 45


async def _run(function: Callable[..., Any], *args: Any) -> Any:
    def call() -> Any:
        with session_factory()() as session:
            return function(session, *args)

    return await asyncio.to_thread(call)


def _invoice(s, c: Customer, number: str, amount: str, currency: str = "USD", due=DUE) -> None:  # type: ignore[no-untyped-def]
    s.add(
        Invoice(
            number=number,
            customer_id=c.id,
            issue_date=due - timedelta(days=30),
            due_date=due,
            currency=currency,
            amount=D(amount),
            open_amount=D(amount),
        )
    )


def _seed(engine: Engine, sim: InsurerSimulator) -> None:
    buyers = sim.portfolio.buyers
    with transaction(engine) as s:
        a = add_customer(s, "A", country="US", insurer_buyer_id=buyers[0].company_id)
        add_cover(s, a, "CA", "5012002", "granted", "10000", valid_from=DUE - timedelta(days=90))
        _invoice(s, a, "A1", "800")
        _invoice(s, a, "A2", "300")
        _invoice(s, a, "A3", "450", due=TODAY + timedelta(days=10))
        e = add_customer(s, "E", insurer_buyer_id=buyers[1].company_id)  # EUR: approval
        add_cover(s, e, "CE", "5012001", "granted", "50000", valid_from=DUE - timedelta(days=90))
        _invoice(s, e, "E1", "5000", currency="EUR")
        u = add_customer(s, "U", country="US")  # no cover at all
        _invoice(s, u, "U1", "9000")


def _customer(s, account: str) -> Customer:  # type: ignore[no-untyped-def]
    return s.scalar(select(Customer).where(Customer.account == account))


def _rows(engine: Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        return {
            r.client_reference: (r.status, r.job_id or "")
            for r in conn.execute(select(InsurerDeclaration))
        }


async def test_overdue_declared_once_and_followed(engine: Engine, use_database: str) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        with transaction(engine) as s:
            queued = store.queue_overdues(s, _customer(s, "A"), ["A1", "A2", "A3"], TODAY)
            assert not store.queue_overdues(s, _customer(s, "U"), ["U1"], TODAY)  # uninsured
            # 800 + 300 + 450 is above the USD policy's 500 minimum: all three are declared
            assert [r.client_reference for r in queued] == [
                "cobro-ovd-A1",
                "cobro-ovd-A2",
                "cobro-ovd-A3",
            ]
            assert {r.status for r in queued} == {"queued"}  # the USD policy is automatic
            assert queued[0].deadline == DUE + timedelta(days=45)
            a_id = _customer(s, "A").id
        # again: the same rows, nothing new
        with transaction(engine) as s:
            again = store.queue_overdues(s, _customer(s, "A"), ["A1"], TODAY)
            assert [r.client_reference for r in again] == ["cobro-ovd-A1"]
        # a first attempt for A2 reached the insurer, then the worker died before recording
        # the job: the retry sends the same reference and the insurer keeps one declaration
        first = await _run(store.begin_filing, "cobro-ovd-A2")
        from cobro.insurers.declarations import request

        async with connector(sim) as insurer:
            lost = await insurer.declare(request(first.declaration))
            refs = await _run(store.pending_references, a_id)
            lines = await file_pending(refs, insurer, _run, poll_interval=0.05)
            assert len(lines) == 3 and all("registered" in line for line in lines), lines
            assert await _run(store.pending_references, a_id) == []
            assert await file_pending([], insurer, _run) == []
        counts = sim.declaration_counts()
        assert counts["received"]["OVD"] == 4  # A2 twice
        assert counts["declarations"]["OVD"] == 3  # one per invoice
        rows = _rows(engine)
        assert rows["cobro-ovd-A2"] == ("registered", lost.job_id)
        assert not any(r.startswith("cobro-ovd-U") for r in rows)
        # the obligations now see A1 declared: never "missed" whatever the date
        rules = ObligationRules.of(Ruleset.load(RULES))
        with engine.connect() as conn:
            late = obligations_for(conn, DUE + timedelta(days=60), rules, ids=[a_id])
        assert {o.status for o in late} == {"ok"}
        with engine.connect() as conn:
            kinds = [
                k
                for (k,) in conn.execute(
                    select(TimelineEvent.kind)
                    .where(TimelineEvent.customer_id == a_id)
                    .order_by(TimelineEvent.id)
                )
            ]
        assert kinds.count("declaration.queued") == 3
        assert kinds.count("declaration.filed") == 3
        assert kinds.count("declaration.registered") == 3


async def test_paid_before_filing_is_cancelled(engine: Engine, use_database: str) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        with transaction(engine) as s:
            store.queue_overdues(s, _customer(s, "A"), ["A1"], TODAY)
            s.scalar(select(Invoice).where(Invoice.number == "A1")).open_amount = D(0)
        async with connector(sim) as insurer:
            lines = await file_pending(["cobro-ovd-A1"], insurer, _run)
        assert lines == ["cobro-ovd-A1: cancelled"]
        assert sim.declaration_counts()["received"]["OVD"] == 0


async def test_approval_policy_waits_for_a_collector(engine: Engine, use_database: str) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        with transaction(engine) as s:
            [row] = store.queue_overdues(s, _customer(s, "E"), ["E1"], TODAY)
            assert row.status == "awaiting_approval"
            e_id = _customer(s, "E").id
        with engine.connect() as conn:
            notes = list(conn.scalars(select(Task.note).where(Task.customer_id == e_id)))
        assert any("approve the overdue declaration (OVD) of E1" in n for n in notes)
        with transaction(engine) as s:
            assert store.pending_references(s, e_id) == []
            store.approve(s, "E1", "alice")
        with transaction(engine) as s, pytest.raises(store.DeclarationError, match="queued"):
            store.approve(s, "E1", "alice")
        async with connector(sim) as insurer:
            refs = await _run(store.pending_references, e_id)
            await file_pending(refs, insurer, _run, poll_interval=0.05)
        assert sim.declaration_counts()["declarations"]["OVD"] == 1
        assert _rows(engine)["cobro-ovd-E1"][0] == "registered"


async def test_promise_within_the_mep_is_an_extension(engine: Engine, use_database: str) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        # USD policy: MEP 30 days. Paying by DUE + 25 extends A1 and A2 (due DUE) and not
        # A3 (due later); by DUE + 31 is beyond the MEP
        with transaction(engine) as s:
            notes = store.extensions_for_promise(s, _customer(s, "A"), DUE + timedelta(25), "bob")
            assert notes == [
                f"A1: extension to {DUE + timedelta(25)} declared to the insurer",
                f"A2: extension to {DUE + timedelta(25)} declared to the insurer",
            ]
            a_id = _customer(s, "A").id
        with transaction(engine) as s:
            later = DUE + timedelta(31)  # A3 (due TODAY + 10) is still within its MEP
            notes = store.extensions_for_promise(s, _customer(s, "A"), later, "bob")
            mep = DUE + timedelta(30)
            assert notes == [
                f"A1: beyond the maximum extension period ({mep})",
                f"A2: beyond the maximum extension period ({mep})",
                f"A3: extension to {later} declared to the insurer",
            ]
        with transaction(engine) as s:
            store.queue_rescheduling(
                s, "A3", f"{TODAY + timedelta(30)}:200,{TODAY + timedelta(60)}:250", "bob"
            )
            with pytest.raises(store.DeclarationError, match="add up to 200"):
                store.queue_rescheduling(s, "A1", f"{TODAY + timedelta(30)}:200", "bob")
            with pytest.raises(store.DeclarationError, match="not insured"):
                store.queue_rescheduling(s, "U1", f"{TODAY + timedelta(30)}:9000", "bob")
        async with connector(sim) as insurer:
            refs = await _run(store.pending_references, a_id)
            await file_pending(refs, insurer, _run, poll_interval=0.05)
        counts = sim.declaration_counts()["declarations"]
        assert counts == {"OVD": 0, "EXP": 3, "RES": 1}
        body = sim.declarations["cobro-exp-A1"]["request"]
        assert body["newDueDate"] == (DUE + timedelta(25)).isoformat()
        assert [
            p["amount"] for p in sim.declarations["cobro-res-A3"]["request"]["repaymentPlan"]
        ] == [
            "200.00",
            "250.00",
        ]
        with engine.connect() as conn:
            warnings = list(
                conn.scalars(
                    select(TimelineEvent.summary).where(
                        TimelineEvent.kind == "declaration.beyond_mep"
                    )
                )
            )
        assert len(warnings) == 2 and "beyond the maximum extension period" in warnings[0]


async def test_declarations_are_counted_on_the_workers_metrics(
    engine: Engine, use_database: str
) -> None:
    """`cobro_declarations{category, outcome}` through the SDK's own meter and Prometheus
    exporter (a real Runtime, scraped over HTTP), as the worker's /metrics shows it."""
    import httpx
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
    from temporalio.testing import ActivityEnvironment

    from tests.helpers import free_port

    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        with transaction(engine) as s:
            store.queue_overdues(s, _customer(s, "A"), ["A1", "A2"], TODAY)
        async with connector(sim) as insurer:

            async def declare() -> list[str]:
                refs = ["cobro-ovd-A1", "cobro-ovd-A2"]
                return await file_pending(refs, insurer, _run, poll_interval=0.05)

            lines = await env.run(declare)
    assert len(lines) == 2, lines
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{address}/metrics")).text
    found = {
        line.split("{", 1)[1].split("}", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith("cobro_declarations")
    }
    filed = [v for k, v in found.items() if 'category="OVD"' in k and 'outcome="filed"' in k]
    registered = [
        v for k, v in found.items() if 'category="OVD"' in k and 'outcome="registered"' in k
    ]
    assert filed == ["2"] and registered == ["2"], text
