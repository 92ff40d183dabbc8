"""Benchmark of the daily insurer sync, end to end over HTTP.

The insurer simulator runs in a subprocess with N buyers (100k by default) and 90 % of them
are customers of a fresh database (each known by one identifier: buyer id, SIREN, VAT or
DUNS). One full sync (`cobro.insurers.sync_runner.run_sync`: the connector fetches each page
over loopback HTTP, validates it with pydantic, and `apply_cover_page` matches and bulk
upserts it with history, grade history and timeline events: the same code the DailySync
activities run) is timed in a fresh subprocess per database, which reports its own peak RSS
(VmHWM, not the parent's: see `peak_rss_mb`). On PostgreSQL the pages after the first are
fetched and applied by `--processes` forked processes (2 by default, one per core here; their
CPU is added to the sync's, their peak RSS is the largest one's); SQLite takes one writer.

Baseline, in the same run: a row-by-row ORM sync of a sample (5k covers) — for each cover
one query per identifier to find the customer, one query for the stored cover, an ORM
object added or updated with its history row and timeline event, flushed, one commit per
page — over the same HTTP pages. ratio = bulk records/s ÷ baseline records/s, on the
database where the bulk sync is slower.

    .venv/bin/python bench/sync_bench.py           # 100k buyers, SQLite and PostgreSQL
    .venv/bin/python bench/sync_bench.py --quick   # 5k buyers, under 30 s
    .venv/bin/python bench/sync_bench.py --covers 1000000 --db pg   # 1M buyers, PostgreSQL
    .venv/bin/python bench/sync_bench.py --covers 1000000 --db pg --own-pg   # on a server of
        # its own, configured as for production (cobro.devkit.own_postgres.PRODUCTION_LIKE)
    .venv/bin/python bench/sync_bench.py --db pg --processes 1   # one process (the GIL's pace)

Last line: BENCH sync records_per_s_sqlite=<n> records_per_s_pg=<n> wall_s_sqlite=<s>
wall_s_pg=<s> rss_mb=<max> baseline_records_per_s=<n> ratio=<x>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from databases import PG_SERVER, pg_database, sqlite_database  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import insert, or_, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from cobro.db import make_engine  # noqa: E402
from cobro.devkit.insurer.portfolio import GeneratedPortfolio  # noqa: E402
from cobro.devkit.insurer.server import InsurerSimulator  # noqa: E402
from cobro.devkit.own_postgres import PRODUCTION_LIKE, own_postgres  # noqa: E402
from cobro.insurers.allianz_trade import AllianzTradeConnector  # noqa: E402
from cobro.insurers.base import IdType  # noqa: E402
from cobro.insurers.matching import normalise, siren_in_vat, siren_of  # noqa: E402
from cobro.insurers.sync_runner import run_sync  # noqa: E402
from cobro.insurers.sync_store import cover_values  # noqa: E402
from cobro.models import CoverHistory, Customer, InsurerCover, TimelineEvent  # noqa: E402

SEED = 11
START = date(2026, 3, 2)
API_KEY = "bench-api-key"
PAGE_SIZE = 1000


# --- the simulator, in its own process ---------------------------------------------------


def serve_simulator(buyers: int, port_file: Path, start: date = START) -> None:
    async def main() -> None:
        async with InsurerSimulator(
            buyers=buyers, seed=SEED, start_date=start, api_key=API_KEY
        ) as sim:
            port_file.write_text(sim.base_url)
            await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def simulator(buyers: int, tmp: Path, start: date = START) -> Iterator[str]:
    """The simulator's base URL; its portfolio is generated as of `start` (also used by
    bench/morning_bench.py, with today's date)."""
    port_file = tmp / f"sim-{uuid.uuid4().hex[:6]}.url"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve-simulator",
            str(buyers),
            str(port_file),
            start.isoformat(),
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not port_file.exists() or not port_file.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.1)
        yield port_file.read_text()
    finally:
        proc.terminate()
        proc.wait(30)


# --- databases -----------------------------------------------------------------------------


