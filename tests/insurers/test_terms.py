"""Policy deadlines, pure, hand-computed: two policies with different extension periods and
declaration rules, across month ends, year ends and leap years (calendar days)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cobro.insurers.terms import Deadline, InsuranceTerms, PolicyTerms, deadlines

# declares 30 days after the end of a 60-day MEP; claims 60 days after the declaration
EUR = PolicyTerms(
    policy="5012001",
    insured_percent=Decimal(90),
    max_extension_days=60,
    declare_overdue=Deadline(30, "max_extension"),
    claim=Deadline(60, "declaration"),
    waiting_period=Deadline(150, "declaration"),
    min_declarable=Decimal(1000),
    stop_supply=Deadline(60, "oldest_due_date"),
    declarations="approval",
)
# declares 45 days after the due date (MEP 30 days); claims 90 days after the due date
USD = PolicyTerms(
    policy="5012002",
    insured_percent=Decimal(85),
    max_extension_days=30,
    declare_overdue=Deadline(45, "due_date"),
    claim=Deadline(90, "due_date"),
    waiting_period=Deadline(90, "claim"),
    min_declarable=Decimal(500),
    stop_supply=Deadline(15, "max_extension"),
)


def test_eur_policy_end_of_january_in_a_leap_year() -> None:
    d = deadlines(EUR, date(2028, 1, 31))
    # 31 Jan + 60: 29 days of February (leap) -> 29 Feb, + 31 -> 31 Mar
    assert d.may_extend_until == date(2028, 3, 31)
    assert d.declare_by == date(2028, 4, 30)  # 31 Mar + 30
    assert d.claim_by == date(2028, 6, 29)  # 30 Apr + 31 (May) + 29
    assert d.expected_indemnity_on == date(2028, 9, 27)  # 30 Apr + 31+30+31+31 + 27
    assert d.stop_supplies_from == date(2028, 3, 31)  # its own due date is the oldest


def test_eur_policy_same_day_in_a_common_year_is_one_day_later() -> None:
    d = deadlines(EUR, date(2027, 1, 31))
    assert d.may_extend_until == date(2027, 4, 1)  # 31 Jan + 28 (Feb) + 31 (Mar) + 1
    assert d.declare_by == date(2027, 5, 1)
    assert d.claim_by == date(2027, 6, 30)  # 1 May + 30 (to 31 May) + 30
    assert d.expected_indemnity_on == date(2027, 9, 28)


def test_eur_stop_supply_counts_from_the_oldest_open_invoice() -> None:
    d = deadlines(EUR, date(2026, 3, 31), oldest_due=date(2025, 12, 31))
    assert d.stop_supplies_from == date(2026, 3, 1)  # 31 Dec + 31 (Jan) + 28 (Feb) + 1


def test_usd_policy_across_the_year_end() -> None:
    d = deadlines(USD, date(2026, 12, 31))
    assert d.may_extend_until == date(2027, 1, 30)
    assert d.declare_by == date(2027, 2, 14)  # 31 Dec + 31 (Jan) + 14
    assert d.claim_by == date(2027, 3, 31)  # 31 Dec + 31 + 28 + 31
    assert d.expected_indemnity_on == date(2027, 6, 29)  # 31 Mar + 30 + 31 + 29
    assert d.stop_supplies_from == date(2027, 2, 14)  # 30 Jan + 15


def test_usd_policy_due_on_a_leap_day() -> None:
    d = deadlines(USD, date(2024, 2, 29))
    assert d.may_extend_until == date(2024, 3, 30)
    assert d.declare_by == date(2024, 4, 14)  # 29 Feb + 31 (to 31 Mar) + 14
    assert d.claim_by == date(2024, 5, 29)  # 29 Feb + 31 + 30 + 29
    assert d.stop_supplies_from == date(2024, 4, 14)


def test_no_stop_supply_rule_gives_no_date() -> None:
    terms = PolicyTerms(policy="X")
    assert deadlines(terms, date(2026, 2, 28)).stop_supplies_from is None
    assert deadlines(terms, date(2026, 2, 28)).declare_by == date(2026, 3, 30)  # default 30 d


def test_first_policy_with_terms_wins() -> None:
    terms = InsuranceTerms({"5012002": USD, "5012001": EUR})
    assert terms.for_policies(("P9", "5012001", "5012002")) is EUR
    assert terms.for_policies(("P9",)) is None
