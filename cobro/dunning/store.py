"""The dunning facts as the database holds them, and the writes that record each step.

Reads build the planner's inputs (customer, open invoices with their levels, pauses); the
writes are the only way a level moves: a claimed message, a task, a claim, a skip.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.dunning import plans
from cobro.dunning.actions import ActionSpec
from cobro.dunning.plans_sql import PlanFacts, follow, last_broken_at, plan_facts
from cobro.dunning.policy import DunningPolicy, PaymentPlanRules
from cobro.dunning.schedule import (
    MESSAGE_CHANNELS,
    Contact,
    DunningCustomer,
    DunningPlan,
    InvoiceState,
    Pause,
    plan,
)
from cobro.models import (
    Communication,
    Customer,
    DunningPause,
    Invoice,
    InvoiceDispute,
    InvoiceStepReached,
    Payment,
    RiskAssessment,
    UndeliverableAddress,
)
from cobro.models import TimelineEvent as Event
from cobro.queues.tasks import new_task
from cobro.rules.classify import load_active_ruleset

log = logging.getLogger("cobro.dunning")


@dataclass
class Trace:
    workflow_id: str = ""
    run_id: str = ""

    def data(self, **extra: Any) -> dict[str, Any]:
        return {"workflow_id": self.workflow_id, "run_id": self.run_id, **extra}


# A contact that never reached the customer does not count for `min_gap` or the templates.
NOT_CONTACTED = frozenset({"cancelled", "skipped", "failed", "bounced"})
DELIVERED = frozenset({"sent", "delivered"})


@dataclass(frozen=True)
class ReachedStep:
    """One `InvoiceStepReached` row, as the planner reads it."""

    policy: str
    step_index: int
    channel: str
    label: str | None
    at: datetime
    key: str | None


@dataclass
class CustomerFacts:
    customer: Customer
    invoices: list[Invoice]
    done_steps: dict[int, dict[int, set[str]]]  # invoice id -> step index -> channels done
    pauses: list[DunningPause]
    risk_class: str | None
    last_step: InvoiceStepReached | None
    promise_paid: dict[int, Decimal] = field(default_factory=dict)  # active promise id -> paid
    invoice_ids: dict[str, int] = field(default_factory=dict)
    reached: dict[int, list[ReachedStep]] = field(default_factory=dict)  # by invoice id
    contacts: list[Contact] = field(default_factory=list)  # claimed or sent, by time
    delivered: list[Contact] = field(default_factory=list)  # accepted by the provider
    session: Session | None = None  # the one the facts were read with (insurance look-ups)
    insured: dict[str, bool] | None = None  # invoice -> covered at its due date (lazy)
    deadlines: dict[str, date] | None = None  # invoice -> the insurer's declare-by (lazy)
    undeliverable: frozenset[str] = frozenset()  # its addresses that bounced for good
    plan: PlanFacts | None = None  # the open payment plan (requested or approved)
    plan_broken_at: datetime | None = None  # when the latest plan broke

    def __post_init__(self) -> None:
        self.invoice_ids = {inv.number: inv.id for inv in self.invoices}

    @property
    def deliverable_email(self) -> str | None:
        """The customer's addresses (`;`-separated) without those that bounced for good."""
        kept = [a for a in addresses_of(self.customer.email) if a.lower() not in self.undeliverable]
        return ";".join(kept) or None

    @property
    def has_open_invoices(self) -> bool:
        return any(inv.open_amount > 0 for inv in self.invoices)

    @property
    def plan_invoices(self) -> frozenset[str]:
        """The invoices of the active payment plan: dunned on its instalments only."""
        if self.plan is None or not self.plan.active:
            return frozenset()
        return frozenset(self.plan.invoices)

    def open_numbers(self, numbers: list[str], instalment: bool = False) -> list[str]:
        """Which of `numbers` may still be chased: open, not disputed, not paused; an
        invoice of the active payment plan only by an `instalment` reminder (and only
        those by one)."""
        paused = self.paused_invoices()
        held = self.plan_invoices
        if instalment:
            numbers = [n for n in numbers if n in held]
        else:
            paused = paused | held
        by_number = {inv.number: inv for inv in self.invoices}
        return [
            n
            for n in numbers
            if n in by_number
            and by_number[n].open_amount > 0
            and not by_number[n].disputed
            and n not in paused
        ]

    def paused_invoices(self) -> set[str]:
        """Numbers under an active pause; every number if a pause covers the customer."""
        if any(p.status == "active" for p in self.pauses):
            return {inv.number for inv in self.invoices}
        return set()

    def overdue_amount(self, now: datetime) -> Decimal:
        today = now.date()
        return sum(
            (
                inv.open_amount
                for inv in self.invoices
                if inv.open_amount > 0 and inv.due_date < today
            ),
            Decimal(0),
        )

    def channels_done(self, invoice_id: int, policy: DunningPolicy) -> dict[int, set[str]]:
        """Step index of `policy` -> channels done for the invoice. Rows of another policy
        (a policy or class change) count for the steps of this one with the same template
        (or action), so a customer moving policy starts after what it already received."""
        rows = self.reached.get(invoice_id)
        if rows is None:  # facts built by hand: the plain per-index view
            return {i: set(chs) for i, chs in self.done_steps.get(invoice_id, {}).items()}
        out: dict[int, set[str]] = {}
        for row in rows:
            if row.policy == policy.name:
                out.setdefault(row.step_index, set()).add(row.channel)
                continue
            for i, step in enumerate(policy.steps):
                if (step.template or step.kind) == row.label and (
                    row.channel in (step.channel or ()) or step.kind == row.channel
                ):
                    out.setdefault(i, set()).add(row.channel)
        return out

    def steps_done(
        self, invoice_id: int, policy: DunningPolicy, customer: DunningCustomer
    ) -> tuple[int, ...]:
        """Steps whose every channel still open to this customer was executed (a step
        with its email sent but its SMS not yet is planned again for the SMS only). A claim
        (or declare) step is done by its claim (declaration) or by the task that replaces it
        (`not_insured`)."""
        done = []
        for index, channels in self.channels_done(invoice_id, policy).items():
            if index >= len(policy.steps):
                continue
            step = policy.steps[index]
            if step.kind in ("claim", "declare") and channels & {step.kind, "task"}:
                done.append(index)
                continue
            expected = set(step.channel or ()) if step.channel else {step.kind}
            expected = {ch for ch in expected if _reachable(customer, ch)}
            if expected <= channels:
                done.append(index)
        return tuple(sorted(done))

    def progress(
        self, invoice_id: int, policy: DunningPolicy, customer: DunningCustomer
    ) -> tuple[tuple[int, ...], tuple[str, ...], int | None, datetime | None]:
        """(steps done, channels done of the step begun but not complete, that step, when
        the highest step done was reached)."""
        done = self.steps_done(invoice_id, policy, customer)
        channels = self.channels_done(invoice_id, policy)
        begun = [i for i in channels if i < len(policy.steps) and i not in done]
        begun = [i for i in begun if not done or i > max(done)]
        partial_step = max(begun) if begun else None
        partial = tuple(sorted(channels[partial_step])) if partial_step is not None else ()
        reached_at = None
        if done:
            top = policy.steps[max(done)]
            times = [
                r.at
                for r in self.reached.get(invoice_id, ())
                if r.step_index == max(done) or r.label == (top.template or top.kind)
            ]
            reached_at = _aware(max(times)) if times else None
        return done, partial, partial_step, reached_at

    def planner_inputs(
        self, policy: DunningPolicy
    ) -> tuple[DunningCustomer, list[InvoiceState], list[Pause]]:
        c = self.customer
        opt_outs = tuple(
            ch for ch, out in (("email", c.opt_out_email), ("sms", c.opt_out_sms)) if out
        )
        customer = DunningCustomer(
            account=c.account,
            timezone=c.timezone,
            country=c.country,
            language=c.language,
            has_email=self.deliverable_email is not None,
            has_phone=bool(c.phone),
            opt_outs=opt_outs,
        )
        insured = self.insured or {}
        deadlines = self.deadlines or {}
        invoices = []
        for inv in self.invoices:
            if inv.open_amount <= 0:
                continue
            done, partial, partial_step, reached_at = self.progress(inv.id, policy, customer)
            invoices.append(
                InvoiceState(
                    number=inv.number,
                    due_date=inv.due_date,
                    currency=inv.currency,
                    open_amount=inv.open_amount,
                    disputed=inv.disputed,
                    done_steps=done,
                    insured=insured.get(inv.number, False),
                    partial=partial,
                    partial_step=partial_step,
                    reached_at=reached_at,
                    deadline=deadlines.get(inv.number),
                )
            )
        pauses = [
            Pause(
                kind="promise" if p.kind == "promise" else "manual", until=p.until, reason=p.reason
            )
            for p in self.pauses
            if p.status == "active"
        ]
        if self.plan_invoices:  # followed on the plan's instalments, not their due dates
            held = tuple(sorted(self.plan_invoices))
            pauses.append(Pause(kind="manual", invoices=held, reason="payment plan"))
        return customer, invoices, pauses


