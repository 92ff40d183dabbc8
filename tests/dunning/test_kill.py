"""Kill test on the real dev server: a worker subprocess is SIGKILLed at every boundary of
the send (before claim, after claim, after the provider accepted, before the confirmation)
while it sends 400 reminders. After restarts every reminder reached the capture server
exactly once (each Message-ID captured once, none missing) and no reminder was claimed after
its invoice was paid. The multi-process variant is tests/dunning/test_email_once_kill.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from cobro.channels.email import message_id_for
from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.models import Communication, Customer, Invoice
from tests.helpers import ROOT
from tests.helpers.dunning import import_rows, midday_zone, point_settings_at, pydantic_client

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.serial]

REMINDERS = 400
# counters are per worker process, so each process crashes at the first point it reaches
# 50 times whose marker is not yet there: the four boundaries in order, one per process
CRASHES = "before_claim@50,after_claim@50,after_send@50,before_confirm@50"
PAID_EARLY = 20  # invoices paid after the workflows started, without any signal


def _policy_for_now() -> tuple[str, str]:
    """A zone where it is midday now and a calendar where today is no holiday."""
    zone, country = midday_zone()
    policy = f"""\
policies:
  - name: kill
    calendar: {country}
    business_days: false
    send_window: "06:00-20:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {{at: +1d, channel: email, template: due}}
"""
    return zone, policy


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


async def test_reminders_exactly_once_when_the_worker_is_killed(
    dev_server_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone, policy = _policy_for_now()
    point_settings_at(monkeypatch, capture_servers, tmp_path, policy)
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    accounts = [f"K{i:04d}" for i in range(REMINDERS + PAID_EARLY)]
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": a,
                "name": f"Kill {a}",
                "country": "FR",
                "timezone": zone,
                "language": "en",
                "email": f"{a.lower()}@kill.example",
            }
            for a in accounts
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
    worker = _start_worker(worker_env, log)
    restarts = 0
    try:
        await notify(client, accounts, FactsChanged("invoices_changed", "kill test"))
        paid = accounts[-PAID_EARLY:]
        paid_at = datetime.now(UTC)
        with transaction() as s:  # paid in the ERP; the workflows are not told
            s.execute(
                update(Invoice)
                .where(Invoice.number.in_([f"INV-{a}" for a in paid]))
                .values(open_amount=0)
            )
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                restarts += 1
                worker = _start_worker(worker_env, log)
            if _sent_count() >= REMINDERS and len(list(crash_dir.iterdir())) == 4:
                break
            await asyncio.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(30)

    assert restarts == 4, log.read_text()[-3000:]
    with transaction() as s:
        rows = s.execute(
            select(
                Customer.account,
                Communication.idempotency_key,
                Communication.status,
                Communication.created_at,
            ).join(Customer, Customer.id == Communication.customer_id)
        ).all()
    by_account: dict[str, list] = {}
    for account, key, status, created_at in rows:
        by_account.setdefault(account, []).append((key, status, created_at))
    unpaid = accounts[:REMINDERS]
    assert all(len(by_account.get(a, [])) == 1 for a in unpaid), "one reminder per customer"
    assert all(by_account[a][0][1] == "sent" for a in unpaid)
    for a in paid:  # a claim after the payment would be a send after payment
        assert all(created < paid_at for _, _, created in by_account.get(a, []))

    captured = Counter(summary.message_id for summary in capture_servers.mail.list())
    twice = {mid: n for mid, n in captured.items() if n != 1}
    assert not twice, f"{len(twice)} Message-IDs captured more than once: {twice}"
    expected = {message_id_for(by_account[a][0][0]) for a in unpaid}
    sent_before_payment = {
        message_id_for(k) for a in paid for k, status, _ in by_account.get(a, [])
    }
    assert expected <= set(captured)
    assert set(captured) <= expected | sent_before_payment, "no unexpected message"


def _sent_count() -> int:
    from sqlalchemy import func

    with transaction() as s:
        return s.scalar(
            select(func.count()).select_from(Communication).where(Communication.status == "sent")
        )
