"""One insurer sync without Temporal (tests, benches, scripts): the same steps the DailySync
workflow orchestrates — begin the run, fetch + apply each page, finish — in one coroutine,
two pages in flight as in the workflow: the next one is fetched and prepared while one
writes under the run's lock.
`fetch_and_apply_page` is also the body of the workflow's per-page activity
(`activities.sync.sync_page`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.base import CoverPage
from cobro.insurers.sync_store import apply_cover_page, begin_sync_run, finish_sync_run


class IncompletePage(Exception):
    """The insurer kept sending a page with records missing: try the page again later."""


@dataclass
class PageResult:
    number: int
    total_pages: int
    counts: dict[str, int] = field(default_factory=dict)
    max_updated_at: datetime | None = None


async def fetch_page(
    connector: AllianzTradeConnector,
    number: int,
    updated_since: datetime | None,
    page_size: int,
) -> CoverPage:
    """One page from the insurer, whole (the connector re-fetches a truncated page)."""
    page = await connector.get_cover_page(number, page_size=page_size, updated_since=updated_since)
    if not page.complete:
        t = page.truncation
        raise IncompletePage(
            f"page {number}: {t.received if t else '?'} of {t.expected if t else '?'} records "
            "after re-fetching"
        )
    return page


async def apply_page(
    engine: Engine | None, insurer: str, run_id: int, page: CoverPage, today: date
) -> PageResult:
    """The page in the database, in one transaction (a worker thread: the event loop goes on
    fetching)."""
    counts = await asyncio.to_thread(apply_cover_page, engine, run_id, insurer, page, today)
    latest = max((c.updated_at for c in page.covers), default=None)
    return PageResult(page.number, max(1, page.total_pages), counts, latest)


async def fetch_and_apply_page(
    engine: Engine | None,
    connector: AllianzTradeConnector,
    insurer: str,
    run_id: int,
    number: int,
    updated_since: datetime | None,
    page_size: int,
    today: date,
) -> PageResult:
    page = await fetch_page(connector, number, updated_since, page_size)
    return await apply_page(engine, insurer, run_id, page, today)


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