# The fact queries, built once: the claim of every send reads them (bound per call)
_CUSTOMER_BY_ACCOUNT = select(Customer).where(Customer.account == bindparam("account"))
_OPEN_INVOICES = (
    select(Invoice)
    .where(Invoice.customer_id == bindparam("customer_id"), Invoice.open_amount > Decimal(0))
    .order_by(Invoice.due_date, Invoice.number)
)
_STEPS_REACHED = (
    select(InvoiceStepReached)
    .where(InvoiceStepReached.customer_id == bindparam("customer_id"))
    .order_by(InvoiceStepReached.id)
)
_PAUSES = (
    select(DunningPause)
    .where(DunningPause.customer_id == bindparam("customer_id"))
    .where(DunningPause.status.in_(["active", "broken", "partly_kept"]))
    .order_by(DunningPause.id)
)
_assessments = RiskAssessment.__table__.c
_RISK_CLASS = (
    select(_assessments.risk_class)
    .where(_assessments.customer_id == bindparam("customer_id"))
    .order_by(_assessments.assessed_at.desc(), _assessments.id.desc())
    .limit(1)
)
_communications = Communication.__table__.c
_CONTACT_STATUSES = select(_communications.idempotency_key, _communications.status).where(
    _communications.customer_id == bindparam("customer_id")
)


