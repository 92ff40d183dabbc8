"""Property test of the planner: windows, uniqueness, monotonic levels, determinism."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobro.dunning.calendar import get_calendar, get_zone
from cobro.dunning.policy import load_policies
from cobro.dunning.schedule import DunningCustomer, InvoiceState, Pause, plan

RULES = load_policies(
    """
policies:
  - name: business
    calendar: FR
    business_days: true
    send_window: "09:00-18:00"
    steps:
      - {at: -5d, channel: email, template: pre_due}
      - {at: +1d, channel: [email, sms], template: due}
      - {at: +7d, channel: [email, sms], template: reminder}
      - {at: +15d, action: task, note: call}
      - {at: +30d, channel: email, template: final_notice}
      - {at: +45d, action: claim}
  - name: calendar
    calendar: US
    business_days: false
    send_window: "08:30-12:15"
    send_days: [tue, wed, sat]
    steps:
      - {at: -1w, channel: sms, template: pre_due}
      - {at: 0d, channel: email, template: due}
      - {at: +1d, channel: [sms, email], template: reminder}
      - {at: +2d, action: task, note: call}
      - {at: +3w, action: claim}
"""
)
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC"]

invoice_st = st.builds(
    lambda n, due, cur, cents, disputed, done: (n, due, cur, cents, disputed, done),
    st.integers(0, 30),
    st.dates(date(2024, 1, 1), date(2026, 12, 31)),
    st.sampled_from(["EUR", "USD"]),
    st.integers(0, 10**7),
    st.booleans(),
    st.integers(-1, 5),
)


def _invoices(raw: list[tuple]) -> list[InvoiceState]:
    seen: dict[str, InvoiceState] = {}
    for n, due, cur, cents, disputed, done in raw:
        number = f"INV-{n:03d}"
        steps = tuple(range(done + 1)) if done >= 0 else ()
        seen[number] = InvoiceState(
            number, due, cur, Decimal(cents) / 100, disputed and n % 3 == 0, steps
        )
    return list(seen.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.lists(invoice_st, min_size=0, max_size=8),
    now=st.datetimes(datetime(2024, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
    policy_index=st.integers(0, 1),
    opt_out=st.sampled_from([(), ("sms",), ("email",)]),
    pause_days=st.one_of(st.none(), st.integers(-10, 60)),
    seed=st.integers(0, 1000),
)
def test_plan_properties(raw, now, zone, policy_index, opt_out, pause_days, seed) -> None:
    policy = RULES.policies[policy_index]
    invoices = _invoices(raw)
    customer = DunningCustomer("ACC", zone, "FR", "fr", True, True, opt_outs=opt_out)
    pauses = []
    if pause_days is not None:
        pauses.append(Pause("promise", until=now.date() + timedelta(days=pause_days)))
    p = plan(customer, invoices, policy, now, pauses)

    # Deterministic, and independent of the input order.
    shuffled = invoices[:]
    random.Random(seed).shuffle(shuffled)
    assert plan(customer, shuffled, policy, now, pauses) == p

    tz = get_zone(zone)
    cal = get_calendar(policy.calendar)
    window = policy.window
    by_number = {i.number: i for i in invoices}
    when: dict[tuple[str, int], datetime] = {}
    seen: set[tuple[str, int, str]] = set()
    for a in p.actions:
        assert a.at.tzinfo is not None and a.at >= now
        assert window.contains(a.at, tz, cal), (a, a.at.astimezone(tz))
        local = a.at.astimezone(tz)
        assert local.weekday() in window.days and not cal.is_holiday(local.date())
        assert a.kind not in opt_out
        assert a.nominal_at <= a.at
        assert list(a.invoices) == sorted(a.invoices)
        for number in a.invoices:
            inv = by_number[number]
            assert not inv.disputed and inv.open_amount > 0
            assert a.step_index >= inv.next_step  # done steps are never planned again
            key = (number, a.step_index, a.kind)
            assert key not in seen  # no (invoice, step) planned twice
            seen.add(key)
            assert when.setdefault((number, a.step_index), a.at) == a.at
        total: dict[str, Decimal] = {}
        for number in a.invoices:
            inv = by_number[number]
            total[inv.currency] = total.get(inv.currency, Decimal(0)) + inv.open_amount
        assert a.amounts == total  # per currency, never mixed
    # Per invoice, steps come strictly later one after the other; at most one is due now.
    per_invoice: dict[str, list[tuple[int, datetime]]] = {}
    for (number, step), at in when.items():
        per_invoice.setdefault(number, []).append((step, at))
    for steps in per_invoice.values():
        steps.sort()
        assert all(a2 > a1 for (_, a1), (_, a2) in itertools.pairwise(steps))
        assert sum(1 for _, at in steps if at <= now) <= 1
    # One message per (instant, step, channel) and unique idempotency keys.
    keys = [a.idempotency_key for a in p.actions]
    assert len(keys) == len(set(keys))
    future = [a.at for a in p.actions if a.at > now]
    assert p.next_wakeup == (min(future) if future else None)
    if pauses and pause_days is not None and pause_days >= 0:
        resume = datetime.combine(now.date() + timedelta(days=pause_days + 1), datetime.min.time())
        resume = resume.replace(tzinfo=tz)
        assert all(a.at >= resume for a in p.actions)
