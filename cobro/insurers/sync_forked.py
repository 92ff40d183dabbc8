"""The pages of one insurer sync fetched and applied by forked processes (PostgreSQL).

A page's work is mostly Python (JSON, validation, matching, COPY rows), which one
interpreter lock runs on one core at a time; on PostgreSQL pages in flight write at once
(`apply_cover_page` locks only the covers and customers a page touches), so N processes
fetch and apply N pages at once, on N cores: as DailySync's page activities do on N worker
processes. Each child has its own event loop, database connections and HTTP client (its
parent's token kept); a page is the same `fetch_and_apply_page` as everywhere else, so an
interrupted run resumes as any other (pages recorded in the run are not applied twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine

from cobro.forked import can_fork, forked_map
from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.sync_page import PageResult, fetch_and_apply_page


@dataclass(frozen=True)
class SyncPages:
    """What every child needs to fetch and apply a page of the run (reaches it by fork)."""

    engine: Engine
    connector: AllianzTradeConnector
    insurer: str
    run_id: int
    updated_since: datetime | None
    page_size: int
    today: date


_child: tuple[asyncio.AbstractEventLoop, AllianzTradeConnector] | None = None


def can_fork_pages(engine: Engine | None) -> bool:
    """Forked pages need fork and a database that takes writers at once."""
    return engine is not None and engine.dialect.name == "postgresql" and can_fork()


def _start_child(pages: SyncPages) -> None:
    global _child
    pages.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _child = (loop, pages.connector.reopened())


def _one_page(pages: SyncPages, number: int) -> PageResult:
    if _child is None:  # `forked_map` ran it here (another map of this process is forking)
        return asyncio.run(_reopened_page(pages, number))
    loop, connector = _child
    return loop.run_until_complete(_page(pages, connector, number))


async def _reopened_page(pages: SyncPages, number: int) -> PageResult:
    async with pages.connector.reopened() as connector:
        return await _page(pages, connector, number)


async def _page(pages: SyncPages, connector: AllianzTradeConnector, number: int) -> PageResult:
    return await fetch_and_apply_page(
        pages.engine,
        connector,
        pages.insurer,
        pages.run_id,
        number,
        pages.updated_since,
        pages.page_size,
        pages.today,
    )


def forked_pages(pages: SyncPages, numbers: Sequence[int], processes: int) -> Iterator[PageResult]:
    """Each page's result, in page order, from `processes` forked children (blocking: call
    it from a thread, not from the event loop)."""
    yield from forked_map(_one_page, pages, numbers, processes, after_fork=_start_child)
