"""Property tests of the pure planner.

1. One plan: windows, customer calendar, opt-outs, amounts, determinism, keys.
2. A life: random invoices, payments, pauses and clock jumps; the planner is iterated as the
   workflow runs it (plan -> execute what is due -> advance the clock) and every contact is
   checked: at most one per customer, channel and window; no invoice skips a level (pre-due
   steps after the due date excepted); no claim for an uncovered invoice; nothing outside the
   window or on a weekend / holiday of the customer's own calendar; `min_gap` respected;
   nothing during a pause.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobro.dunning.calendar import add_days, get_calendar, get_zone, window_opening
from cobro.dunning.policy import load_policies, load_policies_file
from cobro.dunning.schedule import (
    Contact,
    DunningCustomer,
    InvoiceState,
    Pause,
    customer_calendar,
    plan,
)
from tests.helpers import RULES as SHIPPED_DIR

RULES = load_policies(
    """
policies:
  - name: business
    business_days: true
    send_window: "09:00-18:00"
    steps:
      - {at: -5d, channel: email, template: pre_due}
      - {at: +1d, channel: [email, sms], template: due}
      - {at: +1w, channel: [email, sms], template: reminder}
      - {at: +15d, action: task, note: call}
      - {at: +30d, channel: email, template: final_notice}
      - {at: +45d, action: claim}
  - name: calendar
    calendar: US
    business_days: false
    send_window: "08:30-12:15"
    send_days: [tue, wed, sat]
    min_gap: 2d
    steps:
      - {at: -1w, channel: sms, template: pre_due}
      - {at: 0d, channel: email, template: due}
      - {at: +1d, channel: [sms, email], template: reminder}
      - {at: +2d, action: task, note: call}
      - {at: +3w, action: claim}
