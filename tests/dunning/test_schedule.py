"""The pure dunning planner: levels, windows, one contact per channel and window, gentle
catch-up, min_gap, claims for insured invoices only, pauses, opt-outs, keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import TypeAdapter

from cobro.dunning.calendar import get_calendar, get_zone
from cobro.dunning.policy import load_policies
from cobro.dunning.schedule import (
    Contact,
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
  - name: weeks
    calendar: FR
    business_days: true
    min_gap: 0d
    steps:
      - {at: +1w, channel: email, template: due}
      - {at: +2w, channel: email, template: reminder}
"""
)
STANDARD = RULES.get("standard")
CAL_DAYS = RULES.get("calendar_days")
LATEST = STANDARD.model_copy(update={"catch_up": "latest"})
PARIS = DunningCustomer("C1", "Europe/Paris", "FR", "fr", has_email=True, has_phone=True)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def inv(number: str, due: date, amount: str = "100", currency: str = "EUR", **kw) -> InvoiceState:
    return InvoiceState(number, due, currency, Decimal(amount), **kw)


def schedule(p: DunningPlan) -> list[tuple[datetime, str, int, tuple[str, ...]]]:
    return [(a.at, a.kind, a.step_index, a.invoices) for a in p.actions]


def test_single_invoice_full_schedule_in_business_days() -> None:
    # Due Thursday 10 July 2025; 14 July is a holiday; Paris is UTC+2 in summer.
    p = plan(PARIS, [inv("F1", date(2025, 7, 10), insured=True)], STANDARD, utc(2025, 7, 1))
    assert schedule(p) == [
        (utc(2025, 7, 3, 7), "email", 0, ("F1",)),  # -5 business days
        (utc(2025, 7, 11, 7), "email", 1, ("F1",)),  # +1
        (utc(2025, 7, 11, 7), "sms", 1, ("F1",)),
        (utc(2025, 7, 22, 7), "email", 2, ("F1",)),  # +7, skipping 14 July
        (utc(2025, 7, 22, 7), "sms", 2, ("F1",)),
        (utc(2025, 8, 1, 7), "task", 3, ("F1",)),  # +15 (15 August is after)
        (utc(2025, 8, 25, 7), "email", 4, ("F1",)),  # +30, skipping 15 August
        (utc(2025, 9, 15, 7), "claim", 5, ("F1",)),  # +45: insured, so a claim
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
    assert p.actions[-1].due_dates == {"F1": date(2025, 7, 10)}  # for insurer deadlines
    assert p.calendar == "FR"


def test_a_week_is_five_business_days_and_the_plan_shows_it_as_written() -> None:
    weeks = RULES.get("weeks")
    p = plan(PARIS, [inv("F1", date(2025, 7, 3))], weeks, utc(2025, 7, 1))
    # Thursday 3 July + 5 business days = Thursday 10 July; + 10 = Friday 18 July (14 July off)
    assert [(a.at, a.step_at) for a in p.actions] == [
        (utc(2025, 7, 10, 7), "+1w"),
        (utc(2025, 7, 18, 7), "+2w"),
    ]
    assert [weeks.offset_days(s) for s in weeks.steps] == [5, 10]
    calendar = weeks.model_copy(update={"business_days": False})
    assert [calendar.offset_days(s) for s in calendar.steps] == [7, 14]
    assert p.to_json()["actions"][0]["step_at"] == "+1w"


def test_new_york_customer_window_in_local_time() -> None:
    ny = DunningCustomer("C2", "America/New_York", "US", "en", has_email=True, has_phone=False)
    p = plan(ny, [inv("F1", date(2025, 3, 12))], STANDARD, utc(2025, 3, 1))
    # -5 business days = Wednesday 5 March (EST, 14:00 UTC); +1 = Thursday 13 March (EDT).
    assert p.actions[0].at == utc(2025, 3, 5, 14)
    assert p.actions[1].at == utc(2025, 3, 13, 13)
    assert [a.kind for a in p.actions if a.step_index == 1] == ["email"]  # no phone
    assert ("sms", "no_address") in {(d.channel, d.reason) for d in p.dropped}


def test_one_contact_per_channel_and_window_the_most_advanced_level_sets_the_tone() -> None:
    now = utc(2025, 7, 24, 8)  # Thursday, 10:00 in Paris
    invoices = [
        # A got its due notice long ago: its reminder is due
        inv("A", date(2025, 6, 2), "100", done_steps=(0, 1), reached_at=utc(2025, 6, 3, 7)),
        inv("B", date(2025, 7, 10), "50"),  # nothing yet: its due notice is due
        inv("U", date(2025, 7, 11), "9", "USD"),
        inv("N", date(2025, 8, 20), "70"),  # not yet due: its pre-due notice comes later
    ]
    p = plan(PARIS, invoices, STANDARD, now)
    assert [(a.kind, a.template, a.invoices, a.levels) for a in p.due] == [
        ("email", "reminder", ("A", "B", "U"), {"A": 2, "B": 1, "U": 1}),
        ("sms", "reminder", ("A", "B", "U"), {"A": 2, "B": 1, "U": 1}),
    ]
    email = p.due[0]
    assert email.step_index == 2 and email.step_at == "+7d"
    assert email.amounts == {"EUR": Decimal("150"), "USD": Decimal("9")}
    # never two messages on one channel the same day
    days = [(a.kind, a.at.astimezone(get_zone("Europe/Paris")).date()) for a in p.actions]
    assert len([d for d in days if d[0] in ("email", "sms")]) == len(
        {d for d in days if d[0] in ("email", "sms")}
    )


def test_gentle_catch_up_starts_at_the_first_level_not_received() -> None:
    # Imported 60 days late: due 2 June, now 5 August 10:00 Paris, nothing sent yet.
    now = utc(2025, 8, 5, 8)
    p = plan(PARIS, [inv("F1", date(2025, 6, 2), insured=True)], STANDARD, now)
    assert [(a.kind, a.template) for a in p.due] == [("email", "due"), ("sms", "due")]
    assert [(s.step_index, s.reason) for s in p.skipped] == [(0, "past_due")]  # no pre-due
    levels = [(a.at, a.kind, a.step_index) for a in p.actions]
    # then the policy's spacing from the day each level was actually reached
    assert levels == [
        (now, "email", 1),
        (now, "sms", 1),
        (utc(2025, 8, 13, 7), "email", 2),  # +6 business days (15 August is a holiday)
        (utc(2025, 8, 13, 7), "sms", 2),
        (utc(2025, 8, 26, 7), "task", 3),  # +8
        (utc(2025, 9, 16, 7), "email", 4),  # +15
        (utc(2025, 10, 7, 7), "claim", 5),  # +15
    ]


def test_catch_up_latest_jumps_to_the_latest_level_due() -> None:
    now = utc(2025, 8, 5, 8)
    p = plan(PARIS, [inv("F1", date(2025, 7, 10))], LATEST, now)
    assert [(a.at, a.kind, a.step_index) for a in p.due] == [(now, "task", 3)]
    assert [(s.step_index, s.reason, s.superseded_by) for s in p.skipped] == [
        (0, "superseded", 3),
        (1, "superseded", 3),
        (2, "superseded", 3),
    ]
    assert p.next_wakeup == utc(2025, 8, 25, 7)
    # Outside the window, the latest due step goes at the next opening.
    evening = plan(PARIS, [inv("F1", date(2025, 7, 10))], LATEST, utc(2025, 8, 5, 19))
    assert evening.actions[0].at == utc(2025, 8, 6, 7) and evening.due == ()


def test_min_gap_between_two_contacts_on_one_channel() -> None:
    now = utc(2025, 7, 24, 8)  # Thursday
    invoices = [inv("B", date(2025, 7, 10))]
    yesterday = [Contact(utc(2025, 7, 23, 7), "email", 0, "pre_due")]
    p = plan(PARIS, invoices, STANDARD, now, history=yesterday)
    # email: 3 business days after Wednesday 23 -> Monday 28; the SMS channel was quiet
    assert [(a.at, a.kind) for a in p.actions[:2]] == [
        (now, "sms"),
        (utc(2025, 7, 28, 7), "email"),
    ]
    assert [a.kind for a in p.due] == ["sms"]
    gap0 = STANDARD.model_copy(update={"min_gap": RULES.get("weeks").min_gap})
    assert [a.kind for a in plan(PARIS, invoices, gap0, now, history=yesterday).due] == [
        "email",
        "sms",
    ]


def test_email_and_sms_of_one_step_complete_the_level_together() -> None:
    now = utc(2025, 7, 24, 8)
    # the due email went out; the SMS of the same step did not yet
    b = inv("B", date(2025, 7, 10), done_steps=(0,), partial=("email",))
    p = plan(PARIS, [b], STANDARD, now, history=[Contact(now, "email", 1, "due")])
    assert [(a.kind, a.step_index) for a in p.due] == [("sms", 1)]
    assert p.actions[1].step_index == 2  # the reminder follows


def test_each_invoice_keeps_its_level_after_partial_payment_and_new_invoice() -> None:
    now = utc(2025, 7, 12, 8)
    reached = utc(2025, 7, 11, 7)
    a = inv("A", date(2025, 7, 10), "100", done_steps=(0, 1), reached_at=reached)
    before = plan(PARIS, [a], STANDARD, now)
    a_paid = inv("A", date(2025, 7, 10), "40", done_steps=(0, 1), reached_at=reached)
    b = inv("B", date(2025, 8, 20), "300")  # a new invoice, due much later
    after = plan(PARIS, [a_paid, b], STANDARD, now)
    a_before = [(x.levels["A"], x.kind) for x in before.actions]
    a_after = [(x.levels["A"], x.kind) for x in after.actions if "A" in x.invoices]
    assert a_before == a_after  # the same levels, one by one (B's contacts may shift dates)
    assert a_after[0][0] == 2  # A goes on to its reminder, not back to step 0 or 1
    assert before.actions[0].at == next(x.at for x in after.actions if "A" in x.invoices)
    assert next(x.levels["B"] for x in after.actions if "B" in x.invoices) == 0
    assert next(x for x in after.actions if "A" in x.invoices).amounts == {"EUR": Decimal("40")}


def test_done_steps_are_never_planned_again() -> None:
    now = utc(2025, 7, 1)
    p = plan(PARIS, [inv("F1", date(2025, 7, 10), done_steps=(2,))], STANDARD, now)
    assert min(a.step_index for a in p.actions) == 3  # levels only move forward


def test_claims_only_for_insured_invoices() -> None:
    now = utc(2025, 9, 15, 8)
    invoices = [
        inv("I", date(2025, 7, 10), done_steps=(0, 1, 2, 3, 4), insured=True),
        inv("N", date(2025, 7, 10), done_steps=(0, 1, 2, 3, 4)),
    ]
    p = plan(PARIS, invoices, STANDARD, now)
    assert [(a.kind, a.invoices, a.note, a.reason, a.assignee_role) for a in p.due] == [
        ("task", ("N",), "not insured: decide on legal action", "not_insured", "credit_manager"),
        ("claim", ("I",), None, None, None),
    ]
    assert len({a.idempotency_key for a in p.due}) == 2
    skip = STANDARD.model_copy(
        update={"not_insured": STANDARD.not_insured.model_copy(update={"action": "skip"})}
    )
    assert [(a.kind, a.invoices) for a in plan(PARIS, invoices, skip, now).due] == [
        ("claim", ("I",))
    ]


def test_tasks_are_one_per_customer_per_step() -> None:
    now = utc(2025, 8, 20, 8)
    done = {"done_steps": (0, 1, 2), "reached_at": utc(2025, 7, 20, 7)}
    invoices = [inv("A", date(2025, 7, 1), **done), inv("B", date(2025, 7, 3), **done)]
    tasks = [a for a in plan(PARIS, invoices, STANDARD, now).due if a.kind == "task"]
    assert [(t.invoices, t.step_index) for t in tasks] == [(("A", "B"), 3)]


def test_pre_due_step_after_the_due_date_is_moot() -> None:
    # imported the day before its due date: -5d is past, and still goes (before the due date)
    p = plan(PARIS, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 7, 9, 8))
    assert (p.actions[0].template, p.actions[0].at) == ("pre_due", utc(2025, 7, 9, 8))
    # imported on its due date: no "falls due shortly" any more
    p = plan(PARIS, [inv("F1", date(2025, 7, 10))], STANDARD, utc(2025, 7, 10, 8))
    assert p.actions[0].template == "due" and p.skipped[0].reason == "past_due"


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


