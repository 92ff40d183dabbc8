"""The pure dunning planner: what to send, to whom, when, for which invoices.

`plan(customer, invoices, policy, now, pauses)` -> `DunningPlan` with every remaining action
(assuming nothing gets paid), ordered by time. The dunning workflow executes the actions
whose `at <= now` (`plan.due`), then sleeps until `plan.next_wakeup`, and re-plans on wake-up
or when a fact changes. Everything here is deterministic: same inputs, same plan.

Rules
-----
* **Levels per invoice.** Step `i` of invoice X is due on `X.due_date + steps[i].at` (business
  days of the policy calendar if `business_days`, else calendar days), at the opening of the
  send window that day, in the customer's time zone; a day that is not allowed (weekday outside
  `send_days`, or a holiday) moves to the next allowed day's opening. Invoices never share a
  level: a payment or a new invoice changes nothing for the others.
* **Done steps** (`InvoiceState.done_steps`) are never planned again, and neither is any step
  before the highest done one (levels only move forward).
* **Stale steps collapse.** Of the steps of one invoice that are already due at the first
  allowed instant >= `max(now, pause end)`, only the *latest* is planned (at that instant);
  the earlier ones are reported in `skipped` with reason `superseded` and are never sent. An
  invoice imported 20 days late under a -5d/+1d/+7d/+15d policy gets the +15d step only.
  Recording the executed step as done moves the level past the superseded ones.
* **Disputed** invoices (and invoices with nothing left to pay) are excluded until resolved.
* **Pauses**: a promise to pay or a manual pause (customer-wide, or for some invoices) until
  a date D plans nothing before the first window opening after D (D is the last paused day,
  in the customer's time zone); with no end date nothing is planned until it is lifted.
* **Opt-outs**: a channel the customer opted out of, or has no address/number for, is dropped
  from the step (listed in `dropped`); the step's other channels still go. A message step
  with no channel left is ignored for this customer (the next step takes over).
* **Grouping**: one action per (instant, step, channel/kind) carrying every invoice that
  reaches that step at that instant, amounts summed per currency (never converted).
* **Idempotency key**: `dunning:{account}:{policy}:s{step_index}:{kind}:{digest}` where
  `digest` is the first 16 hex digits of the SHA-256 of the sorted invoice numbers joined by
  `\\n`. It does not depend on `now` or on the planned instant, so a re-plan of the same
  situation (e.g. after a worker crash) gives the same key; a step is reached once per invoice,
  so the key is never reused for another send. A group that changes (one invoice paid in the
  meantime) is a new message, hence a new key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cobro.dunning.calendar import (
    Calendar,
    add_days,
    get_calendar,
    get_zone,
    local_start_of_day,
    next_send_instant,
    window_opening,
)
from cobro.dunning.policy import DunningPolicy

ActionKind = Literal["email", "sms", "task", "claim"]
KIND_ORDER = {"email": 0, "sms": 1, "task": 2, "claim": 3}


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class DunningCustomer:
    account: str
    timezone: str = "UTC"  # IANA
    country: str = "FR"
    language: str = "en"
    has_email: bool = True
    has_phone: bool = False
    opt_outs: tuple[str, ...] = ()  # channels the customer refused: "email", "sms"

    def blocked(self, channel: str) -> str | None:
        """Why `channel` cannot be used for this customer (None if it can)."""
        if channel in self.opt_outs:
            return "opted_out"
        if channel == "email" and not self.has_email:
            return "no_address"
        if channel == "sms" and not self.has_phone:
            return "no_address"
        return None


@dataclass(frozen=True, slots=True)
class InvoiceState:
    number: str
    due_date: date
    currency: str
    open_amount: Decimal
    disputed: bool = False
    done_steps: tuple[int, ...] = ()  # step indices already executed (or marked skipped)

    @property
    def next_step(self) -> int:
        return max(self.done_steps) + 1 if self.done_steps else 0


@dataclass(frozen=True, slots=True)
class Pause:
    kind: Literal["promise", "manual"]
    until: date | None = None  # last paused day (customer's local date); None: until lifted
    invoices: tuple[str, ...] = ()  # empty: the whole customer
    reason: str = ""


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class PlannedAction:
    at: datetime  # aware UTC, always inside the send window
    kind: ActionKind
    step_index: int
    step_at: str  # the policy offset, e.g. "+15d"
    policy: str
    invoices: tuple[str, ...]  # sorted numbers
    amounts: dict[str, Decimal]  # open amount per currency, sorted by currency
    idempotency_key: str
    nominal_at: datetime  # when the step was due by the policy (<= at)
    template: str | None = None  # email / sms
    note: str | None = None  # task / claim
    assignee_role: str | None = None  # task

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "step_index": self.step_index,
            "step_at": self.step_at,
            "policy": self.policy,
            "template": self.template,
            "note": self.note,
            "assignee_role": self.assignee_role,
            "invoices": list(self.invoices),
            "amounts": {c: str(a) for c, a in self.amounts.items()},
            "idempotency_key": self.idempotency_key,
            "nominal_at": self.nominal_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SkippedStep:
    invoice: str
    step_index: int
    nominal_at: datetime
    reason: Literal["superseded"] = "superseded"
    superseded_by: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "invoice": self.invoice,
            "step_index": self.step_index,
            "nominal_at": self.nominal_at.isoformat(),
            "reason": self.reason,
            "superseded_by": self.superseded_by,
        }


@dataclass(frozen=True, slots=True)
class DroppedChannel:
    step_index: int
    channel: str
    reason: Literal["opted_out", "no_address"]


@dataclass(frozen=True, slots=True)
class DunningPlan:
    account: str
    policy: str
    computed_at: datetime  # the `now` of the computation
    actions: tuple[PlannedAction, ...]
    next_wakeup: datetime | None  # first action strictly after `now`; None: nothing planned
    skipped: tuple[SkippedStep, ...] = ()
    dropped: tuple[DroppedChannel, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)  # invoice -> disputed | paused | paid
    paused_until: datetime | None = None  # customer-wide pause end (UTC), if paused

    @property
    def due(self) -> tuple[PlannedAction, ...]:
        """The actions to execute now (`at <= computed_at`)."""
        return tuple(a for a in self.actions if a.at <= self.computed_at)

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (for `cobro dunning plan --json`)."""
        return {
            "account": self.account,
            "policy": self.policy,
            "computed_at": self.computed_at.isoformat(),
            "next_wakeup": self.next_wakeup.isoformat() if self.next_wakeup else None,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "actions": [a.to_json() for a in self.actions],
            "skipped": [s.to_json() for s in self.skipped],
            "dropped": [
                {"step_index": d.step_index, "channel": d.channel, "reason": d.reason}
                for d in self.dropped
            ],
            "excluded": dict(self.excluded),
        }


