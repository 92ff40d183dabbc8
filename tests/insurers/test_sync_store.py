"""The insurer sync against the real loopback simulator over HTTP and a real database (SQLite
and PostgreSQL), without Temporal: full and incremental syncs, grade and limit changes as
history and timeline, expired covers flagged, cover requests decided on a later sync, the
unmatched queue and manual links, faults, and idempotence."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from cobro.db import transaction
from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.covers import CoverError, link_cover, list_covers, request_cover, unmatched
from cobro.insurers.sync_runner import run_sync
from cobro.models import (
    CoverHistory,
    Customer,
    GradeHistory,
    InsurerCover,
    InsurerMatchKey,
    InsurerQuarantine,
    SyncRun,
    TimelineEvent,
)
from tests.helpers.insurers import connector, digest, forget_sync, seed_customers

BUYERS = 120


def count(engine: Engine, model: type, *where: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_full_then_incremental_sync(engine: Engine) -> None:
    async with InsurerSimulator(buyers=BUYERS, seed=5, start_date=date(2026, 3, 2)) as sim:
        known = seed_customers(engine, sim)
        today = sim.today
        async with connector(sim) as insurer:
            full = await run_sync(engine, insurer, full=True, today=today, page_size=25)
            covers = sim.expected_covers()
            assert full["status"] == "succeeded" and full["kind"] == "full"
            assert full["fetched"] == full["created"] == len(covers)
            assert full["pages"] == -(-len(covers) // 25)
            expected_unmatched = [c for c in covers if c["company"]["companyId"] not in known]
            assert full["unmatched"] == len(expected_unmatched) > 0
            assert count(engine, InsurerCover) == len(covers)
            # every matched cover is on its customer's timeline; grades recorded per customer
            with engine.connect() as conn:
                matched = dict(
                    conn.execute(
                        select(InsurerCover.cover_id, Customer.account).join(
                            Customer, Customer.id == InsurerCover.customer_id
                        )
                    ).all()
                )
            for c in covers:
                if c["company"]["companyId"] in known:
                    assert matched[c["coverId"]] == known[c["company"]["companyId"]]
            assert count(engine, TimelineEvent, TimelineEvent.kind == "cover.created") == len(
                matched
            )
            assert count(engine, GradeHistory) == len(
                {
                    known[c["company"]["companyId"]]
                    for c in covers
                    if c["company"]["companyId"] in known
                }
            )

            # the same sync again: nothing changes
            before = digest(engine)
            again = await run_sync(engine, insurer, full=True, today=today, page_size=25)
            assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, len(covers))
            nothing = await run_sync(engine, insurer, today=today, page_size=25)
            # updatedSince is inclusive: at most the newest record is seen again, unchanged
            assert nothing["kind"] == "incremental" and nothing["fetched"] <= 1
            assert nothing["fetched"] == nothing["unchanged"]
            assert digest(engine) == before

            # a day later: only the changed covers are fetched
            changed = sim.advance_day()
            delta = await run_sync(engine, insurer, today=sim.today, page_size=25)
            assert delta["kind"] == "incremental"
            assert delta["fetched"] - delta["unchanged"] == delta["updated"] == len(changed) > 0
            assert delta["fetched"] <= len(changed) + 1
            with transaction(engine) as s:
                run = s.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
                assert run is not None and run.updated_since is not None


async def test_grade_drop_and_limit_cut_are_history_and_timeline(engine: Engine) -> None:
    async with InsurerSimulator(buyers=40, seed=8, start_date=date(2026, 3, 2)) as sim:
        known = seed_customers(engine, sim, share=1.0)
        async with connector(sim) as insurer:
            await run_sync(engine, insurer, full=True, today=sim.today)
            cover = next(
                c
                for c in sim.portfolio.covers.values()
                if c.status == "ACTIVE" and c.amount >= 20_000 and c.buyer.grade <= 6
            )
            account = known[cover.buyer.company_id]
            old_grade, old_amount = cover.buyer.grade, cover.amount
            cover.buyer.grade = old_grade + 3
            cover.amount = 10_000
            cover.status = "REDUCED"
            sim.advance_day()  # stamps the day; our edits get the next stamps
            cover.updated_at = sim._stamp()
            await run_sync(engine, insurer, today=sim.today)
    with transaction(engine) as s:
        cid = s.scalar(select(Customer.id).where(Customer.account == account))
        grades = (
            s.execute(
                select(GradeHistory.grade)
                .where(GradeHistory.customer_id == cid)
                .order_by(GradeHistory.graded_on)
            )
            .scalars()
            .all()
        )
        assert grades[0] == old_grade and grades[-1] == old_grade + 3
        summaries = s.scalars(
            select(TimelineEvent.summary)
            .where(TimelineEvent.customer_id == cid)
            .order_by(TimelineEvent.id)
        ).all()
        assert f"insurer grade {old_grade} → {old_grade + 3}" in summaries
        assert any(
            f"limit €{old_amount:,} → €10,000" in t and cover.cover_id in t for t in summaries
        ), summaries
        assert any("active → reduced" in t for t in summaries)
        kinds = s.scalars(
            select(CoverHistory.kind)
            .join(InsurerCover, InsurerCover.id == CoverHistory.insurer_cover_id)
            .where(InsurerCover.cover_id == cover.cover_id)
        ).all()
        assert sorted(kinds) == ["amount", "changed", "created", "status"] or {
            "amount",
            "status",
        } <= set(kinds)


async def test_expired_cover_flagged(engine: Engine) -> None:
    async with InsurerSimulator(buyers=60, seed=9, start_date=date(2026, 3, 2)) as sim:
        seed_customers(engine, sim, share=1.0)
        temporary = [
            c for c in sim.portfolio.covers.values() if c.expiry_date and c.status == "ACTIVE"
        ]
        assert temporary
        first_expiry = min(c.expiry_date for c in temporary)
        async with connector(sim) as insurer:
            await run_sync(engine, insurer, full=True, today=sim.today)
            # the insurer has not said so yet, but the validity is over
            later = first_expiry + timedelta(days=1)
            summary = await run_sync(engine, insurer, today=later)
    gone = [c for c in temporary if c.expiry_date < later]
    assert summary["expired"] == len(gone)
    with transaction(engine) as s:
        for c in gone:
            row = s.scalars(select(InsurerCover).where(InsurerCover.cover_id == c.cover_id)).one()
            assert row.status == "expired"
        assert s.scalar(
            select(func.count())
            .select_from(TimelineEvent)
            .where(TimelineEvent.kind == "cover.expired")
        ) == len(gone)


async def test_cover_request_granted_on_a_later_sync(engine: Engine) -> None:
    async with InsurerSimulator(
        buyers=60, seed=10, start_date=date(2026, 3, 2), job_delay_seconds=0
    ) as sim:
        seed_customers(engine, sim, share=1.0)
        covered = {c.buyer.company_id for c in sim.portfolio.covers.values()}
        buyer = next(
            b
            for b in sim.portfolio.buyers
            if b.grade <= 6 and b.capacity >= 50_000 and b.company_id not in covered
        )
        with transaction(engine) as s:
            account = s.scalar(select(Customer.account).where(Customer.name == buyer.name))
        async with connector(sim) as insurer:
            await run_sync(engine, insurer, full=True, today=sim.today)
            assert list_covers(engine, account) == []
            job = await request_cover(engine, insurer, account, Decimal(50_000), "EUR")
            await insurer.wait_for_job(job, poll_interval=0.01, timeout=5)
            summary = await run_sync(engine, insurer, today=sim.today)
            assert summary["created"] == 1
    [new] = list_covers(engine, account)
    assert (new.granted_amount, new.status, new.decision_date) == (
        Decimal(50_000),
        "active",
        sim.today,
    )
    with transaction(engine) as s:
        summaries = s.scalars(
            select(TimelineEvent.summary).join(Customer).where(Customer.account == account)
        ).all()
    assert any(t.startswith("cover requested: €50,000") for t in summaries), summaries
    assert any(t.startswith(f"cover {new.cover_id}") and "€50,000" in t for t in summaries)


async def test_unmatched_cover_queued_then_linked_and_kept(engine: Engine) -> None:
    async with InsurerSimulator(buyers=40, seed=12, start_date=date(2026, 3, 2)) as sim:
        seed_customers(engine, sim, share=0.5)
        async with connector(sim) as insurer:
            first = await run_sync(engine, insurer, full=True, today=sim.today)
            queue = unmatched(engine)
            assert len(queue) == first["unmatched"] > 0
            row, reason = queue[0]
            assert reason.startswith("no customer with buyer id")
            with transaction(engine) as s:
                s.add(
                    Customer(
                        account="NEW1",
                        name="Known by name only",
                        country="FR",
                        language="fr",
                        timezone="Europe/Paris",
                    )
                )
            linked = link_cover(engine, row.cover_id, "NEW1")
            assert (linked.account, linked.match_method) == ("NEW1", "manual")
            with pytest.raises(CoverError, match="unknown cover"):
                link_cover(engine, "NOPE", "NEW1")
            with pytest.raises(CoverError, match="unknown customer"):
                link_cover(engine, row.cover_id, "NOPE")
            # a full resync keeps the manual link
            await run_sync(engine, insurer, full=True, today=sim.today)
    assert [r.cover_id for r in list_covers(engine, "NEW1")] == [row.cover_id]
    assert len(unmatched(engine)) == len(queue) - 1


def good_data(
    engine: Engine, malformed: set[str], skip_customers: set[int]
) -> list[tuple[str, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                InsurerCover.cover_id,
                InsurerCover.customer_id,
                InsurerCover.status,
                InsurerCover.granted_amount,
                InsurerCover.valid_until,
                InsurerCover.grade,
            )
            .where(InsurerCover.cover_id.not_in(sorted(malformed) or [""]))
            .order_by(InsurerCover.cover_id)
        ).all()
        grades = conn.execute(
            select(GradeHistory.customer_id, GradeHistory.grade)
            .where(GradeHistory.customer_id.not_in(sorted(skip_customers) or [0]))
            .order_by(GradeHistory.customer_id)
        ).all()
    return [tuple(map(str, r)) for r in [*rows, *grades]]


async def test_faults_give_the_same_data_and_quarantine_exactly_the_malformed(
    engine: Engine,
) -> None:
    faults = Faults(
        server_error_rate=0.15,
        rate_limit_rate=0.1,
        retry_after_seconds=0.01,
        malformed_records=4,
        truncated_pages=[2],
        token_max_uses=3,
        seed=3,
    )
    async with InsurerSimulator(buyers=80, seed=21, start_date=date(2026, 3, 2)) as sim:
        seed_customers(engine, sim)
        malformed = set(sim._pick_malformed(4))
        async with connector(sim) as insurer:
            clean = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
        with engine.connect() as conn:  # their grades come only from the malformed covers
            skip = set(
                conn.scalars(
                    select(InsurerCover.customer_id).where(
                        InsurerCover.cover_id.in_(sorted(malformed)),
                        InsurerCover.customer_id.is_not(None),
                    )
                )
            )
        clean_data = good_data(engine, malformed, skip)
        forget_sync(engine)
        sim.faults = faults
        kinds = sim.malformed_cover_ids
        assert set(kinds) == malformed
        async with connector(sim) as insurer:
            faulty = await run_sync(engine, insurer, full=True, today=sim.today, page_size=20)
            errors = [r for r in sim.requests if r.status >= 400]
    assert clean["quarantined"] == 0
    assert faulty["status"] == "succeeded"
    assert len({r.status for r in errors} & {401, 429, 500}) >= 2, errors
    with engine.connect() as conn:
        quarantined = list(conn.scalars(select(InsurerQuarantine.record_id)))
    assert faulty["quarantined"] == len(quarantined) == len(malformed) == 4
    # exactly the malformed records (a record without its id cannot be named)
    assert {q for q in quarantined if q} == {c for c, k in kinds.items() if k != "missing_id"}
    assert (
        good_data(engine, malformed, skip) == clean_data
    )  # the good data equals a fault-free run's


async def test_each_page_is_matched_from_the_runs_keys_which_go_when_it_ends(
    engine: Engine,
) -> None:
    from cobro.insurers.sync_store import (
        apply_cover_page,
        begin_sync_run,
        finish_sync_run,
    )

    async with InsurerSimulator(buyers=BUYERS, seed=6, start_date=date(2026, 3, 2)) as sim:
        known = seed_customers(engine, sim)
        async with connector(sim) as insurer:
            start = begin_sync_run(engine, "allianz_trade", "full", None)
            page = await insurer.get_cover_page(1, page_size=40)
            apply_cover_page(engine, start.run_id, "allianz_trade", page, sim.today)
            # one key per identifier of every customer that has one, for this run only
            keys = count(engine, InsurerMatchKey, InsurerMatchKey.sync_run_id == start.run_id)
            assert keys >= len(known) and count(engine, InsurerMatchKey) == keys
            # the same page again (an activity retry) writes nothing more
            apply_cover_page(engine, start.run_id, "allianz_trade", page, sim.today)
            assert count(engine, InsurerMatchKey) == keys
            matched = {c.cover_id for c in page.covers if c.company.company_id in known}
            with engine.connect() as conn:
                stored = dict(
                    conn.execute(select(InsurerCover.cover_id, InsurerCover.customer_id)).all()
                )
            assert {cid for cid, customer in stored.items() if customer} == matched
            finish_sync_run(engine, start.run_id, "failed", None, sim.today, "stopped")
    assert count(engine, InsurerMatchKey) == 0
