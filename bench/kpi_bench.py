"""Benchmark of `cobro.kpis.compute_kpis` and of the dashboard's DSO trend
(`cobro.kpi_trend.dso_trend`) on PostgreSQL: N generated invoices (1 % of them credit
notes, with their payments, allocations, customers — N / 20 — and covers, bulk-loaded with
COPY into a fresh database dropped afterwards). The KPIs computed in SQL vs the same KPIs
computed in Python over the fetched rows (fetch included), in the same run; the trend vs
the full KPIs computed at each of its 12 points; both pairs must be identical.

    .venv/bin/python bench/kpi_bench.py [--quick] [--n N] [--pg postgresql://...]
    .venv/bin/python bench/kpi_bench.py --n 2000000      # the dashboard's size: 100k customers
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobro.db import make_engine, upgrade  # noqa: E402
from cobro.exposure.book import ExposureBook, portfolio_exposures  # noqa: E402
from cobro.kpi_trend import dso_trend  # noqa: E402
from cobro.kpis import (  # noqa: E402
    DEFAULT_BUCKETS,
    EXPIRING_DAYS,
    TOP_DEBTORS,
    ZERO,
    Kpis,
    assemble,
    bucket_labels,
    compute_kpis,
    countback_months,
)
from cobro.rules.facts_sql import ACTIVE_STATUSES  # noqa: E402

DATA_END = date(2026, 12, 31)
AS_OF = date(2026, 11, 30)  # a month before the last payment: the as-of rebuild is exercised
TREND_AS_OF = date(2026, 12, 15)  # mid-month, as the dashboard's "today" mostly is
PERIOD = 90


# ---------------------------------------------------------------- data
def load(dsn: str, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    n_customers = max(10, n // 20)
    now = datetime.now(UTC)
    currencies = {}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY customers (id, account, name, country, language, timezone, opt_out_email,"
            " opt_out_sms, discretionary_limit, discretionary_limit_currency, created_at,"
            " updated_at) FROM STDIN"
        ) as cp:
            for cid in range(1, n_customers + 1):
                currencies[cid] = rng.choices(["EUR", "USD", "GBP"], [90, 7, 3])[0]
                own = Decimal(rng.randrange(0, 40) * 1000) if rng.random() < 0.5 else None
                cp.write_row(
                    (cid, f"C{cid:07d}", f"Customer {cid}", "FR", "fr", "Europe/Paris", False,
                     False, own, currencies[cid] if own is not None else None, now, now)
                )  # fmt: skip
        with cur.copy(
            "COPY insurer_covers (id, insurer, policy_id, cover_id, customer_id, cover_type,"
            " nominative, granted_amount, currency, status, valid_until, created_at,"
            " updated_at) FROM STDIN"
        ) as cp:
            cover_id = 0
            for cid in range(1, n_customers + 1):
                if rng.random() < 0.6:
                    cover_id += 1
                    status = rng.choices(["granted", "partially_granted", "refused"], [80, 15, 5])
                    until = rng.choice([None, AS_OF + timedelta(days=rng.randrange(-200, 400))])
                    cp.write_row(
                        (cover_id, "allianz_trade", "P1", f"CV{cover_id}", cid, "permanent", True,
                         Decimal(rng.randrange(5, 200) * 1000), currencies[cid], status[0],
                         until, now, now)
                    )  # fmt: skip
        payments: list[tuple[Any, ...]] = []
        with cur.copy(
            "COPY invoices (id, number, customer_id, issue_date, due_date, currency, amount,"
            " open_amount, disputed, created_at, updated_at) FROM STDIN"
        ) as cp:
            for iid in range(1, n + 1):
                cid = rng.randrange(1, n_customers + 1)
                issued = DATA_END - timedelta(days=rng.randrange(0, 3 * 365))
                due = issued + timedelta(days=rng.choice([30, 45, 60]))
                amount = Decimal(rng.randrange(10_000, 5_000_000)) / 100
                open_ = amount
                if rng.random() < 0.01:  # a credit note: open, partly used or used up
                    amount = -(amount / 10).quantize(Decimal("0.01"))
                    due = issued
                    open_ = rng.choice([amount, (amount / 2).quantize(Decimal("0.01")), ZERO])
                elif rng.random() < 0.97:
                    paid_on = due + timedelta(days=rng.randrange(-20, 60))
                    if paid_on <= DATA_END:
                        part = amount if rng.random() < 0.95 else (amount / 2).quantize(ZERO)
                        open_ = amount - part
                        payments.append((iid, cid, paid_on, part, issued, due))
                cp.write_row(
                    (iid, f"I{iid:08d}", cid, issued, due, currencies[cid], amount, open_,
                     False, now, now)
                )  # fmt: skip
        with cur.copy(
            "COPY payments (id, reference, customer_id, date, currency, amount,"
            " unallocated_amount, created_at, updated_at) FROM STDIN"
        ) as cp:
            for pid, (_iid, cid, on, part, _issued, _due) in enumerate(payments, 1):
                cp.write_row((pid, f"P{pid:08d}", cid, on, currencies[cid], part, ZERO, now, now))
        with cur.copy(
            "COPY payment_allocations (id, payment_id, invoice_id, amount, created_at,"
            " payment_date, customer_id, currency, issue_date, due_date) FROM STDIN"
        ) as cp:
            for pid, (iid, cid, on, part, issued, due) in enumerate(payments, 1):
                cp.write_row((pid, pid, iid, part, now, on, cid, currencies[cid], issued, due))
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------- baseline: Python over rows
def python_kpis(dsn: str, as_of: date, exposures: ExposureBook) -> Kpis:
    """The same KPIs from the raw rows, folded in Python (rows fetched with psycopg)."""
    buckets = DEFAULT_BUCKETS
    labels = bucket_labels(buckets)
    start = as_of - timedelta(days=PERIOD)
    months = countback_months(as_of)
    with psycopg.connect(dsn) as conn:
        after_start: dict[int, Decimal] = defaultdict(Decimal)
        after_end: dict[int, Decimal] = defaultdict(Decimal)
        for iid, on, amount in conn.execute(
            "SELECT a.invoice_id, p.date, a.amount FROM payment_allocations a"
            " JOIN payments p ON p.id = a.payment_id"
        ):
            if on > start:
                after_start[iid] += amount
            if on > as_of:
                after_end[iid] += amount
        customers = {
            cid: (account, name, own, own_cur)
            for cid, account, name, own, own_cur in conn.execute(
                "SELECT id, account, name, discretionary_limit, discretionary_limit_currency"
                " FROM customers"
            )
        }
        cover_rows_raw = conn.execute(
            "SELECT customer_id, currency, lower(status), granted_amount, valid_from, valid_until"
            " FROM insurer_covers"
        ).fetchall()
        invoices = conn.execute(
            "SELECT id, customer_id, currency, issue_date, due_date, amount, open_amount"
            " FROM invoices"
        ).fetchall()

    main: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, ZERO, ZERO, ZERO, ZERO, ZERO])
    per_customer: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    age_bounds = [as_of - timedelta(days=b) for b in buckets]
    for iid, cid, cur, issued, due, amount, open_amount in invoices:
        if issued > as_of:
            continue
        open_end = open_amount + after_end.get(iid, ZERO)
        open_start = open_amount + after_start.get(iid, ZERO)
        age = None
        if open_end != 0:
            age = 0 if due >= as_of else len(buckets) + 1
            if due < as_of:
                for i, bound in enumerate(age_bounds):
                    if due >= bound:
                        age = i + 1
                        break
        if open_end > 0:  # the debtors: invoices (credit notes are netted in receivables)
            pc = per_customer[cid, cur]
            pc[0] += open_end
            if due < as_of:
                pc[1] += open_end
        month = next((k for k, (first, _) in enumerate(months) if issued >= first), None)
        acc = main[cur, age, month]
        if open_end > 0:
            acc[0] += 1
        if open_end != 0:
            acc[1] += open_end
        if open_end < 0:
            acc[2] += open_end
        if issued > start:
            acc[3] += amount
        acc[4] += amount
        if issued <= start and open_start != 0:
            acc[5] += open_start
    main_rows = [(*key, *vals) for key, vals in main.items()]

    def in_force(status: str, valid_from: date | None, valid_until: date | None) -> bool:
        return (
            status in ACTIVE_STATUSES
            and (valid_from is None or valid_from <= as_of)
            and (valid_until is None or valid_until >= as_of)
        )

    granted: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for cid, cur, status, amount, vf, vu in cover_rows_raw:
        if cid is not None and in_force(status, vf, vu):
            granted[cid, cur] += amount or ZERO
    by_currency: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for (cid, cur), (open_, overdue) in per_customer.items():
        account, name, _own, _own_cur = customers[cid]
        g = granted.get((cid, cur))
        covered = ZERO if g is None else min(g, open_)
        by_currency[cur].append((cid, account, name, open_, overdue, covered))
    debtor_rows = []
    for cur, rows in by_currency.items():
        total_covered = sum((r[5] for r in rows), ZERO)
        for rank_open, r in enumerate(sorted(rows, key=lambda r: (-r[3], r[1])), 1):
            if rank_open <= TOP_DEBTORS:
                debtor_rows.append((cur, *r, rank_open, total_covered))

    covers: dict[str, list[Any]] = defaultdict(lambda: [0, ZERO, 0, ZERO])
    live = {(cid, cur) for cid, cur, st, _a, vf, vu in cover_rows_raw if in_force(st, vf, vu)}
    for cid, cur, status, amount, vf, vu in cover_rows_raw:
        c = covers[cur]
        if in_force(status, vf, vu) and vu is not None and vu <= as_of + timedelta(EXPIRING_DAYS):
            c[0] += 1
            c[1] += amount or ZERO
        if (
            status in (*ACTIVE_STATUSES, "expired")
            and vu is not None
            and vu < as_of
            and (cid, cur) not in live
        ):
            c[2] += 1
            c[3] += amount or ZERO
    cover_rows = [(cur, *vals) for cur, vals in covers.items()]
    # limits and "over limit": the exposure engine's, the same for both sides
    return assemble(
        as_of, PERIOD, buckets, labels, main_rows, debtor_rows, cover_rows, months, exposures
    )


# ---------------------------------------------------------------- run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50k invoices, well under 30 s")
    parser.add_argument("--n", type=int, default=None, help="number of invoices")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--repeat", type=int, default=3, help="SQL runs (the best is kept)")
    parser.add_argument(
        "--url", default=None, help="time this already loaded (and migrated) database instead"
    )
    args = parser.parse_args()
    n = args.n or (50_000 if args.quick else 1_000_000)

    name = f"cobro_kpi_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{args.pg}/postgres", autocommit=True)
    if not args.url:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.url or f"{args.pg}/{name}"
    try:
        if args.url:
            with psycopg.connect(dsn) as conn:
                n = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]  # type: ignore[index]
        else:
            upgrade(dsn)
            t0 = time.perf_counter()
            load(dsn, n)
            print(f"loaded {n:,} invoices (+ payments, customers, covers) in "
                  f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        engine = make_engine(dsn)
        sql_runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            kpis = compute_kpis(engine, AS_OF, period_days=PERIOD)
            sql_runs.append(time.perf_counter() - t0)
        trend_runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            trend = dso_trend(engine, TREND_AS_OF)
            trend_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        each = [(end, compute_kpis(engine, end).currencies) for end, _ in trend]
        each_s = time.perf_counter() - t0
        trend_s = min(trend_runs)
        same_trend = all(
            {c: v for c, v in values.items() if c in ks} == {c: k.dso for c, k in ks.items()}
            for (_, values), (_, ks) in zip(trend, each, strict=True)
        )
        print(f"DSO trend as of {TREND_AS_OF} (12 points): runs "
              f"{', '.join(f'{s:.3f}' for s in trend_runs)} s; the full KPIs at each point "
              f"{each_s:.3f} s; identical DSO: {same_trend}")  # fmt: skip
        if not same_trend:
            sys.exit("the DSO trend differs from the KPIs at its points")
        sql_s = min(sql_runs)
        t0 = time.perf_counter()
        book = portfolio_exposures(engine, AS_OF)
        exposure_s = time.perf_counter() - t0
        engine.dispose()
        t0 = time.perf_counter()
        baseline = python_kpis(dsn, AS_OF, book)
        py_s = time.perf_counter() - t0 + exposure_s
        same = kpis.to_json() == baseline.to_json()
        eur = kpis.currencies.get("EUR")
        if eur is not None:
            print(
                f"EUR as of {AS_OF}: receivables {eur.receivables:,} DSO {eur.dso} countback "
                f"{eur.countback_dso} CEI {eur.cei} ADD {eur.add} overdue {eur.overdue_pct} % "
                f"covered {eur.covered_pct} % over limit {eur.over_limit_customers}"
            )
        print(f"portfolio exposure (limits, over limit) alone: {exposure_s:.3f} s")
        print(f"SQL runs: {', '.join(f'{s:.3f}' for s in sql_runs)} s; Python {py_s:.3f} s; "
              f"identical results: {same}")  # fmt: skip
        if not same:
            a, b = kpis.to_json()["currencies"], baseline.to_json()["currencies"]
            for cur in sorted(set(a) | set(b)):
                for key in sorted(set(a.get(cur, {})) | set(b.get(cur, {}))):
                    if a.get(cur, {}).get(key) != b.get(cur, {}).get(key):
                        print(f"differs: {cur} {key}: SQL {a.get(cur, {}).get(key)!s:.300}")
                        print(f"               Python {b.get(cur, {}).get(key)!s:.300}")
            sys.exit("SQL and Python KPIs differ")
    finally:
        if not args.url:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print(
        f"BENCH kpis seconds={sql_s:.3f} python_seconds={py_s:.3f} "
        f"trend_seconds={trend_s:.3f} trend_baseline_seconds={each_s:.3f} rows={n} "
        f"ratio={py_s / sql_s:.1f}"
    )


if __name__ == "__main__":
    main()
