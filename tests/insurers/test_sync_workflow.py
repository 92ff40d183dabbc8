"""DailySync on a real Temporal dev server, with the insurer simulator over HTTP and a real
database: full then incremental runs, faults, the classification at the end, `cobro sync now
--wait`, and the daily Schedule (`cobro schedule apply|pause|unpause|show`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine
from cobro.devkit.capture import CaptureServers
from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.models import (
    InsurerCover,
    InsurerQuarantine,
    RiskAssessment,
    SyncRun,
    TimelineEvent,
)
from cobro.settings import get_settings
from cobro.sync_schedule import SCHEDULE_ID
from tests.helpers.dunning import pydantic_client, running_worker
from tests.helpers.insurers import seed_customers
from workflows.daily_sync import DailySync, DailySyncInput, DailySyncProgress

pytestmark = pytest.mark.temporal


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InsurerSimulator]:
    async with InsurerSimulator(buyers=90, seed=31, start_date=date.today()) as simulator:
        monkeypatch.setenv("COBRO_INSURER_BASE_URL", simulator.base_url)
        monkeypatch.setenv("COBRO_INSURER_API_KEY", simulator.api_key)
        get_settings.cache_clear()
        yield simulator
    get_settings.cache_clear()


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"sync-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", name)
    get_settings.cache_clear()
    return name


async def run(client: Client, queue: str, **kw: object) -> DailySyncProgress:
    return await client.execute_workflow(
        DailySync.run,
        DailySyncInput(**kw),  # type: ignore[arg-type]
        id=f"daily-sync-test-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )


def count(model: type, *where: object) -> int:
    with default_engine().connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_full_then_incremental_through_the_workflow(
    dev_server_env: WorkflowEnvironment, use_database: str, sim: InsurerSimulator, queue: str
) -> None:
    seed_customers(default_engine(), sim)
    client = pydantic_client(dev_server_env)
    covers = len(sim.expected_covers())
    async with running_worker(client, queue):
        first = await run(client, queue, full=True, page_size=20, today=sim.today, classify=False)
        assert first.status == "succeeded" and first.kind == "full"
        assert first.pages_done == first.total_pages == -(-covers // 20)
        assert first.summary["created"] == first.counts["created"] == covers
        assert count(InsurerCover) == covers

        changed = sim.advance_day()
        second = await run(client, queue, page_size=20, today=sim.today, classify=False)
        assert second.kind == "incremental"
        assert second.summary["updated"] == len(changed) > 0
        assert second.summary["fetched"] - second.summary["unchanged"] == len(changed)
    with default_engine().connect() as conn:
        runs = conn.execute(select(SyncRun.kind, SyncRun.status).order_by(SyncRun.id)).all()
    assert [tuple(r) for r in runs] == [("full", "succeeded"), ("incremental", "succeeded")]


async def test_faults_through_the_workflow_then_classification(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    sim: InsurerSimulator,
    queue: str,
    capture_servers: CaptureServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COBRO_SMTP_PORT", str(capture_servers.smtp_port))
    get_settings.cache_clear()
    seed_customers(default_engine(), sim)
    sim.faults = Faults(
        server_error_rate=0.1,
        rate_limit_rate=0.1,
        retry_after_seconds=0.01,
        malformed_records=3,
        truncated_pages=[1],
        token_max_uses=4,
        seed=9,
    )
    client = pydantic_client(dev_server_env)
    async with running_worker(client, queue):
        result = await run(client, queue, full=True, page_size=25, today=sim.today)
    assert result.status == "succeeded"
    assert result.summary["quarantined"] == count(InsurerQuarantine) == 3
    assert count(InsurerCover) == len(sim.expected_covers()) - 3
    # the child Classify ran: every customer assessed, the digest went to the team
    assert result.classified == count(RiskAssessment) > 0
    assert any(m.subject.startswith("Cobro classification") for m in capture_servers.mail.list())


async def test_cut_json_and_a_record_malformed_once_through_the_workflow(
    dev_server_env: WorkflowEnvironment, use_database: str, sim: InsurerSimulator, queue: str
) -> None:
    """(c) a page whose JSON is cut: the sync completes without an activity retry; (a) a
    record malformed in one incremental is applied by the next one, on the timeline."""
    seed_customers(default_engine(), sim, share=1.0)
    client = pydantic_client(dev_server_env)
    async with running_worker(client, queue):
        await run(client, queue, full=True, page_size=20, today=sim.today, classify=False)
        sim.advance_day()
        cover = next(
            c for c in sim.portfolio.covers.values() if c.status == "ACTIVE" and c.amount > 0
        )
        later = next(c for c in sim.portfolio.covers.values() if c is not cover)
        cover.status, cover.amount = "WITHDRAWN", 0
        cover.updated_at = sim._stamp()
        later.requested_amount += 1000
        later.updated_at = sim._stamp()
        sim.faults = Faults(
            cut_json_pages=[1], malformed_ids={cover.cover_id: "amount"}, malformed_times=1
        )
        mark = len(sim.requests)
        handle = await client.start_workflow(
            DailySync.run,
            DailySyncInput(page_size=20, today=sim.today, classify=False),
            id=f"daily-sync-test-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        first = await handle.result()
        attempts = [
            e.activity_task_started_event_attributes.attempt
            async for e in handle.fetch_history_events()
            if e.HasField("activity_task_started_event_attributes")
        ]
        page1 = [r.status for r in sim.requests[mark:] if r.page == 1]
        second = await run(client, queue, page_size=20, today=sim.today, classify=False)
    assert first.status == "succeeded" and first.kind == "incremental"
    assert len(attempts) == first.pages_done + 2 and set(attempts) == {1}  # no activity retry
    assert page1 == [200, 200]  # cut once, asked again by the connector
    assert (first.summary["quarantined"], first.summary["quarantine_open"]) == (1, 1)
    assert second.kind == "incremental"
    assert (second.summary["quarantine_resolved"], second.summary["quarantine_open"]) == (1, 0)
    with default_engine().connect() as conn:
        status = conn.scalar(
            select(InsurerCover.status).where(InsurerCover.cover_id == cover.cover_id)
        )
        summaries = list(
            conn.scalars(select(TimelineEvent.summary).where(TimelineEvent.kind == "cover.status"))
        )
    assert status == "withdrawn"
    assert sum(f"cover {cover.cover_id} " in t and "→ withdrawn" in t for t in summaries) == 1


async def test_sync_now_wait_cli(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    sim: InsurerSimulator,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "COBRO_TEMPORAL_ADDRESS", dev_server_env.client.service_client.config.target_host
    )
    get_settings.cache_clear()
    seed_customers(default_engine(), sim)
    client = pydantic_client(dev_server_env)
    async with running_worker(client, queue):
        result = await asyncio.to_thread(  # the worker needs this event loop meanwhile
            CliRunner().invoke, app, ["sync", "now", "--full", "--wait", "--no-classify", "--json"]
        )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "succeeded"
    assert data["summary"]["created"] == len(sim.expected_covers())


def test_sync_now_without_temporal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["sync", "now"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


async def test_schedule_apply_is_idempotent_and_pausable(
    dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "COBRO_TEMPORAL_ADDRESS", dev_server_env.client.service_client.config.target_host
    )
    monkeypatch.setenv("COBRO_SYNC_TIME", "05:45")
    monkeypatch.setenv("COBRO_SYNC_TIMEZONE", "Europe/Madrid")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        first = runner.invoke(app, ["schedule", "apply", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.output)["created"] is True
        monkeypatch.setenv("COBRO_SYNC_TIME", "06:15")
        get_settings.cache_clear()
        second = runner.invoke(app, ["schedule", "apply", "--json"])
        info = json.loads(second.output)
        assert info["created"] is False
        assert info["spec"] == "daily at 06:15 Europe/Madrid"
        assert info["next_runs"] and "T" in info["next_runs"][0]
        schedules = [s.id async for s in await dev_server_env.client.list_schedules()]
        assert schedules.count(SCHEDULE_ID) == 1

        paused = runner.invoke(
            app, ["schedule", "pause", "--note", "insurer maintenance", "--json"]
        )
        assert json.loads(paused.output)["paused"] is True
        assert json.loads(paused.output)["note"] == "insurer maintenance"
        # re-applying keeps it paused
        again = json.loads(runner.invoke(app, ["schedule", "apply", "--json"]).output)
        assert again["paused"] is True
        unpaused = runner.invoke(app, ["schedule", "unpause", "--json"])
        assert json.loads(unpaused.output)["paused"] is False
        desc = await dev_server_env.client.get_schedule_handle(SCHEDULE_ID).describe()
        assert desc.schedule.policy.overlap.name == "SKIP"
        assert desc.schedule.policy.catchup_window.total_seconds() == 24 * 3600
    finally:
        await dev_server_env.client.get_schedule_handle(SCHEDULE_ID).delete()
        get_settings.cache_clear()