_UNDELIVERABLE = select(UndeliverableAddress.address).where(
    UndeliverableAddress.address.in_(bindparam("addresses", expanding=True))
)


def addresses_of(field: str | None) -> list[str]:
    """The addresses of a customer's `email` field (`;` or `,` between them)."""
    return [a.strip() for a in (field or "").replace(",", ";").split(";") if a.strip()]


def undeliverable_among(session: Session, addresses: list[str]) -> frozenset[str]:
    """Which of these addresses bounced for good (lower case)."""
    if not addresses:
        return frozenset()
    wanted = sorted({a.lower() for a in addresses})
    return frozenset(session.scalars(_UNDELIVERABLE, {"addresses": wanted}))


def load_customer_facts(session: Session, account: str) -> CustomerFacts | None:
    customer = session.scalar(_CUSTOMER_BY_ACCOUNT, {"account": account})
    if customer is None:
        return None
    by_customer = {"customer_id": customer.id}
    invoices = list(session.scalars(_OPEN_INVOICES, by_customer))
    done: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    reached: dict[int, list[ReachedStep]] = defaultdict(list)
    by_key: dict[str, list[ReachedStep]] = defaultdict(list)
    last_step = None
    for step in session.scalars(_STEPS_REACHED, by_customer):
        done[step.invoice_id][step.step_index].add(step.channel)
        row = ReachedStep(
            step.policy, step.step_index, step.channel, step.label, step.at, step.idempotency_key
        )
        reached[step.invoice_id].append(row)
        if step.channel in MESSAGE_CHANNELS and step.idempotency_key:
            by_key[step.idempotency_key].append(row)
        last_step = step
    contacts, delivered = _contacts(session, customer.id, by_key)
    pauses = list(session.scalars(_PAUSES, by_customer))
    promise_paid = {
        p.id: paid_towards(session, p)
        for p in pauses
        if p.kind == "promise" and p.status == "active"
    }
    risk_class = session.scalar(_RISK_CLASS, by_customer)
    facts = CustomerFacts(
        customer,
        invoices,
        dict(done),
        pauses,
        risk_class,
        last_step,
        promise_paid,
        reached=dict(reached),
        contacts=contacts,
        delivered=delivered,
        session=session,
        undeliverable=undeliverable_among(session, addresses_of(customer.email)),
    )
    facts.plan = plan_facts(session, customer.id, invoices)
    facts.plan_broken_at = last_broken_at(session, customer.id)
    return facts


def _contacts(
    session: Session, customer_id: int, by_key: dict[str, list[ReachedStep]]
) -> tuple[list[Contact], list[Contact]]:
    """The customer's messages from the levels they recorded (at the workflow's time), with
    their status: (claimed or sent, accepted by the provider)."""
    if not by_key:
        return [], []
    status = dict(session.execute(_CONTACT_STATUSES, {"customer_id": customer_id}).all())
    contacts, delivered = [], []
    for key, rows in by_key.items():
        state = status.get(key)
        if state is None or state in NOT_CONTACTED:
            continue
        top = max(rows, key=lambda r: r.step_index)
        contact = Contact(
            at=_aware(min(r.at for r in rows)),
            channel=top.channel,
            level=top.step_index,
            template=top.label,
        )
        contacts.append(contact)
        if state in DELIVERED:
            delivered.append(contact)
    contacts.sort(key=lambda c: (c.at, c.channel))
    delivered.sort(key=lambda c: (c.at, c.channel))
    return contacts, delivered