def test_promise_to_pay_pauses_then_resumes_with_the_first_level_not_received() -> None:
    now = utc(2025, 7, 11, 8)  # +1 step of F1 due now
    invoices = [inv("F1", date(2025, 7, 10), done_steps=(0,), reached_at=utc(2025, 7, 3, 7))]
    promise = Pause("promise", until=date(2025, 7, 25))  # a Friday
    p = plan(PARIS, invoices, STANDARD, now, [promise])
    resume = utc(2025, 7, 28, 7)  # Monday 28 July 09:00 Paris
    assert all(a.at >= resume for a in p.actions)
    assert p.paused_until == utc(2025, 7, 25, 22)  # midnight after the last paused day
    # +1 (11 July) and +7 (22 July) fell inside the pause: the due notice goes first.
    assert schedule(p)[:2] == [(resume, "email", 1, ("F1",)), (resume, "sms", 1, ("F1",))]
    assert p.skipped == () and p.due == () and p.next_wakeup == resume
    assert p.actions[2].at == utc(2025, 8, 5, 7)  # the reminder 6 business days later
    latest = plan(PARIS, invoices, LATEST, now, [promise])
    assert schedule(latest)[0] == (resume, "email", 2, ("F1",))


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
    assert {a.kind for a in p.actions} == {"email", "task"}
    assert {(d.step_index, d.channel, d.reason) for d in p.dropped} == {
        (1, "sms", "opted_out"),
        (2, "sms", "opted_out"),
    }
    no_email = DunningCustomer("C1", "Europe/Paris", "FR", "fr", True, True, opt_outs=("email",))
    p = plan(no_email, [inv("F1", date(2025, 7, 10), insured=True)], STANDARD, utc(2025, 7, 1))
    # pre_due and final_notice are email-only: nothing left of them for this customer.
    assert [(a.step_index, a.kind) for a in p.actions] == [
        (1, "sms"),
        (2, "sms"),
        (3, "task"),
        (5, "claim"),
    ]


