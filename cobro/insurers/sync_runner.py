"""One insurer sync without Temporal (tests, benches, scripts): the same steps the DailySync
workflow orchestrates — begin the run, fetch + apply each page, finish — in one coroutine,
two pages in flight as in the workflow (the next one is fetched and prepared while one
writes). With `processes` > 1 on PostgreSQL, the pages after the first are fetched and
applied by that many forked processes (`cobro.insurers.sync_forked`), as the workflow's page
activities are by several worker processes."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.sync_forked import SyncPages, can_fork_pages, forked_pages
from cobro.insurers.sync_page import PageResult, fetch_and_apply_page
from cobro.insurers.sync_store import begin_sync_run, finish_sync_run


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


async def run_sync(
    engine: Engine | None,
    connector: AllianzTradeConnector,
    *,
    insurer: str = "allianz_trade",
    full: bool = False,
    today: date,
    page_size: int = 500,
    workflow_id: str | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    start = await asyncio.to_thread(
        begin_sync_run, engine, insurer, "full" if full else "incremental", workflow_id
    )
    high_water = start.updated_since
    number, total = 1, 1
    in_flight: dict[int, asyncio.Task[PageResult]] = {}
    try:
        while number <= total:
            for n in range(number, min(number + 1, total) + 1):  # this page and the next
                if n not in in_flight:
                    in_flight[n] = asyncio.create_task(
                        fetch_and_apply_page(
                            engine,
                            connector,
                            insurer,
                            start.run_id,
                            n,
                            start.updated_since,
                            page_size,
                            today,
                        )
                    )
            result = await in_flight.pop(number)
            total = result.total_pages
            high_water = later(high_water, result.max_updated_at)
            number += 1
            if processes > 1 and number < total and not in_flight and can_fork_pages(engine):
                assert engine is not None
                pages = SyncPages(
                    engine, connector, insurer, start.run_id, start.updated_since, page_size, today
                )
                numbers = range(number, total + 1)
                for result in await asyncio.to_thread(
                    list, forked_pages(pages, numbers, processes)
                ):
                    total = max(total, result.total_pages)  # the insurer's count may grow
                    high_water = later(high_water, result.max_updated_at)
                number = numbers[-1] + 1
    except Exception as exc:
        for task in in_flight.values():
            task.cancel()
        await asyncio.to_thread(
            finish_sync_run,
            engine,
            start.run_id,
            "failed",
            None,
            today,
            f"{type(exc).__name__}: {exc}",
        )
        raise
    return await asyncio.to_thread(
        finish_sync_run, engine, start.run_id, "succeeded", high_water, today
    )
