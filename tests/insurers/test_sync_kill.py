"""Kill test on the real dev server: the worker subprocess running DailySync is SIGKILLed
while a page is in flight, then restarted. The sync completes, the stored covers and grades
equal an uninterrupted run's, and only the pages in flight at the kill (the workflow keeps
two) are fetched again (counted by the simulator)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine
from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.allianz_trade import AllianzTradeConnector
from cobro.insurers.sync_runner import run_sync
from tests.helpers import ROOT
from tests.helpers.dunning import pydantic_client
from tests.helpers.insurers import digest, forget_sync, seed_customers
from workflows.daily_sync import DailySync, DailySyncInput

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.serial]

PAGE_SIZE = 20
KILL_AFTER_PAGES = 4  # pages served before the kill


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def _pages_served(sim: InsurerSimulator) -> list[int]:
    return [r.page for r in sim.requests_to("covers_search") if r.status == 200 and r.page]


async def test_killed_worker_resumes_at_the_page_in_flight(
    dev_server_env: WorkflowEnvironment, pg_database: str, tmp_path: Path
) -> None:
    engine = default_engine()
    async with InsurerSimulator(buyers=240, seed=13, start_date=date(2026, 3, 2)) as sim:
        seed_customers(engine, sim)
        pages = -(-len(sim.expected_covers()) // PAGE_SIZE)
        assert pages > KILL_AFTER_PAGES + 3
        sim.faults = Faults(slow_rate=1.0, slow_seconds=0.4)  # every page takes 0.4 s
        queue = f"sync-kill-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "COBRO_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
            "COBRO_TEMPORAL_TASK_QUEUE": queue,
            "COBRO_INSURER_BASE_URL": sim.base_url,
            "COBRO_INSURER_API_KEY": sim.api_key,
        }
        log = tmp_path / "worker.log"
        client = pydantic_client(dev_server_env)
        worker = _start_worker(env, log)
        try:
            handle = await client.start_workflow(
                DailySync.run,
                DailySyncInput(
                    full=True,
                    page_size=PAGE_SIZE,
                    today=sim.today,
                    classify=False,
                    page_heartbeat_seconds=3,
                ),
                id=f"daily-sync-kill-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            deadline = time.monotonic() + 60
            while len(_pages_served(sim)) < KILL_AFTER_PAGES:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.02)
            # page KILL_AFTER_PAGES is being applied or the next one is being fetched
            await asyncio.sleep(0.15)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            await asyncio.sleep(0.6)  # a fetch cut by the kill is still answered and counted
            served_at_kill = len(_pages_served(sim))
            worker = _start_worker(env, log)
            result = await asyncio.wait_for(handle.result(), 120)
        finally:
            worker.terminate()
            worker.wait(30)

        assert result.status == "succeeded", log.read_text()[-3000:]
        assert result.pages_done == result.total_pages == pages
        fetched = Counter(_pages_served(sim))
        assert set(fetched) == set(range(1, pages + 1))
        again = sorted(page for page, n in fetched.items() if n > 1)
        assert 1 <= len(again) <= 2 and all(fetched[n] == 2 for n in again), fetched
        assert again[-1] - again[0] <= 1, again  # the two pages in flight, next to each other
        assert again[0] >= KILL_AFTER_PAGES and again[-1] <= served_at_kill, (again, served_at_kill)
        assert result.summary["created"] == len(sim.expected_covers())
        after_kill = digest(engine)

        # the same sync, uninterrupted, gives the same covers and grades
        sim.faults = Faults()
        forget_sync(engine)
        connector = AllianzTradeConnector(sim.base_url, SecretStr(sim.api_key), timeout=5)
        await run_sync(engine, connector, full=True, today=sim.today, page_size=PAGE_SIZE)
        assert digest(engine) == after_kill
