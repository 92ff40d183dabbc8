"""Exposure test fixtures: a hand-computable portfolio of covers, limits and invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.models import Customer, GradeHistory, InsurerCover, Invoice

D = Decimal


def add_customer(s, account: str, country: str = "FR", **kw) -> Customer:  # type: ignore[no-untyped-def]
    c = Customer(
        account=account,
        name=f"Name {account}",
        country=country,
        language="fr",
        timezone="Europe/Paris",
        **kw,
    )
    s.add(c)
    s.flush()
    return c


def add_invoice(s, c: Customer, number: str, due: date, amount: str, open_: str, **kw) -> None:  # type: ignore[no-untyped-def]
    s.add(
        Invoice(
            number=number,
            customer_id=c.id,
            issue_date=date(2026, 1, 1),
            due_date=due,
            currency="EUR",
            amount=D(amount),
            open_amount=D(open_),
            **kw,
        )
    )


def add_cover(s, c: Customer, cover_id: str, policy: str, status: str, granted: str, **kw) -> None:  # type: ignore[no-untyped-def]
    s.add(
        InsurerCover(
            insurer="allianz_trade",
            policy_id=policy,
            cover_id=cover_id,
            customer_id=c.id,
            cover_type="permanent",
            granted_amount=D(granted),
            currency="EUR",
            status=status,
            **kw,
        )
    )


def add_grade(s, c: Customer, grade: int) -> None:  # type: ignore[no-untyped-def]
    s.add(
        GradeHistory(
            customer_id=c.id, insurer="allianz_trade", grade=grade, graded_on=date(2026, 1, 5)
        )
    )


def seed(engine: Engine) -> None:
    with transaction(engine) as s:
        a = add_customer(s, "A", segment="sme")
        add_invoice(s, a, "A1", date(2026, 3, 1), "1000.50", "1000.50")
        add_invoice(s, a, "A2", date(2026, 6, 15), "2000", "2000", disputed=True)
        add_invoice(s, a, "A3", date(2026, 7, 15), "3000", "3000")
        add_invoice(s, a, "A4", date(2026, 8, 1), "400", "400", disputed=True)
        add_invoice(s, a, "A5", date(2026, 6, 1), "-250", "-250")  # credit note
        add_invoice(s, a, "A6", date(2026, 5, 1), "900", "0")  # paid
        add_cover(s, a, "CA1", "P1", "GRANTED", "20000", valid_until=date(2026, 7, 30))
        add_cover(s, a, "CA2", "P2", "partially_granted", "5000")
        add_cover(s, a, "CA3", "P1", "granted", "9999", valid_until=date(2026, 6, 29))  # expired
        add_cover(s, a, "CA4", "P3", "refused", "0")
        add_cover(s, a, "CA5", "5012001", "granted", "20000", nominative=False)  # named ones win

        b = add_customer(s, "B", discretionary_limit=D("500"))
        add_grade(s, b, 4)
        add_invoice(s, b, "B1", date(2026, 6, 1), "800", "800")

        c = add_customer(s, "C", country="US", segment="corporate")
        add_invoice(s, c, "C1", date(2026, 7, 30), "1000", "1000")

        d = add_customer(s, "D", country="BE", segment="public_sector", discretionary_limit=D("0"))
        add_grade(s, d, 8)
        add_cover(s, d, "CD1", "5012001", "granted", "20000", nominative=False)
        add_invoice(s, d, "D1", date(2026, 3, 22), "300", "300")

        e = add_customer(s, "E", country="US")
        add_grade(s, e, 2)
        add_cover(s, e, "CE1", "5012001", "active", "20000", nominative=False)

        f = add_customer(s, "F")
        add_cover(s, f, "CF1", "P1", "refused", "0", decision_date=date(2026, 2, 1))
        add_invoice(s, f, "F1", date(2026, 6, 29), "100", "100")
