"""Workflows as they would be after a careless change, for the replay tests: each one's
commands differ from what its recorded history says the real workflow did. In a module of
their own so the workflow sandbox imports nothing of pytest."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.sync import SyncBeginInput, SyncBegun, SyncPageDone, SyncPageInput
    from activities.system import DatabaseReport, database_report
    from workflows.daily_sync import TWO_PAGES_IN_FLIGHT, DailySyncInput


@workflow.defn(name="SystemCheck")
class SystemCheckWithATimerFirst:
    """SystemCheck that now waits before its activity: a timer the history never saw."""

    @workflow.run
    async def run(self) -> DatabaseReport:
        await workflow.sleep(timedelta(seconds=1))
        return await workflow.execute_activity(
            database_report, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="DailySync")
class DailySyncBeforeTheRename:
    """DailySync's first page of a run (new or continued) as it was before the per-page
    activity `sync_page_activity` became `sync_page` (asking for the two-pages patch where
    today's code does, so that a history recorded with it differs only by the rename)."""

    @workflow.run
    async def run(self, inp: DailySyncInput) -> None:
        run_id, since, today = inp.run_id, inp.updated_since, inp.run_today
        if run_id is None:
            begun = await workflow.execute_activity(
                "sync_begin",
                SyncBeginInput(inp.full, workflow.info().workflow_id, inp.today),
                result_type=SyncBegun,
                start_to_close_timeout=timedelta(minutes=1),
            )
            run_id, since, today = begun.run_id, begun.updated_since, begun.today
        assert today is not None
        workflow.patched(TWO_PAGES_IN_FLIGHT)
        await workflow.execute_activity(
            "sync_page_activity",
            SyncPageInput(run_id, inp.next_page, since, inp.page_size, today),
            result_type=SyncPageDone,
            start_to_close_timeout=timedelta(minutes=10),
        )
