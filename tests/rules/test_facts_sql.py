"""Facts in bulk SQL: hand-computed values on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.exposure import DEFAULT_RULES, ExposureRules
from cobro.exposure.sql import fill_limit_facts
from cobro.models import (
    Customer,
    DunningPause,
    GradeHistory,
    InsurerCover,
    Invoice,
    Payment,
    PaymentAllocation,
    RiskAssessment,
)
from cobro.rules.facts import FACTS, OBLIGATION_DEFAULTS
from cobro.rules.facts_sql import facts_by_customer, iter_facts
from tests.helpers import RULES

AS_OF = date(2026, 6, 30)
D = Decimal


def _customer(s, account: str, **kw) -> Customer:  # type: ignore[no-untyped-def]
    c = Customer(
        account=account,
        name=f"Name {account}",
        country=kw.pop("country", "FR"),
        language="fr",
        timezone="Europe/Paris",
        **kw,
    )
    s.add(c)
    s.flush()
    return c


def _invoice(s, c: Customer, number: str, due: date, amount: str, open_: str, **kw) -> Invoice:  # type: ignore[no-untyped-def]
    inv = Invoice(
        number=number,
        customer_id=c.id,
        issue_date=date(2025, 1, 1),
        due_date=due,
        currency="EUR",
        amount=D(amount),
        open_amount=D(open_),
        **kw,
    )
    s.add(inv)
    s.flush()
    return inv


def _pay(s, c: Customer, ref: str, on: date, inv: Invoice, amount: str) -> None:  # type: ignore[no-untyped-def]
    p = Payment(
        reference=ref,
        customer_id=c.id,
        date=on,
        currency="EUR",
        amount=D(amount),
        unallocated_amount=D(0),
    )
    s.add(p)
    s.flush()
    s.add(PaymentAllocation(payment_id=p.id, invoice_id=inv.id, amount=D(amount)))


def _cover(s, c: Customer, cover_id: str, status: str, granted: str | None, **kw) -> None:  # type: ignore[no-untyped-def]
    s.add(
        InsurerCover(
            insurer="allianz_trade",
            policy_id="P1",
            cover_id=cover_id,
            customer_id=c.id,
            cover_type="permanent",
            granted_amount=None if granted is None else D(granted),
            currency="EUR",
            status=status,
            **kw,
        )
    )


def _at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 12, tzinfo=UTC)


def _portfolio(engine: Engine) -> dict[str, int]:
    with transaction(engine) as s:
        a = _customer(s, "A", segment="sme", discretionary_limit=D("10000"))
        b = _customer(s, "B", country="BE")
        c = _customer(s, "C", discretionary_limit=D("500"))
        d = _customer(s, "D", segment="public_sector")
        # A: three open invoices (one disputed, one not yet due), paid ones for behaviour
        _invoice(s, a, "A1", date(2026, 3, 1), "1000.50", "1000.50")
        _invoice(s, a, "A2", date(2026, 6, 15), "2000.00", "2000.00", disputed=True)
        _invoice(s, a, "A3", date(2026, 7, 15), "3000.00", "3000.00")
        a4 = _invoice(s, a, "A4", date(2026, 4, 1), "500", "0")
        a5 = _invoice(s, a, "A5", date(2026, 2, 10), "300", "0")
        a6 = _invoice(s, a, "A6", date(2025, 3, 1), "700", "0")
        _pay(s, a, "PA4", date(2026, 4, 10), a4, "500")  # 9 days late
        _pay(s, a, "PA5", date(2026, 2, 1), a5, "300")  # early: 0
        _pay(s, a, "PA6", date(2025, 5, 1), a6, "700")  # older than 12 months
        _cover(s, a, "CA-old", "refused", None, decision_date=date(2025, 1, 1))
        _cover(s, a, "CA1", "granted", "20000", valid_until=date(2026, 7, 30))
        _cover(s, a, "CA2", "partially_granted", "5000")
        for on, grade in ((date(2026, 1, 1), 4), (date(2026, 3, 1), 5), (date(2026, 5, 1), 7)):
            s.add(
                GradeHistory(customer_id=a.id, insurer="allianz_trade", grade=grade, graded_on=on)
            )
        s.add(  # graded after as_of: not seen yet
            GradeHistory(
                customer_id=a.id, insurer="allianz_trade", grade=9, graded_on=date(2026, 7, 15)
            )
        )
        for i, cls in enumerate(("low", "watch", "medium")):
            s.add(
                RiskAssessment(
                    customer_id=a.id,
                    risk_class=cls,
                    ruleset_hash="h",
                    explanation={},
                    assessed_at=_at(2026, 1 + i, 1),
                )
            )
        for status, ended, created in (
            ("broken", _at(2026, 6, 1), _at(2026, 5, 20)),  # counts
            ("broken", _at(2026, 3, 1), _at(2026, 2, 20)),  # more than 90 days ago
            ("kept", _at(2026, 6, 10), _at(2026, 6, 1)),  # kept
            ("broken", None, _at(2026, 6, 20)),  # counts (no end date: created)
        ):
            s.add(
                DunningPause(
                    customer_id=a.id,
                    kind="promise",
                    status=status,
                    ended_at=ended,
                    created_at=created,
                )
            )
        s.add(
            DunningPause(customer_id=a.id, kind="pause", status="broken", ended_at=_at(2026, 6, 2))
        )
        # C: over its own limit, cover expired, a single grade
        _invoice(s, c, "C1", date(2026, 6, 29), "800", "800")
        _cover(s, c, "CC1", "granted", "1000", valid_until=date(2026, 1, 1))
        s.add(GradeHistory(customer_id=c.id, insurer="allianz_trade", grade=3, graded_on=AS_OF))
        # D: cover cancelled by the insurer, nothing owed
        _cover(s, d, "CD1", "cancelled", "5000", decision_date=date(2026, 6, 1))
        return {"A": a.id, "B": b.id, "C": c.id, "D": d.id}


def _with_limits(conn, rules: ExposureRules = DEFAULT_RULES):  # type: ignore[no-untyped-def]
    """The facts as the rules see them: the limit facts from the exposure engine."""
    facts = facts_by_customer(conn, AS_OF)
    fill_limit_facts(conn, AS_OF, rules, list(facts.items()))
    return facts


def test_facts_are_computed_in_bulk_as_hand_computed(engine: Engine) -> None:
    ids = _portfolio(engine)
    with engine.connect() as conn:
        facts = _with_limits(conn)
    assert set(facts) == set(ids.values())
    a = facts[ids["A"]]
    assert a == {
        "name": "Name A",
        "account": "A",
        "country": "FR",
        "segment": "sme",
        "grade": 7,
        "previous.grade": 5,
        "cover_status": "reduced",
        "cover_amount": D("25000"),
        "previous.cover_amount": None,
        "cover_expires_in_days": 30,
        "total_limit": D("35000"),
        "outstanding": D("6000.50"),
        "overdue_amount": D("3000.50"),
        "previous.overdue_amount": None,
        "disputed_amount": D("2000.00"),
        "max_days_overdue": 121,
        "previous.max_days_overdue": None,
        "over_limit": False,
        "currency": "EUR",  # the exposure currency: total_limit and the amounts are in it
        "limit_usage": D("0.1714"),
        "avg_days_late": D("4.50"),
        "broken_promises": 2,
        "open_invoices": 3,
        "last_payment_date": date(2026, 4, 10),
        "today": AS_OF,
        "risk_class": "medium",
        "previous.risk_class": "watch",
        **OBLIGATION_DEFAULTS,  # filled in by the classifier (tests/insurers)
        "stop_supply_list": False,
    }
    assert set(a) == set(FACTS)  # every documented fact, nothing else
    assert all(type(a[k]) is Decimal for k in ("cover_amount", "outstanding", "avg_days_late"))

    b = facts[ids["B"]]
    assert (b["country"], b["segment"], b["grade"], b["previous.grade"]) == ("BE", None, None, None)
    # no cover, no limit of its own, nothing owed: nothing authorised, not over it
    assert (b["cover_status"], b["cover_amount"], b["total_limit"]) == ("none", None, 0)
    assert (b["outstanding"], b["overdue_amount"], b["max_days_overdue"]) == (0, 0, 0)
    assert (b["over_limit"], b["limit_usage"], b["avg_days_late"]) == (False, None, None)
    assert (b["broken_promises"], b["risk_class"], b["last_payment_date"]) == (0, None, None)
    assert b["currency"] is None  # nothing in any currency: `money` writes a plain amount

    c = facts[ids["C"]]
    assert (c["cover_status"], c["cover_amount"], c["cover_expires_in_days"]) == (
        "expired",
        None,
        None,
    )
    assert (c["total_limit"], c["outstanding"], c["over_limit"]) == (D(500), D(800), True)
    assert c["limit_usage"] == D("1.6000")
    assert (c["overdue_amount"], c["max_days_overdue"]) == (D(800), 1)
    assert (c["grade"], c["previous.grade"]) == (3, None)

    d = facts[ids["D"]]
    assert (d["cover_status"], d["cover_amount"], d["total_limit"]) == ("cancelled", None, 0)
    assert d["segment"] == "public_sector"


def test_batches_and_id_lists_give_the_same_facts(engine: Engine) -> None:
    ids = _portfolio(engine)
    with engine.connect() as conn:
        whole = facts_by_customer(conn, AS_OF)
        batches = list(iter_facts(conn, AS_OF, batch_size=3))
        some = facts_by_customer(conn, AS_OF, ids=[ids["C"], ids["A"]])
    assert [len(b) for b in batches] == [3, 1]
    assert dict(p for b in batches for p in b) == whole
    assert some == {ids["A"]: whole[ids["A"]], ids["C"]: whole[ids["C"]]}


def test_facts_feed_the_shipped_rules(engine: Engine) -> None:

    from cobro.exposure.rulefile import rules_of
    from cobro.rules.ruleset import Ruleset

    ids = _portfolio(engine)
    rs = Ruleset.load(RULES)
    with engine.connect() as conn:
        facts = _with_limits(conn, rules_of(rs))
    classes = {k: rs.classifier.classify(facts[v]).risk_class for k, v in ids.items()}
    # A: 121 days late; B: nothing; C: over its own limit, but within the unnamed-buyer
    # ceiling of policy 5012001 (FR, cover expired, grade 3) that the shipped exposure.yaml
    # adds; D: cancelled cover but nothing owed
    assert classes == {"A": "critical", "B": "low", "C": "medium", "D": "low"}
    assert facts[ids["C"]]["total_limit"] == D(20500) and not facts[ids["C"]]["over_limit"]