def test_idempotency_key_is_per_contact_and_deterministic() -> None:
    invoices = [inv("F2", date(2025, 7, 10)), inv("F1", date(2025, 7, 10))]
    p1 = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1))
    p2 = plan(PARIS, list(reversed(invoices)), STANDARD, utc(2025, 7, 2, 13))
    assert [a.idempotency_key for a in p1.actions] == [a.idempotency_key for a in p2.actions]
    key = p1.actions[0].idempotency_key
    assert re.fullmatch(r"dunning:C1:standard:s0:email:[0-9a-f]{16}", key)
    assert key == idempotency_key("C1", "standard", 0, "email", ["F1:0", "F2:0"])
    # The same contact due now (late) keeps the key it had when planned ahead.
    late = plan(PARIS, invoices, STANDARD, utc(2025, 7, 3, 9))
    assert late.due[0].idempotency_key == key
    keys = [a.idempotency_key for a in p1.actions]
    assert len(keys) == len(set(keys))
    # A different group is a different message.
    assert idempotency_key("C1", "standard", 0, "email", ["F1:0"]) != key


def test_plan_is_json_and_temporal_serialisable() -> None:
    invoices = [inv("F1", date(2025, 7, 10), "1234.5600"), inv("U1", date(2025, 7, 10), "9", "USD")]
    p = plan(PARIS, invoices, STANDARD, utc(2025, 7, 1), [Pause("promise", date(2025, 7, 2))])
    doc = json.loads(json.dumps(p.to_json()))
    assert doc["actions"][0]["amounts"] == {"EUR": "1234.5600", "USD": "9"}
    assert doc["actions"][0]["levels"] == {"F1": 0, "U1": 0}
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