def _aware(t: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def paid_towards(session: Session, promise: DunningPause) -> Decimal:
    """What the customer paid since the promise was made, in the promise's currency (every
    currency for an older promise recorded without one)."""
    query = select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.customer_id == promise.customer_id,
        Payment.date >= promise.created_at.date(),
    )
    if promise.currency:
        query = query.where(Payment.currency == promise.currency)
    return Decimal(session.scalar(query) or 0)


def _reachable(customer: DunningCustomer, channel: str) -> bool:
    if channel in customer.opt_outs:
        return False
    if channel == "email":
        return customer.has_email
    if channel in ("sms", "whatsapp"):
        return customer.has_phone
    return True


# ------------------------------------------------------------------ policies (hot reloaded)


def policies(engine: Engine | None = None, connection: Connection | None = None) -> Any:
    """The active rules version's `dunning.yaml` (the one `cobro rules apply` activated; the
    rules directory until a version is applied), read at every plan: a newly applied version
    changes what a running worker plans and sends, without a restart. `connection`: read in
    the caller's transaction, on its database."""
    return load_active_ruleset(engine, connection=connection).built("dunning.yaml")


def exposure_rules(connection: Connection | None = None) -> Any:
    """The active rules version's `exposure.yaml` (its defaults when absent)."""
    from cobro.exposure.rulefile import rules_of

    return rules_of(load_active_ruleset(connection=connection))


def load_insurance(session: Session, facts: CustomerFacts) -> dict[str, bool]:
    """Invoice number -> insured at its due date: a named cover in force on that day, or an
    unnamed-buyer ceiling of `exposure.yaml` that applies to the customer on that day (as
    `cobro exposure` decides it; the one decision, `cobro.exposure.insured`, that the
    insurer obligations use too)."""
    from cobro.exposure.insured import insured_on

    cid = facts.customer.id
    open_invoices = [inv for inv in facts.invoices if inv.open_amount > 0]
    decisions = insured_on(
        session.connection(),
        exposure_rules(session.connection()),
        [(cid, inv.due_date) for inv in open_invoices],
    )
    return {inv.number: decisions[(cid, inv.due_date)].insured for inv in open_invoices}


def load_deadlines(session: Session, facts: CustomerFacts, today: date) -> dict[str, date]:
    """Invoice number -> its overdue-declaration deadline (declare-by), for the insured open
    invoices whose policy terms require a declaration (`cobro insurer obligations`)."""
    from cobro.insurers.declarations_sql import obligations_of

    found = obligations_of(session, facts.customer.id, today)
    return {n: o.declare_by for n, o in found.items() if o.declaration_required and o.declare_by}


def ensure_insurance(
    facts: CustomerFacts, policy: DunningPolicy, now: datetime | None = None
) -> None:
    """Look up which invoices are insured when `policy` has a claim or declare step, and
    their declaration deadlines for a declare step (once per facts)."""
    kinds = {step.kind for step in policy.steps}
    if facts.session is None:
        return
    if kinds & {"claim", "declare"} and facts.insured is None:
        facts.insured = load_insurance(facts.session, facts)
    if "declare" in kinds and facts.deadlines is None:
        today = (now or datetime.now(UTC)).date()
        facts.deadlines = load_deadlines(facts.session, facts, today)


def policy_selector(facts: CustomerFacts) -> dict[str, Any]:
    """What a policy's `applies_to` reads of a customer."""
    c = facts.customer
    return {"risk_class": facts.risk_class or "low", "segment": c.segment, "country": c.country}


def policy_for(facts: CustomerFacts, rules: Any = None) -> DunningPolicy | None:
    """The customer's policy under `rules` (a compiled `dunning.yaml`; default: the active
    one of the facts' database)."""
    if rules is None:
        rules = policies(connection=facts.session.connection() if facts.session else None)
    return rules.select(policy_selector(facts))


# ------------------------------------------------------------------------------ planning


@dataclass
class CurrentPlan:
    policy: str | None
    plan: DunningPlan | None
    due: list[ActionSpec]
    next_at: datetime | None
    instalments: list[ActionSpec] = field(default_factory=list)  # the plan's reminders


