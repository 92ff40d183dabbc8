"""Kill tests for exactly-once email and SMS: three worker processes share one Temporal dev
server and one PostgreSQL; every few seconds a random one (of those polling for 8 s at
least, so a loaded machine still makes progress) is SIGKILLed and restarted,
while each customer gets a reminder by email and by SMS. The customers are told in four
waves 6 s apart once every worker polls, so the sends last long enough for the kills on a
fast machine as on a loaded one. Afterwards the capture servers
hold every Message-ID exactly once and every customer's SMS exactly once, none missing,
and nothing was claimed for a customer after it paid.

The second test runs the same on a PostgreSQL cluster of its own (initdb on a free port,
as a non-root user it creates) that it stops for 20 s in the middle of the sends.

The suite runs `COBRO_KILL_CONTACTS` customers (default 200: at 80, the sends got fast enough
to be done on an idle machine before the third kill); the acceptance figure is 1,000
(`COBRO_KILL_CONTACTS=1000`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from cobro.channels.email import message_id_for
from cobro.db import default_engine, transaction, upgrade
from cobro.devkit.capture_sms import SmsStore
from cobro.devkit.capture_smtp import MailStore
from cobro.devkit.own_postgres import OwnPostgres
from cobro.devkit.own_postgres import own_postgres as cluster_of_our_own
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.models import Communication, Customer, Invoice
from cobro.settings import get_settings
from tests.dunning.test_kill import _policy_for_now
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.serial]

CONTACTS = int(os.environ.get("COBRO_KILL_CONTACTS", "200"))
WORKERS = 3
KILL_EVERY = (2.0, 5.0)  # seconds between two SIGKILLs
MIN_UP_S = 8.0  # a worker is killed only once it has polled this long: it works, then dies
KILLS_ENOUGH = 12  # then the kills stop however far the sends got: a loaded machine must
# still finish (a worker killed every few seconds on it gets little done between kills)
WAVES, WAVE_GAP_S = 4, 6.0  # the customers are told in waves: the sends last >= 18 s on any
# machine, so the kills fall among sends however fast the machine is
OUTAGE_S = 20.0
ROOT = Path(__file__).resolve().parents[2]


def _email_and_sms_policy() -> tuple[str, str]:
    zone, policy = _policy_for_now()
    return zone, policy.replace(
        "channel: email, template: due", "channel: [email, sms], template: due"
    )


@dataclass
class Workers:
    """Worker subprocesses (`python worker.py`), killed by PID and restarted."""

    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    log_offsets: list[int] = field(default_factory=list)  # each log's size at its spawn
    ready_at: list[float | None] = field(default_factory=list)
    kills: int = 0

    def start(self, n: int) -> None:
        self.logs.mkdir(exist_ok=True)
        self.procs, self.log_offsets, self.ready_at = [], [], []
        for i in range(n):
            self.procs.append(None)  # type: ignore[arg-type]
            self.log_offsets.append(0)
            self.ready_at.append(None)
            self._spawn(i)

    def _log(self, i: int) -> Path:
        return self.logs / f"worker-{i}.log"

    def _spawn(self, i: int) -> None:
        log = self._log(i)
        self.log_offsets[i] = log.stat().st_size if log.exists() else 0
        self.ready_at[i] = None
        self.procs[i] = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
        )

    def _ready_for(self, i: int) -> float:
        """Seconds since worker i started polling (0 while it is still starting)."""
        if self.ready_at[i] is None:
            with self._log(i).open("rb") as fh:
                fh.seek(self.log_offsets[i])
                if b"worker polling task queue" in fh.read():
                    self.ready_at[i] = time.monotonic()
        ready = self.ready_at[i]
        return 0.0 if ready is None else time.monotonic() - ready

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a random worker among those polling for MIN_UP_S (a slow machine must
        not keep every worker restarting), then start it again. False: none eligible."""
        eligible = [
            i
            for i, proc in enumerate(self.procs)
            if proc.poll() is None and self._ready_for(i) >= MIN_UP_S
        ]
        if not eligible:
            return False
        i = rng.choice(eligible)
        os.kill(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait(10)
        self.kills += 1
        self._spawn(i)
        return True

    def all_ready(self) -> bool:
        return all(self._ready_for(i) > 0 for i in range(len(self.procs)))

    def restart_dead(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self._spawn(i)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:]
            for p in sorted(self.logs.glob("*.log"))
        )


