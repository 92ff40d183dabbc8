"""The Classify workflow on the time-skipping server, on SQLite and PostgreSQL: pages of
customers classified by activities, only changes written, alert episodes and cooldown over a
sequence of days, and the dunning workflow of each changed customer signalled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.models import Alert, GradeHistory, Invoice
from cobro.settings import get_settings
from tests.helpers.dunning import pydantic_client, running_worker
from tests.helpers.rules import add_invoice, seed, write_rules
from workflows.classify import Classify, ClassifyInput, ClassifyResult

POLICY = """\
policies:
  - name: standard
    calendar: FR
    business_days: false
    send_window: "09:00-18:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {at: +90d, action: task, note: call the customer}
"""


ENV: list[WorkflowEnvironment] = []
RUNS: list[str] = []  # the workflow ids of `_run`, in order


async def _run(client: Client, queue: str) -> ClassifyResult:
    # days pass only through env.sleep(): never skip time while a run is in progress
    RUNS.append(f"classify-{uuid.uuid4().hex[:8]}")
    with ENV[0].auto_time_skipping_disabled():
        return await client.execute_workflow(
            Classify.run, ClassifyInput(batch_size=2), id=RUNS[-1], task_queue=queue
        )


async def _pages_overlapped(client: Client, workflow_id: str) -> bool:
    """Whether the run's second page was scheduled before its first one completed."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    pages = [
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "classify_batch"
    ]
    first_done = next(
        e.event_id
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id == pages[0]
    )
    return len(pages) > 1 and pages[1] < first_done


async def _signals(client: Client, account: str) -> list[str]:
    """The signals a customer's dunning workflow received, once it sleeps (no activity in
    flight: terminating it then leaves the test server's clock free)."""
    handle = client.get_workflow_handle(f"dunning-{account}")
    for _ in range(150):
        history = await handle.fetch_history()
        if any(e.HasField("timer_started_event_attributes") for e in history.events):
            break
        await asyncio.sleep(0.1)
    out = []
    for event in history.events:
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            out += [p.data.decode() for p in attrs.input.payloads]
    return out


@pytest.mark.temporal
async def test_classify_workflow_over_days(
    time_skipping_env: WorkflowEnvironment,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture_servers: CaptureServers,
) -> None:
    queue = f"classify-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("COBRO_SMTP_PORT", str(capture_servers.smtp_port))
    monkeypatch.setenv("COBRO_COLLECTIONS_TEAM_EMAIL", "team@example.com")
    monkeypatch.setenv("COBRO_PUBLIC_BASE_URL", "https://cobro.example.com")
    rules = write_rules(tmp_path / "rules")
    (rules / "dunning.yaml").write_text(POLICY)
    monkeypatch.setenv("COBRO_RULES_DIR", str(rules))
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", queue)
    get_settings.cache_clear()
    client = pydantic_client(time_skipping_env)
    ENV[:] = [time_skipping_env]
    start = await time_skipping_env.get_current_time()
    ids = seed(default_engine(), start.astimezone(UTC).date())

    async with running_worker(client, queue):
        # day 1: everyone classified; B (open, overdue) alerted and its dunning signalled
        r1 = await _run(client, queue)
        assert (r1.pages, r1.evaluated, r1.changes) == (2, 3, 3)
        assert await _pages_overlapped(client, RUNS[-1])  # two pages in flight
        assert r1.transitions == {"unclassified -> low": 3}
        assert (r1.alerts, r1.alert_counts, r1.notified) == (1, {"overdue": 1}, 1)
        assert any(
            "risk_class_changed" in s and "unclassified -> low" in s
            for s in await _signals(client, "B")
        )
        # (a sleeping dunning workflow would let the test server skip time to its timers)
        await client.get_workflow_handle("dunning-B").terminate("checked")
        # one digest to the collections team: what changed and what fired
        assert r1.digest == "sent"
        digests = capture_servers.mail.list()
        assert len(digests) == 1
        assert digests[0].to == ("team@example.com",)
        assert digests[0].subject == (
            "Cobro classification: 3 customer(s) classified (3 low), 1 warning alert(s)"
        )
        text = capture_servers.mail.get(digests[0].id).text or ""
        assert "First classification: 3 customer(s) classified\n  low: 3\n" in text
        assert "warning (1): overdue 1" in text
        assert "- [overdue] B Name B: Name B has" in text
        assert "Dashboard: https://cobro.example.com/alerts" in text

        # later the same day: nothing changed, nothing fires, nobody is signalled, no digest
        r1b = await _run(client, queue)
        assert (r1b.changes, r1b.alerts, r1b.notified) == (0, 0, 0)
        assert r1b.digest == "nothing to say"
        assert len(capture_servers.mail.list()) == 1

        # day 3: B paid (episode ends) then is overdue again, within the 3-day cooldown
        await time_skipping_env.sleep(timedelta(days=2))
        with transaction() as s:
            s.execute(update(Invoice).where(Invoice.number == "B1").values(open_amount=Decimal(0)))
        assert (await _run(client, queue)).resolved == 1
        with transaction() as s:
            now = (await time_skipping_env.get_current_time()).astimezone(UTC)
            add_invoice(s, ids["B"], "B2", now.date() - timedelta(days=1), "40")
        assert (await _run(client, queue)).alerts == 0

        # day 4: cooldown over, still overdue: the second episode fires once
        await time_skipping_env.sleep(timedelta(days=1, hours=1))
        r4 = await _run(client, queue)
        assert r4.alert_counts == {"overdue": 1}
        assert (await _run(client, queue)).alerts == 0
        with transaction() as s:
            keys = sorted(s.scalars(select(Alert.dedup_key).where(Alert.name == "overdue")))
            assert keys == [f"{ids['B']}:overdue:1", f"{ids['B']}:overdue:2"]

        # A is graded 9 and owes something: low -> critical, alert, its dunning signalled
        with transaction() as s:
            now = (await time_skipping_env.get_current_time()).astimezone(UTC)
            s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=now.date()))
            add_invoice(s, ids["A"], "A1", now.date() + timedelta(days=30), "10")
        r5 = await _run(client, queue)
        assert (r5.changes, r5.transitions, r5.notified) == (1, {"low -> critical": 1}, 1)
        assert r5.alert_counts == {"became_critical": 1}
        assert any("low -> critical" in s for s in await _signals(client, "A"))
        assert r5.digest == "sent"
        last = capture_servers.mail.list()[0]  # newest first
        assert last.subject == ("Cobro classification: 1 risk class change(s), 1 critical alert(s)")
        await client.get_workflow_handle("dunning-A").terminate("test over")
    assert datetime.now(UTC) - start < timedelta(days=1), "time was skipped, not waited"