def current_plan(facts: CustomerFacts, now: datetime) -> CurrentPlan:
    policy = policy_for(facts)
    if policy is None:
        return CurrentPlan(None, None, [], None)
    ensure_insurance(facts, policy, now)
    customer, invoices, pauses = facts.planner_inputs(policy)
    result = plan(customer, invoices, policy, now, pauses, history=facts.contacts)
    due = [ActionSpec.from_planned(customer.account, a) for a in result.due]
    next_at = result.next_wakeup
    reminders: list[ActionSpec] = []
    if facts.plan_invoices:  # the plan's instalments are its invoices' due dates now
        reminders, wake = instalment_actions(facts, policy, customer, now)
        due += [r for r in reminders if r.at <= now]
        later = [r.at for r in reminders if r.at > now] + ([wake] if wake else [])
        if later and (next_at is None or min(later) < next_at):
            next_at = min(later)
    if not due and _escalation_pending(facts) and result.actions:
        # a broken promise escalates one step: the next step is due at the next send instant
        first = result.actions[0]
        due_at = first.at if first.at <= now else None
        if due_at is None:
            from cobro.dunning.calendar import get_calendar, get_zone, next_send_instant

            due_at = next_send_instant(
                now,
                get_zone(customer.timezone),
                policy.window,
                get_calendar(*policy.calendar_of(customer.country, customer.subdivision)),
            )
        if due_at <= now:
            due = [
                ActionSpec.from_planned(customer.account, a)
                for a in result.actions
                if a.at == first.at
            ]
        else:
            next_at = due_at
    return CurrentPlan(policy.name, result, due, next_at, reminders)


def plan_rules(facts: CustomerFacts, policy: DunningPolicy | None = None) -> PaymentPlanRules:
    """The `payment_plans:` of the customer's policy (the defaults when it has none)."""
    found = policy or policy_for(facts)
    return (found.payment_plans if found else None) or PaymentPlanRules()


def instalment_actions(
    facts: CustomerFacts, policy: DunningPolicy, customer: DunningCustomer, now: datetime
) -> tuple[list[ActionSpec], datetime | None]:
    """The reminders of the active plan's instalments (`cobro.dunning.plans.reminders`),
    as actions the workflow runs like any contact (`reason="instalment"`, `step_index`:
    the instalment), and when to look again for a missed instalment."""
    from cobro.dunning.calendar import (
        get_calendar,
        get_zone,
        local_start_of_day,
        next_send_instant,
        window_opening,
    )

    plan = facts.plan
    assert plan is not None
    rules = plan_rules(facts, policy)
    tz = get_zone(customer.timezone)
    cal = get_calendar(*policy.calendar_of(customer.country, customer.subdivision))
    parts = plan.paid_parts
    unpaid = [i for i, part in zip(plan.instalments, parts, strict=True) if part < i.amount]
    wake = local_start_of_day(plans.check_day(unpaid[0], rules.grace), tz) if unpaid else None
    active = [p for p in facts.pauses if p.status == "active"]
    if any(p.until is None for p in active):
        return [], wake  # paused until lifted: no reminder, a missed instalment still counts
    not_before = now
    for p in active:
        not_before = max(not_before, local_start_of_day(p.until + timedelta(days=1), tz))
    numbers = facts.open_numbers(sorted(plan.invoices), instalment=True)
    if not numbers:
        return [], wake
    channels = [ch for ch in ("email", "sms") if customer.blocked(ch) is None]
    found = plans.reminders(
        customer.account,
        plan.id,
        plan.instalments,
        parts,
        rules,
        channels,
        plan.done_keys,
        next_send_instant(not_before, tz, policy.window, cal),
        lambda d: window_opening(d, tz, policy.window, cal),
        lambda t: t.astimezone(tz).date(),
    )
    actions = [
        ActionSpec(
            account=customer.account,
            kind=r.channel,
            step_index=r.seq,
            policy=policy.name,
            invoices=numbers,
            idempotency_key=r.key,
            at=r.at,
            template=rules.reminder.template,
            reason="instalment",
        )
        for r in found
    ]
    return actions, wake


def _escalation_pending(facts: CustomerFacts) -> bool:
    """A broken (or partly kept) promise not yet followed by any executed step."""
    broken = [
        p.ended_at or p.created_at
        for p in facts.pauses
        if p.kind == "promise" and p.status in ("broken", "partly_kept")
    ]
    if facts.plan_broken_at is not None:  # a broken payment plan escalates the same way
        broken.append(facts.plan_broken_at)
    if not broken:
        return False
    broken_at = _aware(max(_aware(t) for t in broken))
    return facts.last_step is None or _aware(facts.last_step.at) < broken_at


def dunning_stage(facts: CustomerFacts, now: datetime) -> str:
    """What ops filter on in the Temporal UI (`CobroDunningStage`): `paused`,
    `promise_to_pay`, the template or action of the last step done (`final_notice`,
    `task`, `claim`...), else `overdue` / `not_due`; `closed` when nothing is open."""
    if not facts.has_open_invoices:
        return "closed"
    active = [p for p in facts.pauses if p.status == "active"]
    if active:
        return "promise_to_pay" if active[-1].kind == "promise" else "paused"
    if facts.plan_invoices:
        return "payment_plan"
    if facts.last_step is not None:
        return facts.last_step.label or facts.last_step.outcome
    return "overdue" if facts.overdue_amount(now) > 0 else "not_due"


