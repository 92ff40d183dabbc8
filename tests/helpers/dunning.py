"""Shared set-up for the dunning tests: settings pointed at the capture servers and a test
policy, a worker on the given Temporal environment, CSV imports through the real importer."""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cobro.devkit.capture import CaptureServers
from cobro.importing import import_csv
from cobro.settings import get_settings
from tests.helpers import RULES
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN
from worker import build_sync_worker, build_worker

SHIPPED_RULES = RULES
TEST_POLICY = """\
policies:
  - name: standard
    calendar: FR
    business_days: false
    send_window: "09:00-18:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {at: -5d, channel: email, template: pre_due}
      - {at: +1d, channel: [email, sms], template: due}
      - {at: +7d, channel: email, template: reminder}
      - {at: +15d, action: task, note: call the customer, assignee_role: collector}
      - {at: +30d, channel: email, template: final_notice}
"""


def point_settings_at(
    monkeypatch: pytest.MonkeyPatch,
    capture: CaptureServers,
    tmp_path: Path,
    policy: str = TEST_POLICY,
) -> str:
    """Returns the task queue the worker must poll (unique per test)."""
    queue = f"dunning-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", queue)
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    for shipped in ("risk_classes.yaml", "alerts.yaml"):
        shutil.copy(SHIPPED_RULES / shipped, rules / shipped)
    (rules / "dunning.yaml").write_text(policy)
    monkeypatch.setenv("COBRO_RULES_DIR", str(rules))
    monkeypatch.setenv("COBRO_SMTP_PORT", str(capture.smtp_port))
    monkeypatch.setenv("COBRO_TWILIO_BASE_URL", capture.base_url)
    monkeypatch.setenv("COBRO_SMTP_LOOKUP", "capture")
    monkeypatch.setenv("COBRO_SMTP_LOOKUP_URL", capture.base_url)
    monkeypatch.setenv("COBRO_TWILIO_ACCOUNT_SID", CAPTURE_ACCOUNT_SID)
    monkeypatch.setenv("COBRO_TWILIO_AUTH_TOKEN", CAPTURE_AUTH_TOKEN)
    get_settings.cache_clear()
    return queue


def pydantic_client(env: WorkflowEnvironment) -> Client:
    """The environment's client (with its time-skipping interceptors), our converter."""
    config = env.client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


@asynccontextmanager
async def running_worker(client: Client, queue: str) -> AsyncIterator[None]:
    """The worker of `queue` and of its sync queue, as `cobro worker` runs them."""
    with ThreadPoolExecutor(32) as executor, ThreadPoolExecutor(8) as sync_executor:
        async with (
            build_worker(client, queue, executor),
            build_sync_worker(client, queue, sync_executor),
        ):
            yield


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_rows(tmp_path: Path, kind: str, rows: list[dict[str, str]]) -> None:
    import_csv(kind, write_csv(tmp_path / f"{kind}-{uuid.uuid4().hex[:6]}.csv", rows))


async def signals(client: Client, account: str) -> list[dict[str, str]]:
    """The `facts_changed` signals in the current run of the customer's dunning workflow,
    oldest first (each a `FactsChanged` as JSON: kind, detail, actor)."""
    from cobro.dunning.signals import workflow_id

    handle = client.get_workflow_handle(workflow_id(account))
    found = []
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
            found += [json.loads(p.data) for p in payloads]
    return found


async def signal_counts(client: Client, accounts: list[str]) -> dict[str, int]:
    return {a: len(await signals(client, a)) for a in accounts}


def midday_zone(countries: tuple[str, ...] = ("FR", "DE", "GB", "US", "ES")) -> tuple[str, str]:
    """A time zone where it is about midday now (`Etc/GMT±N`) and the first of `countries`
    where today is no holiday: a policy on that calendar may send right away."""
    import holidays

    now = datetime.now(UTC)
    offset = (12 - now.hour) % 24
    offset = offset - 24 if offset > 12 else offset
    zone = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT signs are inverted
    today = now.astimezone(ZoneInfo(zone)).date()
    country = next(
        c for c in countries if today not in holidays.country_holidays(c, years=today.year)
    )
    return zone, country