def test_customer_calendar_follows_customer_country_and_region() -> None:
    rules = load_policies(
        {
            "policies": [
                {
                    "name": "local",
                    "steps": [{"at": "+1d", "channel": "email", "template": "due"}],
                }
            ]
        }
    )
    local = rules.policies[0]
    assert local.calendar == "customer"  # the default
    de = DunningCustomer("C3", "Europe/Berlin", "DE", "de", True, False)
    # 3 October (German Unity Day, a Friday in 2025) is a holiday in Germany, not in France.
    p = plan(de, [inv("F1", date(2025, 10, 2))], local, utc(2025, 9, 1))
    assert p.actions[0].at == utc(2025, 10, 6, 7)
    fr = DunningCustomer("C4", "Europe/Paris", "FR", "fr", True, False)
    p = plan(fr, [inv("F1", date(2025, 10, 2))], local, utc(2025, 9, 1))
    assert p.actions[0].at == utc(2025, 10, 3, 7)
    # Epiphany (Tuesday 6 January 2026) is a holiday in Bavaria, not in Berlin.
    by = DunningCustomer("C5", "Europe/Berlin", "DE", "de", True, False, subdivision="BY")
    be = DunningCustomer("C6", "Europe/Berlin", "DE", "de", True, False, subdivision="BE")
    bavaria = plan(by, [inv("F1", date(2026, 1, 5))], local, utc(2025, 12, 20))
    berlin = plan(be, [inv("F1", date(2026, 1, 5))], local, utc(2025, 12, 20))
    assert (bavaria.calendar, bavaria.actions[0].at) == ("DE-BY", utc(2026, 1, 7, 8))
    assert (berlin.calendar, berlin.actions[0].at) == ("DE-BE", utc(2026, 1, 6, 8))
    unknown = DunningCustomer("C7", "Europe/Berlin", "DE", "de", True, False, subdivision="ZZ")
    assert plan(unknown, [inv("F1", date(2026, 1, 5))], local, utc(2025, 12, 20)).calendar == "DE"
    # a fixed country stays possible
    fixed = local.model_copy(update={"calendar": "FR"})
    assert plan(by, [inv("F1", date(2026, 1, 5))], fixed, utc(2025, 12, 20)).calendar == "FR"


