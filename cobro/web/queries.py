"""Read models for the dashboard: a few SQL queries, portable across SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, case, func, or_, select

from cobro.models import Communication, Customer, Invoice, TimelineEvent

AGING_BUCKETS = [("not due", None), ("1-30", 30), ("31-60", 60), ("61-90", 90), ("91-120", 120)]
OVER_LAST = ">120"


def aging_bucket_expr(as_of: date):  # type: ignore[no-untyped-def]
    """CASE over the due date, bounds computed in Python so both databases agree."""
    whens = [(Invoice.due_date >= as_of, "not due")]
    for label, days in AGING_BUCKETS[1:]:
        whens.append((Invoice.due_date >= as_of - timedelta(days=days), label))
    return case(*whens, else_=OVER_LAST)


@dataclass
class Portfolio:
    as_of: date
    customers: int
    open_invoices: int
    open_by_currency: dict[str, Decimal]
    overdue_by_currency: dict[str, Decimal]
    aging: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> bucket

    @property
    def bucket_labels(self) -> list[str]:
        return [label for label, _ in AGING_BUCKETS] + [OVER_LAST]


def portfolio(engine: Engine, as_of: date) -> Portfolio:
    bucket = aging_bucket_expr(as_of).label("bucket")
    with engine.connect() as conn:
        customers = conn.scalar(select(func.count()).select_from(Customer)) or 0
        rows = conn.execute(
            select(Invoice.currency, bucket, func.count(), func.sum(Invoice.open_amount))
            .where(Invoice.open_amount > Decimal(0))
            .group_by(Invoice.currency, bucket)
        ).all()
    aging: dict[str, dict[str, Decimal]] = defaultdict(dict)
    open_by: dict[str, Decimal] = defaultdict(Decimal)
    overdue_by: dict[str, Decimal] = defaultdict(Decimal)
    count = 0
    for currency, label, n, total in rows:
        aging[currency][label] = total
        open_by[currency] += total
        count += n
        if label != "not due":
            overdue_by[currency] += total
    return Portfolio(as_of, customers, count, dict(open_by), dict(overdue_by), dict(aging))


@dataclass
class CustomerRow:
    account: str
    name: str
    country: str
    segment: str | None
    open_amount: dict[str, Decimal]
    overdue_amount: dict[str, Decimal]


def customers_page(
    engine: Engine, as_of: date, search: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[CustomerRow], int]:
    query = select(Customer.id, Customer.account, Customer.name, Customer.country, Customer.segment)
    count_query = select(func.count()).select_from(Customer)
    if search:
        pattern = f"%{search.lower()}%"
        cond = or_(
            func.lower(Customer.name).like(pattern), func.lower(Customer.account).like(pattern)
        )
        query = query.where(cond)
        count_query = count_query.where(cond)
    query = query.order_by(Customer.account).limit(per_page).offset((page - 1) * per_page)
    with engine.connect() as conn:
        total = conn.scalar(count_query) or 0
        customers = conn.execute(query).all()
        ids = [c.id for c in customers]
        sums = conn.execute(
            select(
                Invoice.customer_id,
                Invoice.currency,
                func.sum(Invoice.open_amount),
                func.sum(case((Invoice.due_date < as_of, Invoice.open_amount), else_=None)),
            )
            .where(Invoice.customer_id.in_(ids), Invoice.open_amount > Decimal(0))
            .group_by(Invoice.customer_id, Invoice.currency)
        ).all()
    open_by: dict[int, dict[str, Decimal]] = defaultdict(dict)
    overdue_by: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for customer_id, currency, open_total, overdue_total in sums:
        open_by[customer_id][currency] = open_total
        if overdue_total:
            overdue_by[customer_id][currency] = Decimal(overdue_total)
    rows = [
        CustomerRow(c.account, c.name, c.country, c.segment, open_by[c.id], overdue_by[c.id])
        for c in customers
    ]
    return rows, total


@dataclass
class CustomerFile:
    customer: Customer
    invoices: list[Invoice]
    timeline: list[TimelineEvent]
    communications: list[Communication]


def customer_file(engine: Engine, account: str) -> CustomerFile | None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        customer = session.scalar(select(Customer).where(Customer.account == account))
        if customer is None:
            return None
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer.id)
            .order_by(Invoice.due_date, Invoice.number)
        ).all()
        timeline = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.customer_id == customer.id)
            .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc())
            .limit(200)
        ).all()
        communications = session.scalars(
            select(Communication)
            .where(Communication.customer_id == customer.id)
            .order_by(Communication.created_at.desc())
        ).all()
        session.expunge_all()
    return CustomerFile(customer, list(invoices), list(timeline), list(communications))
