"""Payment plans as collector actions — request, approve, reject, cancel — written once for
the self-service page (`cobro.portal.actions.ask_plan`), the CLI (`cobro dunning
payment-plan ...`), the customer file and the JSON API, in `cobro.dunning.collector`'s
three steps: check what was typed, one transaction (the change, its timeline event, its
task), a signal to the customer's Dunning workflow.

A request covers the customer's open, undisputed invoices in one currency (the only one,
or the one asked for), split into the asked number of instalments by the customer's
policy's `payment_plans:` rules (`cobro.dunning.plans`). Within the limits and with
`auto_approve: true` it is approved by rule at once; otherwise a collector gets a task and
approves (possibly outside the limits: the timeline says so) or rejects it. An approved
plan whose invoices are insured queues the insurer's rescheduling (RES) declaration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.dunning import plans, plans_sql
from cobro.dunning.collector import (
    ActionError,
    Outcome,
    check_actor,
    check_currency,
    check_text,
    local_today,
    signal,
)
from cobro.dunning.policy import PaymentPlanRules
from cobro.dunning.store import load_customer_facts, policy_for
from cobro.models import Customer, Invoice, PaymentPlan
from cobro.notices import notice
from cobro.settings import Settings

RULES_ACTOR = "rules"  # who approves a plan within the policy's limits
MAX_INSTALMENTS = 60


@dataclass(frozen=True)
class PlanRequest:
    instalments: int
    currency: str | None
    note: str


def check_request(
    instalments: int | str | None, currency: str | None, note: str | None
) -> PlanRequest:
    """The number of instalments (2 or more), an optional currency, a note."""
    raw = instalments.strip() if isinstance(instalments, str) else instalments
    try:
        count = int(raw) if raw not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        raise ActionError(f"the number of instalments {instalments!r} is not a number") from None
    if count is None:
        raise ActionError("give the number of instalments")
    if not 2 <= count <= MAX_INSTALMENTS:
        raise ActionError(f"a payment plan has 2 to {MAX_INSTALMENTS} instalments, not {count}")
    return PlanRequest(count, check_currency(currency), check_text(note))


def _customer(s: Session, account: str) -> Customer:
    customer = s.scalar(select(Customer).where(Customer.account == account))
    if customer is None:
        raise ActionError(f"no customer {account!r}", 404)
    return customer


def _plan_invoices(
    s: Session, customer: Customer, currency: str | None
) -> tuple[str, list[Invoice]]:
    invoices = list(
        s.scalars(
            select(Invoice)
            .where(
                Invoice.customer_id == customer.id,
                Invoice.open_amount > 0,
                Invoice.disputed.is_(False),
            )
            .order_by(Invoice.due_date, Invoice.number)
        )
    )
    currencies = sorted({i.currency for i in invoices})
    if currency is None:
        if len(currencies) != 1:
            held = f"open invoices in {', '.join(currencies)}" if currencies else "no open invoice"
            raise ActionError(f"give the plan's currency (the customer has {held})")
        currency = currencies[0]
    chosen = [i for i in invoices if i.currency == currency]
    if not chosen:
        raise ActionError(f"{customer.account} has no open undisputed invoice in {currency}", 409)
    return currency, chosen


def request(
    engine: Engine,
    account: str,
    actor: str,
    instalments: int | str | None,
    currency: str | None = None,
    note: str | None = "",
) -> str:
    """Record the request; approved by rule when the policy's limits allow it."""
    from cobro.rules.classify import load_active_ruleset

    asked = check_request(instalments, currency, note)
    who = check_actor(actor)
    with transaction(engine) as s:
        customer = _customer(s, account)
        held = plans_sql.open_plan(s, customer.id)
        if held is not None:
            raise ActionError(f"{account} already has a payment plan ({held.status})", 409)
        code, invoices = _plan_invoices(s, customer, asked.currency)
        facts = load_customer_facts(s, account)
        assert facts is not None
        policy = policy_for(facts)
        rules = policy.payment_plans if policy is not None else None
        today = local_today(customer)
        total = sum((i.open_amount for i in invoices), start=Decimal(0))
        try:
            proposed = plans.propose(
                total, code, asked.instalments, today, rules or PaymentPlanRules()
            )
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        problems = plans.limit_problems(proposed, code, today, rules)
        hash_ = load_active_ruleset(connection=s.connection()).hash
        plan = plans_sql.record_request(
            s, customer, invoices, code, proposed, who, asked.note,
            policy.name if policy else "", problems, hash_,
        )  # fmt: skip
        if problems:
            return notice("plan_requested", num=asked.instalments, problems="; ".join(problems))
        plans_sql.approve(s, plan, RULES_ACTOR, "", by_rule=True)
        declared = _declare(s, plan, customer, RULES_ACTOR)
    keys = ["plan_approved_by_rule"] + (["plan_declared"] if declared else [])
    return notice(*keys, num=asked.instalments, invoices=", ".join(declared))


