"""Kill test on the real dev server: the worker subprocess filing an overdue declaration is
SIGKILLed (by itself, `cobro.faults`) once before the POST and once after the insurer
received it but before the job was recorded, then restarted each time. Exactly one
declaration at the insurer, counted by the simulator's request log; the POST of the killed
attempt was repeated with the same client reference (the insurer answered with the same
job), and the timeline says filed and registered once."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.models import InsurerDeclaration, Invoice, TimelineEvent
from cobro.settings import get_settings
from tests.dunning.test_kill import _start_worker
from tests.helpers import RULES
from tests.helpers.dunning import midday_zone, point_settings_at, pydantic_client
from tests.helpers.exposure import add_cover, add_customer

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.serial]

CRASHES = "before_declare@1,after_declare@1"  # one process killed at each, in this order
REFERENCE = "cobro-ovd-I1"


def _policy_for_now() -> tuple[str, str]:
    """A zone where it is midday now, a calendar where today is no holiday, and a policy
    whose only step is the declaration 5 days before the declare-by date."""
    zone, country = midday_zone(("US", "FR", "DE", "GB", "ES"))
    policy = f"""\
policies:
  - name: declare
    calendar: {country}
    business_days: false
    send_window: "06:00-20:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    not_insured: {{at: +20d, note: "not insured", assignee_role: collector}}
    steps:
      - {{at: deadline - 5d, action: declare}}
"""
    return zone, policy


def _declaration() -> tuple[str, int] | None:
    with transaction() as s:
        row = s.execute(
            select(InsurerDeclaration.status, InsurerDeclaration.attempts).where(
                InsurerDeclaration.client_reference == REFERENCE
            )
        ).first()
        return None if row is None else (row[0], row[1])


async def test_one_declaration_at_the_insurer_when_the_worker_is_killed(
    dev_server_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone, policy = _policy_for_now()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    for shipped in ("insurance.yaml", "exposure.yaml"):  # the USD policy: automatic
        shutil.copy(RULES / shipped, tmp_path / "rules" / shipped)
    # declare-by = due + 45 days (USD policy): the step (deadline - 5d) was due yesterday
    due = datetime.now(ZoneInfo(zone)).date() - timedelta(days=41)
    async with InsurerSimulator(buyers=5, seed=4, job_delay_seconds=0.2) as sim:
        monkeypatch.setenv("COBRO_INSURER_BASE_URL", sim.base_url)
        monkeypatch.setenv("COBRO_INSURER_API_KEY", sim.api_key)
        get_settings.cache_clear()
        with transaction() as s:
            ins = add_customer(
                s, "INS", country="US", email="ap@ins.example",
                insurer_buyer_id=sim.portfolio.buyers[0].company_id,
            )  # fmt: skip
            ins.timezone = zone
            add_cover(
                s, ins, "C-INS", "5012002", "granted", "20000", valid_from=due - timedelta(90)
            )
            s.add(Invoice(number="I1", customer_id=ins.id, issue_date=due - timedelta(days=30),
                          due_date=due, currency="USD", amount=Decimal(1000),
                          open_amount=Decimal(1000)))  # fmt: skip
        crash_dir = tmp_path / "crashes"
        crash_dir.mkdir()
        worker_env = {
            **os.environ,
            "COBRO_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
            "COBRO_CRASH_PLAN": CRASHES,
            "COBRO_CRASH_DIR": str(crash_dir),
        }
        log = tmp_path / "worker.log"
        client = pydantic_client(dev_server_env)
        started = time.monotonic()
        worker = _start_worker(worker_env, log)
        restarts = 0
        try:
            await notify(client, ["INS"], FactsChanged("invoices_changed", "kill test"))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if worker.poll() is not None:  # it killed itself at a crash point
                    restarts += 1
                    worker = _start_worker(worker_env, log)
                if _declaration() == ("registered", 3) and len(list(crash_dir.iterdir())) == 2:
                    break
                await asyncio.sleep(0.2)
            await client.get_workflow_handle(workflow_id("INS")).terminate("test over")
        finally:
            worker.terminate()
            worker.wait(30)
        elapsed = time.monotonic() - started

        assert restarts == 2, log.read_text()[-3000:]
        assert sorted(p.name for p in crash_dir.iterdir()) == [
            "crashed-after_declare", "crashed-before_declare",
        ]  # fmt: skip
        assert _declaration() == ("registered", 3), log.read_text()[-3000:]
        counts = sim.declaration_counts()
        assert counts["declarations"] == {"OVD": 1, "EXP": 0, "RES": 0}  # exactly one
        assert counts["references"] == [REFERENCE]
        # the request log: the killed attempt's POST and its repeat, nothing before the POST
        posts = [r for r in sim.requests_to("overdues") if r.method == "POST"]
        assert [r.status for r in posts] == [202, 200], posts
        assert counts["received"]["OVD"] == 2
        with transaction() as s:
            kinds = list(
                s.scalars(
                    select(TimelineEvent.kind)
                    .where(TimelineEvent.kind.like("declaration.%"))
                    .order_by(TimelineEvent.id)
                )
            )
        assert kinds == ["declaration.queued", "declaration.filed", "declaration.registered"]
        print(f"\ndeclaration kill test: 2 kills, {elapsed:.1f} s to the registered declaration")
