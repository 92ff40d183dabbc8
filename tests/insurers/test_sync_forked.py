"""Pages applied at once (`cobro.insurers.sync_forked`, and `apply_cover_page` on PostgreSQL
without the run's lock): the same covers, history, grades and timeline as one page after the
other, on the real simulator over HTTP and a real PostgreSQL, with records repeated within
and across pages in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from cobro.db import make_engine, transaction
from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.sync_runner import run_sync
from cobro.insurers.sync_store import apply_cover_page, begin_sync_run, finish_sync_run
from cobro.models import CoverHistory, GradeHistory, InsurerCover, SyncRun, TimelineEvent
from tests.conftest import _truncate_all
from tests.helpers.insurers import connector, digest, seed_customers

START = date(2026, 3, 2)
BUYERS = 150


def written(engine: Engine) -> dict[str, Any]:
    """What a sync wrote, without ids: covers and grades (`digest`), and per cover its
    history and timeline kinds."""
    with engine.connect() as conn:
        history = Counter(
            conn.execute(
                select(InsurerCover.cover_id, CoverHistory.kind).join(
                    InsurerCover, InsurerCover.id == CoverHistory.insurer_cover_id
                )
            ).all()
        )
        events = Counter(
            (kind, (data or {}).get("cover_id"), customer)
            for kind, data, customer in conn.execute(
                select(TimelineEvent.kind, TimelineEvent.data, TimelineEvent.customer_id)
            )
        )
        grades = conn.scalar(select(func.count()).select_from(GradeHistory))
    return {"digest": digest(engine), "history": history, "events": events, "grades": grades}


def repeats(sim: InsurerSimulator, page_size: int) -> Faults:
    order = list(sim.portfolio.covers)
    ends = [order[i] for i in range(page_size - 1, len(order) - 1, page_size)]
    return Faults(repeat_in_page=[order[3], order[47]], repeat_on_next_page=ends[1::2])


async def test_forked_processes_write_what_one_process_writes(
    pg_engine: Engine, sqlite_url: str
) -> None:
    _truncate_all(pg_engine)
    one = make_engine(sqlite_url)
    async with InsurerSimulator(buyers=BUYERS, seed=21, start_date=START) as sim:
        seed_customers(one, sim)
        seed_customers(pg_engine, sim)
        sim.faults = repeats(sim, 20)
        async with connector(sim) as insurer:
            alone = await run_sync(one, insurer, full=True, today=sim.today, page_size=20)
        async with connector(sim) as insurer:
            forked = await run_sync(
                pg_engine, insurer, full=True, today=sim.today, page_size=20, processes=2
            )
            parent_requests = insurer.stats.requests
    assert forked["status"] == alone["status"] == "succeeded"
    for key in ("fetched", "created", "updated", "unchanged", "repeated", "unmatched"):
        assert forked[key] == alone[key], key
    assert forked["repeated"] >= 3
    assert parent_requests <= 2  # its token and the first page: the children fetched the rest
    assert written(pg_engine) == written(one)
    one.dispose()


async def test_pages_sharing_records_applied_at_once_write_them_once(pg_engine: Engine) -> None:
    """Two pages with the same covers (and customers), applied by two threads released at
    once, many times: each record once, whichever page wins, and each page's counts add up."""
    _truncate_all(pg_engine)
    async with InsurerSimulator(buyers=60, seed=22, start_date=START) as sim:
        seed_customers(pg_engine, sim, share=1.0)
        async with connector(sim) as insurer:
            first = await insurer.get_cover_page(1, page_size=30)
            second = await insurer.get_cover_page(2, page_size=30)
        shared = first.covers[10:20]
        pages = [
            first.model_copy(update={"covers": first.covers}),
            second.model_copy(update={"covers": shared + second.covers}),
        ]
        covers = {c.cover_id for page in pages for c in page.covers}
        for _ in range(6):
            _truncate_all(pg_engine)
            seed_customers(pg_engine, sim, share=1.0)
            run = begin_sync_run(pg_engine, "allianz_trade", "full", None)
            gate = threading.Barrier(2)
            counts: list[dict[str, int]] = []

            def apply(
                page: Any, run_id: int = run.run_id, gate: Any = gate, counts: Any = counts
            ) -> None:
                gate.wait()
                counts.append(apply_cover_page(pg_engine, run_id, "allianz_trade", page, START))

            threads = [threading.Thread(target=apply, args=(p,)) for p in pages]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(counts) == 2
            assert sum(c["created"] for c in counts) == len(covers)
            assert sum(c["repeated"] for c in counts) == len(shared)
            got = written(pg_engine)
            assert set(got["history"].values()) == {1}
            assert len(got["history"]) == len(covers)
            created = [e for e in got["events"] if e[0] == "cover.created"]
            assert set(got["events"].values()) == {1} and len(created) == len(covers)
            with pg_engine.connect() as conn:
                stored = conn.scalar(select(func.count()).select_from(InsurerCover))
                graded = conn.scalar(
                    select(func.count(func.distinct(GradeHistory.customer_id))).select_from(
                        GradeHistory
                    )
                )
            assert stored == len(covers)
            assert graded == got["grades"]  # one grade row per customer and day
            finish_sync_run(pg_engine, run.run_id, "succeeded", None, START)


def children_of_this_process() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            continue
    return pids


async def test_a_forked_process_killed_mid_sync_fails_the_run_and_the_next_one_completes(
    pg_engine: Engine,
) -> None:
    _truncate_all(pg_engine)
    before = children_of_this_process()  # the simulator's or others: never killed
    async with InsurerSimulator(buyers=BUYERS, seed=23, start_date=START) as sim:
        seed_customers(pg_engine, sim)
        sim.faults = Faults(slow_rate=1.0, slow_seconds=0.05)  # pages caught in flight

        async def kill_a_child() -> int:
            while True:
                forked = children_of_this_process() - before
                if forked:
                    victim = min(forked)
                    os.kill(victim, signal.SIGKILL)
                    return victim
                await asyncio.sleep(0.01)

        killer = asyncio.create_task(kill_a_child())
        async with connector(sim) as insurer:
            with pytest.raises(BrokenProcessPool):
                await run_sync(
                    pg_engine, insurer, full=True, today=sim.today, page_size=5, processes=2
                )
        await asyncio.wait_for(killer, 5)
        with transaction(pg_engine) as s:
            assert [r.status for r in s.scalars(select(SyncRun))] == ["failed"]
        sim.faults = Faults()
        async with connector(sim) as insurer:
            again = await run_sync(pg_engine, insurer, full=True, today=sim.today, page_size=5)
    assert again["status"] == "succeeded"
    got = written(pg_engine)
    assert set(got["history"].values()) == {1}  # each cover created once, whatever was killed
    with pg_engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(InsurerCover))
    assert stored == len(sim.expected_covers())
