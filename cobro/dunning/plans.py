"""Payment plans, the pure part: a customer's open amount split into instalments, the
limits of the policy's `payment_plans:` rules, what was paid of each instalment, and
which instalment is missed.

* `propose(total, currency, count, today, rules)`: `count` instalments adding up to `total`
  exactly, in the currency's minor unit (2 decimals for EUR, 0 for JPY, 3 for KWD): equal
  parts, the cents left over one each on the first instalments; instalment k falls `k`
  times `rules.every` after `today` (months: the same day of the month, or its last day).
* `limit_problems(plan, today, rules)`: why the plan is not approved by rule (empty: it is):
  no `payment_plans:` for the policy, `auto_approve: false`, more instalments than
  `max_instalments`, one below `min_instalment`, the last after `max_duration`.
* `allocate(instalments, paid)`: what the customer paid since the plan (its invoices' open
  amount down from the plan's total) goes to the instalments in date order.
* `missed(instalments, paid, today, grace)`: the first instalment still not paid in full
  more than `grace` days after its date: the plan is broken.
* `reminders(...)`: the reminder of each instalment not paid yet (`reminder:` of the rules,
  e.g. `{at: -3d, channel: email, template: instalment_due}`), once per channel.
* `per_invoice(invoices, instalments)`: each invoice's share of each instalment (oldest
  invoice first), for the insurer's rescheduling (RES) of an insured invoice.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from babel.numbers import get_currency_precision

from cobro.dunning.policy import Duration, PaymentPlanRules

STATUSES = ("requested", "approved", "rejected", "completed", "broken", "cancelled")
OPEN_STATUSES = ("requested", "approved")  # one at most per customer


@dataclass(frozen=True, slots=True)
class Instalment:
    seq: int  # 1-based
    due_date: date
    amount: Decimal


def minor_unit(currency: str) -> Decimal:
    """`Decimal("0.01")` for EUR, `Decimal("1")` for JPY, `Decimal("0.001")` for KWD."""
    return Decimal(1).scaleb(-get_currency_precision(currency.upper()))


def add_duration(day: date, duration: Duration, times: int = 1) -> date:
    """`day` plus `times` x `duration` (months keep the day of the month when they can)."""
    n = duration.count * times
    if duration.unit == "d":
        return day + timedelta(days=n)
    if duration.unit == "w":
        return day + timedelta(weeks=n)
    month = day.month - 1 + n
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split(total: Decimal, count: int, currency: str) -> tuple[Decimal, ...]:
    """`count` amounts in the currency's minor unit adding up to `total` exactly."""
    if count < 1:
        raise ValueError("a plan has at least one instalment")
    unit = minor_unit(currency)
    if total <= 0 or total != total.quantize(unit):
        raise ValueError(f"cannot split {total} {currency} in {unit} units")
    base = (total / count).quantize(unit, rounding=ROUND_DOWN)
    extra = int((total - base * count) / unit)
    return tuple(base + unit if i < extra else base for i in range(count))


def propose(
    total: Decimal, currency: str, count: int, today: date, rules: PaymentPlanRules
) -> tuple[Instalment, ...]:
    amounts = split(total, count, currency)
    return tuple(
        Instalment(k, add_duration(today, rules.every, k), amount)
        for k, amount in enumerate(amounts, start=1)
    )


def limit_problems(
    instalments: Sequence[Instalment],
    currency: str,
    today: date,
    rules: PaymentPlanRules | None,
) -> list[str]:
    """Why the plan needs a collector (empty: approved by rule)."""
    if rules is None:
        return ["the customer's dunning policy has no `payment_plans:` rules"]
    problems = []
    if not rules.auto_approve:
        problems.append("the policy's payment plans are approved by a collector")
    if len(instalments) > rules.max_instalments:
        problems.append(f"{len(instalments)} instalments: at most {rules.max_instalments}")
    minimum = rules.min_amount(currency)
    smallest = min((i.amount for i in instalments), default=Decimal(0))
    if minimum is None:
        problems.append(f"no minimum instalment set for {currency}")
    elif smallest < minimum:
        problems.append(f"instalments of {smallest} {currency}: at least {minimum} {currency}")
    latest = add_duration(today, rules.max_duration)
    if instalments and instalments[-1].due_date > latest:
        problems.append(
            f"the last instalment on {instalments[-1].due_date}: at most "
            f"{rules.max_duration.written} from {today} ({latest})"
        )
    return problems


