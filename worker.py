"""Starts the Cobro Temporal worker: every workflow and activity is registered here."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
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
from cobro.observability.health import Readiness, start_health_server
from cobro.observability.logs import configure_logging
from cobro.settings import Settings, get_settings, sync_queue
from cobro.shutdown import stop_on_signals
from cobro.temporal_client import connect
from workflows.classify import Classify
from workflows.daily_sync import DailySync
from workflows.dunning import Dunning
from workflows.system_check import SystemCheck

# the insurer sync, classification and the system check, also served on a queue of their own
SYNC_WORKFLOWS = [SystemCheck, DailySync, Classify]
SYNC_ACTIVITIES = [
    database_report,
    classify_plan,
    classify_batch,
    notify_risk_changes,
    send_classification_digest,
    sync_begin,
    sync_page,
    sync_finish,
]
WORKFLOWS = [*SYNC_WORKFLOWS, Dunning]
ACTIVITIES = [*SYNC_ACTIVITIES, dunning_next, dunning_execute]
SYNC_ACTIVITY_SLOTS = 8

log = logging.getLogger("cobro.worker")


def build_worker(
    client: Client,
    task_queue: str,
    executor: ThreadPoolExecutor,
    max_workflow_tasks: int | None = None,
    drain: timedelta = timedelta(0),
) -> Worker:
    """`max_workflow_tasks`: workflow tasks run at once (SDK default 100). On a starved
    machine, 100 first activations in one process can each take longer than the workflow
    task timeout, all time out and retry: fewer at once get through. `drain`: how long a
    shutdown lets running activities finish before it cancels them."""
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
        # a workflow cached by a worker that died is handed to another after 5 s (SDK
        # default 10 s)
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=5),
        graceful_shutdown_timeout=drain,
        **extra,
    )


def build_sync_worker(
    client: Client,
    task_queue: str,
    executor: ThreadPoolExecutor,
    drain: timedelta = timedelta(0),
) -> Worker:
    """The worker of `sync_queue(task_queue)`: a morning's thousands of pending contacts on
    the main queue never delay the insurer sync, the classification or `cobro dev`'s check
    (a restarted demo with its first contacts still in flight waited 74 s for its sync's
    first activity to start)."""
    return Worker(
        client,
        task_queue=sync_queue(task_queue),
        workflows=SYNC_WORKFLOWS,
        activities=SYNC_ACTIVITIES,
        activity_executor=executor,
        max_concurrent_activities=SYNC_ACTIVITY_SLOTS,
        graceful_shutdown_timeout=drain,
    )


def warm_up() -> None:
    """Load what the first activities need (the active rules, the holiday tables) before
    polling: a fresh worker's first tasks then run at full speed instead of all of them
    timing out while they compile the same rules at once."""
    import holidays.countries  # noqa: F401  (1-2 s of imports on a slow machine)

    from cobro.rules.classify import load_active_ruleset

    try:
        load_active_ruleset().built("dunning.yaml")
    except Exception as exc:  # the database may be down: the activities will retry
        log.warning("warm-up skipped: %s", str(exc).splitlines()[0] if str(exc) else exc)


_RUNTIMES: dict[str, Runtime] = {}


def metrics_runtime(address: str) -> Runtime | None:
    """The SDK runtime exporting Prometheus metrics at `address` (one per process and
    address: the SDK binds it once); None without an address."""
    if not address:
        return None
    runtime = _RUNTIMES.get(address)
    if runtime is None:
        telemetry = TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
        )
        runtime = _RUNTIMES[address] = Runtime(telemetry=telemetry)
    return runtime


async def run_worker(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or forever), then shut down gracefully: polling stops, the
    running activities get `worker_drain_seconds` to finish."""
    settings = settings or get_settings()
    client = await connect(settings, metrics_runtime(settings.worker_metrics_address))
    readiness = Readiness(
        checks={"database": _database_answers, "temporal": client.service_client.check_health}
    )
    health = None
    if settings.worker_health_address:
        health = await start_health_server(settings.worker_health_address, readiness)
    # async activities run their database work and the blocking SMS client in threads:
    # as many as the activities that may run at once (the default is cpus + 4)
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=32, thread_name_prefix="cobro-io")
    )
    await asyncio.to_thread(warm_up)
    queue = settings.temporal_task_queue
    drain = timedelta(seconds=settings.worker_drain_seconds)
    try:
        with (
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="cobro-activity") as executor,
            ThreadPoolExecutor(SYNC_ACTIVITY_SLOTS, thread_name_prefix="cobro-sync") as sync_ex,
        ):
            worker = build_worker(
                client, queue, executor, settings.worker_max_workflow_tasks, drain
            )
            sync_worker = build_sync_worker(client, queue, sync_ex, drain)
            async with worker, sync_worker:  # polls from here on (the workflows validated)
                readiness.polling = True
                log.info(
                    "worker polling task queues %r and %r on %s",
                    queue,
                    sync_queue(queue),
                    settings.temporal_address,
                )
                await (stop.wait() if stop else asyncio.Future())
                readiness.polling = False
                log.info("worker stopping: running activities get %s to finish", drain)
    finally:
        if health is not None:
            await health.cleanup()
    log.info("worker stopped")


async def _database_answers() -> None:
    from sqlalchemy import text

    from cobro.db import default_engine

    def ping() -> None:
        with default_engine().connect() as conn:
            conn.execute(text("SELECT 1"))

    await asyncio.to_thread(ping)


async def main() -> None:
    await run_worker(stop=stop_on_signals())


if __name__ == "__main__":
    configure_logging(get_settings().log_format)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints every thread's stack
    log.info("worker starting")
    asyncio.run(main())
