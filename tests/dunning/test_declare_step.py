"""The dunning `declare` step, pure: `at: deadline - 5d` counts calendar days back from each
insured invoice's declare-by date; an uninsured invoice is never declared (it gets the
policy's `not_insured` task, at `not_insured.at`); an insured one with nothing to declare
passes the step."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cobro.dunning.policy import PolicyError, load_policies, parse_step_offset
from cobro.dunning.schedule import DunningCustomer, InvoiceState, plan

RULES = """
policies:
  - name: p
    calendar: FR
    business_days: true
    send_window: "09:00-18:00"
    not_insured: {at: +40d, note: "not insured: decide", assignee_role: credit_manager}
    steps:
      - {at: +1d, channel: email, template: due}
      - {at: +30d, channel: email, template: final_notice}
      - {at: deadline - 5d, action: declare}
"""
CUSTOMER = DunningCustomer("ACC", "Europe/Paris", "FR", "fr", True, False)


def _invoice(number: str, *, insured: bool, deadline: date | None, done=(0, 1)) -> InvoiceState:  # type: ignore[no-untyped-def]
    return InvoiceState(
        number,
        date(2026, 1, 31),
        "EUR",
        Decimal("1500"),
        done_steps=done,
        insured=insured,
        reached_at=datetime(2026, 3, 13, 8, tzinfo=UTC),
        deadline=deadline,
    )


def test_offsets_from_the_deadline_parse_and_print() -> None:
    assert parse_step_offset("deadline - 5d").written == "deadline - 5d"
    assert parse_step_offset("deadline-5d") == -5 and parse_step_offset("deadline").written == (
        "deadline"
    )
    assert parse_step_offset("deadline + 2d").from_deadline
    assert not parse_step_offset("+45d").from_deadline


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "{at: deadline - 5d, action: task, note: x}",
            "`at: deadline ...` is for `action: declare`",
        ),
        ("{at: deadline - 1w, action: declare}", "invalid offset 'deadline - 1w'"),
    ],
)
def test_bad_deadline_steps(step: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(f"policies:\n  - name: p\n    steps:\n      - {step}\n")
    assert message in str(info.value)


def test_insured_invoice_is_declared_five_calendar_days_before_its_deadline() -> None:
    policy = load_policies(RULES).get("p")
    # declare-by Sunday 3 May 2026: due Tuesday 28 April 09:00 Paris (07:00 UTC)
    inv = _invoice("F1", insured=True, deadline=date(2026, 5, 3))
    p = plan(CUSTOMER, [inv], policy, datetime(2026, 4, 1, tzinfo=UTC))
    [action] = p.actions
    assert (action.kind, action.invoices, action.step_at) == ("declare", ("F1",), "deadline - 5d")
    assert action.at == datetime(2026, 4, 28, 7, tzinfo=UTC)
    # calendar days, whatever the day: a Sunday deadline, a public holiday
    sunday = _invoice("F1", insured=True, deadline=date(2026, 5, 10))  # -5d = Tue 5 May
    assert plan(CUSTOMER, [sunday], policy, datetime(2026, 4, 1, tzinfo=UTC)).actions[0].at == (
        datetime(2026, 5, 5, 7, tzinfo=UTC)
    )
    holiday = _invoice("F1", insured=True, deadline=date(2026, 5, 6))  # -5d = 1 May, a holiday
    got = plan(CUSTOMER, [holiday], policy, datetime(2026, 4, 1, tzinfo=UTC)).actions[0]
    assert got.at == datetime(2026, 5, 1, 7, tzinfo=UTC)


def test_late_start_declares_at_once_never_after_the_step_before() -> None:
    policy = load_policies(RULES).get("p")
    inv = _invoice("F1", insured=True, deadline=date(2026, 3, 20))
    now = datetime(2026, 3, 17, 10, tzinfo=UTC)  # past deadline-5d: due now
    p = plan(CUSTOMER, [inv], policy, now)
    assert [(a.kind, a.at) for a in p.due] == [("declare", now)]


def test_uninsured_invoice_is_never_declared() -> None:
    policy = load_policies(RULES).get("p")
    inv = _invoice("F2", insured=False, deadline=None)
    p = plan(CUSTOMER, [inv], policy, datetime(2026, 3, 1, tzinfo=UTC))
    assert [a.kind for a in p.actions] == ["task"]
    [task] = p.actions
    assert (task.reason, task.note, task.assignee_role) == (
        "not_insured",
        "not insured: decide",
        "credit_manager",
    )
    # `not_insured.at`: 40 business days after the due date (Sat 31 Jan -> Fri 27 Mar)
    assert task.at.date() == date(2026, 3, 27)


def test_insured_invoice_with_nothing_to_declare_passes_the_step() -> None:
    policy = load_policies(RULES).get("p")
    inv = _invoice("F3", insured=True, deadline=None)  # below the minimum, or no terms
    p = plan(CUSTOMER, [inv], policy, datetime(2026, 3, 1, tzinfo=UTC))
    assert p.actions == ()
    assert [(s.invoice, s.reason) for s in p.skipped] == [("F3", "nothing_to_declare")]


def test_insured_and_uninsured_together() -> None:
    policy = load_policies(RULES).get("p")
    invoices = [
        _invoice("A", insured=True, deadline=date(2026, 5, 1)),
        _invoice("B", insured=False, deadline=None),
    ]
    p = plan(CUSTOMER, invoices, policy, datetime(2026, 3, 1, tzinfo=UTC))
    kinds = {a.kind: a.invoices for a in p.actions}
    assert kinds == {"declare": ("A",), "task": ("B",)}
