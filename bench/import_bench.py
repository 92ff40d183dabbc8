"""Benchmark of the ERP CSV import: bulk (`cobro.importing.import_csv`) vs naive ORM.

Generates deterministic (seeded) customers and invoices CSV files in a temp dir, imports
them with `import_csv` into a fresh SQLite file and into a fresh PostgreSQL database
created on the server (dropped afterwards), and prints rows/s for each. In the same run, a
naive import (one ORM object per row: query the natural key, `session.add`, `flush`, with
the same parsing and validation and the same timeline events) loads a 10k-row sample into
other fresh databases, and the ratio of the two speeds is printed.

    .venv/bin/python bench/import_bench.py           # 100k customers + 500k invoices
    .venv/bin/python bench/import_bench.py --quick   # a small version, under 30 s
    .venv/bin/python bench/import_bench.py --rows 1000000   # 1M invoices (200k customers)

Each bulk import runs in a child process of its own, which reports its peak resident memory
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`): the import streams, so this stays flat
whatever the file size (goal <= 300 MB).

The last line is: BENCH import rows_per_s_sqlite=<n> rows_per_s_pg=<n>
naive_rows_per_s=<n> peak_rss_mb=<n> ratio=<x>, where naive and ratio are for the database on
which the bulk import is slower and peak_rss_mb is the largest of any bulk import.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import phonenumbers
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from databases import pg_database, sqlite_database  # noqa: E402

from cobro.db import make_engine  # noqa: E402
from cobro.importing import normalise  # noqa: E402
from cobro.importing.reader import read_csv  # noqa: E402
from cobro.importing.schemas import (  # noqa: E402
    REQUIRED,
    CustomerRow,
    InvoiceRow,
    columns,
    validate_rows,
)
from cobro.models import Customer, Invoice, TimelineEvent  # noqa: E402
from cobro.types import utcnow  # noqa: E402

COUNTRIES = [  # code, currency, national mobile prefix, random digits
    ("FR", "EUR", "06", 8),
    ("DE", "EUR", "0151", 8),
    ("ES", "EUR", "6", 8),
    ("GB", "GBP", "07400", 6),
    ("US", "USD", "(201) 555-", 4),
]
INVOICES_PER_CUSTOMER = 5


def _mobile(rng: random.Random, code: str, prefix: str, digits: int) -> str:
    """A national mobile number that the import accepts (phonenumbers deems it valid)."""
    while True:
        candidate = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate, code)):
            return candidate


def generate(directory: Path, customers: int, seed: int = 7) -> tuple[Path, Path]:
    rng = random.Random(seed)
    cust_path, inv_path = directory / "customers.csv", directory / "invoices.csv"
    start = date(2025, 1, 1)
    with (
        cust_path.open("w", newline="", encoding="utf-8") as cf,
        inv_path.open("w", newline="", encoding="utf-8") as inf,
    ):
        cw, iw = csv.writer(cf), csv.writer(inf)
        cw.writerow(["account", "name", "country", "siren", "email", "phone", "segment"])
        iw.writerow(columns("invoices"))
        number = 0
        for i in range(customers):
            code, currency, prefix, digits = rng.choice(COUNTRIES)
            account = f"A{i:07d}"
            phone = _mobile(rng, code, prefix, digits)
            cw.writerow(
                [
                    account,
                    f"Customer {i} {code}",
                    code,
                    f"{rng.randrange(10**8, 10**9)}" if code == "FR" else "",
                    f"ap{i}@example.com",
                    phone,
                    rng.choice(["industry", "retail", "services", ""]),
                ]
            )
            for _ in range(INVOICES_PER_CUSTOMER):
                number += 1
                issued = start + timedelta(days=rng.randrange(365))
                amount = Decimal(rng.randrange(1_000, 5_000_000)) / 100
                paid = rng.random() < 0.3
                iw.writerow(
                    [
                        f"INV{number:08d}",
                        account,
                        issued.isoformat(),
                        (issued + timedelta(days=rng.choice([30, 45, 60]))).isoformat(),
                        currency,
                        str(amount),
                        "0" if paid else str(amount),
                        "true" if rng.random() < 0.03 else "false",
                    ]
                )
    return cust_path, inv_path


def sample(src: Path, dst: Path, rows: int) -> Path:
    with src.open(encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(rows + 1)]
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


CHILD = """
import json, resource, sys, time
from cobro.db import make_engine
from cobro.importing import import_csv
engine = make_engine(sys.argv[1])
started = time.perf_counter()
report = import_csv(sys.argv[2], sys.argv[3], engine)
seconds = time.perf_counter() - started
assert report.created == report.rows, report
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"rows": report.rows, "seconds": seconds, "peak_rss_mb": peak}))
"""


def import_in_child(url: str, kind: str, path: Path) -> dict[str, float]:
    """One import in a fresh interpreter: its time and its own peak RSS."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, kind, str(path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def bulk(url: str, customers: Path, invoices: Path, db: str) -> tuple[int, float, float]:
    """Rows, seconds and the largest peak RSS (MB) of the two imports."""
    rows, seconds, peak = 0, 0.0, 0.0
    for kind, path in (("customers", customers), ("invoices", invoices)):
        result = import_in_child(url, kind, path)
        print(
            f"bulk  {db:6} {kind:9} {int(result['rows'])} rows in {result['seconds']:.1f}s,"
            f" peak RSS {result['peak_rss_mb']:.0f} MB ({path.stat().st_size / 1e6:.0f} MB file)",
            flush=True,
        )
        rows += int(result["rows"])
        seconds += result["seconds"]
        peak = max(peak, result["peak_rss_mb"])
    return rows, seconds, peak


