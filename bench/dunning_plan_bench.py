"""Dunning planner benchmark: plans per second for N customers x M open invoices.

Each plan is the grouped one (one contact per customer, channel and window, `min_gap`
against the customer's previous contacts, levels per invoice, claims for insured invoices
only) under the shipped `standard` policy with the customer's own calendar.

Baseline, measured in the same run on the same inputs: the same planner with a naive
calendar that rebuilds the holiday table on every lookup and walks day by day (what a
planner without the cached business-day table would cost). Both must give identical plans
(checked). Rates are plans per CPU second of this process (`time.process_time`: the
figure that does not depend on what else the machine runs); the wall-clock rate is printed
too. The LAST line is machine-readable (ratio = planner / baseline):

    BENCH dunning_plan plans_per_s=<n> baseline_plans_per_s=<n> ratio=<x>

Usage: .venv/bin/python bench/dunning_plan_bench.py [--quick] [--customers N] [--invoices M]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import holidays

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobro.dunning.policy import load_policies_file  # noqa: E402
from cobro.dunning.schedule import (  # noqa: E402
    Contact,
    DunningCustomer,
    InvoiceState,
    Pause,
    plan,
)

ZONES = ["Europe/Paris", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]


class NaiveCalendar:
    """Baseline: no cache, holidays recomputed per lookup, day-by-day business-day walk."""

    def __init__(self, country: str) -> None:
        self.country = country

    def is_holiday(self, d: date) -> bool:
        return d in holidays.country_holidays(self.country, years=d.year)

    def add_business_days(self, d: date, n: int) -> date:
        step = 1 if n > 0 else -1
        left = abs(n)
        while left:
            d += timedelta(days=step)
            if d.weekday() < 5 and not self.is_holiday(d):
                left -= 1
        return d


def make_portfolio(n_customers: int, n_invoices: int, now: datetime, seed: int = 7) -> list:
    rng = random.Random(seed)
    out = []
    for c in range(n_customers):
        customer = DunningCustomer(
            account=f"C{c:06d}",
            timezone=rng.choice(ZONES),
            country="FR",
            language=rng.choice(["fr", "en", "de", "es"]),
            has_email=True,
            has_phone=rng.random() < 0.7,
            opt_outs=("sms",) if rng.random() < 0.1 else (),
        )
        invoices = []
        for i in range(n_invoices):
            due = now.date() + timedelta(days=rng.randint(-60, 45))
            overdue_days = (now.date() - due).days
            done: tuple[int, ...] = ()
            reached = None
            if overdue_days > 0 and rng.random() < 0.6:
                done = tuple(range(rng.randint(0, 2)))
                reached = now - timedelta(days=rng.randint(1, 20)) if done else None
            invoices.append(
                InvoiceState(
                    number=f"F{c:06d}-{i:03d}",
                    due_date=due,
                    currency="EUR" if rng.random() < 0.9 else "USD",
                    open_amount=Decimal(rng.randint(1000, 5_000_000)) / 100,
                    disputed=rng.random() < 0.03,
                    done_steps=done,
                    insured=rng.random() < 0.7,
                    reached_at=reached,
                )
            )
        pauses = []
        if rng.random() < 0.05:
            pauses.append(Pause("promise", until=now.date() + timedelta(days=rng.randint(1, 20))))
        history = []
        if rng.random() < 0.5:
            history.append(Contact(now - timedelta(days=rng.randint(1, 10)), "email", 1, "due"))
        out.append((customer, invoices, pauses, history))
    return out


def run(portfolio: list, policy, now: datetime, naive: bool) -> tuple[float, float, list]:
    """(CPU seconds, wall seconds, plans)."""
    plans = []
    naive_calendars: dict[str, NaiveCalendar] = {}
    t0, w0 = time.process_time(), time.perf_counter()
    for customer, invoices, pauses, history in portfolio:
        cal = None
        if naive:
            country = policy.calendar_of(customer.country)[0]
            cal = naive_calendars.setdefault(country, NaiveCalendar(country))
        plans.append(plan(customer, invoices, policy, now, pauses, history=history, calendar=cal))
    return time.process_time() - t0, time.perf_counter() - w0, plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 30 s)")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--invoices", type=int, default=None)
    parser.add_argument("--baseline-customers", type=int, default=None)
    args = parser.parse_args()
    n = args.customers or (2000 if args.quick else 20000)
    m = args.invoices or (8 if args.quick else 12)
    nb = min(n, args.baseline_customers or (15 if args.quick else 200))

    rules = load_policies_file(ROOT / "rules" / "dunning.yaml")
    policy = rules.get("standard")
    now = datetime(2025, 7, 16, 8, 30, tzinfo=UTC)
    portfolio = make_portfolio(n, m, now)

    run(portfolio[:20], policy, now, naive=False)  # warm the calendar table and zone cache
    fast_s, fast_wall, fast_plans = run(portfolio, policy, now, naive=False)
    base_s, _, base_plans = run(portfolio[:nb], policy, now, naive=True)
    if base_plans != fast_plans[:nb]:
        raise SystemExit("baseline and planner disagree")

    actions = sum(len(p.actions) for p in fast_plans)
    due = sum(len(p.due) for p in fast_plans)
    for p in fast_plans:  # the grouping holds: one contact per channel and day
        days = [(a.kind, a.at.date()) for a in p.actions if a.kind in ("email", "sms")]
        if len(days) != len(set(days)):
            raise SystemExit(f"{p.account}: two contacts on one channel the same day")
    fast_rate = n / fast_s
    base_rate = nb / base_s
    print(f"portfolio: {n} customers x {m} invoices, policy {policy.name}, now {now.isoformat()}")
    print(
        f"planner:  {n} plans in {fast_s:.3f} CPU s ({fast_rate:,.0f} plans/s; wall clock "
        f"{n / fast_wall:,.0f} plans/s), {actions} actions,"
    )
    print(f"          {due} due now, {fast_s / (n * m) * 1e6:.1f} us per invoice")
    print(f"baseline: {nb} plans in {base_s:.3f} s ({base_rate:,.1f} plans/s), identical plans")
    print(
        f"BENCH dunning_plan plans_per_s={fast_rate:.0f} baseline_plans_per_s={base_rate:.1f} "
        f"ratio={fast_rate / base_rate:.1f}"
    )


if __name__ == "__main__":
    main()
