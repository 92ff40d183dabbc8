"""The pure dunning planner: what to send, to whom, when, for which invoices.

`plan(customer, invoices, policy, now, pauses, history=contacts)` -> `DunningPlan` with every
remaining action (assuming nothing gets paid), ordered by time. The dunning workflow executes
the actions whose `at <= now` (`plan.due`), then sleeps until `plan.next_wakeup`, and re-plans
on wake-up or when a fact changes. Everything here is deterministic: same inputs, same plan.

Planning rules
--------------
* **Levels per invoice.** Each invoice climbs the policy's steps one by one: its next step is
  the one after the highest step it reached (`InvoiceState.done_steps`); a step is never
  planned twice and never skipped, whatever payments (a partial payment changes the amount,
  not the level), new invoices or pauses happen. Two exceptions, both reported in `skipped`:
  a *pre-due* step (`at < 0`) that could only go out on or after the due date is moot
  (`past_due`), and with `catch_up: latest` the steps already due at a late start collapse
  to the latest one (`superseded`).
* **When a step is due.** Step `s` of invoice X is due at the latest of
  - its nominal instant: `X.due_date + steps[s].at` (business days of the calendar if
    `business_days`, a week being 5 of them; calendar days otherwise), at the opening of the
    send window that day, in the customer's time zone;
  - the first send instant at or after `now` and after any pause;
  - (`catch_up: first_unsent`) the policy's spacing after the previous step actually
    reached: `reached_at + (steps[s].at - steps[s-1].at)`. An invoice entering late
    (imported 60 days overdue, a pause or promise ended, a policy change) therefore starts at
    the first level it has *not* received and the later levels follow at the policy's pace;
    it never jumps to the latest level.
  A day is allowed when it is one of `send_days` and not a holiday of the calendar:
  `calendar: customer` uses the customer's country (and its subdivision when known), a
  fixed country (`FR`) the same holidays for everyone.
* **One contact per customer, channel and send window.** Everything due for a customer on a
  channel (email, SMS, WhatsApp) becomes one message: it goes at the earliest instant one of its
  invoices is due, but never sooner than `min_gap` (business) days after the previous contact
  on that channel (`history` and the contacts planned before it); it carries every invoice
  whose step on that channel is due by the end of that day's window. The most advanced
  invoice (highest step) chooses the template and tone (`step_index`, `template`); each
  member invoice reaches its own step (`levels`). The message's statement lists every open
  invoice (see `cobro.dunning.messages`). Invoices due later on the channel wait for their
  own day, `min_gap` after.
* **Declarations** (`action: declare`) act only on insured invoices with a declaration
  deadline (`InvoiceState.deadline`, the declare-by date of `rules/insurance.yaml`): one
  `declare` action per customer and day. With `at: deadline - 5d` the step is due at the
  send window's opening 5 calendar days before that date, whatever the day (no send days,
  no holidays, no catch-up spacing: a deadline never moves later); insured invoices with no
  deadline (below the minimum declarable, or no terms) pass the step with nothing to do
  (`skipped`: `nothing_to_declare`); uninsured ones get what `not_insured` says, at
  `not_insured.at` (default: with the step before).
* **Tasks and claims** are one per customer per step and day: every invoice reaching a
  `task` step that day is one task. A `claim` acts only on invoices insured at their due date
  (`InvoiceState.insured`: a named cover in force or an unnamed-buyer ceiling that applies);
  the others get what the policy's `not_insured` says (default: a task "not insured: decide
  on legal action"; `skip`: nothing). Either way each invoice's level moves past the step. A
  claim action lists its invoices with their due dates, so a deadline-driven insurer
  declaration can later set its `at` (the insurer's claim-by date) without changing its key.
* **Disputed** invoices (and invoices with nothing left to pay) are excluded until resolved.
* **Pauses**: a promise to pay or a manual pause (customer-wide, or for some invoices) until
  a date D plans nothing before the first window opening after D (D is the last paused day,
  in the customer's time zone); with no end date nothing is planned until it is lifted.
* **Opt-outs**: a channel the customer opted out of, or has no address/number for, is dropped
  from the step (listed in `dropped`); the step's other channels still go. A message step
  with no channel left is ignored for this customer (the next step takes over).
* **Idempotency key** (one per contact): `dunning:{account}:{policy}:s{level}:{kind}:{digest}`
  with `digest` the first 16 hex digits of the SHA-256 of the sorted `number:step` pairs of
  its member invoices joined by `\\n`. It depends neither on `now` nor on the planned
  instant, so a re-plan of the same situation (after a worker crash) gives the same key; an
  invoice reaches a step once, so the key is never reused for another contact. A group that
  changes (one invoice paid meanwhile) is a new contact, hence a new key.
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
    opening_on,
    window_opening,
)
from cobro.dunning.policy import DunningPolicy

ActionKind = Literal["email", "sms", "whatsapp", "task", "claim", "declare"]
KIND_ORDER = {"email": 0, "sms": 1, "whatsapp": 2, "task": 3, "claim": 4, "declare": 5}
MESSAGE_CHANNELS = ("email", "sms", "whatsapp")


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class DunningCustomer:
    account: str
    timezone: str = "UTC"  # IANA
    country: str = "FR"
    language: str = "en"
    has_email: bool = True
    has_phone: bool = False
    opt_outs: tuple[str, ...] = ()  # channels refused: "email", "sms", "whatsapp"
    subdivision: str | None = None  # ISO 3166-2 without the country (`BY`), when known

    def blocked(self, channel: str) -> str | None:
        """Why `channel` cannot be used for this customer (None if it can)."""
        if channel in self.opt_outs:
            return "opted_out"
        if channel == "email" and not self.has_email:
            return "no_address"
        if channel in ("sms", "whatsapp") and not self.has_phone:
            return "no_address"
        return None


@dataclass(frozen=True, slots=True)
class InvoiceState:
    number: str
    due_date: date
    currency: str
    open_amount: Decimal
    disputed: bool = False
    done_steps: tuple[int, ...] = ()  # step indices reached (every channel done)
    insured: bool = False  # covered at its due date (named cover or unnamed-buyer ceiling)
    partial: tuple[str, ...] = ()  # channels already done of a step not complete yet (the
    partial_step: int | None = None  # email of an email+sms step); None: the next step
    reached_at: datetime | None = None  # when the highest done step was reached (aware)
    deadline: date | None = None  # the insurer's declare-by date (insured, declaration due)

    @property
    def next_step(self) -> int:
        return max(self.done_steps) + 1 if self.done_steps else 0

    @property
    def current_step(self) -> int:
        """The step the invoice is at: the partly done one, else the next one."""
        if self.partial and self.partial_step is not None:
            return max(self.partial_step, self.next_step)
        return self.next_step


@dataclass(frozen=True, slots=True)
class Pause:
    kind: Literal["promise", "manual"]
    until: date | None = None  # last paused day (customer's local date); None: until lifted
    invoices: tuple[str, ...] = ()  # empty: the whole customer
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    """A message the customer already got (or that is claimed): for `min_gap` and for the
    templates ("despite our reminders" only after one)."""

    at: datetime  # aware
    channel: str  # email | sms
    level: int | None = None  # step index of the contact (its template's step)
    template: str | None = None


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class PlannedAction:
    at: datetime  # aware UTC, always inside the send window
    kind: ActionKind
    step_index: int  # the contact's level: the most advanced member's step
    step_at: str  # that step's offset as written in the policy, e.g. "+1w"
    policy: str
    invoices: tuple[str, ...]  # sorted numbers of the member invoices
    amounts: dict[str, Decimal]  # their open amount per currency, sorted by currency
    nominal_at: datetime  # earliest instant a member was due by the policy (<= at)
    template: str | None = None  # email / sms
    note: str | None = None  # task / claim
    assignee_role: str | None = None  # task
    levels: dict[str, int] = field(default_factory=dict)  # member -> the step it reaches
    due_dates: dict[str, date] = field(default_factory=dict)  # member -> due date (claims)
    reason: str | None = None  # "not_insured" for the task replacing a claim
    account: str = ""

    @property
    def idempotency_key(self) -> str:
        """One per contact (see the module docstring); computed on demand."""
        pairs = (f"{n}:{i}" for n, i in self.levels.items())
        return idempotency_key(self.account, self.policy, self.step_index, self.kind, pairs)

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
            "levels": dict(self.levels),
            "amounts": {c: str(a) for c, a in self.amounts.items()},
            "idempotency_key": self.idempotency_key,
            "nominal_at": self.nominal_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SkippedStep:
    invoice: str
    step_index: int
    nominal_at: datetime
    reason: Literal["superseded", "past_due", "nothing_to_declare"] = "superseded"
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
    calendar: str = ""  # the holidays used: `FR`, `DE-BY`

    @property
    def due(self) -> tuple[PlannedAction, ...]:
        """The actions to execute now (`at <= computed_at`)."""
        return tuple(a for a in self.actions if a.at <= self.computed_at)

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (for `cobro dunning plan --json`)."""
        return {
            "account": self.account,
            "policy": self.policy,
            "calendar": self.calendar,
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
    account: str, policy: str, step_index: int, kind: str, members: Iterable[str]
) -> str:
    """The contact's key; `members` are `number:step` pairs (or plain numbers)."""
    digest = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:16]
    return f"dunning:{account}:{policy}:s{step_index}:{kind}:{digest}"