SHIPPED_HOLIDAYS = [
    ("US", "America/New_York", date(2026, 11, 26)),  # Thanksgiving
    ("DE", "Europe/Berlin", date(2027, 3, 26)),  # Good Friday
    ("ES", "Europe/Madrid", date(2026, 12, 8)),  # Immaculate Conception
]


@pytest.mark.parametrize(("country", "zone", "holiday"), SHIPPED_HOLIDAYS)
def test_shipped_rules_send_nothing_on_the_customers_holidays(
    country: str, zone: str, holiday: date
) -> None:
    from cobro.dunning.policy import load_policies_file
    from tests.helpers import RULES as SHIPPED

    rules = load_policies_file(SHIPPED / "dunning.yaml")
    customer = DunningCustomer("H1", zone, country, "en", True, True)
    tz = get_zone(zone)
    assert get_calendar(country).is_holiday(holiday)
    for policy in rules.policies:
        seen = 0
        # invoices whose steps land on the holiday, planned ahead and on the day itself
        for back in range(0, 70, 1):
            due = holiday - timedelta(days=back)
            for now in (utc(2026, 9, 1), as_of_instant(holiday, zone) + timedelta(hours=10)):
                p = plan(customer, [inv("X", due, insured=True)], policy, now)
                for a in p.actions:
                    assert a.at.astimezone(tz).date() != holiday, (policy.name, due, a)
                    seen += 1
        assert seen > 0
