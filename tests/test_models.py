"""The same migrations produce the same, exact schema on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError

from cobro.db import transaction
from cobro.models import Base, Communication, Customer, Invoice


def _customer(session, account: str = "C001") -> Customer:  # type: ignore[no-untyped-def]
    customer = Customer(
        account=account, name="ACME", country="FR", language="fr", timezone="Europe/Paris"
    )
    session.add(customer)
    session.flush()
    return customer


def test_migrations_create_every_model_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_money_is_exact_decimal_and_sums_exactly(engine: Engine) -> None:
    with transaction(engine) as s:
        c = _customer(s)
        for i, amount in enumerate(["0.10", "0.20", "999999999999.99", "-0.30"]):
            s.add(
                Invoice(
                    number=f"F{i}",
                    customer_id=c.id,
                    issue_date=date(2026, 1, 1),
                    due_date=date(2026, 2, 1),
                    currency="EUR",
                    amount=Decimal(amount),
                    open_amount=Decimal(amount),
                )
            )
    with transaction(engine) as s:
        total = s.scalar(select(func.sum(Invoice.amount)))
        one = s.scalar(select(Invoice.amount).where(Invoice.number == "F0"))
    assert total == Decimal("999999999999.99")
    assert isinstance(one, Decimal) and one == Decimal("0.10")


def test_money_refuses_float(engine: Engine) -> None:
    with pytest.raises(Exception, match="never float"), transaction(engine) as s:
        c = _customer(s)
        s.add(
            Invoice(
                number="F1",
                customer_id=c.id,
                issue_date=date(2026, 1, 1),
                due_date=date(2026, 2, 1),
                currency="EUR",
                amount=0.1,
                open_amount=Decimal(0),
            )
        )


def test_timestamps_come_back_aware_utc(engine: Engine) -> None:
    with transaction(engine) as s:
        _customer(s)
    with transaction(engine) as s:
        created = s.scalar(select(Customer.created_at))
    assert created.tzinfo is not None
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_communication_idempotency_key_is_unique(engine: Engine) -> None:
    with transaction(engine) as s:
        c = _customer(s)
        customer_id = c.id
        s.add(
            Communication(
                customer_id=customer_id,
                channel="email",
                template="due",
                recipient="a@example.com",
                idempotency_key="C001:F1:+1d:email",
            )
        )
    with pytest.raises(IntegrityError), transaction(engine) as s:
        s.add(
            Communication(
                customer_id=customer_id,
                channel="email",
                template="due",
                recipient="a@example.com",
                idempotency_key="C001:F1:+1d:email",
            )
        )


def test_migrations_match_the_models(engine: Engine) -> None:
    """A model change without its alembic migration fails here, on both databases."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
