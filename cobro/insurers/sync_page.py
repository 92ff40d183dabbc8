"""One page of an insurer sync: fetched whole from the insurer, then applied in one
transaction (`apply_cover_page`). The body of the DailySync workflow's per-page activity
(`activities.sync.sync_page`), of `run_sync` and of its forked processes
(`cobro.insurers.sync_forked`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine

from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.base import CoverPage
from cobro.insurers.sync_store import apply_cover_page


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
