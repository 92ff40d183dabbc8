"""The pure dunning planner: levels, windows, grouping, pauses, opt-outs, stale steps, keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import TypeAdapter

from cobro.dunning.policy import load_policies
from cobro.dunning.schedule import (
    DunningCustomer,
    DunningPlan,
    InvoiceState,
    Pause,
    as_of_instant,
    idempotency_key,
    plan,
)

RULES = load_policies(
    """
policies:
  - name: standard
    applies_to: risk_class in ["low", "medium"]
    calendar: FR
    business_days: true
    send_window: "09:00-18:00"
    steps:
      - {at: -5d, channel: email, template: pre_due}
      - {at: +1d, channel: [email, sms], template: due}
      - {at: +7d, channel: [email, sms], template: reminder}
      - {at: +15d, action: task, note: call the customer, assignee_role: collector}
      - {at: +30d, channel: email, template: final_notice}
      - {at: +45d, action: claim}
  - name: calendar_days
    calendar: FR
    business_days: false
    steps:
      - {at: +1d, channel: email, template: due}
      - {at: +2d, channel: email, template: reminder}
      - {at: +10d, channel: email, template: final_notice}
"""
)
STANDARD = RULES.get("standard")
CAL_DAYS = RULES.get("calendar_days")
PARIS = DunningCustomer("C1", "Europe/Paris", "FR", "fr", has_email=True, has_phone=True)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def inv(number: str, due: date, amount: str = "100", currency: str = "EUR", **kw) -> InvoiceState:
    return InvoiceState(number, due, currency, Decimal(amount), **kw)


def schedule(p: DunningPlan) -> list[tuple[datetime, str, int, tuple[str, ...]]]:
    return [(a.at, a.kind, a.step_index, a.invoices) for a in p.actions]


def test_single_invoice_full_schedule_in_business_days() -> None:
    # Due Thursday 10 July 2025; 14 July is a holiday; Paris is UTC+2 in summer.
    p = plan(PARIS, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 7, 1))
    assert schedule(p) == [
        (utc(2025, 7, 3, 7), "email", 0, ("F1",)),  # -5 business days
        (utc(2025, 7, 11, 7), "email", 1, ("F1",)),  # +1
        (utc(2025, 7, 11, 7), "sms", 1, ("F1",)),
        (utc(2025, 7, 22, 7), "email", 2, ("F1",)),  # +7, skipping 14 July
        (utc(2025, 7, 22, 7), "sms", 2, ("F1",)),
        (utc(2025, 8, 1, 7), "task", 3, ("F1",)),  # +15 (15 August is after)
        (utc(2025, 8, 25, 7), "email", 4, ("F1",)),  # +30, skipping 15 August
        (utc(2025, 9, 15, 7), "claim", 5, ("F1",)),  # +45
    ]
    assert p.next_wakeup == utc(2025, 7, 3, 7)
    assert p.due == ()
    task = p.actions[5]
    assert (task.note, task.assignee_role, task.template) == (
        "call the customer",
        "collector",
        None,
    )
    assert p.actions[0].template == "pre_due" and p.actions[0].step_at == "-5d"


def test_calendar_days_step_on_weekend_moves_to_monday_opening() -> None:
    # Due Friday 4 July: +1d Saturday and +2d Sunday both land on Monday 7 July 09:00; only the
    # later step goes, the earlier is superseded (never two reminders for one invoice at once).
    p = plan(PARIS, [inv("F1", date(2025, 7, 4))], CAL_DAYS, utc(2025, 7, 1))
    assert schedule(p) == [
        (utc(2025, 7, 7, 7), "email", 1, ("F1",)),
        (utc(2025, 7, 15, 7), "email", 2, ("F1",)),  # +10d = Monday 14 July, a holiday
    ]
    assert [(s.invoice, s.step_index, s.superseded_by) for s in p.skipped] == [("F1", 0, 1)]


def test_new_york_customer_window_in_local_time() -> None:
    ny = DunningCustomer("C2", "America/New_York", "US", "en", has_email=True, has_phone=False)
    p = plan(ny, [inv("F1", date(2025, 3, 12))], STANDARD, utc(2025, 3, 1))
    # -5 business days = Wednesday 5 March (EST, 14:00 UTC); +1 = Thursday 13 March (EDT).
    assert p.actions[0].at == utc(2025, 3, 5, 14)
    assert p.actions[1].at == utc(2025, 3, 13, 13)
    assert [a.kind for a in p.actions if a.step_index == 1] == ["email"]  # no phone
    assert ("sms", "no_address") in {(d.channel, d.reason) for d in p.dropped}


def test_grouping_two_invoices_reaching_a_step_at_the_same_instant() -> None:
    invoices = [
        inv("F2", date(2025, 7, 10), "50.25"),
        inv("F1", date(2025, 7, 10), "100.50"),
        inv("U1", date(2025, 7, 10), "10", "USD"),
        inv("F3", date(2025, 7, 17), "7"),
    ]
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1))
    first = p.actions[0]
    assert first.invoices == ("F1", "F2", "U1")
    assert first.amounts == {"EUR": Decimal("150.75"), "USD": Decimal("10")}
    due = [a for a in p.actions if a.step_index == 1]
    assert [(a.kind, a.invoices) for a in due] == [
        ("email", ("F1", "F2", "U1")),
        ("sms", ("F1", "F2", "U1")),
        ("email", ("F3",)),
        ("sms", ("F3",)),
    ]
    # One message per (instant, step, channel): never two emails of a step at one instant.
    keys = [(a.at, a.step_index, a.kind) for a in p.actions]
    assert len(keys) == len(set(keys))


def test_each_invoice_keeps_its_level_after_partial_payment_and_new_invoice() -> None:
    now = utc(2025, 7, 12, 8)
    a = inv("A", date(2025, 7, 10), "100", done_steps=(0, 1))
    before = plan(PARIS, [a], STANDARD, now)
    a_paid = inv("A", date(2025, 7, 10), "40", done_steps=(0, 1))  # partial payment
    b = inv("B", date(2025, 8, 20), "300")  # a new invoice
    after = plan(PARIS, [a_paid, b], STANDARD, now)
    a_before = [(x.at, x.step_index, x.kind) for x in before.actions]
    a_after = [(x.at, x.step_index, x.kind) for x in after.actions if "A" in x.invoices]
    assert a_before == a_after
    assert a_after[0][1] == 2  # A goes on to its reminder, not back to step 0 or 1
    assert next(x.step_index for x in after.actions if x.invoices == ("B",)) == 0
    assert next(x for x in after.actions if "A" in x.invoices).amounts == {"EUR": Decimal("40")}


def test_done_steps_are_never_planned_again() -> None:
    now = utc(2025, 7, 1)
    p = plan(PARIS, [inv("F1", date(2025, 7, 10), done_steps=(2,))], STANDARD, now)
    assert min(a.step_index for a in p.actions) == 3  # levels only move forward


def test_disputed_and_paid_invoices_are_excluded() -> None:
    invoices = [
        inv("D", date(2025, 7, 10), disputed=True),
        inv("P", date(2025, 7, 10), "0"),
        inv("F", date(2025, 7, 10)),
    ]
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1))
    assert {n for a in p.actions for n in a.invoices} == {"F"}
    assert p.excluded == {"D": "disputed", "P": "paid"}
    only_disputed = plan(PARIS, invoices[:1], STANDARD, utc(2025, 7, 1))
    assert only_disputed.actions == () and only_disputed.next_wakeup is None


def test_promise_to_pay_pauses_then_resumes_with_the_latest_step() -> None:
    now = utc(2025, 7, 11, 8)  # +1 step of F1 due now
    invoices = [inv("F1", date(2025, 7, 10), done_steps=(0,))]
    promise = Pause("promise", until=date(2025, 7, 25))  # a Friday
    p = plan(PARIS, invoices, STANDARD, now, [promise])
    resume = utc(2025, 7, 28, 7)  # Monday 28 July 09:00 Paris
    assert all(a.at >= resume for a in p.actions)
    assert p.paused_until == utc(2025, 7, 25, 22)  # midnight after the last paused day
    # +1 (11 July) and +7 (22 July) fell inside the pause: only +7 goes when it ends.
    assert schedule(p)[:2] == [(resume, "email", 2, ("F1",)), (resume, "sms", 2, ("F1",))]
    assert [(s.step_index, s.superseded_by) for s in p.skipped] == [(1, 2)]
    assert p.due == () and p.next_wakeup == resume


def test_manual_pause_without_end_plans_nothing() -> None:
    invoices = [inv("F1", date(2025, 7, 10))]
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1), [Pause("manual")])
    assert p.actions == () and p.next_wakeup is None and p.excluded == {"F1": "paused"}


def test_pause_of_one_invoice_only() -> None:
    invoices = [inv("F1", date(2025, 7, 10)), inv("F2", date(2025, 7, 10))]
    pause = Pause("promise", until=date(2025, 8, 29), invoices=("F2",))
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1), [pause])
    assert p.actions[0].invoices == ("F1",)
    assert min(a.at for a in p.actions if "F2" in a.invoices) == utc(2025, 9, 1, 7)
    assert p.paused_until is None


def test_opted_out_channel_is_dropped_other_channels_still_go() -> None:
    customer = DunningCustomer("C1", "Europe/Paris", "FR", "fr", True, True, opt_outs=("sms",))
    p = plan(customer, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 7, 1))
    assert {a.kind for a in p.actions} == {"email", "task", "claim"}
    assert {(d.step_index, d.channel, d.reason) for d in p.dropped} == {
        (1, "sms", "opted_out"),
        (2, "sms", "opted_out"),
    }
    no_email = DunningCustomer("C1", "Europe/Paris", "FR", "fr", True, True, opt_outs=("email",))
    p = plan(no_email, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 7, 1))
    # pre_due and final_notice are email-only: nothing left of them for this customer.
    assert [(a.step_index, a.kind) for a in p.actions] == [
        (1, "sms"),
        (2, "sms"),
        (3, "task"),
        (5, "claim"),
    ]


def test_stale_steps_collapse_to_the_latest_due_one() -> None:
    # Imported late: due 10 July, now 5 August 10:00 Paris, nothing done yet.
    now = utc(2025, 8, 5, 8)
    p = plan(PARIS, [inv("F1", date(2025, 7, 10))], STANDARD, now)
    assert [(a.at, a.kind, a.step_index) for a in p.due] == [(now, "task", 3)]
    assert [(s.step_index, s.reason, s.superseded_by) for s in p.skipped] == [
        (0, "superseded", 3),
        (1, "superseded", 3),
        (2, "superseded", 3),
    ]
    assert p.next_wakeup == utc(2025, 8, 25, 7)
    # Outside the window, the latest due step goes at the next opening.
    evening = plan(PARIS, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 8, 5, 19))
    assert evening.actions[0].at == utc(2025, 8, 6, 7) and evening.due == ()
    assert evening.next_wakeup == utc(2025, 8, 6, 7)


def test_two_late_invoices_due_now_are_grouped() -> None:
    now = utc(2025, 7, 24, 8)
    invoices = [inv("A", date(2025, 7, 10)), inv("B", date(2025, 7, 11), done_steps=(0,))]
    p = plan(PARIS, invoices, STANDARD, now)
    assert [(a.kind, a.step_index, a.invoices) for a in p.due] == [
        ("email", 2, ("A", "B")),
        ("sms", 2, ("A", "B")),
    ]


def test_idempotency_key_is_deterministic_and_documented() -> None:
    invoices = [inv("F2", date(2025, 7, 10)), inv("F1", date(2025, 7, 10))]
    p1 = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1))
    p2 = plan(PARIS, list(reversed(invoices)), STANDARD, utc(2025, 7, 2, 13))
    assert [a.idempotency_key for a in p1.actions] == [a.idempotency_key for a in p2.actions]
    key = p1.actions[0].idempotency_key
    assert re.fullmatch(r"dunning:C1:standard:s0:email:[0-9a-f]{16}", key)
    assert key == idempotency_key("C1", "standard", 0, "email", ["F1", "F2"])
    # The same step due now (late) keeps the key it had when planned ahead.
    late = plan(PARIS, invoices, STANDARD, utc(2025, 7, 3, 9))
    assert late.due[0].idempotency_key == key
    keys = [a.idempotency_key for a in p1.actions]
    assert len(keys) == len(set(keys))
    # A different group is a different message.
    assert idempotency_key("C1", "standard", 0, "email", ["F1"]) != key


def test_plan_is_json_and_temporal_serialisable() -> None:
    invoices = [inv("F1", date(2025, 7, 10), "1234.5600"), inv("U1", date(2025, 7, 10), "9", "USD")]
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1), [Pause("promise", date(2025, 7, 2))])
    doc = json.loads(json.dumps(p.to_json()))
    assert doc["actions"][0]["amounts"] == {"EUR": "1234.5600", "USD": "9"}
    assert doc["next_wakeup"] == "2025-07-03T07:00:00+00:00"
    # Temporal's pydantic data converter round-trips the dataclasses.
    adapter = TypeAdapter(DunningPlan)
    assert adapter.validate_json(adapter.dump_json(p)) == p
    inputs = TypeAdapter(list[InvoiceState])
    assert inputs.validate_json(inputs.dump_json(invoices)) == invoices


def test_as_of_and_naive_now() -> None:
    assert as_of_instant(date(2025, 7, 1), "Europe/Paris") == utc(2025, 6, 30, 22)
    assert as_of_instant(utc(2025, 7, 1, 5)) == utc(2025, 7, 1, 5)
    with pytest.raises(ValueError, match="aware"):
        plan(PARIS, [], STANDARD, datetime(2025, 7, 1))
    with pytest.raises(ValueError, match="aware"):
        as_of_instant(datetime(2025, 7, 1))


def test_customer_calendar_follows_customer_country() -> None:
    rules = load_policies(
        {
            "policies": [
                {
                    "name": "local",
                    "calendar": "customer",
                    "steps": [{"at": "+1d", "channel": "email", "template": "due"}],
                }
            ]
        }
    )
    de = DunningCustomer("C3", "Europe/Berlin", "DE", "de", True, False)
    # 3 October (German Unity Day, a Friday in 2025) is a holiday in Germany, not in France.
    p = plan(de, [inv("F1", date(2025, 10, 2))], rules.policies[0], utc(2025, 9, 1))
    assert p.actions[0].at == utc(2025, 10, 6, 7)
    fr = DunningCustomer("C4", "Europe/Paris", "FR", "fr", True, False)
    p = plan(fr, [inv("F1", date(2025, 10, 2))], rules.policies[0], utc(2025, 9, 1))
    assert p.actions[0].at == utc(2025, 10, 3, 7)
