"""Exposure, pure: hand-computed numbers for each choice of rules/exposure.yaml."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cobro.exposure import (
    Condition,
    CustomerAmounts,
    DiscretionaryRules,
    ExposureRules,
    UnnamedPolicy,
    UsedRules,
    compute_exposure,
)
from cobro.exposure.rulefile import rules_of
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES

D = Decimal

AMOUNTS = CustomerAmounts(
    customer_id=1,
    account="C1",
    segment="sme",
    overdue=D("1000"),
    not_due=D("3000"),
    disputed_overdue=D("500"),
    disputed_not_due=D("200"),
    credit_notes=D("-300"),
    unbilled_orders=D("999"),
    named_cover=D("4000"),
    named_policies=("P1", "P2"),
)


def test_used_everything_counted_by_default() -> None:
    e = compute_exposure(AMOUNTS, ExposureRules(discretionary=DiscretionaryRules(D("1000"))))
    # 1000 + 500 + 3000 + 200 - 300 = 4400 (unbilled orders off by default)
    assert e.used == D("4400")
    assert e.insured == D("4000") and e.insured_basis == "named"
    assert e.insured_policies == ("P1", "P2")
    assert e.discretionary == D("1000") and e.discretionary_basis == "default"
    assert e.authorised == D("5000")
    assert e.available == D("600")
    assert e.usage_pct == D("88.00")
    assert not e.over_limit
    assert "unbilled_orders" not in e.used_parts


def test_used_switches() -> None:
    no_disputed = ExposureRules(used=UsedRules(disputed=False))
    assert compute_exposure(AMOUNTS, no_disputed).used == D("3700")  # 1000 + 3000 - 300
    due_only = ExposureRules(used=UsedRules(not_yet_due=False))
    assert compute_exposure(AMOUNTS, due_only).used == D("1200")  # 1000 + 500 - 300
    gross = ExposureRules(used=UsedRules(credit_notes=False))
    assert compute_exposure(AMOUNTS, gross).used == D("4700")
    orders = ExposureRules(used=UsedRules(unbilled_orders=True))
    assert compute_exposure(AMOUNTS, orders).used == D("5399")
    minimal = ExposureRules(used=UsedRules(False, False, False, False))
    assert compute_exposure(AMOUNTS, minimal).used == D("1000")


def test_credit_notes_never_make_used_negative() -> None:
    a = CustomerAmounts(1, "C1", overdue=D("100"), credit_notes=D("-250"))
    e = compute_exposure(a, ExposureRules(discretionary=DiscretionaryRules(D("1000"))))
    assert e.used == D("0") and e.available == D("1000") and e.usage_pct == D("0.00")
    assert e.used_parts == {
        "overdue": D("100"),
        "disputed_overdue": D("0"),
        "not_due": D("0"),
        "disputed_not_due": D("0"),
        "credit_notes": D("-250"),
    }


def test_discretionary_customer_segment_default() -> None:
    rules = DiscretionaryRules(D("100"), {"sme": D("5000"), "corporate": D("20000")})
    r = ExposureRules(discretionary=rules)
    assert compute_exposure(CustomerAmounts(1, "A", segment="sme"), r).discretionary == D("5000")
    other = compute_exposure(CustomerAmounts(1, "A", segment="retail"), r)
    assert (other.discretionary, other.discretionary_basis) == (D("100"), "default")
    none = compute_exposure(CustomerAmounts(1, "A"), r)
    assert none.discretionary == D("100")
    own = compute_exposure(CustomerAmounts(1, "A", segment="sme", own_limit=D("0")), r)
    assert (own.discretionary, own.discretionary_basis) == (D("0"), "customer")  # 0 overrides
    ignored = ExposureRules(
        discretionary=DiscretionaryRules(D("100"), {"sme": D("5000")}, customer_override=False)
    )
    e = compute_exposure(CustomerAmounts(1, "A", segment="sme", own_limit=D("7")), ignored)
    assert (e.discretionary, e.discretionary_basis) == (D("5000"), "segment")


def _cond(text: str, fn, *names: str) -> Condition:  # type: ignore[no-untyped-def]
    return Condition(text, fn, names)


GOOD_GRADE = _cond("grade <= 6", lambda f: None if f.get("grade") is None else f["grade"] <= 6)
IN_FR = _cond('country == "FR"', lambda f: f.get("country") == "FR", "country")
UNNAMED = (
    UnnamedPolicy("P1", D("20000"), applies_to=IN_FR, when=GOOD_GRADE),
    UnnamedPolicy("P2", D("8000")),  # every customer, no condition
)


def test_unnamed_buyer_ceiling_first_policy_that_holds() -> None:
    rules = ExposureRules(unnamed_buyers=UNNAMED)
    fr_good = CustomerAmounts(1, "A", overdue=D("5000"), facts={"country": "FR", "grade": 4})
    e = compute_exposure(fr_good, rules, explain=True)
    assert (e.insured, e.insured_basis, e.insured_policies) == (D("20000"), "unnamed", ("P1",))
    assert e.authorised == D("20000") and e.available == D("15000") and e.usage_pct == D("25.00")
    assert "policy P1: unnamed-buyer ceiling 20000" in e.notes[0]

    fr_bad = CustomerAmounts(1, "A", facts={"country": "FR", "grade": 8})
    e = compute_exposure(fr_bad, rules, explain=True)
    assert (e.insured, e.insured_policies) == (D("8000"), ("P2",))
    assert e.notes[0] == "policy P1: when `grade <= 6` is false"
    ungraded = CustomerAmounts(1, "A", facts={"country": "FR"})  # null condition: not met
    assert compute_exposure(ungraded, rules).insured_policies == ("P2",)
    be = CustomerAmounts(1, "A", facts={"country": "BE", "grade": 1})
    e = compute_exposure(be, rules, explain=True)
    assert e.insured_policies == ("P2",)
    assert e.notes[0] == "policy P1: applies_to `country == \"FR\"` is false (country='BE')"


def test_insurer_listed_unnamed_buyer_bypasses_applies_to_not_when() -> None:
    rules = ExposureRules(unnamed_buyers=UNNAMED[:1])
    listed = CustomerAmounts(
        1, "A", unnamed_policies=frozenset({"P1"}), facts={"country": "BE", "grade": 3}
    )
    assert compute_exposure(listed, rules).insured == D("20000")
    listed_bad = CustomerAmounts(
        1, "A", unnamed_policies=frozenset({"P1"}), facts={"country": "BE", "grade": 9}
    )
    e = compute_exposure(listed_bad, rules)
    assert (e.insured, e.insured_basis) == (D("0"), "none")


def test_named_cover_wins_even_when_smaller_or_zero() -> None:
    rules = ExposureRules(unnamed_buyers=UNNAMED)
    small = CustomerAmounts(1, "A", named_cover=D("3000"), facts={"country": "FR", "grade": 1})
    assert compute_exposure(small, rules).insured == D("3000")
    zero = CustomerAmounts(1, "A", named_cover=D("0"), named_policies=("P9",))
    e = compute_exposure(zero, rules)
    assert (e.insured, e.insured_basis) == (D("0"), "named")


def test_no_limit_no_usage_and_over_limit() -> None:
    e = compute_exposure(CustomerAmounts(1, "A", overdue=D("10")))
    assert e.authorised == D("0") and e.usage_pct is None
    assert e.available == D("-10") and e.over_limit
    idle = compute_exposure(CustomerAmounts(1, "A"))
    assert idle.usage_pct is None and not idle.over_limit and idle.available == D("0")
    over = compute_exposure(
        CustomerAmounts(1, "A", overdue=D("2000"), named_cover=D("1500"), own_limit=D("0"))
    )
    assert over.available == D("-500") and over.usage_pct == D("133.33") and over.over_limit


def test_usage_rounds_half_up() -> None:
    e = compute_exposure(CustomerAmounts(1, "A", overdue=D("1"), named_cover=D("8")))
    assert e.usage_pct == D("12.50")  # 12.5 exactly
    e = compute_exposure(CustomerAmounts(1, "A", overdue=D("1"), named_cover=D("6")))
    assert e.usage_pct == D("16.67")  # 16.666...


def test_shipped_file_builds_the_documented_defaults() -> None:
    rules = rules_of(Ruleset.load(RULES))
    assert rules.used == UsedRules(True, True, True, False)
    assert rules.discretionary.segments["sme"] == D("5000")
    assert rules.discretionary.customer_override
    (policy,) = rules.unnamed_buyers
    assert (policy.policy, policy.ceiling) == ("5012001", D("20000"))
    good = {"country": "FR", "cover_status": "none", "grade": 5, "max_days_overdue": 10}
    assert policy.applies_to(good) and policy.when(good)
    assert policy.when({**good, "grade": None}) is True  # not graded yet: still covered
    assert not policy.when({**good, "cover_status": "refused"})
    assert not policy.when({**good, "max_days_overdue": 61})
    e = compute_exposure(
        CustomerAmounts(1, "A", segment="corporate", overdue=D("25000"), facts=good), rules
    )
    assert (e.insured, e.discretionary, e.authorised) == (D("20000"), D("20000"), D("40000"))
    assert e.usage_pct == D("62.50")


def test_rules_of_without_the_file_gives_defaults(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(RULES, tmp_path / "r")
    (tmp_path / "r" / "exposure.yaml").unlink()
    rules = rules_of(Ruleset.load(tmp_path / "r"))
    assert rules == ExposureRules()
    assert rules_of(None) == ExposureRules()
