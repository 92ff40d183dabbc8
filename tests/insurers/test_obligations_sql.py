"""Obligations from the database on SQLite and PostgreSQL: only insured open invoices (named
cover in force at the due date, or an unnamed-buyer ceiling), hand-computed dates, the rule
facts seen by the classifier's alerts, and the dunning claim step's decision is the same."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.dunning.store import load_customer_facts, load_insurance
from cobro.exposure.sql import customer_ids_by_account
from cobro.insurers.obligations_sql import (
    ObligationRules,
    obligation_facts,
    obligations_for,
    portfolio_totals,
)
from cobro.rules.classify import classify_portfolio
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES
from tests.helpers.exposure import add_cover, add_customer, add_grade, add_invoice

AS_OF = date(2026, 3, 20)
D = Decimal


def seed(engine: Engine) -> None:
    with transaction(engine) as s:
        a = add_customer(s, "A")  # named cover of the EUR policy, 10,000
        add_cover(s, a, "CA1", "5012001", "granted", "10000", valid_from=date(2026, 1, 1))
        add_invoice(s, a, "A1", date(2026, 1, 31), "6000", "6000")
        add_invoice(s, a, "A2", date(2026, 2, 28), "5000", "5000")
        add_invoice(s, a, "A3", date(2026, 1, 15), "700", "0")  # paid: no obligation
        add_invoice(s, a, "A4", date(2026, 2, 1), "-300", "-300")  # credit note
        b = add_customer(s, "B", country="US")  # USD policy cover, ends 15 Feb
        add_cover(s, b, "CB1", "5012002", "granted", "5000", valid_until=date(2026, 2, 15))
        add_invoice(s, b, "B1", date(2026, 2, 10), "800", "800")
        add_invoice(s, b, "B2", date(2026, 3, 1), "900", "900")  # cover over by then
        c = add_customer(s, "C")  # FR, graded 4: the unnamed-buyer ceiling of 5012001
        add_grade(s, c, 4)
        add_invoice(s, c, "C1", date(2026, 3, 1), "800", "800")
        d = add_customer(s, "D", country="US")  # no cover at all
        add_invoice(s, d, "D1", date(2026, 2, 1), "5000", "5000")


def _rules() -> ObligationRules:
    return ObligationRules.of(Ruleset.load(RULES))


def test_obligations_hand_computed(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        got = {o.number: o for o in obligations_for(conn, AS_OF, _rules())}
    assert list(got) == ["A1", "A2", "B1", "C1"]  # B2 and D1 are not insured
    a1, a2, b1, c1 = got["A1"], got["A2"], got["B1"], got["C1"]
    # EUR: MEP 60 days, declare 30 days after it; 2026 is a common year
    assert (a1.may_extend_until, a1.declare_by, a1.claim_by) == (
        date(2026, 4, 1),  # 31 Jan + 28 + 31 + 1
        date(2026, 5, 1),
        date(2026, 6, 30),
    )
    assert (a2.may_extend_until, a2.declare_by) == (date(2026, 4, 29), date(2026, 5, 29))
    assert a1.stop_supplies_from == a2.stop_supplies_from == date(2026, 4, 1)  # oldest + 60
    assert (a1.eligible, a2.eligible) == (D("6000"), D("4000"))  # 10,000 of cover
    assert (a1.expected_indemnity, a2.expected_indemnity) == (D("5400.00"), D("3600.00"))
    assert a1.status == a2.status == "ok" and a1.basis == "named"
    # USD: declare 45 days after the due date: 27 Mar, 7 days away
    assert (b1.policy, b1.declare_by, b1.status, b1.expected_indemnity) == (
        "5012002",
        date(2026, 3, 27),
        "at_risk",
        D("680.00"),
    )
    # unnamed-buyer ceiling 20,000, but 800 is below the policy's 1,000 minimum
    assert (c1.basis, c1.policy, c1.status, c1.expected_indemnity) == (
        "unnamed",
        "5012001",
        "below_minimum",
        D("0.00"),
    )


def test_facts_totals_and_alerts(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        ids = customer_ids_by_account(conn, ["A", "B", "C", "D"])
        facts = obligation_facts(conn, AS_OF, _rules(), ids=list(ids.values()))
        totals = portfolio_totals(conn, AS_OF, _rules())
    assert facts[ids["B"]]["days_to_declaration_deadline"] == 7
    assert facts[ids["B"]]["amount_at_risk"] == D("800")
    assert facts[ids["A"]]["days_to_stop_supply"] == 12 and not facts[ids["A"]]["stop_supply"]
    assert ids["D"] not in facts
    eur = totals["EUR"]  # every invoice here is in EUR
    assert (eur.invoices, eur.at_risk, eur.at_risk_amount) == (4, 1, D("800"))  # B1 at risk
    assert eur.expected_indemnity == D("9680") and eur.deadlines_missed == 0
    report = classify_portfolio(
        engine, Ruleset.load(RULES), now=datetime(2026, 3, 20, 8, tzinfo=UTC), write=False
    )
    fired = {(a.account, a.name) for a in report.alerts}
    assert ("B", "declaration_deadline_near") in fired
    assert not any(name == "declaration_deadline_near" for acc, name in fired if acc != "B")


def test_the_dunning_claim_step_decides_insurance_the_same_way(
    engine: Engine, use_database: str
) -> None:
    seed(engine)
    with transaction(engine) as s:
        insured = {}
        for account in ("A", "B", "C", "D"):
            facts = load_customer_facts(s, account)
            insured.update(load_insurance(s, facts))
    assert insured == {
        "A1": True,
        "A2": True,
        "B1": True,
        "B2": False,
        "C1": True,
        "D1": False,
    }