def _declare(s: Session, plan: PaymentPlan, customer: Customer, actor: str) -> list[str]:
    s.flush()
    facts = plans_sql.plan_facts(s, customer.id, [])
    return plans_sql.declare_to_insurer(s, facts, customer, actor) if facts else []


def _open(s: Session, account: str, statuses: tuple[str, ...], doing: str) -> PaymentPlan:
    customer = _customer(s, account)
    plan = plans_sql.open_plan(s, customer.id)
    if plan is None or plan.status not in statuses:
        state = f"its payment plan is {plan.status}" if plan else "it has no payment plan"
        raise ActionError(f"{account}: nothing to {doing} ({state})", 409)
    return plan


def approve(engine: Engine, account: str, actor: str, note: str | None = "") -> str:
    who, text = check_actor(actor), check_text(note)
    with transaction(engine) as s:
        plan = _open(s, account, ("requested",), "approve")
        plans_sql.approve(s, plan, who, text)
        declared = _declare(s, plan, _customer(s, account), who)
    keys = ["plan_approved"] + (["plan_declared"] if declared else [])
    return notice(*keys, invoices=", ".join(declared))


def reject(engine: Engine, account: str, actor: str, note: str | None) -> str:
    who, text = check_actor(actor), check_text(note, required=True)
    with transaction(engine) as s:
        plans_sql.end(s, _open(s, account, ("requested",), "reject"), "rejected", who, text)
    return notice("plan_rejected")


def cancel(engine: Engine, account: str, actor: str, note: str | None = "") -> str:
    who, text = check_actor(actor), check_text(note)
    with transaction(engine) as s:
        plan = _open(s, account, ("requested", "approved"), "cancel")
        plans_sql.end(s, plan, "cancelled", who, text)
    return notice("plan_cancelled")


# ------------------------------------------------------------------ waking the workflow


async def request_dunning(
    engine: Engine,
    settings: Settings,
    account: str,
    actor: str,
    instalments: int | str | None,
    currency: str | None = None,
    note: str | None = "",
) -> Outcome:
    message = await asyncio.to_thread(request, engine, account, actor, instalments, currency, note)
    detail = f"{instalments} instalments: {note or ''}".strip(": ")
    return Outcome(
        message, await signal(engine, settings, account, "payment_plan_requested", detail, actor)
    )


async def approve_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, note: str | None = ""
) -> Outcome:
    message = await asyncio.to_thread(approve, engine, account, actor, note)
    return Outcome(
        message, await signal(engine, settings, account, "payment_plan_approved", note or "", actor)
    )


async def reject_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, note: str | None
) -> Outcome:
    message = await asyncio.to_thread(reject, engine, account, actor, note)
    return Outcome(
        message, await signal(engine, settings, account, "payment_plan_rejected", note or "", actor)
    )


async def cancel_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, note: str | None = ""
) -> Outcome:
    message = await asyncio.to_thread(cancel, engine, account, actor, note)
    return Outcome(
        message,
        await signal(engine, settings, account, "payment_plan_cancelled", note or "", actor),
    )
