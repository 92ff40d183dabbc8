"""`cobro dev --demo` end to end: real Temporal dev server + UI, worker, capture servers,
dashboard, demo data; Ctrl-C leaves no process behind; a second start reuses ./var/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from cobro.models import Communication, Customer, InsurerCover, Invoice, Payment, RiskAssessment
from tests.helpers import free_port

COBRO = Path(sys.executable).parent / "cobro"


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True)
    pids = []
    for line in out.stdout.splitlines():
        p, pp, _ = (int(x) for x in line.split())
        if pp == pid:
            pids.append(p)
    return pids


def _wait_until_running(proc: subprocess.Popen, log: Path, timeout: float = 150) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Cobro is running" in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"cobro dev exited with {proc.returncode}:\n{text}")
        time.sleep(0.5)
    proc.kill()
    proc.wait()  # reaped: the test's clean-up does not mistake it for a running stack
    pytest.fail(f"cobro dev did not come up in {timeout}s:\n{log.read_text(errors='replace')}")


def _start(tmp_path: Path, env: dict[str, str], run: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"dev-{run}.log"
    proc = subprocess.Popen(
        [str(COBRO), "dev", "--demo"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return proc, log


def _stop(proc: subprocess.Popen) -> list[int]:
    children = _children_of(proc.pid)
    assert children, "the Temporal dev server should be a child process"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    return children


def _dunning_workflows(address: str) -> int:
    """Live dunning workflows, found the way ops do: by search attribute in visibility."""
    import asyncio

    from temporalio.client import Client

    async def count() -> int:
        client = await Client.connect(address)
        for _ in range(40):  # visibility is eventually consistent
            found = await client.count_workflows(
                'WorkflowType="Dunning" AND ExecutionStatus="Running" AND CobroCustomerId="C00001"'
            )
            if found.count:
                return (await client.count_workflows('WorkflowType="Dunning"')).count
            await asyncio.sleep(0.5)
        return 0

    return asyncio.run(count())


def _daily_sync(address: str, expected: int) -> dict[str, object]:
    """The schedule and the completed DailySync runs, as the Temporal UI lists them."""
    import asyncio

    from temporalio.client import Client

    async def look() -> dict[str, object]:
        client = await Client.connect(address)
        schedules = [s.id async for s in await client.list_schedules()]
        completed = 0
        for _ in range(40):  # visibility is eventually consistent
            query = 'WorkflowType="DailySync" AND ExecutionStatus="Completed"'
            completed = (await client.count_workflows(query)).count
            if completed >= expected:
                break
            await asyncio.sleep(0.5)
        return {"schedule": schedules, "completed": completed}

    return asyncio.run(look())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.temporal
def test_dev_demo_runs_stops_cleanly_and_restarts(tmp_path: Path) -> None:
    names = ("grpc", "ui", "http", "metrics", "smtp", "capture", "web", "insurer", "inbound")
    ports = {name: free_port() for name in names}
    env = {
        **os.environ,
        "COBRO_VAR_DIR": str(tmp_path / "var"),
        "COBRO_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['grpc']}",
        "COBRO_TEMPORAL_UI_PORT": str(ports["ui"]),
        "COBRO_TEMPORAL_HTTP_PORT": str(ports["http"]),
        "COBRO_TEMPORAL_METRICS_PORT": str(ports["metrics"]),
        "COBRO_SMTP_PORT": str(ports["smtp"]),
        "COBRO_CAPTURE_HTTP_PORT": str(ports["capture"]),
        "COBRO_WEB_PORT": str(ports["web"]),
        "COBRO_INBOUND_SMTP_PORT": str(ports["inbound"]),
        "COBRO_INSURER_BASE_URL": f"http://127.0.0.1:{ports['insurer']}",
    }
    for unset in ("COBRO_DATABASE_URL", "COBRO_TWILIO_BASE_URL", "COBRO_PUBLIC_BASE_URL"):
        env.pop(unset, None)  # the URLs follow the ports
    counts = []
    for run in (1, 2):
        proc, log = _start(tmp_path, env, run)
        try:
            output = _wait_until_running(proc, log)
            assert f"http://127.0.0.1:{ports['ui']}" in output
            assert "worker connected" in output
            ui = httpx.get(f"http://127.0.0.1:{ports['ui']}/", timeout=10)
            assert ui.status_code == 200
            temporal_api = f"http://127.0.0.1:{ports['http']}"
            assert temporal_api in output
            assert httpx.get(f"{temporal_api}/api/v1/namespaces", timeout=10).status_code == 200
            metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10)
            assert metrics.status_code == 200
            assert f"http://127.0.0.1:{ports['capture']}" in output  # the Twilio API follows
            assert f"smtp://127.0.0.1:{ports['inbound']}" in output  # replies and bounces
            assert "demo / cobro-demo-2026" in output, "the demo login is printed"
            with httpx.Client(base_url=f"http://127.0.0.1:{ports['web']}", timeout=30) as web:
                assert web.get("/").status_code == 303, "the dashboard needs a login"
                web.get("/login")
                web.post(
                    "/login",
                    data={
                        "username": "demo",
                        "password": "cobro-demo-2026",
                        "csrf_token": web.cookies["cobro_login_csrf"],
                    },
                )
                home = web.get("/")
                assert home.status_code == 200 and "Aging balance" in home.text
            inbox = httpx.get(f"http://127.0.0.1:{ports['capture']}/", timeout=10)
            assert inbox.status_code == 200
            assert "dunning: " in output and "workflows started or woken" in output
            if run == 2:  # nothing changed since the first start: no workflow signalled
                assert "dunning: 0 workflows started or woken" in output
            assert _dunning_workflows(f"127.0.0.1:{ports['grpc']}") > 0
            sync = _daily_sync(f"127.0.0.1:{ports['grpc']}", run)
            assert sync["schedule"] == ["cobro-daily-sync"]
            assert sync["completed"] == run, "one completed DailySync per start"
            assert f"insurer sync ({'full' if run == 1 else 'incremental'})" in output
            engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'cobro.db'}")
            with engine.connect() as conn:
                counts.append(
                    tuple(
                        conn.scalar(select(func.count()).select_from(model))
                        for model in (Customer, Invoice, Payment)
                    )
                )
                covered = conn.scalar(
                    select(func.count(func.distinct(InsurerCover.customer_id))).where(
                        InsurerCover.customer_id.is_not(None)
                    )
                )
                assert covered >= 200, "the demo customers are the simulated insurer's buyers"
                assert conn.scalar(select(func.count()).select_from(RiskAssessment)) > 0
                # one contact per customer, channel and send window: the demo (both starts fall
                # in one window) never sends a customer two emails or two SMS
                per_channel = conn.execute(
                    select(Communication.customer_id, Communication.channel, func.count())
                    .where(Communication.status != "skipped")
                    .group_by(Communication.customer_id, Communication.channel)
                    .having(func.count() > 1)
                ).all()
                assert per_channel == [], f"customers contacted twice on a channel: {per_channel}"
            engine.dispose()
        finally:
            if proc.poll() is None:
                children = _stop(proc)
        assert not [pid for pid in children if _alive(pid)], "children left behind"
    assert counts[0][0] >= 200 and counts[0][1] > counts[0][0] and counts[0][2] > 0
    assert counts[1] == counts[0], "a second start must reuse ./var/ without duplicating data"
