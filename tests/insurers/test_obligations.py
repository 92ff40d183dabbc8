"""Obligations, pure: eligibility within the cover, minimum declarable amount, indemnity,
status as of a day, portfolio totals and the rule facts, hand-computed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cobro.insurers.obligations import (
    InsuredInvoice,
    compute_obligations,
    facts_by_customer,
    totals_by_currency,
)
from cobro.insurers.terms import InsuranceTerms
from tests.insurers.test_terms import EUR, USD

D = Decimal
TERMS = InsuranceTerms({"5012001": EUR, "5012002": USD}, at_risk_within_days=14)


def inv(
    cid: int,
    number: str,
    due: date,
    amount: str,
    policies: tuple[str, ...] = ("5012001",),
    cover: str = "10000",
    oldest: date | None = None,
    currency: str = "EUR",
) -> InsuredInvoice:
    return InsuredInvoice(
        cid, f"C{cid}", number, due, currency, D(amount), policies, D(cover), "named",
        oldest or due,
    )  # fmt: skip


def test_two_policies_hand_computed() -> None:
    as_of = date(2028, 4, 20)
    got = compute_obligations(
        [
            inv(1, "E1", date(2028, 1, 31), "6000"),
            inv(1, "E2", date(2028, 2, 29), "5000", oldest=date(2028, 1, 31)),
            inv(2, "U1", date(2028, 2, 29), "800", ("5012002",), "5000", currency="USD"),
        ],
        TERMS,
        as_of,
    )
    e1, e2, u1 = got
    # EUR, due 31 Jan 2028: MEP to 31 Mar, declare by 30 Apr (10 days away: at risk)
    assert (e1.may_extend_until, e1.declare_by, e1.claim_by) == (
        date(2028, 3, 31),
        date(2028, 4, 30),
        date(2028, 6, 29),
    )
    assert e1.status == "at_risk" and e1.declarations == "approval"
    assert (e1.eligible, e1.expected_indemnity) == (D("6000"), D("5400.00"))
    # EUR, due 29 Feb 2028: MEP to 29 Apr, declare by 29 May; the cover has 4000 left
    assert (e2.may_extend_until, e2.declare_by) == (date(2028, 4, 29), date(2028, 5, 29))
    assert e2.status == "ok" and e2.eligible == D("4000") and e2.expected_indemnity == D("3600.00")
    # the stop-supply date counts from the customer's oldest open invoice (31 Jan + 60)
    assert e1.stop_supplies_from == e2.stop_supplies_from == date(2028, 3, 31)
    # USD, due 29 Feb 2028: declare by 14 Apr: passed on 20 Apr, nothing recorded: missed
    assert (u1.declare_by, u1.claim_by, u1.expected_indemnity_on) == (
        date(2028, 4, 14),
        date(2028, 5, 29),
        date(2028, 8, 27),
    )
    assert u1.status == "missed" and u1.expected_indemnity == D("680.00")
    assert u1.stop_supplies_from == date(2028, 4, 14)  # MEP end 30 Mar + 15


def test_minimum_declarable_is_per_customer_and_policy() -> None:
    as_of = date(2026, 1, 10)
    below = compute_obligations(
        [inv(1, "A", date(2026, 1, 5), "400"), inv(1, "B", date(2026, 1, 6), "599")],
        TERMS,
        as_of,
    )
    assert [o.status for o in below] == ["below_minimum", "below_minimum"]
    assert [o.expected_indemnity for o in below] == [D("0.00"), D("0.00")]
    reached = compute_obligations(
        [inv(1, "A", date(2026, 1, 5), "400"), inv(1, "B", date(2026, 1, 6), "600")],
        TERMS,
        as_of,
    )
    assert [o.status for o in reached] == ["ok", "ok"]
    assert [o.expected_indemnity for o in reached] == [D("360.00"), D("540.00")]


def test_policy_without_terms_and_cover_used_up() -> None:
    got = compute_obligations(
        [
            inv(1, "A", date(2026, 1, 5), "3000", ("P9",), cover="2000"),
            inv(1, "B", date(2026, 1, 6), "1000", ("P9",), cover="2000"),
        ],
        TERMS,
        date(2026, 1, 10),
    )
    assert [(o.status, o.policy, o.declare_by, o.eligible) for o in got] == [
        ("no_terms", "P9", None, D("2000")),
        ("no_terms", "P9", None, D("0")),
    ]


def test_totals_and_facts() -> None:
    as_of = date(2028, 4, 20)
    obligations = compute_obligations(
        [
            inv(1, "E1", date(2028, 1, 31), "6000"),
            inv(1, "E2", date(2028, 2, 29), "5000", oldest=date(2028, 1, 31)),
            inv(2, "U1", date(2028, 2, 29), "800", ("5012002",), "5000", currency="USD"),
        ],
        TERMS,
        as_of,
    )
    totals = totals_by_currency(obligations, as_of)
    assert totals["EUR"].as_json() == {
        "invoices": 2,
        "deadlines_missed": 0,
        "missed_amount": "0.0000",
        "at_risk": 1,
        "amount_at_risk_of_losing_cover": "6000.0000",
        "expected_indemnity": "9000.0000",
        "stop_supply_customers": 1,
    }
    assert totals["USD"].deadlines_missed == 1 and totals["USD"].missed_amount == D("800")
    facts = facts_by_customer(obligations, as_of)
    assert facts[1].as_facts() == {
        "days_to_declaration_deadline": 10,  # 30 Apr
        "days_to_claim_deadline": 70,  # 29 Jun
        "days_to_stop_supply": -20,  # 31 Mar, passed
        "stop_supply": True,
        "declarations_missed": 0,
        "amount_at_risk": D("6000"),
    }
    assert facts[2].days_to_declaration_deadline is None  # its one deadline passed
    assert facts[2].declarations_missed == 1 and facts[2].days_to_claim_deadline == 39


def test_deadlines_between_and_json() -> None:
    (o,) = compute_obligations([inv(1, "E1", date(2028, 1, 31), "6000")], TERMS, date(2028, 4, 20))
    assert o.deadlines_between(date(2028, 4, 20), date(2028, 4, 30))  # declare-by 30 Apr
    assert not o.deadlines_between(date(2028, 4, 20), date(2028, 4, 29))
    j = o.as_json(date(2028, 4, 20))
    assert j["declare_by"] == "2028-04-30" and j["days_to_declaration_deadline"] == 10
    assert j["stop_supply"] is True and j["expected_indemnity"] == "5400.00"