def paid_so_far(total: Decimal, still_open: Decimal) -> Decimal:
    """What was paid towards a plan of `total`: its invoices' open amount went down by it."""
    return min(max(total - still_open, Decimal(0)), total)


def allocate(instalments: Sequence[Instalment], paid: Decimal) -> tuple[Decimal, ...]:
    """`paid` spread over the instalments in date order, each up to its amount."""
    left = max(paid, Decimal(0))
    out = []
    for inst in instalments:
        part = min(left, inst.amount)
        out.append(part)
        left -= part
    return tuple(out)


def missed(
    instalments: Sequence[Instalment], paid: Sequence[Decimal], today: date, grace: Duration
) -> Instalment | None:
    """The first instalment not paid in full `grace` days after its date (None: none)."""
    for inst, part in zip(instalments, paid, strict=True):
        if part < inst.amount and today > add_duration(inst.due_date, grace):
            return inst
    return None


def check_day(inst: Instalment, grace: Duration) -> date:
    """The first local day on which `inst`, unpaid, is missed."""
    return add_duration(inst.due_date, grace) + timedelta(days=1)


def per_invoice(
    invoices: Sequence[tuple[str, Decimal]], instalments: Sequence[Instalment]
) -> dict[str, list[tuple[date, Decimal]]]:
    """Invoice number -> its (date, amount) shares: the instalments pay the invoices in
    the order given (oldest first); each invoice's shares add up to its amount."""
    out: dict[str, list[tuple[date, Decimal]]] = {n: [] for n, _ in invoices}
    queue = [[n, a] for n, a in invoices if a > 0]
    for inst in instalments:
        left = inst.amount
        while left > 0 and queue:
            number, owed = queue[0]
            part = min(left, owed)
            out[number].append((inst.due_date, part))
            left -= part
            queue[0][1] = owed - part
            if queue[0][1] <= 0:
                queue.pop(0)
    return out


# ---------------------------------------------------------------------------- reminders


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """A reminder of one instalment on one channel: at the send window's opening of the
    first allowed day on or after `instalment date + reminder.at` (calendar days), never
    before `not_before` (now, or the end of a pause)."""

    at: datetime
    channel: str
    seq: int
    key: str


def reminder_key(account: str, plan_id: int, seq: int, channel: str) -> str:
    """The contact's idempotency key: one per plan, instalment and channel."""
    return f"plan:{account}:p{plan_id}:i{seq}:{channel}"


def reminders(
    account: str,
    plan_id: int,
    instalments: Sequence[Instalment],
    paid: Sequence[Decimal],
    rules: PaymentPlanRules,
    channels: Sequence[str],
    done_keys: Collection[str],
    not_before: datetime,
    opening: Callable[[date], datetime],
    local_day: Callable[[datetime], date],
) -> list[PlannedReminder]:
    """The instalment reminders still to send, by time: instalments not paid in full and
    not missed yet, on `channels` (those the customer may get), not already sent
    (`done_keys`: the keys of its contacts, whatever became of them)."""
    out = []
    for inst, part in zip(instalments, paid, strict=True):
        if part >= inst.amount:
            continue
        last_day = add_duration(inst.due_date, rules.grace)
        nominal = opening(inst.due_date + timedelta(days=int(rules.reminder.at)))
        at = max(nominal, not_before)
        if local_day(at) > last_day:
            continue  # missed before it could be reminded: the plan breaks instead
        for channel in rules.reminder.channel or ():
            key = reminder_key(account, plan_id, inst.seq, channel)
            if channel in channels and key not in done_keys:
                out.append(PlannedReminder(at, channel, inst.seq, key))
    out.sort(key=lambda r: (r.at, r.seq, r.channel))
    return out
