"""No change lost in the insurer sync (issue 16, item 7), against the real simulator over HTTP
and a real database (SQLite and PostgreSQL), without Temporal (the workflow's side is in
test_sync_workflow.py):

(a) a record malformed during one incremental sync and valid in the next is applied by the
    next incremental, its limit change on the timeline, its quarantine entry closed; the
    incremental window is held back only while the entry is open;
(b) a record repeated inside a page and across two pages: one row, one history entry, one
    timeline event, counts right, on a full and on an incremental sync;
(c) a page whose JSON body is cut midway is asked for again by the connector: the sync
    completes, nothing lost;
and the documented rule for a field that matters left out (a temporary cover's expiry, the
buyer's national identifiers)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from cobro.db import transaction
from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.covers import NO_NATIONAL_ID, unmatched
from cobro.insurers.sync_runner import run_sync
from cobro.models import (
    CoverHistory,
    Customer,
    InsurerCover,
    InsurerQuarantine,
    SyncRun,
    TimelineEvent,
)
from tests.helpers.insurers import connector, digest, seed_customers

START = date(2026, 3, 2)


def cover_row(engine: Engine, cover_id: str) -> InsurerCover:
    with transaction(engine) as s:
        row = s.scalars(select(InsurerCover).where(InsurerCover.cover_id == cover_id)).one()
        s.expunge(row)
        return row


def events_of(engine: Engine, cover_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.summary, TimelineEvent.data).order_by(
                TimelineEvent.id
            )
        ).all()
    return [(k, t) for k, t, data in rows if (data or {}).get("cover_id") == cover_id]


def history_of(engine: Engine, cover_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(CoverHistory.kind)
                .join(InsurerCover, InsurerCover.id == CoverHistory.insurer_cover_id)
                .where(InsurerCover.cover_id == cover_id)
                .order_by(CoverHistory.id)
            )
        )


def quarantine(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(InsurerQuarantine).order_by(InsurerQuarantine.id)).all()
    return [dict(r._mapping) for r in rows]


def since_of(summary: dict[str, Any]) -> datetime | None:
    value = summary["updated_since"]
    return datetime.fromisoformat(value) if value else None


def high_water(engine: Engine, run_id: int) -> datetime:
    with transaction(engine) as s:
        run = s.get(SyncRun, run_id)
        assert run is not None and run.high_water is not None
        return run.high_water


@pytest.mark.parametrize("kind", ["amount", "missing_id", "no_expiry"])
async def test_a_record_malformed_in_one_incremental_is_applied_by_the_next(
    engine: Engine, kind: str
) -> None:
    async with InsurerSimulator(buyers=60, seed=14, start_date=START) as sim:
        known = seed_customers(engine, sim, share=1.0)
        async with connector(sim) as insurer:
            await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            sim.advance_day()
            cover = next(
                c
                for c in sim.portfolio.covers.values()
                if c.status == "ACTIVE" and c.amount >= 10_000 and c.cover_type == "TEMPORARY"
            )
            later = next(c for c in sim.portfolio.covers.values() if c is not cover)
            old_amount = cover.amount
            cover.status, cover.amount = "WITHDRAWN", 0  # the limit withdrawn...
            cover.updated_at = sim._stamp()
            later.requested_amount += 1000  # ...and a later change: the high water passes it
            later.updated_at = sim._stamp()
            sim.faults = Faults(malformed_ids={cover.cover_id: kind}, malformed_times=1)

            first = await run_sync(engine, insurer, today=sim.today, page_size=20)
            assert first["kind"] == "incremental" and first["status"] == "succeeded"
            assert (first["quarantined"], first["quarantine_open"]) == (1, 1)
            assert high_water(engine, first["run_id"]) > cover.updated_at
            assert cover_row(engine, cover.cover_id).status == "active"  # not applied yet
            [entry] = quarantine(engine)
            assert entry["resolved_at"] is None
            assert entry["record_id"] == (None if kind == "missing_id" else cover.cover_id)
            assert entry["refetch_since"] <= cover.updated_at

            second = await run_sync(engine, insurer, today=sim.today, page_size=20)
            assert second["kind"] == "incremental"  # held back, not a full sync
            since = since_of(second)
            assert since is not None and since <= cover.updated_at < high_water(
                engine, first["run_id"]
            )
            assert second["fetched"] < len(sim.portfolio.covers)
            assert (second["quarantined"], second["quarantine_open"]) == (0, 0)
            assert second["quarantine_resolved"] == 1
            row = cover_row(engine, cover.cover_id)
            assert (row.status, row.granted_amount) == ("withdrawn", 0)
            [entry] = quarantine(engine)
            assert entry["resolved_by_run_id"] == second["run_id"]
            # an id names the record: closed by its valid version; without one, by the sync
            # that read its whole window
            assert entry["resolution"] == ("superseded" if kind == "missing_id" else "applied")

            # the withdrawal is on the customer's timeline, once
            summaries = [t for _, t in events_of(engine, cover.cover_id)]
            assert sum(f"limit €{old_amount:,} → €0" in t for t in summaries) == 1, summaries
            assert sum("active → withdrawn" in t for t in summaries) == 1
            with engine.connect() as conn:
                account = conn.scalar(
                    select(Customer.account)
                    .join(InsurerCover, InsurerCover.customer_id == Customer.id)
                    .where(InsurerCover.cover_id == cover.cover_id)
                )
            assert account == known[cover.buyer.company_id]

            # nothing open any more: the window is the high water again
            third = await run_sync(engine, insurer, today=sim.today, page_size=20)
            assert since_of(third) == high_water(engine, second["run_id"])
            assert third["fetched"] <= 1


async def test_a_record_malformed_every_time_is_fetched_by_every_incremental(
    engine: Engine,
) -> None:
    async with InsurerSimulator(buyers=40, seed=16, start_date=START) as sim:
        seed_customers(engine, sim, share=1.0)
        async with connector(sim) as insurer:
            await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            sim.advance_day()
            cover = next(c for c in sim.portfolio.covers.values() if c.status == "ACTIVE")
            cover.status, cover.amount = "WITHDRAWN", 0
            cover.updated_at = sim._stamp()
            sim.faults = Faults(malformed_ids={cover.cover_id: "grade"})
            runs = [
                await run_sync(engine, insurer, today=sim.today, page_size=20) for _ in range(3)
            ]
            assert [r["quarantined"] for r in runs] == [1, 1, 1]
            assert [r["quarantine_open"] for r in runs] == [1, 1, 1]  # one open at a time
            assert all(since_of(r) <= cover.updated_at for r in runs[1:])  # type: ignore[operator]
            assert [e["resolution"] for e in quarantine(engine)] == [
                "superseded",
                "superseded",
                None,
            ]
            assert cover_row(engine, cover.cover_id).status == "active"
            sim.faults = Faults()  # the insurer fixes it: the next incremental applies it
            fixed = await run_sync(engine, insurer, today=sim.today, page_size=20)
            assert (fixed["kind"], fixed["quarantine_open"]) == ("incremental", 0)
            assert cover_row(engine, cover.cover_id).status == "withdrawn"
            assert quarantine(engine)[-1]["resolution"] == "applied"


async def test_a_full_sync_closes_quarantine_left_open(engine: Engine) -> None:
    async with InsurerSimulator(buyers=40, seed=17, start_date=START) as sim:
        seed_customers(engine, sim, share=1.0)
        sim.faults = Faults(malformed_records=2, malformed_times=1)
        async with connector(sim) as insurer:
            first = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            assert (first["quarantined"], first["quarantine_open"]) == (2, 2)
            again = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
    assert again["kind"] == "full" and again["created"] == 2
    assert (again["quarantined"], again["quarantine_open"], again["quarantine_resolved"]) == (
        0,
        0,
        2,
    )
    # one named by its id (applied), one without an id (superseded: the full sync read all)
    assert sorted(e["resolution"] for e in quarantine(engine)) == ["applied", "superseded"]
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(InsurerCover))
    assert stored == len(sim.expected_covers())


async def test_a_record_repeated_in_a_page_and_across_pages_is_applied_once(
    engine: Engine,
) -> None:
    async with InsurerSimulator(buyers=60, seed=15, start_date=START) as sim:
        seed_customers(engine, sim, share=1.0)
        order = list(sim.portfolio.covers)
        book = sim.portfolio.covers
        active = [
            i for i, c in enumerate(order) if book[c].status == "ACTIVE" and book[c].amount >= 4000
        ]
        # `across` ends a page of 20, so it is also served atop the next one
        across = order[next(i for i in active if i % 20 == 19 and i + 1 < len(order))]
        inside = order[next(i for i in active if order[i] != across)]
        sim.faults = Faults(repeat_in_page=[inside], repeat_on_next_page=[across])
        async with connector(sim) as insurer:
            full = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            n = len(order)
            assert full["status"] == "succeeded"
            assert (full["fetched"], full["created"], full["repeated"]) == (n + 2, n, 2)
            assert full["updated"] == full["unchanged"] == 0
            with engine.connect() as conn:
                assert conn.scalar(select(func.count()).select_from(InsurerCover)) == n
            for cid in (inside, across):
                assert history_of(engine, cid) == ["created"]
                assert [k for k, _ in events_of(engine, cid)] == ["cover.created"]

            # both limits cut; the incremental pages one record at a time, so `across`, which
            # comes first, is repeated atop the page of the other
            first, second = sorted((inside, across), key=order.index)
            sim.faults = Faults(repeat_in_page=[second], repeat_on_next_page=[first])
            for cid in (first, second):
                c = sim.portfolio.covers[cid]
                c.status, c.amount = "REDUCED", c.amount // 2000 * 1000
                c.updated_at = sim._stamp()
            delta = await run_sync(engine, insurer, today=sim.today, page_size=1)
            assert delta["kind"] == "incremental"
            assert (delta["updated"], delta["repeated"], delta["created"]) == (2, 2, 0)
            assert delta["fetched"] == delta["updated"] + delta["unchanged"] + 2
            for cid in (first, second):
                assert history_of(engine, cid) == ["created", "amount", "status"]
                kinds = [k for k, _ in events_of(engine, cid)]
                assert kinds == ["cover.created", "cover.amount", "cover.status"], kinds
                assert cover_row(engine, cid).status == "reduced"
            before = digest(engine)
            # the same again: nothing written
            again = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            assert (again["created"], again["updated"]) == (0, 0)
            assert digest(engine) == before
            assert history_of(engine, first) == ["created", "amount", "status"]


async def test_a_page_whose_json_is_cut_is_fetched_again_by_the_connector(
    engine: Engine,
) -> None:
    async with InsurerSimulator(buyers=60, seed=18, start_date=START) as sim:
        seed_customers(engine, sim)
        sim.faults = Faults(cut_json_pages=[2], cut_json_times=2)
        async with connector(sim) as insurer:
            summary = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            assert insurer.stats.garbled == 2
    assert summary["status"] == "succeeded"
    assert summary["created"] == len(sim.expected_covers())
    page2 = [r.status for r in sim.requests_to("covers_search") if r.page == 2]
    assert page2 == [200, 200, 200]


async def test_a_buyer_without_national_identifiers_is_applied_and_flagged(
    engine: Engine,
) -> None:
    async with InsurerSimulator(buyers=40, seed=19, start_date=START) as sim:
        with_siren = [b for b in sim.portfolio.buyers if b.siren]
        sim.portfolio.buyers.remove(with_siren[0])
        seed_customers(engine, sim, share=1.0)  # the buyer is a customer known by SIREN only
        sim.portfolio.buyers.insert(0, with_siren[0])
        buyer = with_siren[0]
        with transaction(engine) as s:
            s.add(
                Customer(
                    account="NOID",
                    name=buyer.name,
                    country="FR",
                    language="fr",
                    timezone="Europe/Paris",
                    siren=buyer.siren,
                )
            )
        cover = next(c for c in sim.portfolio.covers.values() if c.buyer is buyer)
        sim.faults = Faults(malformed_ids={cover.cover_id: "no_identifiers"})
        async with connector(sim) as insurer:
            summary = await run_sync(engine, insurer, full=True, today=sim.today)
    assert summary["quarantined"] == 0  # valid: applied, but it cannot match by SIREN
    [(row, reason)] = [(r, why) for r, why in unmatched(engine) if r.cover_id == cover.cover_id]
    assert row.siren is None and row.buyer_id == buyer.company_id
    assert reason == f"no customer with buyer id {buyer.company_id}{NO_NATIONAL_ID}"