def naive(url: str, customers: Path, invoices: Path) -> tuple[int, float]:
    """One ORM object per row: query the natural key, add, flush; same checks and events."""
    engine: Engine = make_engine(url)
    started = time.perf_counter()
    rows = 0
    now = utcnow()
    try:
        with Session(engine) as session, session.begin():
            for row_model, path in ((CustomerRow, customers), (InvoiceRow, invoices)):
                kind = "customers" if row_model is CustomerRow else "invoices"
                csv_file, errors = read_csv(path, known=columns(kind), required=REQUIRED[kind])
                problems: list[tuple[int, str]] = []
                good = validate_rows(row_model, csv_file.rows, str(path), problems)
                assert not errors and not problems, (errors, problems[:3])
                for _, m in good:
                    rows += 1
                    if isinstance(m, CustomerRow):
                        found = session.scalar(
                            select(Customer).where(Customer.account == m.account)
                        )
                        if found is not None:
                            continue
                        customer = Customer(
                            account=m.account,
                            name=m.name,
                            country=m.country,
                            siren=m.siren,
                            email=m.email,
                            phone=m.phone,
                            segment=m.segment,
                            language=m.language or normalise.default_language(m.country),
                            timezone=m.timezone or normalise.default_timezone(m.country),
                        )
                        session.add(customer)
                        session.flush()
                        owner_id, kind_name, summary = customer.id, "customer.created", m.account
                    else:
                        found = session.scalar(select(Invoice).where(Invoice.number == m.number))
                        if found is not None:
                            continue
                        owner = session.scalar(
                            select(Customer).where(Customer.account == m.account)
                        )
                        assert owner is not None
                        invoice = Invoice(
                            number=m.number,
                            customer_id=owner.id,
                            issue_date=m.issue_date,
                            due_date=m.due_date,
                            currency=m.currency,
                            amount=m.amount,
                            open_amount=m.effective_open_amount,
                            disputed=m.disputed,
                        )
                        session.add(invoice)
                        owner_id, kind_name, summary = owner.id, "invoice.created", m.number
                    session.add(
                        TimelineEvent(
                            customer_id=owner_id,
                            at=now,
                            kind=kind_name,
                            actor="import",
                            summary=summary,
                            data={"source": path.name},
                        )
                    )
                    session.flush()
        return rows, time.perf_counter() - started
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (under 30 s)")
    parser.add_argument("--customers", type=int, help="customers to generate (default 100k)")
    parser.add_argument(
        "--rows", type=int, help=f"invoices to generate (customers: a {INVOICES_PER_CUSTOMER}th)"
    )
    args = parser.parse_args()
    customers = args.customers or (4_000 if args.quick else 100_000)
    if args.rows:
        customers = max(1, args.rows // INVOICES_PER_CUSTOMER)
    naive_rows = 2_000 if args.quick else 10_000
    naive_customers = naive_rows // (1 + INVOICES_PER_CUSTOMER)

    with tempfile.TemporaryDirectory(prefix="cobro-import-bench-") as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        cust, inv = generate(directory, customers)
        print(
            f"generated {customers} customers + {customers * INVOICES_PER_CUSTOMER} invoices"
            f" in {time.perf_counter() - t:.1f}s",
            flush=True,
        )
        cust_s = sample(cust, directory / "naive_customers.csv", naive_customers)
        inv_s = sample(
            inv, directory / "naive_invoices.csv", naive_customers * INVOICES_PER_CUSTOMER
        )

        speeds: dict[str, float] = {}
        naive_speeds: dict[str, float] = {}
        peaks: dict[str, float] = {}
        for db, database in (
            ("sqlite", lambda: sqlite_database(directory)),
            ("pg", pg_database),
        ):
            with database() as url:
                rows, seconds, peaks[db] = bulk(url, cust, inv, db)
            speeds[db] = rows / seconds
            print(
                f"bulk  {db:6} {rows} rows in {seconds:.1f}s = {speeds[db]:,.0f} rows/s", flush=True
            )
            with database() as url:
                rows, seconds = naive(url, cust_s, inv_s)
            naive_speeds[db] = rows / seconds
            print(
                f"naive {db:6} {rows} rows in {seconds:.1f}s = {naive_speeds[db]:,.0f} rows/s"
                f" -> ratio {speeds[db] / naive_speeds[db]:.1f}x",
                flush=True,
            )

    slower = min(speeds, key=lambda db: speeds[db])
    ratio = speeds[slower] / naive_speeds[slower]
    peak = max(peaks.values())
    print(f"ratio on the slower database ({slower}): {ratio:.1f}x (goal >= 10x)")
    print(f"peak RSS of an import: {peak:.0f} MB (goal <= 300 MB)")
    print(
        f"BENCH import rows_per_s_sqlite={speeds['sqlite']:.0f} rows_per_s_pg={speeds['pg']:.0f}"
        f" naive_rows_per_s={naive_speeds[slower]:.0f} peak_rss_mb={peak:.0f} ratio={ratio:.1f}"
    )


if __name__ == "__main__":
    main()
