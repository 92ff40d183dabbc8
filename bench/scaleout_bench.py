"""Scale-out benchmark: reminders per second with 1, 2 and 3 worker processes, in one run.

The real stack: a Temporal dev server (SQLite file, WAL), PostgreSQL (a fresh database on
the local server), the capture SMTP server in a child process and `python worker.py`
processes. Each round imports M new customers with one overdue invoice each, starts k
workers, waits until every one of them polls, then signals the M dunning workflows
(`cobro.dunning.notify`) and times until the M emails are confirmed `sent` (every
Message-ID captured exactly once). The workers are stopped (SIGTERM, drained) between
rounds. ratio = rate with 3 workers / rate with 1: how Cobro scales out on this machine
(on 2 cores the workers share the cores with the server, PostgreSQL and the relay: it may
not).

    .venv/bin/python bench/scaleout_bench.py --quick   # M=150 per round: about a minute
    .venv/bin/python bench/scaleout_bench.py           # M=1,000 per round

The LAST line is machine-readable:

    BENCH scaleout sends_per_s_1=<a> sends_per_s_2=<b> sends_per_s_3=<c> ratio=<c/a>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import pg_database  # noqa: E402
from dunning_bench import (  # noqa: E402
    _policy_for_now,
    _write_csv,
    start_capture_process,
    stop_capture_process,
)


def import_round(workdir: Path, accounts: list[str], zone: str) -> None:
    from cobro.importing import import_csv

    due = (datetime.now(ZoneInfo(zone)) - timedelta(days=2)).date()
    tag = accounts[0]
    customers = [
        {
            "account": a,
            "name": f"Scale-out customer {a}",
            "country": "FR",
            "timezone": zone,
            "language": "fr",
            "email": f"{a.lower()}@scaleout.example",
        }
        for a in accounts
    ]
    invoices = [
        {
            "number": f"INV-{a}",
            "account": a,
            "issue_date": (due - timedelta(days=30)).isoformat(),
            "due_date": due.isoformat(),
            "currency": "EUR",
            "amount": f"{500 + i % 900}.00",
        }
        for i, a in enumerate(accounts)
    ]
    import_csv("customers", _write_csv(workdir / f"customers-{tag}.csv", customers))
    import_csv("invoices", _write_csv(workdir / f"invoices-{tag}.csv", invoices))


def sent_count(prefix: str) -> int:
    from sqlalchemy import func, select

    from cobro.db import transaction
    from cobro.models import Communication

    with transaction() as s:
        return s.scalar(
            select(func.count())
            .select_from(Communication)
            .where(
                Communication.status == "sent",
                Communication.idempotency_key.like(f"dunning:{prefix}%"),
            )
        )


def start_workers(k: int, env: dict[str, str], logs: Path) -> list[tuple[subprocess.Popen, Path]]:
    out = []
    for i in range(k):
        log = logs / f"worker-{env['COBRO_TEMPORAL_TASK_QUEUE']}-{i}.log"
        proc = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        out.append((proc, log))
    return out


def wait_polling(workers: list[tuple[subprocess.Popen, Path]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in workers:
            if proc.poll() is not None:
                raise SystemExit(f"a worker exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        if all(b"worker polling task queue" in log.read_bytes() for _, log in workers):
            return
        time.sleep(0.2)
    raise SystemExit("the workers did not start polling")


def stop_workers(workers: list[tuple[subprocess.Popen, Path]]) -> None:
    for proc, _ in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in workers:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def run(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from cobro.channels.email import message_id_for
    from cobro.db import default_engine
    from cobro.devkit.capture_smtp import MailStore
    from cobro.dunning.notify import notify
    from cobro.dunning.signals import FactsChanged
    from cobro.settings import get_settings
    from cobro.temporal_support import SEARCH_ATTRIBUTES, dev_server_path

    m = args.sends or (150 if args.quick else 1000)
    counts = (1, 2, 3)
    with tempfile.TemporaryDirectory(prefix="cobro-scaleout-") as tmp, pg_database() as url:
        workdir = Path(tmp)
        zone, policy = _policy_for_now()
        rules = workdir / "rules"
        rules.mkdir()
        for shipped in ("risk_classes.yaml", "alerts.yaml"):
            shutil.copy(ROOT / "rules" / shipped, rules / shipped)
        (rules / "dunning.yaml").write_text(policy)
        capture, smtp_port = start_capture_process(workdir / "capture")
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(dev_server_path()),
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_database_filename=str(workdir / "temporal.db"),
            dev_server_extra_args=["--sqlite-pragma", "journal_mode=WAL"],
            dev_server_log_level="never",  # a stopped worker's cancelled polls are not news
        )
        try:
            os.environ.update(
                COBRO_DATABASE_URL=url,
                COBRO_SMTP_PORT=str(smtp_port),
                COBRO_SMTP_LOOKUP="",
                COBRO_RULES_DIR=str(rules),
                COBRO_TEMPLATES_DIR=str(ROOT / "templates"),
                COBRO_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
            )
            get_settings.cache_clear()
            default_engine.cache_clear()
            config = env.client.config()
            config["data_converter"] = pydantic_data_converter
            client = Client(**config)
            rates: dict[int, float] = {}
            expected: set[str] = set()
            for k in counts:
                prefix = f"R{k}X"
                accounts = [f"{prefix}{i:05d}" for i in range(m)]
                import_round(workdir, accounts, zone)
                queue = f"scaleout-{k}-{uuid.uuid4().hex[:6]}"
                worker_env = {**os.environ, "COBRO_TEMPORAL_TASK_QUEUE": queue}
                os.environ["COBRO_TEMPORAL_TASK_QUEUE"] = queue
                get_settings.cache_clear()
                workers = start_workers(k, worker_env, workdir)
                try:
                    await asyncio.to_thread(wait_polling, workers)
                    t = time.perf_counter()
                    await notify(client, accounts, FactsChanged("invoices_changed", "bench"))
                    deadline = time.monotonic() + 60 + m
                    while sent_count(prefix) < m:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{k} worker(s): {sent_count(prefix)}/{m} sent")
                        await asyncio.sleep(0.2)
                    elapsed = time.perf_counter() - t
                finally:
                    await asyncio.to_thread(stop_workers, workers)
                rates[k] = m / elapsed
                print(
                    f"{k} worker process(es): {m} reminders in {elapsed:.1f} s ({rates[k]:.1f}/s)",
                    flush=True,
                )
                from sqlalchemy import select

                from cobro.db import transaction
                from cobro.models import Communication

                with transaction() as s:
                    keys = s.scalars(
                        select(Communication.idempotency_key).where(
                            Communication.idempotency_key.like(f"dunning:{prefix}%")
                        )
                    ).all()
                expected |= {message_id_for(key) for key in keys}
            captured = Counter(s.message_id for s in MailStore(workdir / "capture" / "mail").list())
            twice = [mid for mid, n in captured.items() if n != 1]
            if twice or set(captured) != expected:
                raise SystemExit(
                    f"capture check failed: {len(twice)} duplicated, "
                    f"{len(expected - set(captured))} missing"
                )
            print(f"captured {sum(captured.values())} emails, each Message-ID exactly once")
        finally:
            await env.shutdown()
            stop_capture_process(capture)
            default_engine().dispose()
    ratio = rates[3] / rates[1]
    print(
        f"BENCH scaleout sends_per_s_1={rates[1]:.1f} sends_per_s_2={rates[2]:.1f} "
        f"sends_per_s_3={rates[3]:.1f} ratio={ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 reminders per round")
    parser.add_argument("--sends", type=int, default=None, help="reminders per round")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