# --------------------------------------------------------------------------- housekeeping


def housekeeping(session: Session, facts: CustomerFacts, now: datetime, trace: Trace) -> list[str]:
    """Pauses that ended, promises kept, partly kept or broken: recorded once, on the
    timeline. A promise is kept when nothing is open any more or its amount was paid; at its
    date, a promise paid in part is "partly kept" and one not paid at all "broken": both
    escalate one step and give a collector a call task."""
    notes: list[str] = []
    tz_today = _local_today(facts.customer.timezone, now)
    for pause in facts.pauses:
        if pause.status != "active":
            continue
        paid = facts.promise_paid.get(pause.id, Decimal(0))
        promised = pause.promised_amount
        if pause.kind == "promise" and (
            not facts.has_open_invoices or (promised is not None and paid >= promised)
        ):
            _end(
                session,
                facts,
                pause,
                "kept",
                now,
                "promise to pay kept" + _paid(pause, paid),
                trace,
            )
            notes.append("promise kept")
        elif pause.until is not None and pause.until < tz_today:
            if pause.kind == "promise":
                partly = promised is not None and paid > 0
                status, what = ("partly_kept", "partly kept") if partly else ("broken", "not kept")
                summary = f"promise to pay by {pause.until} {what}{_paid(pause, paid)}"
                _end(session, facts, pause, status, now, summary, trace)
                session.add(
                    new_task(
                        session,
                        facts.customer.id,
                        kind="call",
                        note=f"{summary}: call the customer",
                        role="collector",
                        due_date=now.date(),
                        source_key=f"promise-broken:{pause.id}",
                    )
                )
                notes.append(f"promise {what}: escalation and task")
            else:
                _end(session, facts, pause, "ended", now, f"pause ended on {pause.until}", trace)
                notes.append("pause ended")
    if facts.plan is not None and facts.plan.active:
        grace = plan_rules(facts).grace
        done = follow(session, facts.plan, tz_today, now, grace, trace.data())
        if done:
            notes.append(done)
        if facts.plan.status == "broken":
            facts.plan_broken_at = now
        if not facts.plan.active:
            facts.plan = None
    session.flush()
    return notes


def _paid(promise: DunningPause, paid: Decimal) -> str:
    if promise.promised_amount is None:
        return ""
    currency = f" {promise.currency}" if promise.currency else ""
    done, promised = formatting.amount(paid), formatting.amount(promise.promised_amount)
    return f" ({done} of {promised}{currency} paid)"


def _end(
    session: Session,
    facts: CustomerFacts,
    pause: DunningPause,
    status: str,
    now: datetime,
    summary: str,
    trace: Trace,
) -> None:
    pause.status = status
    pause.ended_at = now
    kind = {
        "kept": "promise.kept",
        "partly_kept": "promise.partly_kept",
        "broken": "promise.broken",
    }.get(status, "dunning.resumed")
    session.add(
        Event(
            customer_id=facts.customer.id,
            at=now,
            kind=kind,
            summary=summary,
            data=trace.data(pause_id=pause.id),
        )
    )


def _local_today(timezone: str, now: datetime) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(timezone)).date()


def record_levels(
    session: Session,
    facts: CustomerFacts,
    action: ActionSpec,
    numbers: list[str],
    outcome: str,
    trace: Trace,
    at: datetime | None = None,
    rules: Any = None,
) -> None:
    """Each invoice of the action reaches its own step (`action.levels`), labelled with
    that step's template (or action); one INSERT for all of them. `rules`: the dunning
    rules in force (`policies()`) when the caller has read them."""
    if not numbers or action.is_instalment:  # an instalment reminder moves no level
        return
    labels = step_labels(action.policy, rules, session.connection())
    when = at or datetime.now(UTC)
    session.execute(
        insert(InvoiceStepReached.__table__),
        [
            {
                "customer_id": facts.customer.id,
                "invoice_id": facts.invoice_ids[number],
                "policy": action.policy,
                "step_index": action.level_of(number),
                "channel": action.kind,
                "outcome": outcome,
                "label": labels.get(action.level_of(number)) or action.template or action.kind,
                "idempotency_key": action.idempotency_key,
                "workflow_id": trace.workflow_id,
                "run_id": trace.run_id,
                "at": when,
            }
            for number in numbers
        ],
    )


