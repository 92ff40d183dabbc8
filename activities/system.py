"""Activities that report on the health of the stack, as the worker sees it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from temporalio import activity

from cobro.db import default_engine
from cobro.models import Customer, Invoice


@dataclass
class DatabaseReport:
    dialect: str
    customers: int
    open_invoices: int
    open_amount_by_currency: dict[str, str]


@activity.defn
def database_report() -> DatabaseReport:
    """Counts that prove the worker reaches the same database as the CLI."""
    engine = default_engine()
    with engine.connect() as conn:
        customers = conn.scalar(select(func.count()).select_from(Customer)) or 0
        rows = conn.execute(
            select(Invoice.currency, func.count(), func.sum(Invoice.open_amount))
            .where(Invoice.open_amount > Decimal(0))
            .group_by(Invoice.currency)
            .order_by(Invoice.currency)
        ).all()
    return DatabaseReport(
        dialect=engine.dialect.name,
        customers=customers,
        open_invoices=sum(count for _, count, _ in rows),
        open_amount_by_currency={currency: str(total) for currency, _, total in rows},
    )
