"""SystemCheck: a round trip client → server → worker → database, used by `cobro dev`."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.system import DatabaseReport, database_report


@workflow.defn
class SystemCheck:
    @workflow.run
    async def run(self) -> DatabaseReport:
        return await workflow.execute_activity(
            database_report,
            start_to_close_timeout=timedelta(seconds=30),
        )