def step_labels(
    policy_name: str, rules: Any = None, connection: Connection | None = None
) -> dict[int, str]:
    """Step index -> its template (or action) in the policy of the dunning rules in force
    (`rules`, else read now, on `connection`'s database); empty when the policy is gone or
    the rules cannot be read."""
    try:
        in_force = rules if rules is not None else policies(connection=connection)
        policy = in_force.rules.get(policy_name)
        return {i: step.template or step.kind for i, step in enumerate(policy.steps)}
    except Exception:  # the policy is gone or the rules cannot be read: the action's label
        return {}


def pause_customer(
    session: Session,
    customer: Customer,
    kind: str,
    reason: str,
    actor: str,
    until: date | None,
    amount: Decimal | None = None,
    currency: str | None = None,
) -> DunningPause:
    """Record a manual pause (`kind="pause"`) or a promise to pay (`"promise"`) and its
    timeline event. A new promise replaces the customer's active one."""
    replaced = ""
    if kind == "promise":
        for old in _active(session, customer, "promise"):
            old.status = "replaced"
            old.ended_at = datetime.now(UTC)
            replaced = f" (replaces the promise until {old.until})"
    pause = DunningPause(
        customer_id=customer.id,
        kind=kind,
        reason=reason,
        actor=actor,
        until=until,
        promised_amount=amount,
        currency=currency,
    )
    session.add(pause)
    if kind == "promise":
        money = f" of {formatting.amount(amount)} {currency or ''}".rstrip() if amount else ""
        what = f"promise to pay{money}"
    else:
        what = "dunning paused"
    until_text = f" until {until}" if until else ""
    session.add(
        Event(
            customer_id=customer.id,
            kind="promise.recorded" if kind == "promise" else "dunning.paused",
            actor=actor,
            summary=f"{what}{until_text}{replaced}: {reason}".rstrip(": "),
            data={
                "until": until.isoformat() if until else None,
                "amount": formatting.decimal_text(amount) if amount is not None else None,
                "currency": currency,
            },
        )
    )
    return pause


def _active(session: Session, customer: Customer, kind: str) -> list[DunningPause]:
    return list(
        session.scalars(
            select(DunningPause)
            .where(
                DunningPause.customer_id == customer.id,
                DunningPause.kind == kind,
                DunningPause.status == "active",
            )
            .order_by(DunningPause.id)
        )
    )


def resume_customer(session: Session, customer: Customer, reason: str, actor: str) -> int:
    """Lift the customer's manual pauses (never a promise to pay: `end_promise` does)."""
    active = _active(session, customer, "pause")
    for pause in active:
        pause.status = "ended"
        pause.ended_at = datetime.now(UTC)
    session.add(
        Event(
            customer_id=customer.id,
            kind="dunning.resumed",
            actor=actor,
            summary=f"dunning resumed: {reason}".rstrip(": "),
        )
    )
    return len(active)


def end_promise(
    session: Session, customer: Customer, reason: str, actor: str
) -> DunningPause | None:
    """End the customer's active promise to pay (None: there is none)."""
    active = _active(session, customer, "promise")
    if not active:
        return None
    promise = active[-1]
    for p in active:
        p.status = "cancelled"
        p.ended_at = datetime.now(UTC)
    session.add(
        Event(
            customer_id=customer.id,
            kind="promise.cancelled",
            actor=actor,
            summary=f"promise to pay until {promise.until} cancelled: {reason}".rstrip(": "),
            data={"pause_id": promise.id},
        )
    )
    return promise


def active_promise(session: Session, customer: Customer) -> DunningPause | None:
    active = _active(session, customer, "promise")
    return active[-1] if active else None


def open_dispute(session: Session, invoice: Invoice, reason: str, actor: str) -> InvoiceDispute:
    """The invoice leaves dunning: flag set, dispute recorded with who and why."""
    invoice.disputed = True
    dispute = InvoiceDispute(
        invoice_id=invoice.id, customer_id=invoice.customer_id, reason=reason, opened_by=actor
    )
    session.add(dispute)
    session.flush()
    session.add(
        Event(
            customer_id=invoice.customer_id,
            kind="dispute.opened",
            actor=actor,
            summary=f"invoice {invoice.number} disputed: {reason}",
            data={"invoice": invoice.number, "dispute_id": dispute.id},
        )
    )
    return dispute


def open_disputes(session: Session, invoice_ids: list[int]) -> dict[int, InvoiceDispute]:
    """The open dispute of each of these invoices that has one."""
    if not invoice_ids:
        return {}
    return {
        d.invoice_id: d
        for d in session.scalars(
            select(InvoiceDispute)
            .where(InvoiceDispute.invoice_id.in_(invoice_ids), InvoiceDispute.resolved_at.is_(None))
            .order_by(InvoiceDispute.id)
        )
    }


