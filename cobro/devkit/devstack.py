"""`cobro dev`: the whole embedded stack under `./var/`, stopped cleanly on Ctrl-C.

Children: the real Temporal dev server (a subprocess, its own process group), and, in this
process, the capture SMTP/SMS servers, the worker and the web pages. Everything is stopped
in reverse order; the Temporal server gets SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from cobro.settings import Settings
from cobro.temporal_support import dev_server_path, search_attribute_flags

if TYPE_CHECKING:
    from cobro.devkit.capture import CaptureServers
    from cobro.dunning.notify import NotifyReport

log = logging.getLogger("cobro.dev")


class StackError(RuntimeError):
    """A component could not start; the message says which and why."""


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"Temporal dev server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.2)
    raise StackError(f"Temporal dev server did not open {host}:{port} within {timeout:.0f}s")


@dataclass
class TemporalDevServer:
    """The `temporal server start-dev` child process, SQLite file under var/. `cobro dev`
    sets every port from the settings (gRPC, UI, HTTP API, /metrics); a port left None is
    one Temporal picks at random (tests that do not reach it)."""

    var_dir: Path
    address: str
    ui_port: int
    http_port: int | None = None
    metrics_port: int | None = None
    codec_endpoint: str | None = None  # the UI decodes payloads there (the dashboard's /codec)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def ports(self) -> list[int]:
        _, port = host_port(self.address)
        extra = (self.http_port, self.metrics_port)
        return [port, self.ui_port, *(p for p in extra if p is not None)]

    def command(self) -> list[str]:
        host, port = host_port(self.address)
        return [
            str(dev_server_path()),
            "server",
            "start-dev",
            "--db-filename",
            str(self.var_dir / "temporal.db"),
            "--ip",
            host,
            "--port",
            str(port),
            "--ui-port",
            str(self.ui_port),
            *(["--http-port", str(self.http_port)] if self.http_port is not None else []),
            *(["--metrics-port", str(self.metrics_port)] if self.metrics_port is not None else []),
            *(["--ui-codec-endpoint", self.codec_endpoint] if self.codec_endpoint else []),
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
            "--sqlite-pragma",
            "journal_mode=WAL",
            "--sqlite-pragma",
            "synchronous=NORMAL",
            *search_attribute_flags(),
        ]

    def start(self, timeout: float = 60) -> None:
        host, port = host_port(self.address)
        for p in self.ports:
            if not port_is_free(host, p):
                raise StackError(f"port {host}:{p} is already in use (another `cobro dev`?)")
        logs = self.var_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "temporal.log").open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
            )
        wait_for_port(host, port, timeout, self.process)

    def stop(self, grace: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class StackUrls:
    temporal_ui: str
    temporal_grpc: str
    web: str
    inbox: str
    smtp: str
    twilio_api: str
    insurer: str = ""
    inbound_smtp: str = ""
    temporal_http: str = ""
    temporal_metrics: str = ""
    encryption: str = ""  # where the payload keys are, and who decodes for the UI
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # user, password, role

    def lines(self) -> list[tuple[str, str]]:
        return [
            ("Dashboard", self.web),
            ("Temporal UI", self.temporal_ui),
            ("Temporal gRPC", self.temporal_grpc),
            *([("Temporal HTTP API", self.temporal_http)] if self.temporal_http else []),
            *([("Temporal metrics", self.temporal_metrics)] if self.temporal_metrics else []),
            ("Captured email + SMS", self.inbox),
            ("SMTP (capture)", self.smtp),
            ("Twilio API (capture)", self.twilio_api),
            *([("Replies + bounces (SMTP)", self.inbound_smtp)] if self.inbound_smtp else []),
            *([("Insurer API (simulator)", self.insurer)] if self.insurer else []),
            *([("Payload encryption", self.encryption)] if self.encryption else []),
            *[(f"Dashboard login ({role})", f"{user} / {pw}") for user, pw, role in self.logins],
        ]


async def wait_for_temporal(settings: Settings, timeout: float = 60) -> None:
    from cobro.temporal_client import connect

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await connect(settings)
            await client.service_client.check_health()
            return
        except Exception as exc:  # server still booting
            last = exc
            await asyncio.sleep(0.5)
    raise StackError(f"Temporal at {settings.temporal_address} not ready: {last}")


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, demo: bool) -> AsyncIterator[StackUrls]:
    """Start everything, yield the URLs, stop everything in reverse order."""
    from cobro.db import make_engine, upgrade
    from cobro.devkit.capture import CaptureServers
    from cobro.replies.inbound_smtp import InboundSmtpServer
    from cobro.temporal_codec import codec, ensure_dev_keys
    from cobro.web.app import serve_web
    from worker import run_worker

    var_dir = settings.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    host, _ = host_port(settings.temporal_address)
    keys = ensure_dev_keys(settings)  # histories encrypted from the first start, as in production
    encrypted = codec(settings) is not None
    temporal = TemporalDevServer(
        var_dir,
        settings.temporal_address,
        settings.temporal_ui_port,
        settings.temporal_http_port,
        settings.temporal_metrics_port,
        codec_endpoint=f"{web_url(settings)}/codec" if encrypted else None,
    )
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    logins: list[tuple[str, str, str]] = []
    try:
        await asyncio.to_thread(upgrade, settings.resolved_database_url)
        if demo:
            from cobro.devkit.demo import load_demo

            reports = await asyncio.to_thread(
                load_demo, var_dir / "demo", None, settings.insurer_simulator_seed
            )
            for report in reports.values():
                log.info("demo data: %s", report.summary())
            logins = await asyncio.to_thread(demo_logins, settings)
        await asyncio.to_thread(temporal.start)
        await wait_for_temporal(settings)
        inbound_host = "127.0.0.1"  # `cobro dev`: loopback only
        inbound = InboundSmtpServer(
            make_engine(settings.resolved_database_url), settings, host=inbound_host
        )
        async with (
            inbound,
            CaptureServers(
                storage_dir=var_dir / "capture",
                smtp_port=settings.smtp_port,
                http_port=settings.capture_http_port,
                incoming_url=settings.public_base_url.rstrip("/") + "/webhooks/twilio/incoming",
                inbound_smtp=(inbound_host, inbound.port or settings.inbound_smtp_port),
            ) as capture,
            insurer_simulator(settings, var_dir) as insurer,
        ):
            tasks.append(asyncio.create_task(run_worker(settings, stop), name="worker"))
            tasks.append(asyncio.create_task(serve_web(settings, stop), name="web"))
            await _system_check(settings)
            await _apply_sync_schedule(settings)
            if demo:
                await _first_sync(settings)
            await _wake_dunning(settings)
            if demo:
                await _demo_customers_act(settings, capture)
            yield StackUrls(
                temporal_ui=f"http://{host}:{settings.temporal_ui_port}",
                temporal_grpc=settings.temporal_address,
                temporal_http=f"http://{host}:{settings.temporal_http_port}",
                temporal_metrics=f"http://{host}:{settings.temporal_metrics_port}/metrics",
                web=web_url(settings),
                inbox=capture.base_url,
                smtp=f"smtp://127.0.0.1:{capture.smtp_port}",
                twilio_api=capture.base_url,
                insurer=insurer,
                encryption=(
                    f"on, keys {keys or 'COBRO_PAYLOAD_KEYS'}; the UI decodes at "
                    f"{web_url(settings)}/codec once you are logged in to the dashboard"
                    if encrypted
                    else "off"
                ),
                inbound_smtp=f"smtp://{inbound_host}:{inbound.port}",
                logins=logins,
            )
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop.set()
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(temporal.stop)


def web_url(settings: Settings) -> str:
    """The dashboard as a browser on this machine reaches it."""
    host = "127.0.0.1" if settings.web_host in ("", "0.0.0.0", "::") else settings.web_host
    return f"http://{host}:{settings.web_port}"


DEMO_LOGINS = [
    ("demo", "cobro-demo-2026", "admin"),
    ("collector", "cobro-collector-2026", "collector"),
    ("viewer", "cobro-viewer-2026", "viewer"),
]
DEMO_OWNED = 60  # the demo collector owns the first customers: "my customers", "my tasks"


def demo_logins(settings: Settings) -> list[tuple[str, str, str]]:
    """The demo's dashboard users (an admin, a collector and a viewer), created once, and
    the collector's customers (set once, by the same action as the customer file's). Demo
    only: their passwords are printed and published in the README."""
    from sqlalchemy import select

    from cobro.db import make_engine
    from cobro.models import Customer
    from cobro.queues.actions import set_owner
    from cobro.users import UserError, create_user

    engine = make_engine(settings.resolved_database_url)
    try:
        for user, password, role in DEMO_LOGINS:
            with contextlib.suppress(UserError):  # already there (second start)
                create_user(engine, user, password, role, f"Demo {role}")
        with engine.connect() as conn:
            owned = conn.scalar(select(Customer.id).where(Customer.owner.is_not(None)).limit(1))
            accounts = conn.scalars(
                select(Customer.account).order_by(Customer.account).limit(DEMO_OWNED)
            ).all()
        if owned is None:  # a first start (an owner changed since is left alone)
            for account in accounts:
                set_owner(engine, account, "collector", "demo")
    finally:
        engine.dispose()
    return list(DEMO_LOGINS)


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


@contextlib.asynccontextmanager
async def insurer_simulator(settings: Settings, var_dir: Path) -> AsyncIterator[str]:
    """The Allianz-Trade-style simulator on COBRO_INSURER_BASE_URL when that is a loopback
    address (the default); a real insurer URL is used as is. Its buyers are the demo's."""
    from urllib.parse import urlsplit

    from cobro.devkit.insurer.server import InsurerSimulator

    if not _is_loopback(settings.insurer_base_url):
        yield ""
        return
    parts = urlsplit(settings.insurer_base_url)
    anchor = var_dir / "demo" / "anchor.txt"
    start = date.fromisoformat(anchor.read_text().strip()) if anchor.exists() else date.today()
    simulator = InsurerSimulator(
        buyers=300,
        seed=settings.insurer_simulator_seed,
        api_key=settings.insurer_api_key.get_secret_value(),
        start_date=start,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
    )
    try:
        await simulator.start()
    except OSError as exc:
        url = settings.insurer_base_url
        raise StackError(f"insurer simulator cannot listen on {url}: {exc}") from exc
    try:
        days = (date.today() - start).days
        for _ in range(max(0, days)):  # the book moved on since the demo was generated
            simulator.advance_day()
        yield simulator.base_url
    finally:
        await simulator.stop()


