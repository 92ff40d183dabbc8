"""Insurer obligations benchmark: the obligations of N insured open invoices, in bulk.

Part 1 (the goal figure, pure): N insured open invoices (5 per customer, due dates over two
years, both shipped policies of `rules/insurance.yaml`, covers that run out) through
`cobro.insurers.obligations.iter_obligations`, then the portfolio totals and the rule facts
per customer — what `cobro insurer obligations`, the KPIs and the classifier compute once the
invoices are read. Timed in CPU seconds of this process (`time.process_time`, the figure
that does not depend on what else the machine runs) and wall clock.

Baseline, same run, same inputs (a sample): the obvious per-invoice version — each invoice
looks its policy up in the list of policies, computes its dates afresh and re-reads its
customer's invoices for the cover already used and the minimum-declarable total. Both give
identical obligations (checked on the sample).

Part 2 (`--db sqlite|postgres`, optional): the same from a database — M invoices written
with bulk INSERTs, then `cobro.insurers.obligations_sql.iter_obligations` (read the open
invoices, decide insurance at each due date as the dunning claim step does, compute).

The LAST line is machine-readable (ratio = obligations per s / baseline per s):

    BENCH obligations invoices=<n> cpu_s=<s> wall_s=<s> per_s=<n> baseline_per_s=<n> ratio=<x>

Usage: .venv/bin/python bench/obligations_bench.py [--quick] [--invoices N]
       [--db sqlite|postgres --db-invoices M]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobro.insurers.obligations import (  # noqa: E402
    InsuredInvoice,
    Obligation,
    compute_obligations,
    facts_by_customer,
    indemnity_amount,
    iter_obligations,
    totals_by_currency,
)
from cobro.insurers.terms import InsuranceTerms, deadlines  # noqa: E402
from cobro.insurers.terms_rulefile import terms_of  # noqa: E402
from cobro.rules.ruleset import Ruleset  # noqa: E402

AS_OF = date(2026, 12, 2)
PER_CUSTOMER = 5
ZERO = Decimal("0.0000")


def generate(n: int, seed: int = 7) -> list[InsuredInvoice]:
    rng = random.Random(seed)
    out: list[InsuredInvoice] = []
    customers = max(1, n // PER_CUSTOMER)
    for cid in range(1, customers + 1):
        policy = ("5012001",) if cid % 3 else ("5012002",)
        currency = "EUR" if cid % 3 else "USD"
        cover = Decimal(rng.choice((5000, 20000, 50000, 200000)))
        dues = sorted(AS_OF + timedelta(days=rng.randint(-400, 90)) for _ in range(PER_CUSTOMER))
        for k, due in enumerate(dues):
            if len(out) >= n:
                break
            amount = Decimal(rng.randint(100_00, 30000_00)) / 100
            out.append(
                InsuredInvoice(
                    cid,
                    f"C{cid:07d}",
                    f"F{cid:07d}-{k}",
                    due,
                    currency,
                    amount,
                    policy,
                    cover,
                    "named",
                    dues[0],
                )
            )
    return out


def baseline(invoices: list[InsuredInvoice], terms: InsuranceTerms) -> list[Obligation]:
    """Invoice by invoice, nothing shared between invoices."""
    policies = list(terms.policies.values())
    by_customer: dict[int, list[InsuredInvoice]] = {}
    for inv in invoices:
        by_customer.setdefault(inv.customer_id, []).append(inv)
    out: list[Obligation] = []
    for inv in invoices:
        t = next((p for pid in inv.policies for p in policies if p.policy == pid), None)
        assert t is not None
        mine = sorted(by_customer[inv.customer_id], key=lambda i: (i.due_date, i.number))
        before = sum(
            (i.open_amount for i in mine if (i.due_date, i.number) < (inv.due_date, inv.number)),
            ZERO,
        )
        total = sum((i.open_amount for i in mine), ZERO)
        room = inv.cover_amount - before
        eligible = inv.open_amount if room >= inv.open_amount else max(room, ZERO)
        d = deadlines(t, inv.due_date, min(i.due_date for i in mine))
        required = total >= t.min_declarable
        if not required:
            status = "below_minimum"
        elif d.declare_by < AS_OF:
            status = "missed"
        elif (d.declare_by - AS_OF).days <= terms.at_risk_within_days:
            status = "at_risk"
        else:
            status = "ok"
        out.append(
            Obligation(
                inv.customer_id,
                inv.account,
                inv.number,
                inv.due_date,
                inv.currency,
                inv.open_amount,
                inv.basis,
                t.policy,
                t.declarations,
                d.may_extend_until,
                d.declare_by,
                d.claim_by,
                d.stop_supplies_from,
                d.expected_indemnity_on,
                eligible,
                indemnity_amount(t, eligible, total),
                required,
                status,
                inv.disputed,
            )
        )
    return out


def run_pure(invoices: list[InsuredInvoice], terms: InsuranceTerms) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    obligations = compute_obligations(invoices, terms, AS_OF)
    totals = totals_by_currency(obligations, AS_OF)
    facts = facts_by_customer(obligations, AS_OF)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    missed = sum(t.deadlines_missed for t in totals.values())
    print(
        f"pure: {len(obligations):,} obligations of {len(facts):,} customers in {cpu:.2f} s CPU"
        f" ({wall:.2f} s wall); {missed:,} deadlines missed"
    )
    return cpu, wall, len(obligations)


def run_db(kind: str, n: int, terms_rules: object) -> None:
    from sqlalchemy import insert

    from bench.databases import pg_database, sqlite_database
    from cobro.db import make_engine
    from cobro.insurers.obligations_sql import ObligationRules
    from cobro.insurers.obligations_sql import iter_obligations as sql_iter
    from cobro.models import Customer, InsurerCover, Invoice

    rng = random.Random(11)
    customers = max(1, n // PER_CUSTOMER)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = pg_database() if kind == "postgres" else sqlite_database(Path(tmp))
        with ctx as url:
            engine = make_engine(url)
            t0 = time.perf_counter()
            with engine.begin() as conn:
                for start in range(1, customers + 1, 5000):
                    ids = range(start, min(customers, start + 4999) + 1)
                    conn.execute(
                        insert(Customer),
                        [
                            {"id": i, "account": f"C{i:07d}", "name": f"Customer {i}",
                             "country": "FR", "language": "fr", "timezone": "Europe/Paris"}
                            for i in ids
                        ],
                    )  # fmt: skip
                    conn.execute(
                        insert(InsurerCover),
                        [
                            {"insurer": "allianz_trade", "policy_id": "5012001",
                             "cover_id": f"K{i}", "customer_id": i, "cover_type": "permanent",
                             "nominative": True, "granted_amount": Decimal(50000),
                             "currency": "EUR", "status": "granted"}
                            for i in ids
                        ],
                    )  # fmt: skip
                    rows = []
                    for i in ids:
                        for k in range(PER_CUSTOMER):
                            due = AS_OF + timedelta(days=rng.randint(-400, 90))
                            amount = Decimal(rng.randint(100_00, 30000_00)) / 100
                            rows.append(
                                {"number": f"F{i:07d}-{k}", "customer_id": i,
                                 "issue_date": due - timedelta(days=30), "due_date": due,
                                 "currency": "EUR", "amount": amount, "open_amount": amount,
                                 "disputed": False}
                            )  # fmt: skip
                    conn.execute(insert(Invoice), rows)
            print(f"{kind}: {customers * PER_CUSTOMER:,} invoices written in "
                  f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
            rules = ObligationRules.of(terms_rules)
            wall = time.perf_counter()
            count = 0
            with engine.connect() as conn:
                for batch in sql_iter(conn, AS_OF, rules):
                    count += len(batch)
            wall = time.perf_counter() - wall
            print(
                f"{kind}: {count:,} obligations from the database in {wall:.2f} s wall"
                f" ({count / wall:,.0f}/s)"
            )
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 30 s)")
    parser.add_argument("--invoices", type=int, default=None)
    parser.add_argument("--baseline-invoices", type=int, default=None)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default=None)
    parser.add_argument("--db-invoices", type=int, default=None)
    args = parser.parse_args()
    n = args.invoices or (50_000 if args.quick else 1_000_000)
    nb = min(n, args.baseline_invoices or (5_000 if args.quick else 50_000))
    ruleset = Ruleset.load(ROOT / "rules")
    terms = terms_of(ruleset)

    invoices = generate(n)
    cpu, wall, count = run_pure(invoices, terms)

    sample = generate(nb)
    b_cpu = time.process_time()
    slow = baseline(sample, terms)
    b_cpu = time.process_time() - b_cpu
    assert slow == list(iter_obligations(sample, terms, AS_OF)), "baseline differs"
    base_rate = len(sample) / b_cpu
    rate = count / cpu
    print(f"baseline: {len(sample):,} obligations in {b_cpu:.2f} s CPU (identical results)")

    if args.db:
        run_db(args.db, args.db_invoices or (10_000 if args.quick else 100_000), ruleset)

    print(
        f"BENCH obligations invoices={count} cpu_s={cpu:.2f} wall_s={wall:.2f} "
        f"per_s={rate:.0f} baseline_per_s={base_rate:.0f} ratio={rate / base_rate:.1f}"
    )


if __name__ == "__main__":
    main()
