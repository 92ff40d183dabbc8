"""What the self-service page shows: the customer's open invoices (due date, days late,
amount, disputed or not), totals per currency, and the pay-online link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.dunning.collector import local_today
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


@dataclass
class Statement:
    account: str
    name: str
    language: str
    today: date
    lines: list[Line] = field(default_factory=list)

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