async def _apply_sync_schedule(settings: Settings) -> None:
    from cobro.sync_schedule import apply_schedule
    from cobro.temporal_client import connect

    info = await apply_schedule(await connect(settings), settings)
    log.info("daily insurer sync: %s (schedule %s)", info.spec, info.schedule_id)


async def _first_sync(settings: Settings, timeout: float = 180) -> None:
    """One DailySync now (full the first time, then incremental), waited for, so the demo
    opens with covers, grades and risk classes; visible in the Temporal UI."""
    from cobro.temporal_client import connect
    from workflows.daily_sync import DailySync, DailySyncInput

    client = await connect(settings)
    result = await asyncio.wait_for(
        client.execute_workflow(
            DailySync.run,
            DailySyncInput(),
            id=f"daily-sync-dev-{int(time.time())}",
            task_queue=settings.temporal_sync_queue,
        ),
        timeout,
    )
    log.info(
        "insurer sync (%s): %s; %d customers classified",
        result.kind,
        ", ".join(f"{k} {v}" for k, v in result.summary.items() if isinstance(v, int)),
        result.classified,
    )


async def _wake_dunning(settings: Settings) -> NotifyReport:
    """Start the missing dunning workflows of customers with open invoices and wake those
    whose facts changed since their last signal (a restart with nothing new signals none)."""
    from cobro.db import make_engine
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged
    from cobro.temporal_client import connect

    engine = make_engine(settings.resolved_database_url)
    try:
        client = await connect(settings)
        change = FactsChanged("invoices_changed", "cobro dev")
        report = await notify_changed(client, engine, change, settings=settings)
    finally:
        engine.dispose()
    log.info(
        "dunning: %d workflows started or woken, %d unchanged (find them in the Temporal UI)",
        report.signalled,
        report.unchanged,
    )
    return report


async def _demo_customers_act(settings: Settings, capture: CaptureServers) -> None:
    import httpx

    from cobro.db import default_engine
    from cobro.devkit.demo_customers import customers_act

    try:
        await customers_act(default_engine(), web_url(settings), capture)
    except (httpx.HTTPError, AssertionError) as exc:  # the demo runs without them
        log.warning("demo customers could not act: %s", exc)


async def _system_check(settings: Settings, timeout: float = 60) -> None:
    """Prove the worker is connected: run SystemCheck end to end."""
    from cobro.temporal_client import connect
    from workflows.system_check import SystemCheck

    client = await connect(settings)
    report = await asyncio.wait_for(
        client.execute_workflow(
            SystemCheck.run,
            id=f"system-check-{int(time.time())}",
            task_queue=settings.temporal_sync_queue,
        ),
        timeout,
    )
    log.info(
        "worker connected: %s database, %d customers, %d open invoices",
        report.dialect,
        report.customers,
        report.open_invoices,
    )