CHILD_CAPTURE = """
import asyncio, json, sys
from pathlib import Path
from cobro.devkit.capture import CaptureServers

async def main():
    async with CaptureServers(storage_dir=Path(sys.argv[1]), account_sid=sys.argv[2],
                              auth_token=sys.argv[3]) as capture:
        print(json.dumps({"smtp_port": capture.smtp_port, "http_port": capture.http_port}),
              flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class CaptureProcess:
    """The real capture servers in a child process of their own (three workers and the
    dev server share the cores with them: in the test's own process they would only get
    what its event loop leaves); read through their stores, like `CaptureServers`."""

    def __init__(self, storage_dir: Path):
        self.storage_dir = storage_dir
        self.mail = MailStore(storage_dir / "mail")
        self.sms = SmsStore(storage_dir / "sms")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_CAPTURE,
                str(storage_dir),
                CAPTURE_ACCOUNT_SID,
                CAPTURE_AUTH_TOKEN,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ports = json.loads(self.proc.stdout.readline() or "{}")
        if not ports:
            self.proc.wait(10)
            pytest.fail("the capture servers did not start")
        self.smtp_port: int = ports["smtp_port"]
        self.base_url = f"http://127.0.0.1:{ports['http_port']}"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def capture_process(tmp_path: Path) -> Iterator[CaptureProcess]:
    capture = CaptureProcess(tmp_path / "capture")
    yield capture
    capture.stop()


def _customers(zone: str, prefix: str, contacts: int = CONTACTS) -> list[dict[str, str]]:
    """`prefix`: each test its own accounts, so its workflows are its own (the dev server
    is shared by the session, and the previous test's workflows still run there)."""
    return [
        {
            "account": f"{prefix}{i:05d}",
            "name": f"Kill test {i}",
            "country": "FR",
            "timezone": zone,
            "language": "en",
            "email": f"{prefix.lower()}{i:05d}@kill.example",
            "phone": f"+33612{i:06d}",
        }
        for i in range(contacts + paid_early(contacts))
    ]


def paid_early(contacts: int) -> int:
    """Customers who pay after the workflows started, without a signal."""
    return max(5, contacts // 50)


def _captured(capture: CaptureProcess) -> int:
    """Messages captured so far (files counted, not parsed: this runs twice a second)."""
    return sum(1 for _ in capture.mail.root.glob("*.json")) + sum(
        1 for _ in capture.sms.root.glob("SM*.json")
    )


def _sent_rows() -> int | None:
    try:
        with transaction() as s:
            return s.scalar(
                select(func.count())
                .select_from(Communication)
                .where(Communication.status == "sent")
            )
    except SQLAlchemyError:  # the database is stopped
        return None


async def run_kill_test(
    env: WorkflowEnvironment,
    capture: CaptureProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outage: Callable[[], Awaitable[None]] | None = None,
    prefix: str = "Q",
    contacts: int = CONTACTS,
    worker_env: dict[str, str] | None = None,
    min_kills: int = 3,
) -> dict[str, float]:
    """`worker_env`: what the worker processes' environment changes (e.g. the SMTP port of
    a relay in front of the capture server); `min_kills`: the worker SIGKILLs without which
    the run proves nothing (fewer where an outage is what the run is about)."""
    zone, policy = _email_and_sms_policy()
    point_settings_at(monkeypatch, capture, tmp_path, policy)
    customers = _customers(zone, prefix, contacts)
    accounts = [c["account"] for c in customers]
    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    import_rows(tmp_path, "customers", customers)
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
    unpaid, paid = accounts[:contacts], accounts[contacts:]
    workers = Workers(
        {
            **os.environ,
            "COBRO_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "COBRO_PUBLIC_BASE_URL": capture.base_url,  # status callbacks: nobody listens
            **(worker_env or {}),
        },
        tmp_path / "logs",
    )
    rng = random.Random(int(os.environ.get("COBRO_KILL_SEED", "14")))
    expected = 2 * contacts
    started = time.monotonic()
    stats: dict[str, float] = {}
    outage_task: asyncio.Task | None = None
    workers.start(WORKERS)
    try:
        client = pydantic_client(env)
        ready_by = time.monotonic() + 120
        while not workers.all_ready() and time.monotonic() < ready_by:
            await asyncio.sleep(0.2)
        change = FactsChanged("invoices_changed", "kill test")
        step = -(-len(unpaid) // WAVES)
        waves = [unpaid[i : i + step] for i in range(0, len(unpaid), step)]
        await notify(client, [*paid, *waves.pop(0)], change)
        paid_at = datetime.now(UTC)
        with transaction() as s:  # paid in the ERP; the workflows are not told
            s.execute(
                update(Invoice)
                .where(Invoice.number.in_([f"INV-{a}" for a in paid]))
                .values(open_amount=0)
            )
        deadline = time.monotonic() + 200 + contacts * 0.8
        next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
        next_wave = time.monotonic() + WAVE_GAP_S
        killing = True
        next_report = time.monotonic() + 30
        while time.monotonic() < deadline:
            outage_on = outage_task is not None and not outage_task.done()
            if waves and time.monotonic() >= next_wave and not outage_on:
                try:
                    await notify(client, waves[0], change)
                except RPCError:  # the server is not back yet: the same wave, a moment later
                    next_wave = time.monotonic() + 1
                else:
                    waves.pop(0)
                    next_wave = time.monotonic() + WAVE_GAP_S
            captured = _captured(capture)
            if outage is not None and outage_task is None and captured >= expected // 4:
                stats["outage_started_at_captured"] = captured
                outage_task = asyncio.create_task(outage())
            # kill until most of it went out (and through the outage), then let it finish
            outage_over = outage is None or (outage_task is not None and outage_task.done())
            if (
                killing
                and outage_over
                and workers.kills >= min_kills
                and ((not waves and captured >= expected * 0.8) or workers.kills >= KILLS_ENOUGH)
            ):
                killing = False
                stats["kills_stopped_at_captured"] = captured
            if killing and time.monotonic() >= next_kill:
                killed = workers.kill_one(rng)
                next_kill = time.monotonic() + (rng.uniform(*KILL_EVERY) if killed else 0.5)
            workers.restart_dead()
            if time.monotonic() >= next_report:
                print(
                    f"{time.monotonic() - started:5.0f} s: {captured} captured, "
                    f"{workers.kills} kills",
                    flush=True,
                )
                next_report = time.monotonic() + 30
            if captured >= expected and outage_over and _sent_rows() == expected:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # a late duplicate would land now
    finally:
        workers.stop()
        if outage_task is not None:
            await outage_task
    stats["seconds"] = time.monotonic() - started
    stats["kills"] = workers.kills

    with transaction() as s:
        rows = s.execute(
            select(
                Customer.account,
                Communication.channel,
                Communication.idempotency_key,
                Communication.status,
                Communication.created_at,
                Communication.attempts,
            ).join(Customer, Customer.id == Communication.customer_id)
        ).all()
    by_account: dict[str, list] = {}
    for account, *rest in rows:
        by_account.setdefault(account, []).append(rest)
    stats["took_over"] = sum(1 for r in rows if r.attempts > 1)
    emails = Counter(m.message_id for m in capture.mail.list())
    sms = Counter(m.message["to"] for m in capture.sms.list())
    stats["emails"], stats["sms"] = sum(emails.values()), sum(sms.values())
    twice = {k: n for k, n in (emails + sms).items() if n > 1}
    assert not twice, f"{len(twice)} captured more than once: {list(twice.items())[:5]}"
    print(f"kill test, {contacts} contacts: {stats}")
    not_sent = [(a, r) for a in unpaid for r in by_account.get(a, []) if r[2] != "sent"] + [
        (a, None) for a in unpaid if len(by_account.get(a, [])) != 2
    ]
    assert not not_sent, f"{len(not_sent)} not sent: {not_sent[:5]}\n{workers.tail()}"
    for a in paid:  # a claim after the payment would be a send after payment
        assert all(r[3] < paid_at for r in by_account.get(a, [])), a

    keys = {a: {r[0]: r[1] for r in by_account.get(a, [])} for a in accounts}
    expected_mail = {message_id_for(keys[a]["email"]) for a in unpaid}
    expected_sms = {c["phone"] for c in customers[:contacts]}
    before_payment_mail = {message_id_for(k["email"]) for a in paid if "email" in (k := keys[a])}
    before_payment_sms = {c["phone"] for c in customers[contacts:] if "sms" in keys[c["account"]]}
    assert expected_mail <= set(emails), f"{len(expected_mail - set(emails))} emails missing"
    assert expected_sms <= set(sms), f"{len(expected_sms - set(sms))} SMS missing"
    assert set(emails) <= expected_mail | before_payment_mail, "no unexpected email"
    assert set(sms) <= expected_sms | before_payment_sms, "no unexpected SMS"
    assert workers.kills >= min_kills, f"only {workers.kills} kills: the test proves nothing"
    return stats


async def test_email_and_sms_exactly_once_while_workers_are_killed(
    dev_server_env: WorkflowEnvironment,
    capture_process: CaptureProcess,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await run_kill_test(dev_server_env, capture_process, tmp_path, monkeypatch)


# ------------------------------------------------------- a PostgreSQL cluster of our own


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        with cluster_of_our_own({"fsync": "off"}) as cluster:
            upgrade(cluster.url)
            yield cluster
    except RuntimeError as exc:  # no PostgreSQL server binaries
        pytest.fail(str(exc))


async def test_exactly_once_with_postgresql_stopped_for_20_s(
    dev_server_env: WorkflowEnvironment,
    capture_process: CaptureProcess,
    own_postgres: OwnPostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COBRO_DATABASE_URL", own_postgres.url)
    get_settings.cache_clear()
    default_engine.cache_clear()
    stopped: list[float] = []

    async def outage() -> None:
        await asyncio.to_thread(own_postgres.stop)
        t = time.monotonic()
        await asyncio.sleep(OUTAGE_S)
        stopped.append(time.monotonic() - t)
        await asyncio.to_thread(own_postgres.start)

    try:
        stats = await run_kill_test(
            dev_server_env, capture_process, tmp_path, monkeypatch, outage=outage, prefix="P"
        )
    finally:
        default_engine().dispose()
        default_engine.cache_clear()
    assert stopped and stopped[0] >= OUTAGE_S
    assert stats["outage_started_at_captured"] < 2 * CONTACTS  # in the middle of the sends
