"""A generated payment history with known behaviour, for the forecast's tests: customers with
distinct lateness habits (punctual, early, 30 days late, 60 days late, erratic, and one that
leaves a third of its invoices unpaid), in EUR and USD, invoicing every week or two for 18
months up to `END`; each invoice is paid on its due date + the customer's habit, or is still
open at `END`. Written with Core inserts, allocations with their copies."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert

from cobro.models import Customer, Invoice, Payment, PaymentAllocation, allocation_values

END = date.today() - timedelta(days=1)
START = END - timedelta(days=540)


@dataclass(frozen=True)
class Habit:
    name: str
    mean: float
    spread: float
    unpaid: float = 0.0  # share of invoices never paid
    uniform: bool = False  # days late uniform over [mean - spread, mean + spread]

    def days_late(self, rng: random.Random) -> int | None:
        if rng.random() < self.unpaid:
            return None
        if self.uniform:
            return round(rng.uniform(self.mean - self.spread, self.mean + self.spread))
        return round(rng.gauss(self.mean, self.spread))


HABITS = [
    Habit("punctual", 0, 2),
    Habit("early", -6, 2),
    Habit("month_late", 30, 4),
    Habit("two_months_late", 60, 6),
    Habit("erratic", 45, 45, uniform=True),
    Habit("bad_payer", 40, 10, unpaid=0.35),
]


def generate(engine: Engine, customers: int = 48, seed: int = 15, end: date = END) -> None:
    rng = random.Random(seed)
    start = end - timedelta(days=540)
    invoices, payments, allocations = [], [], []
    with engine.begin() as conn:
        for c in range(1, customers + 1):
            habit = HABITS[(c - 1) % len(HABITS)]
            currency = "EUR" if c % 4 else "USD"
            conn.execute(
                insert(Customer),
                [
                    {
                        "id": c,
                        "account": f"H{c:03d}",
                        "name": f"{habit.name} {c}",
                        "country": "FR" if currency == "EUR" else "US",
                        "language": "fr" if currency == "EUR" else "en",
                        "timezone": "Europe/Paris" if currency == "EUR" else "America/New_York",
                    }
                ],
            )
            issued = start + timedelta(days=rng.randrange(0, 14))
            while issued <= end:
                due = issued + timedelta(days=30)
                amount = Decimal(round(rng.lognormvariate(8, 0.6), 2)).quantize(Decimal("0.01"))
                late = habit.days_late(rng)
                paid_on = None if late is None else max(issued, due + timedelta(days=late))
                paid = paid_on is not None and paid_on <= end
                iid = len(invoices) + 1
                invoices.append(
                    {
                        "id": iid,
                        "number": f"H{c:03d}-{iid:05d}",
                        "customer_id": c,
                        "issue_date": issued,
                        "due_date": due,
                        "currency": currency,
                        "amount": amount,
                        "open_amount": Decimal(0) if paid else amount,
                        "disputed": False,
                    }
                )
                if paid and paid_on is not None:
                    pid = len(payments) + 1
                    payments.append(
                        {
                            "id": pid,
                            "reference": f"P{pid:06d}",
                            "customer_id": c,
                            "date": paid_on,
                            "currency": currency,
                            "amount": amount,
                            "invoice_number": invoices[-1]["number"],
                            "unallocated_amount": Decimal(0),
                        }
                    )
                    allocations.append(
                        allocation_values(
                            pid,
                            paid_on,
                            amount,
                            invoice_id=iid,
                            customer_id=c,
                            currency=currency,
                            issue_date=issued,
                            due_date=due,
                        )
                    )
                issued += timedelta(days=rng.choice([7, 10, 14]))
        conn.execute(insert(Invoice), invoices)
        conn.execute(insert(Payment), payments)
        conn.execute(insert(PaymentAllocation), allocations)
