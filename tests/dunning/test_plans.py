"""The pure payment-plan module: instalments add up exactly in each currency's minor unit,
dates, the policy's limits with reasons, allocation of payments, the missed instalment,
reminders, and each invoice's share for the insurer; the `payment_plans:` rules with
positioned errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobro.dunning import plans
from cobro.dunning.policy import Duration, PaymentPlanRules, parse_duration
from cobro.rules import RuleError
from cobro.rules.ruleset import Ruleset
from tests.helpers import ROOT

RULES = PaymentPlanRules(
    auto_approve=True, max_instalments=3, min_instalment={"EUR": 50, "default": 10}
)
CURRENCIES = st.sampled_from(["EUR", "USD", "JPY", "KWD", "CHF"])


@given(
    currency=CURRENCIES,
    units=st.integers(min_value=1, max_value=10**9),
    count=st.integers(min_value=1, max_value=60),
)
def test_instalments_add_up_exactly_in_the_minor_unit(
    currency: str, units: int, count: int
) -> None:
    unit = plans.minor_unit(currency)
    total = units * unit
    parts = plans.split(total, count, currency)
    assert sum(parts) == total and len(parts) == count
    assert all(p == p.quantize(unit) for p in parts)
    assert max(parts) - min(parts) <= unit  # as equal as the currency allows
    assert list(parts) == sorted(parts, reverse=True)  # the extra cents come first


def test_minor_units_per_currency() -> None:
    assert plans.minor_unit("EUR") == Decimal("0.01")
    assert plans.minor_unit("JPY") == Decimal("1")
    assert plans.minor_unit("KWD") == Decimal("0.001")
    assert plans.split(Decimal("100"), 3, "JPY") == (Decimal(34), Decimal(33), Decimal(33))
    with pytest.raises(ValueError, match="cannot split"):
        plans.split(Decimal("100.5"), 3, "JPY")


def test_dates_follow_every_from_the_request_day() -> None:
    proposed = plans.propose(Decimal("1000.00"), "EUR", 3, date(2027, 1, 31), RULES)
    assert [(i.seq, i.due_date, i.amount) for i in proposed] == [
        (1, date(2027, 2, 28), Decimal("333.34")),  # a month later: February's last day
        (2, date(2027, 3, 31), Decimal("333.33")),
        (3, date(2027, 4, 30), Decimal("333.33")),
    ]
    weekly = RULES.model_copy(update={"every": Duration(2, "w")})
    assert [i.due_date for i in plans.propose(Decimal(90), "EUR", 2, date(2027, 1, 1), weekly)] == [
        date(2027, 1, 15),
        date(2027, 1, 29),
    ]


def test_limits_say_why_a_collector_decides() -> None:
    today = date(2027, 1, 10)
    ok = plans.propose(Decimal("300.00"), "EUR", 3, today, RULES)
    assert plans.limit_problems(ok, "EUR", today, RULES) == []
    many = plans.propose(Decimal("300.00"), "EUR", 4, today, RULES)
    assert plans.limit_problems(many, "EUR", today, RULES) == [
        "4 instalments: at most 3",
        "the last instalment on 2027-05-10: at most 3m from 2027-01-10 (2027-04-10)",
    ]
    small = plans.propose(Decimal("120.00"), "EUR", 3, today, RULES)
    assert plans.limit_problems(small, "EUR", today, RULES) == [
        "instalments of 40.00 EUR: at least 50 EUR"
    ]
    assert plans.limit_problems(small, "USD", today, RULES) == []  # `default: 10`
    manual = RULES.model_copy(update={"auto_approve": False})
    assert plans.limit_problems(ok, "EUR", today, manual) == [
        "the policy's payment plans are approved by a collector"
    ]
    assert plans.limit_problems(ok, "EUR", today, None) == [
        "the customer's dunning policy has no `payment_plans:` rules"
    ]
    only_eur = RULES.model_copy(update={"min_instalment": {"EUR": Decimal(50)}})
    assert plans.limit_problems(ok, "GBP", today, only_eur) == ["no minimum instalment set for GBP"]


@given(
    paid=st.decimals(min_value=0, max_value=2000, places=2),
    count=st.integers(min_value=2, max_value=12),
)
def test_payments_go_to_the_instalments_in_order(paid: Decimal, count: int) -> None:
    instalments = plans.propose(Decimal("1000.00"), "EUR", count, date(2027, 1, 1), RULES)
    parts = plans.allocate(instalments, paid)
    assert sum(parts) == min(paid, Decimal("1000.00"))
    assert all(0 <= p <= i.amount for p, i in zip(parts, instalments, strict=True))
    full = [p == i.amount for p, i in zip(parts, instalments, strict=True)]
    assert full == sorted(full, reverse=True)  # paid in full ones come first
    assert plans.paid_so_far(Decimal(1000), Decimal(1200)) == 0  # an invoice grew: nothing
    assert plans.paid_so_far(Decimal(1000), Decimal(-5)) == 1000


def test_an_instalment_is_missed_after_the_grace_days() -> None:
    instalments = plans.propose(Decimal("900.00"), "EUR", 3, date(2027, 1, 1), RULES)
    second = instalments[1]
    parts = plans.allocate(instalments, Decimal("450.00"))  # the first and half the second
    grace = Duration(5, "d")
    last = second.due_date + timedelta(days=5)
    assert plans.missed(instalments, parts, last, grace) is None
    assert plans.missed(instalments, parts, last + timedelta(days=1), grace) == second
    assert plans.check_day(second, grace) == last + timedelta(days=1)
    paid = plans.allocate(instalments, Decimal("600.00"))
    assert plans.missed(instalments, paid, last + timedelta(days=1), grace) is None


def test_reminders_once_per_instalment_and_channel() -> None:
    instalments = plans.propose(Decimal("900.00"), "EUR", 3, date(2027, 1, 1), RULES)
    parts = plans.allocate(instalments, Decimal("300.00"))

    def opening(d: date) -> datetime:
        return datetime.combine(d, time(9), tzinfo=UTC)

    def found(now: datetime, keys: frozenset[str] = frozenset()) -> list[tuple[int, date]]:
        out = plans.reminders(
            "K1", 7, instalments, parts, RULES, ["email", "sms"], keys, now, opening,
            lambda t: t.date(),
        )  # fmt: skip
        return [(r.seq, r.at.date()) for r in out]

    start = datetime(2027, 1, 2, tzinfo=UTC)
    assert found(start) == [(2, date(2027, 2, 26)), (3, date(2027, 3, 29))]  # -3d, email only
    done = frozenset({plans.reminder_key("K1", 7, 2, "email")})
    assert found(start, done) == [(3, date(2027, 3, 29))]
    late = datetime(2027, 3, 10, tzinfo=UTC)  # instalment 2 missed before a reminder
    assert found(late) == [(3, date(2027, 3, 29))]
    assert plans.reminder_key("K1", 7, 2, "email") == "plan:K1:p7:i2:email"


def test_each_invoice_gets_its_share_for_the_insurer() -> None:
    instalments = plans.propose(Decimal("1000.00"), "EUR", 3, date(2027, 1, 31), RULES)
    shares = plans.per_invoice([("A", Decimal("500.00")), ("B", Decimal("500.00"))], instalments)
    assert shares == {
        "A": [(date(2027, 2, 28), Decimal("333.34")), (date(2027, 3, 31), Decimal("166.66"))],
        "B": [(date(2027, 3, 31), Decimal("166.67")), (date(2027, 4, 30), Decimal("333.33"))],
    }
    assert all(sum(a for _, a in s) == Decimal("500.00") for s in shares.values())


# ------------------------------------------------------------------------- rules file


def test_durations() -> None:
    assert parse_duration("90d") == Duration(90, "d") and parse_duration("3m").written == "3m"
    assert parse_duration(30) == Duration(30, "d")
    for bad in ("0d", "3x", "-1m", True, "m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)
    assert plans.add_duration(date(2027, 1, 31), Duration(1, "m")) == date(2027, 2, 28)
    assert plans.add_duration(date(2027, 11, 30), Duration(3, "m")) == date(2028, 2, 29)


def _copy(tmp_path: Path, old: str, new: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in (ROOT / "rules").glob("*.yaml"):
        (rules / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    text = (rules / "dunning.yaml").read_text(encoding="utf-8")
    assert old in text
    (rules / "dunning.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return rules


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_instalments: 3", "max_instalments: 1", "greater than or equal to 2"),
        ("max_duration: 3m", "max_duration: 3x", "invalid duration '3x'"),
        ("grace: 5d", "grace: 1m", "invalid grace '1m': calendar days"),
        ("{EUR: 50, USD: 50", "{EURO: 50, USD: 50", "unknown currency key 'EURO'"),
        ("{EUR: 50, USD: 50", "{EUR: lots, USD: 50", "invalid amount 'lots'"),
        ("auto_approve: true\n      max_instalments", "auto_approve: maybe\n      max_instalments",
         "valid boolean"),
        ("reminder: {at: -3d,", "reminder: {at: +3d,", "days before (or at) each instalment"),
        ("template: instalment_due}", "template: instalment_dew}", "did you mean `instalment_due`"),
    ],
)  # fmt: skip
def test_payment_plan_mistakes_are_positioned(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    rules = _copy(tmp_path, old, new)
    with pytest.raises(RuleError) as info:
        Ruleset.load(rules)
    (found,) = info.value.messages
    text = (rules / "dunning.yaml").read_text(encoding="utf-8")
    line = text[: text.index(new)].count("\n") + 1
    assert found.line in (line, line + 1), (found, line)  # the key or its value
    assert message in found.message, found.message
    assert re.search(r"dunning\.yaml", str(found.path)), found


def test_the_shipped_plans_rules() -> None:
    built = Ruleset.load(ROOT / "rules").built("dunning.yaml").rules
    standard = built.get("standard").payment_plans
    assert standard is not None and standard.auto_approve and standard.max_instalments == 3
    assert standard.min_amount("EUR") == Decimal(50) and standard.min_amount("SEK") == 50
    assert built.get("strict").payment_plans is None  # high risk: a collector decides


def test_a_policy_with_plans_stays_hashable_like_the_others() -> None:
    built = Ruleset.load(ROOT / "rules").built("dunning.yaml").rules
    again = Ruleset.load(ROOT / "rules").built("dunning.yaml").rules
    assert hash(built.get("standard")) == hash(again.get("standard"))
    assert len({built.get("standard"), again.get("standard"), built.get("strict")}) == 2