def as_of_instant(as_of: date | datetime, timezone: str = "UTC") -> datetime:
    """`--as-of DATE` -> the start of that day in the customer's zone (UTC); a datetime must
    be aware and is returned in UTC."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of datetime must be timezone-aware")
        return as_of.astimezone(UTC)
    return local_start_of_day(as_of, get_zone(timezone))


def customer_calendar(policy: DunningPolicy, customer: DunningCustomer) -> Calendar:
    """The holidays that apply to `customer` under `policy` (shared, cached)."""
    return get_calendar(*policy.calendar_of(customer.country, customer.subdivision))


class _Invoice:
    """One invoice's progress during the simulation."""

    __slots__ = ("cand", "collapsed", "inv", "partial", "prev", "reached", "release", "step")

    def __init__(self, inv: InvoiceState, release: datetime) -> None:
        self.inv = inv
        self.step = inv.current_step
        self.partial: set[str] = set(inv.partial) if self.step == inv.current_step else set()
        if inv.partial_step is not None and inv.partial_step < inv.next_step:
            self.partial = set()  # channels of a step since completed
        self.reached = inv.reached_at.astimezone(UTC) if inv.reached_at else None
        self.prev = max(inv.done_steps) if inv.done_steps else None  # `reached` belongs to it
        self.release = release
        self.cand: tuple[int, datetime, datetime, date] | None = None  # step, at, nominal, day
        self.collapsed = False


