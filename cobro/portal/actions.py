"""The customer's actions on the self-service page, each one collector action of
`cobro.dunning.collector` done with the customer as actor (`customer:<account>`), so it
signals the customer's Dunning workflow and lands on the timeline like any other:

* "I have paid" (date, amount, reference): a pause of `portal_paid_wait_days` business days
  (the payment has time to arrive) and a task to check it;
* a promise to pay (date within `portal_promise_max_days`, amount up to the balance);
* a dispute of one of *its* invoices (a reason code and a text): the invoice leaves
  dunning until resolved, and its owner gets a task;
* a request for a payment plan of N instalments (`cobro.dunning.plan_actions.request`):
  approved by rule within the policy's limits, else a task for a collector.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.dunning import plan_actions
from cobro.dunning.calendar import add_days, get_calendar
from cobro.dunning.collector import (
    ActionError,
    Outcome,
    check_amount,
    check_day,
    check_text,
    dispute_dunning,
    pause_dunning,
    promise_dunning,
)
from cobro.i18n import N_, gettext
from cobro.models import Customer
from cobro.portal.statement import Statement
from cobro.queues.tasks import new_task
from cobro.settings import Settings

MAX_PORTAL_INSTALMENTS = 12  # the form's choice; the policy's limits decide the approval
REASONS = {
    "wrong_amount": N_("The amount is wrong"),
    "not_received": N_("Goods or service not received"),
    "defective": N_("Goods damaged or not as ordered"),
    "already_paid": N_("Already paid"),
    "other": N_("Another reason"),
}


def typed_amount(raw: str | None) -> str | None:
    """An amount as a customer types it: `1609.36`, `1609,36`, `1.609,36`, `1,609.36`."""
    text = (raw or "").strip().replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    if "," in text and "." in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal == "," else ",", "")
    return text.replace(",", ".")


def actor_of(account: str) -> str:
    return f"customer:{account}"[:128]


def _task(engine: Engine, customer_id: int, kind: str, note: str, due: date | None) -> None:
    with transaction(engine) as s:
        s.add(new_task(s, customer_id, kind, note, due_date=due))


def _customer(engine: Engine, customer_id: int) -> Customer:
    with transaction(engine) as s:
        customer = s.get(Customer, customer_id)
        assert customer is not None
        s.expunge(customer)
        return customer


async def declare_paid(
    engine: Engine,
    settings: Settings,
    customer_id: int,
    statement: Statement,
    paid_on: str | None,
    amount: str | None,
    reference: str | None,
) -> Outcome:
    day = check_day(paid_on, gettext("the payment date"))
    if day is None:
        raise ActionError(gettext("Give the date of the payment."))
    if day > statement.today:
        raise ActionError(gettext("The payment date is in the future."))
    money = check_amount(typed_amount(amount))
    if money is None:
        raise ActionError(gettext("Give the amount paid."))
    ref = check_text(reference, gettext("the reference"))
    customer = await asyncio.to_thread(_customer, engine, customer_id)
    calendar = get_calendar(customer.country)
    until = add_days(statement.today, settings.portal_paid_wait_days, calendar, True)
    currency = statement.totals[0][0] if len(statement.totals) == 1 else ""
    said = f"customer says it paid {money} {currency} on {day}".replace("  ", " ")
    said += f", reference {ref}" if ref else ""
    actor = actor_of(statement.account)
    outcome = await pause_dunning(engine, settings, statement.account, actor, said, until)
    note = f"check the payment: {said} (reminders wait until {until})"
    await asyncio.to_thread(_task, engine, customer_id, "check_payment", note, until)
    return outcome


async def promise(
    engine: Engine,
    settings: Settings,
    statement: Statement,
    until: str | None,
    amount: str | None,
) -> Outcome:
    day = check_day(until, gettext("the promised date"))
    if day is None:
        raise ActionError(gettext("Give the date you will pay."))
    latest = statement.today + timedelta(days=settings.portal_promise_max_days)
    if day < statement.today or day > latest:
        raise ActionError(
            gettext("Choose a date between today and %(num)s days from now.")
            % {"num": settings.portal_promise_max_days}
        )
    money = check_amount(typed_amount(amount))
    if money is None:
        raise ActionError(gettext("Give the amount you will pay."))
    totals = statement.totals
    if len(totals) == 1 and money > totals[0][1]:
        raise ActionError(gettext("The amount is more than what is open."))
    currency = totals[0][0] if len(totals) == 1 else None
    actor = actor_of(statement.account)
    return await promise_dunning(
        engine,
        settings,
        statement.account,
        actor,
        day,
        money,
        currency,
        "via the self-service page",
    )


async def dispute(
    engine: Engine,
    settings: Settings,
    customer_id: int,
    statement: Statement,
    number: str | None,
    reason: str | None,
    text: str | None,
) -> Outcome:
    if reason not in REASONS:
        raise ActionError(gettext("Choose a reason."))
    if not number or number not in statement.open_numbers:
        raise ActionError(gettext("Choose one of your open invoices."), 404)
    words = check_text(text, gettext("the explanation"))
    said = f"{reason}: {words}".rstrip(": ")
    actor = actor_of(statement.account)
    # `account`: only an invoice of this customer (the collector action checks it again)
    outcome = await dispute_dunning(engine, settings, number, actor, said, statement.account)
    note = f"invoice {number} disputed by the customer: {said}"
    await asyncio.to_thread(_task, engine, customer_id, "dispute", note, None)
    return outcome


async def ask_plan(
    engine: Engine,
    settings: Settings,
    customer_id: int,
    statement: Statement,
    text: str | None,
    instalments: str | None = None,
) -> Outcome:
    """The plan request of `cobro.dunning.plan_actions`: approved by rule within the
    customer's policy limits (the outcome's message says so), else a collector decides."""
    words = check_text(text, gettext("the explanation"))
    try:
        count = int((instalments or "").strip())
    except ValueError:
        raise ActionError(gettext("Choose the number of instalments.")) from None
    if not 2 <= count <= MAX_PORTAL_INSTALMENTS:
        raise ActionError(
            gettext("Choose between 2 and %(num)s instalments.") % {"num": MAX_PORTAL_INSTALMENTS}
        )
    if not statement.totals:
        raise ActionError(gettext("Nothing is open: no payment plan is needed."), 409)
    if len(statement.totals) != 1:
        raise ActionError(gettext("Your invoices are in several currencies: please contact us."))
    actor = actor_of(statement.account)
    note = f"via the self-service page: {words}".rstrip(": ")
    try:
        done = await plan_actions.request_dunning(
            engine, settings, statement.account, actor, count, statement.totals[0][0], note
        )
    except ActionError as exc:
        if exc.status == 409 and "already has a payment plan" in str(exc):
            raise ActionError(gettext("You already have a payment plan."), 409) from None
        raise
    approved = "plan_approved_by_rule" in getattr(done.message, "keys", ())
    message = (
        gettext("Your payment plan is approved: we will remind you before each instalment.")
        if approved
        else gettext("Your request for a payment plan was sent.")
    )
    return Outcome(message, done.unsignalled)