def resolve_dispute(session: Session, invoice: Invoice, note: str, actor: str) -> int:
    """The invoice is back in dunning: flag cleared, its open disputes closed (how many)."""
    invoice.disputed = False
    now = datetime.now(UTC)
    disputes = list(open_disputes(session, [invoice.id]).values())
    for d in disputes:
        d.resolved_at, d.resolved_by, d.resolution = now, actor, note
    session.add(
        Event(
            customer_id=invoice.customer_id,
            kind="dispute.resolved",
            actor=actor,
            summary=f"invoice {invoice.number} dispute resolved: {note}".rstrip(": "),
            data={"invoice": invoice.number, "dispute_ids": [d.id for d in disputes]},
        )
    )
    return len(disputes)


# ------------------------------------------------------------- what holds dunning back


@dataclass(frozen=True)
class Hold:
    """An active pause or promise, or an open dispute, as the customer file, the API and
    `cobro dunning show` present it."""

    kind: str  # pause | promise | dispute
    by: str
    since: datetime
    reason: str
    until: date | None = None
    amount: Decimal | None = None  # promise
    currency: str | None = None
    paid: Decimal | None = None  # promise: paid since it was made; plan: paid towards it
    invoice: str | None = None  # dispute
    status: str | None = None  # plan: requested | approved
    instalments: int | None = None  # plan

    @property
    def sentence(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        if self.kind == "dispute":
            return f"invoice {self.invoice} disputed by {self.by} since {self.since:%Y-%m-%d}{why}"
        if self.kind == "plan":
            money = f"{formatting.amount(self.amount)} {self.currency}"
            what = f"payment plan of {self.instalments} instalments ({money}) until {self.until}"
            if self.status == "requested":
                return f"{what} requested by {self.by}: a collector decides{why}"
            paid = formatting.amount(self.paid or Decimal(0))
            return f"{what}, approved by {self.by}: {paid} {self.currency} paid so far"
        until = f" until {self.until}" if self.until else " until resumed"
        if self.kind == "pause":
            return f"paused{until} by {self.by}{why}"
        money = f" {formatting.amount(self.amount)} {self.currency or ''}" if self.amount else ""
        paid = f" ({formatting.amount(self.paid)} paid so far: partly kept)" if self.paid else ""
        return f"promise to pay{money} by {self.until}{paid}, recorded by {self.by}{why}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "by": self.by,
            "since": self.since.isoformat(),
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
            "amount": formatting.decimal_text(self.amount) if self.amount is not None else None,
            "currency": self.currency,
            "paid": formatting.decimal_text(self.paid) if self.paid is not None else None,
            "invoice": self.invoice,
            "status": self.status,
            "instalments": self.instalments,
            "sentence": self.sentence,
        }


def holds(session: Session, customer_id: int) -> list[Hold]:
    """The customer's active pauses and promises (with what was paid towards each promise),
    then its open disputes, oldest first, then its open payment plan."""
    found: list[Hold] = []
    for p in session.scalars(
        select(DunningPause)
        .where(DunningPause.customer_id == customer_id, DunningPause.status == "active")
        .order_by(DunningPause.id)
    ):
        promise = p.kind == "promise"
        found.append(
            Hold(
                kind="promise" if promise else "pause",
                by=p.actor,
                since=p.created_at,
                reason=p.reason,
                until=p.until,
                amount=p.promised_amount,
                currency=p.currency,
                paid=paid_towards(session, p) if promise else None,
            )
        )
    for d, number in session.execute(
        select(InvoiceDispute, Invoice.number)
        .join(Invoice, Invoice.id == InvoiceDispute.invoice_id)
        .where(InvoiceDispute.customer_id == customer_id, InvoiceDispute.resolved_at.is_(None))
        .order_by(InvoiceDispute.id)
    ):
        found.append(Hold("dispute", d.opened_by, d.opened_at, d.reason, invoice=number))
    plan = plan_hold(session, customer_id)
    return [*found, plan] if plan else found


def plan_hold(session: Session, customer_id: int) -> Hold | None:
    """The customer's open payment plan, as a hold (None: none)."""
    open_invoices = list(
        session.scalars(
            select(Invoice).where(Invoice.customer_id == customer_id, Invoice.open_amount > 0)
        )
    )
    plan = plan_facts(session, customer_id, open_invoices)
    if plan is None:
        return None
    row = plan.row
    approved = row.status == "approved"
    return Hold(
        "plan",
        (row.decided_by or row.requested_by) if approved else row.requested_by,
        row.decided_at or row.requested_at if approved else row.requested_at,
        row.note,
        until=plan.instalments[-1].due_date if plan.instalments else None,
        amount=row.total_amount,
        currency=row.currency,
        paid=plan.paid if approved else None,
        status=row.status,
        instalments=len(plan.instalments),
    )