def plan(
    customer: DunningCustomer,
    invoices: Sequence[InvoiceState],
    policy: DunningPolicy,
    now: datetime,
    pauses: Sequence[Pause] = (),
    *,
    history: Sequence[Contact] = (),
    calendar: Calendar | None = None,
) -> DunningPlan:
    """Every remaining dunning action of `customer` under `policy`, as of `now` (aware)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)
    tz = get_zone(customer.timezone)
    country, subdivision = policy.calendar_of(customer.country, customer.subdivision)
    cal = calendar or get_calendar(country, subdivision)
    subdivision = getattr(cal, "subdivision", subdivision)  # None when unknown to `holidays`
    window = policy.window
    steps = policy.steps
    business = policy.business_days
    offsets = [policy.offset_days(s) for s in steps]
    from_deadline = [s.at.from_deadline for s in steps]
    fallback = [policy.fallback_days(i) if d else 0 for i, d in enumerate(from_deadline)]
    first_unsent = policy.catch_up == "first_unsent"
    n_steps = len(steps)

    # Channels per step for this customer; steps left with nothing to do are not planned.
    dropped: list[DroppedChannel] = []
    step_kinds: list[frozenset[str]] = []
    for i, step in enumerate(steps):
        if step.kind == "send":
            kept = []
            for ch in step.channel or ():
                why = customer.blocked(ch)
                if why is None:
                    kept.append(ch)
                else:
                    dropped.append(DroppedChannel(i, ch, why))  # type: ignore[arg-type]
            step_kinds.append(frozenset(kept))
        else:
            step_kinds.append(frozenset((step.kind,)))

    if calendar is None:  # shared across calls: same calendar, zone and window
        ctx_key = (country, subdivision, business, customer.timezone, window)
        memo = _NOMINAL_CACHE.get(ctx_key)
        if memo is None or len(memo) > _NOMINAL_CACHE_MAX:
            memo = _NOMINAL_CACHE[ctx_key] = {}
    else:
        memo = {}

    def opening_after(d: date, offset: int) -> datetime:
        key = (d, offset)
        t = memo.get(key)
        if t is None:
            t = memo[key] = window_opening(add_days(d, offset, cal, business), tz, window, cal)
        return t

    def nominal_of(inv: InvoiceState, i: int) -> datetime:
        """The instant step `i` is due for `inv` by the policy alone."""
        if not from_deadline[i]:
            return opening_after(inv.due_date, offsets[i])
        if inv.insured and inv.deadline is not None:
            return opening_on(inv.deadline + timedelta(days=offsets[i]), tz, window)
        return opening_after(inv.due_date, fallback[i])

    day_memo: dict[datetime, date] = {}

    def local_day(t: datetime) -> date:
        d = day_memo.get(t)
        if d is None:
            d = day_memo[t] = t.astimezone(tz).date()
        return d

    # Pauses -> release instants (None: paused indefinitely).
    customer_release, invoice_release = _releases(pauses, tz)
    excluded: dict[str, str] = {}
    skipped: list[SkippedStep] = []
    release_memo: dict[datetime, datetime] = {}
    states: list[_Invoice] = []
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
        if inv.current_step < n_steps:
            states.append(_Invoice(inv, first_allowed))

    def candidate(s: _Invoice) -> tuple[int, datetime, datetime, date] | None:
        """(step, instant, nominal, local day) of the invoice's next step; None: done."""
        if s.cand is not None:
            return s.cand
        inv = s.inv
        i = s.step
        while i < n_steps:
            if not step_kinds[i] - s.partial:
                i += 1
                s.partial = set()
                continue
            nominal = nominal_of(inv, i)
            t = max(nominal, s.release)
            if not first_unsent and not s.collapsed:
                s.collapsed = True  # a late start jumps to the latest step already due
                j = i
                for k in range(i + 1, n_steps):
                    if step_kinds[k] and nominal_of(inv, k) <= t:
                        j = k
                if j != i:
                    for k in range(i, j):
                        if step_kinds[k]:
                            tk = nominal_of(inv, k)
                            skipped.append(SkippedStep(inv.number, k, tk, "superseded", j))
                    i, s.partial = j, set()
                    continue
            if (
                first_unsent
                and s.reached is not None
                and s.prev is not None
                and not from_deadline[i]
                and not from_deadline[s.prev]
            ):
                t = max(t, opening_after(local_day(s.reached), offsets[i] - offsets[s.prev]))
            elif from_deadline[i] and s.reached is not None:
                t = max(t, s.reached)  # never before the step it follows
            day = local_day(t)
            if offsets[i] < 0 and not from_deadline[i] and day >= inv.due_date:  # pre-due, late
                skipped.append(SkippedStep(inv.number, i, nominal, "past_due"))
                i += 1
                s.partial = set()
                continue
            s.step = i
            s.cand = (i, t, nominal, day)
            return s.cand
        s.step = n_steps
        return None

    last_contact: dict[str, datetime] = {}
    for c in history:
        if c.channel in MESSAGE_CHANNELS:
            at = c.at.astimezone(UTC)
            if c.channel not in last_contact or at > last_contact[c.channel]:
                last_contact[c.channel] = at
    gap = policy.min_gap_days
    not_insured = policy.not_insured

    is_send = [step.kind == "send" for step in steps]
    actions: list[PlannedAction] = []
    budget = sum(n_steps - s.step for s in states) * 3 + 8  # every round advances someone
    while budget > 0:
        budget -= 1
        # The earliest instant each channel / action step has something due...
        live: list[Member] = []
        first: dict[Any, datetime] = {}  # channel, or step index of a task / claim
        for s in states:
            c = s.cand or candidate(s)
            if c is None:
                continue
            live.append((s, c))
            i, t = c[0], c[1]
            if is_send[i]:
                for ch in step_kinds[i]:
                    if ch not in s.partial and (ch not in first or t < first[ch]):
                        first[ch] = t
            elif i not in first or t < first[i]:
                first[i] = t
        if not live:
            break
        for ch in MESSAGE_CHANNELS:
            if ch in first and ch in last_contact:
                first[ch] = max(first[ch], opening_after(local_day(last_contact[ch]), gap))
        # ...then every event on the first of those days, with all that is due by then.
        day = min(local_day(t) for t in first.values())
        groups: dict[Any, list[Member]] = {}
        for s, c in live:
            if c[3] > day:
                continue
            i = c[0]
            if is_send[i]:
                for ch in step_kinds[i]:
                    if ch not in s.partial and local_day(first[ch]) == day:
                        groups.setdefault(ch, []).append((s, c))
            elif local_day(first[i]) == day:
                groups.setdefault(i, []).append((s, c))
        done: list[tuple[_Invoice, int, str, datetime]] = []
        for key in sorted(
            groups, key=lambda k: (first[k], KIND_ORDER.get(k, KIND_ORDER["task"]), str(k))
        ):
            members, t = groups[key], first[key]
            if isinstance(key, str):
                actions.append(_message(customer, policy, key, t, members))
                last_contact[key] = t
                kind = key
            elif (kind := steps[key].kind) == "task":
                actions.append(_task(customer, policy, key, t, members))
            else:
                insured = [m for m in members if m[0].inv.insured]
                uninsured = [m for m in members if not m[0].inv.insured]
                if kind == "declare":  # only what the policy's terms require is declared
                    for m in insured:
                        if m[0].inv.deadline is None:
                            skipped.append(
                                SkippedStep(m[0].inv.number, key, m[1][2], "nothing_to_declare")
                            )
                    insured = [m for m in insured if m[0].inv.deadline is not None]
                if insured:
                    actions.append(_task(customer, policy, key, t, insured, kind=kind))
                if uninsured and not_insured.action == "task":
                    actions.append(
                        _task(
                            customer,
                            policy,
                            key,
                            t,
                            uninsured,
                            note=not_insured.note,
                            assignee_role=not_insured.assignee_role,
                            reason="not_insured",
                        )
                    )
                # `skip`: nothing happens, the invoices still move past the step
            done.extend((s, c[0], kind, t) for s, c in members)
        for s, i, kind, t in done:
            s.partial.add(kind)
            if kind in ("task", "claim", "declare") or not step_kinds[i] - s.partial:
                s.prev, s.reached, s.step, s.partial = i, t, i + 1, set()
            s.cand = None

    actions.sort(key=lambda a: (a.at, KIND_ORDER[a.kind], a.step_index, a.invoices))
    future = [a.at for a in actions if a.at > now]
    paused_until = None
    if customer_release not in (_INDEFINITE, _NO_PAUSE) and customer_release > now:
        paused_until = customer_release
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
        calendar=f"{country}-{subdivision}" if subdivision else country,
    )