# ---------------------------------------------------------------------------- planner


def idempotency_key(
    account: str, policy: str, step_index: int, kind: str, invoices: Iterable[str]
) -> str:
    digest = hashlib.sha256("\n".join(sorted(invoices)).encode()).hexdigest()[:16]
    return f"dunning:{account}:{policy}:s{step_index}:{kind}:{digest}"


def as_of_instant(as_of: date | datetime, timezone: str = "UTC") -> datetime:
    """`--as-of DATE` -> the start of that day in the customer's zone (UTC); a datetime must
    be aware and is returned in UTC."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of datetime must be timezone-aware")
        return as_of.astimezone(UTC)
    return local_start_of_day(as_of, get_zone(timezone))


def plan(
    customer: DunningCustomer,
    invoices: Sequence[InvoiceState],
    policy: DunningPolicy,
    now: datetime,
    pauses: Sequence[Pause] = (),
    *,
    calendar: Calendar | None = None,
) -> DunningPlan:
    """Every remaining dunning action of `customer` under `policy`, as of `now` (aware)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)
    tz = get_zone(customer.timezone)
    cal = calendar or get_calendar(policy.calendar_country(customer.country))
    window = policy.window
    steps = policy.steps

    # Channels per step for this customer; steps left with nothing to do are not planned.
    dropped: list[DroppedChannel] = []
    step_kinds: list[tuple[str, ...]] = []
    for i, step in enumerate(steps):
        if step.kind == "send":
            kept = []
            for ch in step.channel or ():
                why = customer.blocked(ch)
                if why is None:
                    kept.append(ch)
                else:
                    dropped.append(DroppedChannel(i, ch, why))  # type: ignore[arg-type]
            step_kinds.append(tuple(kept))
        else:
            step_kinds.append((step.kind,))
    live = [i for i in range(len(steps)) if step_kinds[i]]

    # Pauses -> release instants (None: paused indefinitely).
    customer_release, invoice_release = _releases(pauses, tz)
    excluded: dict[str, str] = {}
    skipped: list[SkippedStep] = []
    if calendar is None:  # shared across calls: same calendar, zone and window
        ctx_key = (cal.country, policy.business_days, customer.timezone, window)  # type: ignore[attr-defined]
        nominal_memo = _NOMINAL_CACHE.get(ctx_key)
        if nominal_memo is None or len(nominal_memo) > _NOMINAL_CACHE_MAX:
            nominal_memo = _NOMINAL_CACHE[ctx_key] = {}
    else:
        nominal_memo = {}
    release_memo: dict[datetime, datetime] = {}
    groups: dict[tuple[datetime, int], list[tuple[InvoiceState, datetime]]] = {}

    def nominal(due: date, offset: int) -> datetime:
        key = (due, offset)
        t = nominal_memo.get(key)
        if t is None:
            d = add_days(due, offset, cal, policy.business_days)
            t = nominal_memo[key] = window_opening(d, tz, window, cal)
        return t

    for inv in sorted(invoices, key=lambda x: x.number):
        if inv.disputed:
            excluded[inv.number] = "disputed"
            continue
        if inv.open_amount <= 0:
            excluded[inv.number] = "paid"
            continue
        release = now
        for r in (customer_release, invoice_release.get(inv.number, _NO_PAUSE)):
            if r is _INDEFINITE:
                release = None
                break
            if r is not _NO_PAUSE and r > release:  # type: ignore[operator]
                release = r  # type: ignore[assignment]
        if release is None:
            excluded[inv.number] = "paused"
            continue
        first_allowed = release_memo.get(release)
        if first_allowed is None:
            first_allowed = release_memo[release] = next_send_instant(release, tz, window, cal)
        start = inv.next_step
        # (step, nominal, effective instant); effective = first_allowed for steps already due.
        kept: list[tuple[int, datetime, datetime]] = []
        stale: list[tuple[int, datetime, datetime]] = []
        for i in live:
            if i < start:
                continue
            t = nominal(inv.due_date, steps[i].at)
            eff = first_allowed if t <= first_allowed else t
            if kept and kept[-1][2] == eff:  # same instant: only the latest step goes
                stale.append(kept.pop())
            kept.append((i, t, eff))
        survivor = {eff: i for i, _, eff in kept}
        for i, t, eff in kept:
            groups.setdefault((eff, i), []).append((inv, t))
        skipped.extend(
            SkippedStep(inv.number, j, tj, "superseded", survivor[eff]) for j, tj, eff in stale
        )

    actions: list[PlannedAction] = []
    for (at, i), members in groups.items():
        step = steps[i]
        numbers = tuple(inv.number for inv, _ in members)  # already sorted
        totals: dict[str, Decimal] = {}
        for inv, _ in members:
            totals[inv.currency] = totals.get(inv.currency, Decimal(0)) + inv.open_amount
        amounts = {c: totals[c] for c in sorted(totals)}
        nominal_at = min(t for _, t in members)
        for kind in step_kinds[i]:
            actions.append(
                PlannedAction(
                    at=at,
                    kind=kind,  # type: ignore[arg-type]
                    step_index=i,
                    step_at=step.label,
                    policy=policy.name,
                    invoices=numbers,
                    amounts=amounts,
                    idempotency_key=idempotency_key(
                        customer.account, policy.name, i, kind, numbers
                    ),
                    nominal_at=nominal_at,
                    template=step.template,
                    note=step.note,
                    assignee_role=step.assignee_role,
                )
            )
    actions.sort(key=lambda a: (a.at, a.step_index, KIND_ORDER[a.kind], a.invoices))
    future = [a.at for a in actions if a.at > now]
    paused_until = None
    if customer_release is _INDEFINITE:
        paused_until = None
    elif customer_release is not _NO_PAUSE and customer_release > now:  # type: ignore[operator]
        paused_until = customer_release  # type: ignore[assignment]
    skipped.sort(key=lambda s: (s.invoice, s.step_index))
    return DunningPlan(
        account=customer.account,
        policy=policy.name,
        computed_at=now,
        actions=tuple(actions),
        next_wakeup=min(future) if future else None,
        skipped=tuple(skipped),
        dropped=tuple(dropped),
        excluded=excluded,
        paused_until=paused_until,
    )


_NOMINAL_CACHE: dict[tuple[Any, ...], dict[tuple[date, int], datetime]] = {}
_NOMINAL_CACHE_MAX = 50_000  # (due date, offset) entries per calendar/zone/window
_NO_PAUSE: Any = object()
_INDEFINITE: Any = object()


def _releases(pauses: Sequence[Pause], tz: ZoneInfo) -> tuple[Any, dict[str, Any]]:
    """Customer-wide release instant and per-invoice ones (`_NO_PAUSE`, `_INDEFINITE` or UTC)."""

    def merge(a: Any, b: Any) -> Any:
        if a is _INDEFINITE or b is _INDEFINITE:
            return _INDEFINITE
        if a is _NO_PAUSE:
            return b
        return max(a, b)

    customer: Any = _NO_PAUSE
    per_invoice: dict[str, Any] = {}
    for p in pauses:
        end = _INDEFINITE if p.until is None else local_start_of_day(p.until + timedelta(1), tz)
        if p.invoices:
            for n in p.invoices:
                per_invoice[n] = merge(per_invoice.get(n, _NO_PAUSE), end)
        else:
            customer = merge(customer, end)
    return customer, per_invoice
