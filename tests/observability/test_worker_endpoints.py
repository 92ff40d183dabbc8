"""The worker as ops run it (`python worker.py` on a dev server and PostgreSQL): its
/healthz and /readyz, its Prometheus /metrics with the SDK's series and Cobro's, JSON logs
naming the workflow and the account but never the customer's address, and SIGTERM
draining a send in flight: the relay's answer arrives, the contact is confirmed once, the
process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.models import Communication
from tests.dunning.test_kill import _policy_for_now
from tests.helpers import ROOT, eventually, free_port
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

SLOW_S = 4.0  # the relay's answer to a `slow-` recipient's DATA takes this long


class SlowRelay:
    """An SMTP relay (aiosmtpd) that takes its time to accept `slow-*` recipients."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.slow_data = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if any(r.startswith("slow-") for r in envelope.rcpt_tos):
            self.slow_data.set()
            await asyncio.sleep(SLOW_S)
        self.messages.append(envelope.content)
        return "250 2.0.0 accepted"


def _customers(tmp_path: Path, zone: str, accounts: dict[str, str]) -> None:
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": a,
                "name": f"Ops {a}",
                "country": "FR",
                "timezone": zone,
                "language": "en",
                "email": email,
                "phone": "+33 6 12 34 56 78",
            }
            for a, email in accounts.items()
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": f"INV-{a}",
                "account": a,
                "issue_date": (due - timedelta(days=30)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": "100.00",
            }
            for a in accounts
        ],
    )


def _status(account: str) -> str | None:
    with transaction() as s:
        return s.scalar(
            select(Communication.status).where(
                Communication.idempotency_key.like(f"dunning:{account}:%")
            )
        )


async def test_health_metrics_json_logs_and_a_drained_sigterm(
    dev_server_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone, policy = _policy_for_now()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    # accounts of this run only: the session's dev server may still hold another test's
    # dunning-OPS1 on another task queue, which a signal-with-start would reach
    tag = uuid.uuid4().hex[:6].upper()
    one, two = f"OPS1{tag}", f"OPS2{tag}"
    _customers(tmp_path, zone, {one: "ap@ops1.example", two: "slow-ap@ops2.example"})
    relay = SlowRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    metrics, health = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env={
            **os.environ,
            "COBRO_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
            "COBRO_SMTP_PORT": str(controller.port),
            "COBRO_WORKER_METRICS_ADDRESS": metrics,
            "COBRO_WORKER_HEALTH_ADDRESS": health,
            "COBRO_WORKER_DRAIN_SECONDS": "30",
            "COBRO_LOG_FORMAT": "json",
        },
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    client = pydantic_client(dev_server_env)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for _ in range(180):  # the worker imports, warms up, connects, polls
                try:
                    if (await http.get(f"http://{health}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert worker.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.5)
            body = (await http.get(f"http://{health}/readyz")).json()
            assert body == {
                "ready": True,
                "checks": {"polling": True, "database": True, "temporal": True},
            }
            assert (await http.get(f"http://{health}/healthz")).json() == {"status": "ok"}

            # a send: Cobro's counter beside the SDK's own series
            await notify(client, [one], FactsChanged("invoices_changed", "ops test"))
            await eventually(lambda: _status(one) == "sent", timeout=60)

            async def scraped() -> str:
                return (await http.get(f"http://{metrics}/metrics")).text

            text = await scraped()
            sent = [
                line
                for line in text.splitlines()
                if line.startswith("cobro_dunning_actions")
                and 'kind="email"' in line
                and 'status="sent"' in line
            ]
            assert len(sent) == 1 and sent[0].endswith(" 1"), sent
            for series in (
                "temporal_activity_execution_latency",
                "temporal_activity_schedule_to_start_latency",
                "temporal_workflow_task_execution_latency",
                "temporal_num_pollers",
            ):
                assert series in text, series

            # SIGTERM while the relay holds a send: drained, not cut
            await notify(client, [two], FactsChanged("invoices_changed", "ops test"))
            assert await asyncio.to_thread(relay.slow_data.wait, 60)
            worker.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            draining = await http.get(f"http://{health}/readyz")
            assert draining.status_code == 503 and draining.json()["checks"]["polling"] is False
            code = await asyncio.to_thread(worker.wait, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        controller.stop()
    assert code == 0, log.read_text()[-3000:]
    assert _status(two) == "sent"  # confirmed before the process left
    assert len(relay.messages) == 2  # one each, nothing resent

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    sent_lines = [e for e in lines if e["message"].startswith("email sent")]
    assert {e.get("account") for e in sent_lines} == {one, two}
    assert all(e["workflow_id"] == f"dunning-{e['account']}" and e["run_id"] for e in sent_lines)
    raw = log.read_text()
    assert "ap@ops1.example" not in raw and "slow-ap@ops2.example" not in raw
    assert "+33612345678" not in raw and "6 12 34 56 78" not in raw
    assert any(e["message"].startswith("worker stopping") for e in lines)
