"""What the self-service page shows: the customer's open invoices (due date, days late,
amount, disputed or not), totals per currency, its open payment plan, and the pay-online
link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.dunning.collector import local_today
from cobro.dunning.plans_sql import instalments_of, open_plan
from cobro.models import Customer, Invoice


@dataclass(frozen=True)
class Line:
    number: str
    issue_date: date
    due_date: date
    days_late: int
    currency: str
    open_amount: Decimal
    disputed: bool


@dataclass(frozen=True)
class PlanInstalment:
    seq: int
    due_date: date
    amount: Decimal
    status: str  # due, paid, missed


@dataclass(frozen=True)
class PlanView:
    """The customer's open plan: asked for (a collector decides) or approved."""

    status: str  # requested | approved
    requested_on: date
    currency: str
    total: Decimal
    instalments: tuple[PlanInstalment, ...]  # as proposed, then as agreed


@dataclass
class Statement:
    account: str
    name: str
    language: str
    today: date
    lines: list[Line] = field(default_factory=list)
    plan: PlanView | None = None

    @property
    def totals(self) -> list[tuple[str, Decimal]]:
        out: dict[str, Decimal] = {}
        for line in self.lines:
            out[line.currency] = out.get(line.currency, Decimal(0)) + line.open_amount
        return sorted(out.items())

    @property
    def open_numbers(self) -> list[str]:
        return [line.number for line in self.lines if not line.disputed]


def load_statement(engine: Engine, customer_id: int) -> Statement:
    """Only this customer's rows: the id comes from the checked link, never from the URL."""
    with transaction(engine) as s:
        customer = s.get(Customer, customer_id)
        assert customer is not None, f"customer {customer_id} of a live link is gone"
        today = local_today(customer)
        invoices = s.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer_id, Invoice.open_amount > 0)
            .order_by(Invoice.due_date, Invoice.number)
        ).all()
        plan = open_plan(s, customer_id)
        rows = instalments_of(s, plan.id) if plan else []
        view = (
            PlanView(
                plan.status,
                plan.requested_at.date(),
                plan.currency,
                plan.total_amount,
                tuple(PlanInstalment(r.seq, r.due_date, r.amount, r.status) for r in rows),
            )
            if plan
            else None
        )
        return Statement(
            customer.account,
            customer.name,
            customer.language or "en",
            today,
            [
                Line(
                    inv.number,
                    inv.issue_date,
                    inv.due_date,
                    max((today - inv.due_date).days, 0),
                    inv.currency,
                    inv.open_amount,
                    bool(inv.disputed),
                )
                for inv in invoices
            ],
            view,
        )


def pay_url(template: str | None, statement: Statement) -> str | None:
    """The payment provider's URL for the whole balance (one currency), or None."""
    totals = statement.totals
    if not template or len(totals) != 1:
        return None
    currency, amount = totals[0]
    return template.format(
        account=quote(statement.account, safe=""), amount=f"{amount:.2f}", currency=currency
    )