def seed_customers(url: str, buyers: int) -> int:
    """90 % of the simulator's buyers as customers, each known by one identifier."""
    portfolio = GeneratedPortfolio.generate(buyers, SEED, START)
    rows: list[dict[str, Any]] = []
    for i, buyer in enumerate(portfolio.buyers):
        if i % 10 == 9:
            continue
        row: dict[str, Any] = {
            "account": f"B{i:07d}",
            "name": buyer.name,
            "country": buyer.country,
            "language": "fr",
            "timezone": "Europe/Paris",
        }
        way = i % 4
        if way == 0 or (way == 3 and not buyer.duns):
            row["insurer_buyer_id"] = buyer.company_id
        elif way == 1 and buyer.siren:
            row["siren"] = buyer.siren
        elif way == 3:
            row["duns"] = buyer.duns
        else:
            row["vat"] = buyer.vat
        rows.append(row)
    engine = make_engine(url)
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            keys = ("insurer_buyer_id", "siren", "vat", "duns")
            conn.execute(insert(Customer), [{**dict.fromkeys(keys), **r} for r in chunk])
    engine.dispose()
    return len(rows)


# --- one timed sync, in a fresh process (its peak RSS is the sync's) -----------------------


def connector(base_url: str) -> AllianzTradeConnector:
    return AllianzTradeConnector(base_url, SecretStr(API_KEY), timeout=120)


