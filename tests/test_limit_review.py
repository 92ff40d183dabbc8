"""The limit review report (accounts needing a limit or terms change), on SQLite and
PostgreSQL: over limit, usage above the threshold (rounded usage, at the boundary), insurer
grade worsened within the window; the others stay out."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.exposure import DEFAULT_RULES
from cobro.models import Customer, GradeHistory, InsurerCover, Invoice
from cobro.web.queries import limit_review

AS_OF = date(2026, 11, 30)


def seed(engine: Engine) -> None:
    with transaction(engine) as s:

        def customer(account: str, owed: str, own: str | None = None, cover: str | None = None):  # type: ignore[no-untyped-def]
            c = Customer(
                account=account, name=f"Name {account}", country="FR", language="fr",
                timezone="Europe/Paris",
                discretionary_limit=D(own) if own else None,
                discretionary_limit_currency="EUR" if own else None,
            )  # fmt: skip
            s.add(c)
            s.flush()
            if D(owed):
                s.add(
                    Invoice(
                        number=f"I-{account}", customer_id=c.id, issue_date=AS_OF - timedelta(40),
                        due_date=AS_OF - timedelta(10), currency="EUR", amount=D(owed),
                        open_amount=D(owed),
                    )
                )  # fmt: skip
            if cover:
                s.add(
                    InsurerCover(
                        insurer="allianz_trade", policy_id="P1", cover_id=f"CV-{account}",
                        customer_id=c.id, cover_type="permanent", granted_amount=D(cover),
                        currency="EUR", status="granted",
                    )
                )  # fmt: skip
            return c

        def grades(c: Customer, *pairs: tuple[int, int]) -> None:
            for days_ago, grade in pairs:
                s.add(
                    GradeHistory(
                        customer_id=c.id, insurer="allianz_trade", grade=grade,
                        graded_on=AS_OF - timedelta(days_ago),
                    )
                )  # fmt: skip

        customer("A", "150", own="100")  # over limit by 50
        customer("B", "950", cover="1000")  # 95 % used
        customer("C", "900.04", cover="1000")  # 0.90004 → rounded 0.9000: not above 90 %
        customer("D", "900.06", cover="1000")  # 0.90006 → 0.9001: above
        grades(customer("E", "500"), (200, 3), (10, 5))  # no limit, grade worse 10 days ago
        grades(customer("F", "100", cover="1000"), (200, 5), (10, 3))  # grade improved
        grades(customer("G", "100", cover="1000"), (300, 3), (120, 6))  # worse, but long ago
        grades(customer("H", "0", cover="1000"), (200, 3), (5, 7))  # owes nothing
        grades(customer("I", "100", cover="1000"), (5, 4))  # a first grade is no change
        customer("J", "100", cover="1000")  # 10 %


def test_limit_review(engine: Engine) -> None:
    seed(engine)

    def review(**kw):  # type: ignore[no-untyped-def]
        # the exposure engine's defaults: covers in force + the customer's own limit
        return limit_review(engine, AS_OF, exposure_rules=DEFAULT_RULES, **kw)

    rows = {r.account: r for r in review()}
    assert sorted(rows) == ["A", "B", "D", "E"]
    assert rows["A"].reasons == ["over limit by €50.00"] and rows["A"].usage == D("1.5")
    assert (rows["A"].currency, rows["A"].over_by) == ("EUR", D(50))
    assert rows["B"].reasons == ["uses 95 % of its limit"] and rows["B"].over_by is None
    assert rows["D"].usage == D("0.9001")
    # E: no cover and no limit of its own: nothing authorised, the 500 it owes is over it
    assert (rows["E"].grade_from, rows["E"].grade_to, rows["E"].total_limit) == (3, 5, 0)
    assert rows["E"].reasons == ["over limit by €500.00", "insurer grade worsened 3 → 5"]
    assert rows["E"].usage is None
    # over limit first (most over first), then by usage, highest first
    assert [r.account for r in review()] == ["E", "A", "B", "D"]
    # a wider grade window brings G in; a lower threshold brings C and J's peers in
    assert "G" in {r.account for r in review(grade_days=365)}
    lower = {r.account for r in review(usage_threshold=D("0.05"))}
    assert {"C", "J", "F", "G", "I"} <= lower and "H" not in lower
