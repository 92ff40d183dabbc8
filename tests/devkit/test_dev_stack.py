"""`cobro dev --demo` end to end: real Temporal dev server + UI, worker, capture servers,
dashboard, demo data; Ctrl-C leaves no process behind; a second start reuses ./var/.
Payloads are encrypted from the first start (var/payload-keys, mode 0600): `temporal
workflow show` finds no customer's address, name or phone in a Dunning history, and
finds the account once given the dashboard's codec endpoint and an API token; the
Temporal UI in Debian's Chromium shows the decoded input to a logged-in dashboard user
(screenshot test-output/browser/temporal-ui-decoded.png)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from cobro.models import Communication, Customer, InsurerCover, Invoice, Payment, RiskAssessment
from cobro.temporal_support import dev_server_path
from tests.helpers import free_port

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"

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


def _payload_texts(history: dict) -> list[str]:
    """Every payload's data in a `temporal workflow show -o json` history, as text."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and "data" in node and isinstance(node["data"], str):
                found.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history)
    return found


def _workflow_show(address: str, *extra: str) -> dict:
    show = ["workflow", "show", "-w", "dunning-C00001", "--address", address, "-o", "json"]
    out = subprocess.run(
        [str(dev_server_path()), *show, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _check_encrypted_history(tmp_path: Path, env: dict[str, str], ports: dict[str, int]) -> None:
    """What ops see of a Dunning history: ciphertext, unless they bring the codec."""
    keys = tmp_path / "var" / "payload-keys"
    assert keys.stat().st_mode & 0o777 == 0o600
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'cobro.db'}")
    with engine.connect() as conn:
        customer = conn.execute(select(Customer).where(Customer.account == "C00001")).one()
    engine.dispose()
    address = f"127.0.0.1:{ports['grpc']}"
    plain = "\n".join(_payload_texts(_workflow_show(address)))
    for secret in (customer.email, customer.name, customer.phone, '"account"'):
        assert secret and secret not in plain, f"{secret!r} readable in the history"
    token = subprocess.run(
        [str(COBRO), "users", "token", "demo", "--name", "ops"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert token.returncode == 0, token.stderr
    codec = ["--codec-endpoint", f"http://127.0.0.1:{ports['web']}/codec"]
    decoded = _payload_texts(
        _workflow_show(address, *codec, "--codec-auth", f"Bearer {token.stdout.strip()}")
    )
    assert any('"account":"C00001"' in t.replace(" ", "") for t in decoded)


def _ui_shows_decoded_input(ports: dict[str, int]) -> None:
    """The Temporal UI, codec endpoint set by `cobro dev`, with the browser's setting to send
    its credentials (the dashboard's session cookie: same host, another port)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's chromium and chromium-driver are needed: make browsers")
    options = Options()
    options.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    web, ui = f"http://127.0.0.1:{ports['web']}", f"http://127.0.0.1:{ports['ui']}"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        wait = WebDriverWait(driver, 90)
        driver.get(f"{web}/login")
        driver.find_element(By.NAME, "username").send_keys("demo")
        driver.find_element(By.NAME, "password").send_keys("cobro-demo-2026")
        driver.find_element(By.CSS_SELECTOR, "form button").click()
        wait.until(lambda d: "/login" not in d.current_url)
        driver.get(f"{ui}/")
        driver.execute_script(  # the UI's own codec settings, as a user ticks them
            "localStorage.setItem('includeCredentials', 'true');"
            "localStorage.setItem('overrideRemoteCodecConfiguration', 'true');"
            "localStorage.setItem('endpoint', JSON.stringify(arguments[0]))",
            f"{web}/codec",
        )
        driver.get(f'{ui}/namespaces/default/workflows?query=WorkflowId%3D"dunning-C00001"')
        wait.until(lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "dunning-C00001"))
        driver.find_element(By.PARTIAL_LINK_TEXT, "dunning-C00001").click()
        wait.until(lambda d: '"account": "C00001"' in d.find_element(By.TAG_NAME, "body").text)
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "temporal-ui-decoded.png"))
    finally:
        driver.quit()


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
            assert "Payload encryption" in output and "/codec" in output
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
            if run == 1:
                _check_encrypted_history(tmp_path, env, ports)
                _ui_shows_decoded_input(ports)
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