Member = tuple[_Invoice, tuple[int, datetime, datetime, date]]


def _totals(members: Sequence[Member]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for s, _ in members:
        inv = s.inv
        cur = inv.currency
        totals[cur] = totals[cur] + inv.open_amount if cur in totals else inv.open_amount
    if len(totals) == 1:
        return totals
    return dict(sorted(totals.items()))


def _message(
    customer: DunningCustomer,
    policy: DunningPolicy,
    channel: str,
    at: datetime,
    members: Sequence[Member],
) -> PlannedAction:
    level = max(c[0] for _, c in members)
    step = policy.steps[level]
    levels = {s.inv.number: c[0] for s, c in members}  # states are sorted by number
    return PlannedAction(
        at=at,
        kind=channel,  # type: ignore[arg-type]
        step_index=level,
        step_at=step.label,
        policy=policy.name,
        invoices=tuple(levels),
        amounts=_totals(members),
        nominal_at=min(c[2] for _, c in members),
        template=step.template,
        levels=levels,
        account=customer.account,
    )


def _task(
    customer: DunningCustomer,
    policy: DunningPolicy,
    index: int,
    at: datetime,
    members: Sequence[Member],
    *,
    kind: str = "task",
    note: str | None = None,
    assignee_role: str | None = None,
    reason: str | None = None,
) -> PlannedAction:
    step = policy.steps[index]
    ordered = members  # states are sorted by number
    levels = {s.inv.number: index for s, _ in ordered}
    return PlannedAction(
        at=at,
        kind=kind,  # type: ignore[arg-type]
        step_index=index,
        step_at=step.label,
        policy=policy.name,
        invoices=tuple(levels),
        amounts=_totals(members),
        nominal_at=min(c[2] for _, c in members),
        note=note if note is not None else step.note,
        assignee_role=assignee_role if reason else step.assignee_role,
        levels=levels,
        due_dates={s.inv.number: s.inv.due_date for s, _ in ordered},
        reason=reason,
        account=customer.account,
    )


_NOMINAL_CACHE: dict[tuple[Any, ...], dict[tuple[date, int], datetime]] = {}
_NOMINAL_CACHE_MAX = 50_000  # (date, offset) entries per calendar/zone/window
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
