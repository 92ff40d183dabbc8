"""Record the histories `tests/workflows/test_replay.py` replays, from real runs on real servers.

    PYTHONPATH=$PWD python -m tests.workflows.record_histories            # v1, into tests/histories
    PYTHONPATH=$PWD python -m tests.workflows.record_histories --version v2

Record a new version (`v2`) when a workflow's commands change and keep the old files: today's
code must still replay them, so the change goes behind `workflow.patched(...)`. Only for a
workflow whose runs are short-lived (DailySync, SystemCheck) may an unpatched change replace
the old files, when no run of the old code is left in flight at deploy time. Dunning's history
comes from its life test: `COBRO_RECORD_HISTORY=tests/histories/dunning_life_v2.json pytest
tests/dunning/test_life.py`.

What runs, once, in a temporary directory:
- a Temporal dev server (the binary of the conftest fixtures) whose dynamic config suggests
  continue-as-new after `--continue-as-new-after` events, so DailySync and Classify continue
  as new after a few pages through their own `is_continue_as_new_suggested()` check;
- a fresh SQLite database migrated by alembic, holding the demo portfolio (`cobro.devkit.demo`)
  loaded by the real importer; the insurer simulator over HTTP for its buyers; the capture
  SMTP/SMS servers; the real worker (`worker.build_worker`) with the shipped rules;
- `Classify` (pages of 5 customers, risk changes sent to the dunning workflows, the digest
  emailed), then `DailySync` (a full sync in pages of 5 covers, then its `Classify` child),
  then `SystemCheck`.
Each run of a continued-as-new chain is written as its own file (`<name>_<version>_run<n>.json`),
a single run as `<name>_<version>.json`, once today's code has replayed it; files of the same
name and version are replaced. The data is the demo's (made-up companies, `.example`
addresses); the recorder's client identity replaces the usual `pid@host`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from cobro.db import default_engine, upgrade
from cobro.devkit.capture import CaptureServers
from cobro.devkit.demo import generate
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.importing import import_csv
from cobro.settings import get_settings
from cobro.temporal_support import SEARCH_ATTRIBUTES, dev_server_path
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN
from worker import WORKFLOWS, build_worker
from workflows.classify import Classify, ClassifyInput
from workflows.daily_sync import DailySync, DailySyncInput
from workflows.system_check import SystemCheck

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
REPO = HISTORIES.parent.parent
TASK_QUEUE = "cobro-history-recorder"
IDENTITY = "cobro-history-recorder"
CUSTOMERS = 24
INSURER_SEED = 7
PAGE_SIZE = 5


@dataclass
class Recorded:
    name: str  # file name prefix: daily_sync, classify, system_check
    runs: list[WorkflowHistory]


async def chain(client: Client, workflow_id: str, first_run_id: str) -> list[WorkflowHistory]:
    """The history of every run of a workflow, following its continue-as-new links."""
    runs, run_id = [], first_run_id
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def record_run(client: Client, name: str, workflow: Any, arg: Any = None) -> Recorded:
    workflow_id = name.replace("_", "-") + "-recorded"
    args = [] if arg is None else [arg]
    handle = await client.start_workflow(workflow, *args, id=workflow_id, task_queue=TASK_QUEUE)
    await handle.result()
    assert handle.first_execution_run_id is not None
    return Recorded(name, await chain(client, workflow_id, handle.first_execution_run_id))


def _point_settings_at(
    work: Path, db_url: str, smtp_port: int, sms_url: str, sim: InsurerSimulator
) -> None:
    os.environ.update(
        COBRO_VAR_DIR=str(work / "var"),
        COBRO_DATABASE_URL=db_url,
        COBRO_RULES_DIR=str(REPO / "rules"),
        COBRO_TEMPLATES_DIR=str(REPO / "templates"),
        COBRO_TEMPORAL_TASK_QUEUE=TASK_QUEUE,
        COBRO_SMTP_PORT=str(smtp_port),
        COBRO_TWILIO_BASE_URL=sms_url,
        COBRO_TWILIO_ACCOUNT_SID=CAPTURE_ACCOUNT_SID,
        COBRO_TWILIO_AUTH_TOKEN=CAPTURE_AUTH_TOKEN,
        COBRO_INSURER_BASE_URL=sim.base_url,
        COBRO_INSURER_API_KEY=sim.api_key,
    )
    get_settings.cache_clear()
    default_engine.cache_clear()


async def record(work: Path, continue_as_new_after: int) -> list[Recorded]:
    db_url = f"sqlite:///{work / 'cobro.db'}"
    upgrade(db_url)
    anchor = date.today()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(dev_server_path()),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=WAL",
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={continue_as_new_after}",
        ],
    )
    try:
        async with (
            CaptureServers(
                storage_dir=work / "capture",
                account_sid=CAPTURE_ACCOUNT_SID,
                auth_token=CAPTURE_AUTH_TOKEN,
                auto_deliver=False,  # no status callbacks: no web app runs here
            ) as capture,
            InsurerSimulator(buyers=CUSTOMERS, seed=INSURER_SEED, start_date=anchor) as sim,
        ):
            _point_settings_at(work, db_url, capture.smtp_port, capture.base_url, sim)
            generate(work / "demo", anchor, customers=CUSTOMERS, insurer_seed=INSURER_SEED)
            for kind in ("customers", "invoices", "payments"):
                import_csv(kind, work / "demo" / f"{kind}.csv")
            client = await Client.connect(
                env.client.service_client.config.target_host,
                namespace=env.client.namespace,
                data_converter=pydantic_data_converter,
                identity=IDENTITY,
            )
            with ThreadPoolExecutor(32) as executor:
                async with build_worker(client, TASK_QUEUE, executor):
                    return [
                        await record_run(
                            client, "classify", Classify.run, ClassifyInput(batch_size=PAGE_SIZE)
                        ),
                        await record_run(
                            client,
                            "daily_sync",
                            DailySync.run,
                            DailySyncInput(full=True, page_size=PAGE_SIZE, today=sim.today),
                        ),
                        await record_run(client, "system_check", SystemCheck.run),
                    ]
    finally:
        await env.shutdown()


async def replay(recorded: list[Recorded]) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    for r in recorded:
        for history in r.runs:
            await replayer.replay_workflow(history)


def write(recorded: list[Recorded], version: str, out: Path) -> list[Path]:
    written = []
    for r in recorded:
        for stale in [
            *out.glob(f"{r.name}_{version}.json"),
            *out.glob(f"{r.name}_{version}_run*.json"),
        ]:
            stale.unlink()
        if len(r.runs) == 1:
            paths = [out / f"{r.name}_{version}.json"]
        else:
            paths = [out / f"{r.name}_{version}_run{n}.json" for n in range(1, len(r.runs) + 1)]
        for path, history in zip(paths, r.runs, strict=True):
            path.write_text(history.to_json() + "\n")
            written.append(path)
            print(f"{path}: {len(history.events)} events")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="v1", help="file name suffix (default v1)")
    parser.add_argument("--out", type=Path, default=HISTORIES, help="default tests/histories")
    parser.add_argument(
        "--continue-as-new-after",
        type=int,
        default=20,
        help="history length at which the server suggests continue-as-new (default 20)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cobro-histories-") as tmp:
        recorded = asyncio.run(record(Path(tmp), args.continue_as_new_after))
    for r in recorded:
        if r.name in ("classify", "daily_sync") and len(r.runs) < 2:
            raise SystemExit(f"{r.name} did not continue as new: lower --continue-as-new-after")
    asyncio.run(replay(recorded))
    args.out.mkdir(parents=True, exist_ok=True)
    write(recorded, args.version, args.out)


if __name__ == "__main__":
    main()
