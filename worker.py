"""Starts the Cobro Temporal worker: every workflow and activity is registered here."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.classify import (
    classify_batch,
    classify_plan,
    notify_risk_changes,
    send_classification_digest,
)
from activities.dunning import dunning_execute, dunning_next
from activities.sync import sync_begin, sync_finish, sync_page
from activities.system import database_report
from cobro.settings import Settings, get_settings
from cobro.temporal_client import connect
from workflows.classify import Classify
from workflows.daily_sync import DailySync
from workflows.dunning import Dunning
from workflows.system_check import SystemCheck

WORKFLOWS = [SystemCheck, Dunning, Classify, DailySync]
ACTIVITIES = [
    database_report,
    dunning_next,
    dunning_execute,
    classify_plan,
    classify_batch,
    notify_risk_changes,
    send_classification_digest,
    sync_begin,
    sync_page,
    sync_finish,
]

log = logging.getLogger("cobro.worker")


def build_worker(
    client: Client,
    task_queue: str,
    executor: ThreadPoolExecutor,
    max_workflow_tasks: int | None = None,
) -> Worker:
    """`max_workflow_tasks`: workflow tasks run at once (SDK default 100). On a starved
    machine, 100 first activations in one process can each take longer than the workflow
    task timeout, all time out and retry: fewer at once get through."""
    extra = (
        {} if max_workflow_tasks is None else {"max_concurrent_workflow_tasks": max_workflow_tasks}
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        activity_executor=executor,
        max_concurrent_activities=32,
        **extra,
    )


async def run_worker(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or forever), then shut down gracefully."""
    settings = settings or get_settings()
    client = await connect(settings)
    # async activities run their database work and the blocking SMS client in threads:
    # as many as the activities that may run at once (the default is cpus + 4)
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=32, thread_name_prefix="cobro-io")
    )
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="cobro-activity") as executor:
        worker = build_worker(
            client, settings.temporal_task_queue, executor, settings.worker_max_workflow_tasks
        )
        log.info(
            "worker polling task queue %r on %s",
            settings.temporal_task_queue,
            settings.temporal_address,
        )
        async with worker:
            await (stop.wait() if stop else asyncio.Future())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker())