def timed_bulk_sync(url: str, base_url: str, processes: int = 1) -> dict[str, Any]:
    """The sync in this process (and, with `processes` > 1 on PostgreSQL, its forked
    children: their CPU is added, their peak RSS is the largest one's)."""
    engine = make_engine(url)

    async def main() -> dict[str, Any]:
        async with connector(base_url) as conn:
            return await run_sync(
                engine, conn, full=True, today=START, page_size=PAGE_SIZE, processes=processes
            )

    started, cpu = time.perf_counter(), time.process_time()
    summary = asyncio.run(main())
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu + children.ru_utime + children.ru_stime
    engine.dispose()
    return {
        "records": summary["fetched"],
        "wall": wall,
        "cpu": cpu,
        "rss_mb": max(peak_rss_mb(), children.ru_maxrss / 1024),
        "summary": summary,
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS: the kernel's high-water mark of its memory (VmHWM). Not
    `getrusage`'s ru_maxrss, which on Linux starts a spawned process at its parent's peak
    (the parent generating a 100k-buyer portfolio made a 110 MB sync report 230 MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_naive_sync(url: str, base_url: str, limit: int) -> dict[str, Any]:
    """Row by row through the ORM: what a straightforward implementation would do."""
    engine = make_engine(url)

    def find_customer(s: Session, company: Any) -> int | None:
        probes = [
            Customer.insurer_buyer_id == company.company_id,
        ]
        siren = siren_of(company.identifier(IdType.SIREN)) or siren_in_vat(
            company.identifier(IdType.VAT)
        )
        if siren:
            probes.append(Customer.siren == siren)
            probes.append(Customer.vat == normalise(company.identifier(IdType.VAT)))
        if company.identifier(IdType.VAT):
            probes.append(Customer.vat == normalise(company.identifier(IdType.VAT)))
        if company.identifier(IdType.DUNS):
            probes.append(Customer.duns == normalise(company.identifier(IdType.DUNS)))
        for probe in probes:  # one query per identifier, in order of trust
            found = s.scalars(select(Customer.id).where(or_(probe))).first()
            if found is not None:
                return found
        return None

    async def main() -> int:
        done = 0
        async with connector(base_url) as conn:
            number = 1
            while done < limit:
                page = await conn.get_cover_page(number, page_size=PAGE_SIZE)
                with Session(engine) as s, s.begin():
                    for cover in page.covers[: limit - done]:
                        values = cover_values(cover)
                        customer_id = find_customer(s, cover.company)
                        old = s.scalars(
                            select(InsurerCover).where(InsurerCover.cover_id == cover.cover_id)
                        ).first()
                        if old is None:
                            old = InsurerCover(
                                insurer="allianz_trade",
                                cover_id=cover.cover_id,
                                customer_id=customer_id,
                                match_method="bench",
                                raw=cover.wire(),
                                **values,
                            )
                            s.add(old)
                        else:
                            for key, value in values.items():
                                setattr(old, key, value)
                            old.raw = cover.wire()
                        s.flush()
                        s.add(
                            CoverHistory(
                                insurer_cover_id=old.id,
                                customer_id=customer_id,
                                kind="created",
                                new={"status": values["status"]},
                            )
                        )
                        if customer_id is not None:
                            s.add(
                                TimelineEvent(
                                    customer_id=customer_id,
                                    kind="cover.created",
                                    summary=f"cover {cover.cover_id}",
                                )
                            )
                        s.flush()
                        done += 1
                if number >= page.total_pages:
                    break
                number += 1
        return done

    started = time.perf_counter()
    records = asyncio.run(main())
    wall = time.perf_counter() - started
    engine.dispose()
    return {"records": records, "wall": wall}


def in_subprocess(mode: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, mode, *args],
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-simulator":
        start = date.fromisoformat(sys.argv[4]) if len(sys.argv) > 4 else START
        serve_simulator(int(sys.argv[2]), Path(sys.argv[3]), start)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--bulk":
        processes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
        print(json.dumps(timed_bulk_sync(sys.argv[2], sys.argv[3], processes), default=str))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--naive":
        print(json.dumps(timed_naive_sync(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (under 30 s)")
    parser.add_argument(
        "--covers",
        "--buyers",
        dest="buyers",
        type=int,
        help="buyers in the simulator, one cover each (default 100k)",
    )
    parser.add_argument("--sample", type=int, help="covers synced by the baseline (5k)")
    parser.add_argument("--db", choices=["both", "sqlite", "pg"], default="both")
    parser.add_argument(
        "--own-pg",
        action="store_true",
        help="PostgreSQL on a cluster of its own with production-like settings (shared "
        "buffers, WAL size, autovacuum) instead of the machine's server",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="processes fetching and applying pages on PostgreSQL (2: one per core here; "
        "SQLite takes one writer: always 1)",
    )
    args = parser.parse_args()
    buyers = args.buyers or (5_000 if args.quick else 100_000)
    sample = args.sample or (1_000 if args.quick else 5_000)

    results: dict[str, dict[str, Any]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        server = PG_SERVER
        if args.own_pg:
            cluster = stack.enter_context(own_postgres(PRODUCTION_LIKE))
            server = cluster.server
            print(f"PostgreSQL of its own on port {cluster.port}: {PRODUCTION_LIKE}")
        started = time.perf_counter()
        with simulator(buyers, tmp) as base_url:
            print(f"simulator: {buyers} buyers up in {time.perf_counter() - started:.1f} s")
            kinds = ["sqlite", "pg"] if args.db == "both" else [args.db]
            for kind in kinds:
                for run in ("bulk", "naive"):
                    database = sqlite_database(tmp) if kind == "sqlite" else pg_database(server)
                    with database as url:
                        customers = seed_customers(url, buyers)
                        if run == "bulk":
                            processes = args.processes if kind == "pg" else 1
                            r = in_subprocess("--bulk", url, base_url, str(processes))
                            results[kind] = r
                            print(
                                f"{kind}, {processes} process(es): full sync of "
                                f"{r['records']} covers "
                                f"({customers} customers) in {r['wall']:.2f} s = "
                                f"{r['records'] / r['wall']:,.0f} records/s, "
                                f"peak RSS {r['rss_mb']:.0f} MB, sync CPU "
                                f"{1e6 * r['cpu'] / r['records']:.0f} µs per cover; "
                                f"created {r['summary']['created']}, "
                                f"unmatched {r['summary']['unmatched']}"
                            )
                        else:
                            r = in_subprocess("--naive", url, base_url, str(sample))
                            baselines[kind] = r
                            print(
                                f"{kind}: row-by-row ORM baseline, {r['records']} covers in "
                                f"{r['wall']:.2f} s = {r['records'] / r['wall']:,.0f} records/s"
                            )

    speed = {k: r["records"] / r["wall"] for k, r in results.items()}
    slow = min(speed, key=lambda k: speed[k])
    base = baselines[slow]["records"] / baselines[slow]["wall"]
    ratio = speed[slow] / base
    rss = max(r["rss_mb"] for r in results.values())
    fields = [f"records_per_s_{k}={speed[k]:.0f}" for k in speed]
    fields += [f"wall_s_{k}={results[k]['wall']:.1f}" for k in results]
    fields += [f"rss_mb={rss:.0f}", f"baseline_records_per_s={base:.0f}", f"ratio={ratio:.1f}"]
    print("BENCH sync " + " ".join(fields))


if __name__ == "__main__":
    main()
