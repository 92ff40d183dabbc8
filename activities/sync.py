"""Insurer sync activities: begin the run, fetch + apply ONE page (heartbeating), finish.
The DailySync workflow holds the cursor; each page is applied in one transaction and
recorded in the run, so a retried or re-run page writes nothing twice."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.base import InsurerAuthError, InsurerError
from cobro.insurers.sync_page import IncompletePage, fetch_and_apply_page
from cobro.insurers.sync_store import begin_sync_run, finish_sync_run
from cobro.observability import metrics
from cobro.settings import get_settings


@dataclass
class SyncBeginInput:
    full: bool
    workflow_id: str
    today: date | None = None


@dataclass
class SyncBegun:
    run_id: int
    kind: str
    updated_since: datetime | None
    today: date


@dataclass
class SyncPageInput:
    run_id: int
    number: int
    updated_since: datetime | None
    page_size: int
    today: date


@dataclass
class SyncPageDone:
    number: int
    total_pages: int
    counts: dict[str, int] = field(default_factory=dict)
    max_updated_at: datetime | None = None


@dataclass
class SyncFinishInput:
    run_id: int
    status: str
    high_water: datetime | None
    today: date
    error: str | None = None


@dataclass
class SyncSummary:
    counts: dict[str, Any] = field(default_factory=dict)


_CONNECTORS: dict[tuple[str, int], AllianzTradeConnector] = {}


def connector() -> AllianzTradeConnector:
    """One connector (token, connection pool) per worker event loop."""
    settings = get_settings()
    key = (settings.insurer_base_url, id(asyncio.get_running_loop()))
    found = _CONNECTORS.get(key)
    if found is None:
        found = _CONNECTORS[key] = AllianzTradeConnector(
            settings.insurer_base_url, settings.insurer_api_key
        )
    return found


@activity.defn
def sync_begin(inp: SyncBeginInput) -> SyncBegun:
    settings = get_settings()
    today = inp.today or datetime.now(ZoneInfo(settings.sync_timezone)).date()
    start = begin_sync_run(
        None, settings.insurer, "full" if inp.full else "incremental", inp.workflow_id
    )
    return SyncBegun(start.run_id, start.kind, start.updated_since, today)


async def _heartbeat_every(seconds: float, detail: int) -> None:
    while True:
        activity.heartbeat(detail)
        await asyncio.sleep(seconds)


@activity.defn
async def sync_page(inp: SyncPageInput) -> SyncPageDone:
    timeout = activity.info().heartbeat_timeout
    interval = timeout.total_seconds() / 3 if timeout else 20.0
    beating = asyncio.create_task(_heartbeat_every(interval, inp.number))
    try:
        page = await fetch_and_apply_page(
            None,
            connector(),
            get_settings().insurer,
            inp.run_id,
            inp.number,
            inp.updated_since,
            inp.page_size,
            inp.today,
        )
    except IncompletePage as exc:
        raise ApplicationError(str(exc), type="IncompletePage") from exc
    except InsurerAuthError as exc:  # a wrong API key does not fix itself
        raise ApplicationError(str(exc), type="InsurerAuthError", non_retryable=True) from exc
    except InsurerError as exc:
        # the connector already retried with backoff; let Temporal retry the page later
        raise ApplicationError(str(exc), type=type(exc).__name__) from exc
    finally:
        beating.cancel()
    return SyncPageDone(page.number, page.total_pages, page.counts, page.max_updated_at)


@activity.defn
def sync_finish(inp: SyncFinishInput) -> SyncSummary:
    summary = finish_sync_run(None, inp.run_id, inp.status, inp.high_water, inp.today, inp.error)
    metrics.sync_run(summary, _duration(summary))
    return SyncSummary(summary)


def _duration(summary: dict[str, Any]) -> timedelta | None:
    started, finished = summary.get("started_at"), summary.get("finished_at")
    if not started or not finished:
        return None
    return datetime.fromisoformat(finished) - datetime.fromisoformat(started)