"""
)
SHIPPED = load_policies_file(SHIPPED_DIR / "dunning.yaml")
POLICIES = [*RULES.policies, *SHIPPED.policies]
PLACES = [
    ("FR", "Europe/Paris"),
    ("DE", "Europe/Berlin"),
    ("US", "America/New_York"),
    ("ES", "Europe/Madrid"),
    ("JP", "Asia/Tokyo"),
    ("AU", "Australia/Sydney"),
]


def _check_contact_instant(a, policy, customer) -> None:  # type: ignore[no-untyped-def]
    tz = get_zone(customer.timezone)
    cal = customer_calendar(policy, customer)
    local = a.at.astimezone(tz)
    assert policy.window.contains(a.at, tz, cal), (a, local)
    assert local.weekday() in policy.window.days and not cal.is_holiday(local.date())


# ------------------------------------------------------------------------ one plan

invoice_st = st.tuples(
    st.integers(0, 30),
    st.dates(date(2024, 1, 1), date(2026, 12, 31)),
    st.sampled_from(["EUR", "USD"]),
    st.integers(0, 10**7),
    st.booleans(),
    st.integers(-1, 5),
    st.booleans(),
)


def _invoices(raw: list[tuple]) -> list[InvoiceState]:
    seen: dict[str, InvoiceState] = {}
    for n, due, cur, cents, disputed, done, insured in raw:
        number = f"INV-{n:03d}"
        steps = tuple(range(done + 1)) if done >= 0 else ()
        seen[number] = InvoiceState(
            number, due, cur, Decimal(cents) / 100, disputed and n % 3 == 0, steps, insured
        )
    return list(seen.values())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.lists(invoice_st, min_size=0, max_size=8),
    now=st.datetimes(datetime(2024, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC)),
    place=st.sampled_from(PLACES),
    policy=st.sampled_from(POLICIES),
    opt_out=st.sampled_from([(), ("sms",), ("email",)]),
    pause_days=st.one_of(st.none(), st.integers(-10, 60)),
    seed=st.integers(0, 1000),
)
def test_plan_properties(raw, now, place, policy, opt_out, pause_days, seed) -> None:
    invoices = _invoices(raw)
    customer = DunningCustomer("ACC", place[1], place[0], "fr", True, True, opt_outs=opt_out)
    pauses = []
    if pause_days is not None:
        pauses.append(Pause("promise", until=now.date() + timedelta(days=pause_days)))
    p = plan(customer, invoices, policy, now, pauses)

    # Deterministic, and independent of the input order.
    shuffled = invoices[:]
    random.Random(seed).shuffle(shuffled)
    assert plan(customer, shuffled, policy, now, pauses) == p

    by_number = {i.number: i for i in invoices}
    tz = get_zone(place[1])
    reached: dict[str, list[int]] = {}
    contacts: set[tuple[str, date]] = set()
    for a in p.actions:
        assert a.at.tzinfo is not None and a.at >= now
        _check_contact_instant(a, policy, customer)
        assert a.kind not in opt_out
        assert a.nominal_at <= a.at
        assert list(a.invoices) == sorted(a.invoices) == sorted(a.levels)
        if a.kind in ("email", "sms"):
            day = (a.kind, a.at.astimezone(tz).date())
            assert day not in contacts  # one contact per channel and window
            contacts.add(day)
            assert a.step_index == max(a.levels.values())  # the most advanced sets the tone
            assert a.template == policy.steps[a.step_index].template
        if a.kind == "claim":
            assert all(by_number[n].insured for n in a.invoices)
        total: dict[str, Decimal] = {}
        for number in a.invoices:
            inv = by_number[number]
            assert not inv.disputed and inv.open_amount > 0
            assert a.levels[number] >= inv.next_step  # done steps are never planned again
            reached.setdefault(number, []).append(a.levels[number])
            total[inv.currency] = total.get(inv.currency, Decimal(0)) + inv.open_amount
        assert a.amounts == total  # per currency, never mixed
    for levels in reached.values():
        assert levels == sorted(levels)  # levels only move forward
    keys = [a.idempotency_key for a in p.actions]
    assert len(keys) == len(set(keys))
    future = [a.at for a in p.actions if a.at > now]
    assert p.next_wakeup == (min(future) if future else None)
    if pauses and pause_days is not None and pause_days >= 0:
        resume = datetime.combine(now.date() + timedelta(days=pause_days + 1), datetime.min.time())
        assert all(a.at >= resume.replace(tzinfo=tz) for a in p.actions)


# ------------------------------------------------------------------------ a life

event_st = st.tuples(
    st.integers(1, 24 * 12),  # hours until the event
    st.sampled_from(["pay_part", "pay_all", "promise", "resume", "new_invoice", "nothing"]),
    st.integers(0, 7),  # which invoice
    st.integers(1, 20),  # days of a promise / days until a new invoice is due
)
start_invoice_st = st.tuples(
    st.integers(-80, 40),  # due date relative to the start (negative: overdue at import)
    st.sampled_from(["EUR", "USD"]),
    st.integers(100, 10**6),
    st.booleans(),  # insured at its due date
)


class Life:
    """The workflow's loop around the pure planner, with an in-memory database."""

    def __init__(self, customer: DunningCustomer, policy, invoices: list[InvoiceState]) -> None:  # type: ignore[no-untyped-def]
        self.customer = customer
        self.policy = policy
        self.invoices = {i.number: i for i in invoices}
        self.history: list[Contact] = []
        self.pauses: list[Pause] = []
        self.reached: dict[str, list[int]] = {n: [] for n in self.invoices}
        self.sent: list[tuple[datetime, str, dict[str, int]]] = []

    def run_until(self, end: datetime, now: datetime) -> datetime:
        for _ in range(500):
            p = plan(
                self.customer,
                list(self.invoices.values()),
                self.policy,
                now,
                self.pauses,
                history=self.history,
            )
            if p.due:
                for a in p.due:
                    self.execute(a, now)
                continue
            if p.next_wakeup is None or p.next_wakeup > end:
                return end
            now = p.next_wakeup
        raise AssertionError("the planner keeps finding work")

    def execute(self, a, now: datetime) -> None:  # type: ignore[no-untyped-def]
        assert a.at <= now
        self.check(a, now)
        policy = self.policy
        for number, level in a.levels.items():
            inv = self.invoices[number]
            step = policy.steps[level]
            done = replace(
                inv,
                done_steps=(*inv.done_steps, level),
                partial=(),
                partial_step=None,
                reached_at=now,
            )
            if a.kind in ("email", "sms"):
                partial = set(inv.partial if level == inv.current_step else ()) | {a.kind}
                wanted = {ch for ch in step.channel or () if self.customer.blocked(ch) is None}
                if partial >= wanted:
                    self.invoices[number] = done
                else:
                    self.invoices[number] = replace(
                        inv, partial=tuple(sorted(partial)), partial_step=level
                    )
            else:
                self.invoices[number] = done
            if not self.reached[number] or self.reached[number][-1] != level:
                self.reached[number].append(level)
        if a.kind in ("email", "sms"):
            self.history.append(Contact(now, a.kind, a.step_index, a.template))
            self.sent.append((now, a.kind, dict(a.levels)))

    def check(self, a, now: datetime) -> None:  # type: ignore[no-untyped-def]
        policy, customer = self.policy, self.customer
        _check_contact_instant(a, policy, customer)
        tz = get_zone(customer.timezone)
        cal = customer_calendar(policy, customer)
        day = now.astimezone(tz).date()
        for p in self.pauses:
            assert p.until is None or day > p.until, "a contact during a pause"
            assert p.until is not None
        if a.kind == "claim":
            assert all(self.invoices[n].insured for n in a.invoices), "claim of an uncovered"
        if a.kind in ("email", "sms"):
            earlier = [c for c in self.history if c.channel == a.kind]
            if earlier:
                last = earlier[-1].at.astimezone(tz).date()
                assert last != day, "two contacts on one channel in one window"
                gap = add_days(last, policy.min_gap_days, cal, policy.business_days)
                assert now >= window_opening(gap, tz, policy.window, cal), "min_gap"
        for number, level in a.levels.items():
            inv = self.invoices[number]
            assert inv.open_amount > 0 and not inv.disputed
            # no level skipped: everything between the last level and this one is a pre-due
            # step that could only have gone out on or after the due date
            assert level >= inv.current_step
            if level == inv.current_step and a.kind in ("email", "sms"):
                assert a.kind not in inv.partial, "one channel of a step sent twice"
            for k in range(inv.current_step, level):
                assert policy.offset_days(policy.steps[k]) < 0 and day >= inv.due_date, (
                    number,
                    inv.next_step,
                    level,
                )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start_raw=st.lists(start_invoice_st, min_size=1, max_size=6),
    events=st.lists(event_st, min_size=0, max_size=10),
    place=st.sampled_from(PLACES),
    policy_index=st.sampled_from([0, 1, 2, 3, 4]),
    start=st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
    has_phone=st.booleans(),
)
def test_a_customers_life(start_raw, events, place, policy_index, start, has_phone) -> None:
    policy = POLICIES[policy_index]
    customer = DunningCustomer("LIFE", place[1], place[0], "en", True, has_phone)
    invoices = [
        InvoiceState(
            f"F{i}", start.date() + timedelta(days=d), cur, Decimal(c) / 100, False, (), ins
        )
        for i, (d, cur, c, ins) in enumerate(start_raw)
    ]
    life = Life(customer, policy, invoices)
    now = start
    for hours, kind, which, days in events:
        end = now + timedelta(hours=hours)
        now = life.run_until(end, now)
        numbers = sorted(life.invoices)
        target = life.invoices[numbers[which % len(numbers)]]
        local_day = now.astimezone(get_zone(customer.timezone)).date()
        if kind == "pay_part" and target.open_amount > 1:
            life.invoices[target.number] = replace(target, open_amount=target.open_amount / 2)
        elif kind == "pay_all":
            life.invoices[target.number] = replace(target, open_amount=Decimal(0))
        elif kind == "promise":
            life.pauses = [Pause("promise", until=local_day + timedelta(days=days))]
        elif kind == "resume":
            life.pauses = []
        elif kind == "new_invoice":
            number = f"N{len(life.invoices)}"
            life.invoices[number] = InvoiceState(
                number,
                local_day + timedelta(days=days),
                "EUR",
                Decimal("99"),
                insured=days % 2 == 0,
            )
            life.reached[number] = []
        # a promise whose last day has passed ends (as the housekeeping does)
        life.pauses = [p for p in life.pauses if p.until is None or p.until >= local_day]
    life.run_until(now + timedelta(days=120), now)
    for levels in life.reached.values():
        assert levels == sorted(levels) and len(levels) == len(set(levels))
    assert get_calendar(place[0])  # the customer's own calendar was the one checked
