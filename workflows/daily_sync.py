"""DailySync: the insurer's covers, limits and grades into the database, every day (Temporal
Schedule `cobro-daily-sync`) or on demand (`cobro sync now`). Thin orchestration:
  1. `sync_begin` opens the sync run (incremental since the last success, or full);
  2. one `sync_page` activity per page (fetch + apply in one transaction, heartbeats), two
     in flight: on PostgreSQL both write at once (on two worker processes, on two cores;
     on SQLite one after the other); the workflow holds the cursor, so a killed worker
     resumes at the pages in flight;
  3. `sync_finish` flags expired covers and closes the run with its counts;
  4. the `Classify` workflow, as a child, classifies the portfolio and raises alerts.
A failed page fails the run (recorded as failed, with the error); the next run starts over
from the last success.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.sync import (
        SyncBeginInput,
        SyncFinishInput,
        SyncPageDone,
        SyncPageInput,
        sync_begin,
        sync_finish,
        sync_page,
    )
    from workflows.classify import Classify, ClassifyInput

PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=8,
    non_retryable_error_types=["InsurerAuthError"],
)
TWO_PAGES_IN_FLIGHT = "sync-two-pages-in-flight"
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@dataclass
class DailySyncInput:
    full: bool = False
    page_size: int = 500
    today: date | None = None  # the insurer's business day; default: today in sync_timezone
    classify: bool = True
    # carried over by continue-as-new
    run_id: int | None = None
    updated_since: datetime | None = None
    run_today: date | None = None
    next_page: int = 1
    total_pages: int = 1
    high_water: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    kind: str = ""  # "full" or "incremental", as sync_begin decided
    # a page whose worker died is retried after this long without a heartbeat
    page_heartbeat_seconds: int = 60


@dataclass
class DailySyncProgress:
    run_id: int | None = None
    kind: str = ""
    pages_done: int = 0
    total_pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "starting"
    summary: dict[str, Any] = field(default_factory=dict)
    classified: int = 0


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


@workflow.defn(name="DailySync")
class DailySync:
    def __init__(self) -> None:
        self._progress = DailySyncProgress()

    @workflow.query
    def progress(self) -> DailySyncProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: DailySyncInput) -> DailySyncProgress:
        p = self._progress
        if inp.run_id is None:
            begun = await workflow.execute_activity(
                sync_begin,
                SyncBeginInput(inp.full, workflow.info().workflow_id, inp.today),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
            )
            run_id, since, today = begun.run_id, begun.updated_since, begun.today
            p.kind = begun.kind
        else:
            run_id, since, today = inp.run_id, inp.updated_since, inp.run_today
            p.kind = inp.kind
            assert today is not None
        p.run_id, p.status = run_id, "fetching"
        p.total_pages, p.pages_done, p.counts = inp.total_pages, inp.next_page - 1, inp.counts
        number, high_water = inp.next_page, inp.high_water
        # the next page's activity runs while this one's applies (its fetch overlaps our
        # writes); histories recorded before this ran one page at a time
        ahead = 1 if workflow.patched(TWO_PAGES_IN_FLIGHT) else 0
        in_flight: dict[int, workflow.ActivityHandle[SyncPageDone]] = {}
        try:
            while number <= p.total_pages:
                # before a continue-as-new, the page in flight is waited for, none started
                lead = 0 if workflow.info().is_continue_as_new_suggested() else ahead
                for n in range(number, min(number + lead, p.total_pages) + 1):
                    if n not in in_flight:
                        in_flight[n] = workflow.start_activity(
                            sync_page,
                            SyncPageInput(run_id, n, since, inp.page_size, today),
                            start_to_close_timeout=timedelta(minutes=10),
                            heartbeat_timeout=timedelta(seconds=inp.page_heartbeat_seconds),
                            retry_policy=PAGE_RETRY,
                        )
                page = await in_flight.pop(number)
                p.total_pages = page.total_pages
                p.pages_done = number
                for key, value in page.counts.items():
                    p.counts[key] = p.counts.get(key, 0) + value
                high_water = _later(high_water, page.max_updated_at)
                number += 1
                if (
                    workflow.info().is_continue_as_new_suggested()
                    and number <= p.total_pages
                    and not in_flight
                ):
                    workflow.continue_as_new(
                        replace(
                            inp,
                            run_id=run_id,
                            updated_since=since,
                            run_today=today,
                            next_page=number,
                            total_pages=p.total_pages,
                            high_water=high_water,
                            counts=p.counts,
                            kind=p.kind,
                        )
                    )
        except ActivityError as exc:
            for handle in in_flight.values():
                handle.cancel()
            cause = exc.cause.message if exc.cause else str(exc)  # type: ignore[attr-defined]
            p.status = "failed"
            finished = await workflow.execute_activity(
                sync_finish,
                SyncFinishInput(run_id, "failed", None, today, f"page {number}: {cause}"),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
            )
            p.summary = finished.counts
            raise ApplicationError(f"insurer sync failed at page {number}: {cause}") from exc
        p.status = "finishing"
        finished = await workflow.execute_activity(
            sync_finish,
            SyncFinishInput(run_id, "succeeded", _later(since, high_water), today),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=DB_RETRY,
        )
        p.summary = finished.counts
        if inp.classify:
            p.status = "classifying"
            result = await workflow.execute_child_workflow(
                Classify.run,
                ClassifyInput(),
                id=f"{workflow.info().workflow_id}-classify",
            )
            p.classified = result.evaluated
        p.status = "succeeded"
        return p
