"""What a collector does to a customer's dunning — pause, resume, record or cancel a promise
to pay, dispute an invoice or resolve its dispute — written once for the CLI
(`cobro dunning ...`), the dashboard pages and the JSON API.

Each action is three steps:

1. `check_*`: pure validation of what the person typed (text from a CLI option or a form,
   or values the API already parsed), with the customer's local `today`; a refusal is an
   `ActionError` whose one-line message every front end shows as is;
2. one transaction that records the change and its customer timeline event, with who did it
   (`pause`, `resume`, `promise`, `cancel_promise`, `dispute`, `resolve`);
3. a signal that wakes the customer's Dunning workflow (`*_dunning`). The database holds the
   fact, so a Temporal outage does not undo the action: the outcome says it was not
   signalled, and each front end decides how loud to be about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.db import transaction
from cobro.dunning.store import (
    active_promise,
    end_promise,
    open_dispute,
    open_disputes,
    pause_customer,
    resolve_dispute,
    resume_customer,
)
from cobro.errors import describe
from cobro.insurers.declarations_sql import extensions_for_promise
from cobro.models import Customer, Invoice
from cobro.notices import notice
from cobro.settings import Settings
from cobro.types import FIRST_DAY, LAST_DAY

MAX_TEXT = 1000
MAX_AMOUNT = Decimal(10) ** 12
CENT = Decimal("0.01")


class ActionError(ValueError):
    """A request that cannot be done as asked; `status` is the HTTP status for the web
    (404 unknown record, 409 conflicting state, 422 bad input)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------- validation (pure)


@dataclass(frozen=True)
class PauseRequest:
    reason: str
    until: date | None  # last paused day, inclusive; None: until resumed


@dataclass(frozen=True)
class PromiseRequest:
    until: date  # the promised payment date
    amount: Decimal
    currency: str
    reason: str


def check_text(raw: str | None, what: str = "the reason", required: bool = False) -> str:
    text = (raw or "").strip()
    if "\x00" in text:
        raise ActionError(f"{what} contains a NUL character")
    if len(text) > MAX_TEXT:
        raise ActionError(f"{what} is too long ({len(text)} characters, at most {MAX_TEXT})")
    if required and not text:
        raise ActionError(f"{what} is required (it goes on the customer timeline)")
    return text


def check_actor(raw: str) -> str:
    """Who did it, as the timeline names them (a user name, or `--by` on the CLI)."""
    who = raw.strip()
    if not who or len(who) > 128 or "\x00" in who:
        raise ActionError(f"who did it ({raw!r}) must be 1 to 128 characters")
    return who


def check_day(raw: date | str | None, what: str) -> date | None:
    """A day typed as YYYY-MM-DD (or already a date), within the years Cobro stores."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, date):
        day = raw
    else:
        try:
            day = date.fromisoformat(raw.strip())
        except ValueError:
            raise ActionError(f"{what}: {raw!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ActionError(f"{what} must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def check_amount(raw: Decimal | str | None) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        amount = raw if isinstance(raw, Decimal) else Decimal(raw.strip())
    except InvalidOperation:
        raise ActionError(f"the amount {raw!r} is not a number") from None
    if not amount.is_finite():
        raise ActionError(f"the amount {raw!r} is not a number")
    if amount <= 0:
        raise ActionError("the promised amount must be positive")
    if amount >= MAX_AMOUNT:
        raise ActionError(
            f"the promised amount must be below {formatting.amount(MAX_AMOUNT, digits=0)}"
        )
    if amount != amount.quantize(CENT):
        raise ActionError("the promised amount has more than two decimals")
    return amount.quantize(CENT)


def check_currency(raw: str | None) -> str | None:
    code = (raw or "").strip().upper()
    if not code:
        return None
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ActionError(f"the currency {raw!r} is not an ISO 4217 code (EUR, USD...)")
    return code


def check_pause(reason: str | None, until: date | str | None, today: date) -> PauseRequest:
    """A pause needs a reason; its last day, when given, is not in the past."""
    text = check_text(reason, required=True)
    day = check_day(until, "the last paused day")
    if day is not None and day < today:
        raise ActionError(f"the last paused day ({day}) is in the past")
    return PauseRequest(text, day)


def check_promise(
    until: date | str | None,
    amount: Decimal | str | None,
    currency: str | None,
    reason: str | None,
    today: date,
    open_currencies: Collection[str] = (),
) -> PromiseRequest:
    """A promise has a payment date, today or later, a positive amount and a currency: by
    default the one of the customer's open invoices, when they are all in one."""
    day = check_day(until, "the promised date")
    if day is None:
        raise ActionError("give the promised payment date")
    if day < today:
        raise ActionError(f"the promised date ({day}) is in the past")
    money = check_amount(amount)
    if money is None:
        raise ActionError("give the promised amount")
    code = check_currency(currency)
    if code is None:
        currencies = sorted(set(open_currencies))
        if len(currencies) != 1:
            held = f"open invoices in {', '.join(currencies)}" if currencies else "no open invoice"
            raise ActionError(f"give the currency of the promised amount (the customer has {held})")
        code = currencies[0]
    return PromiseRequest(day, money, code, check_text(reason))


# --------------------------------------------------------------------- the database part


def local_today(customer: Customer, now: datetime | None = None) -> date:
    """The customer's calendar day: the one its promises and pauses are counted in."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(customer.timezone)).date()


def _customer(s: Session, account: str) -> Customer:
    customer = s.scalar(select(Customer).where(Customer.account == account))
    if customer is None:
        raise ActionError(f"no customer {account!r}", 404)
    return customer


def pause(
    engine: Engine, account: str, actor: str, reason: str | None, until: date | str | None
) -> str:
    with transaction(engine) as s:
        customer = _customer(s, account)
        asked = check_pause(reason, until, local_today(customer))
        pause_customer(s, customer, "pause", asked.reason, check_actor(actor), asked.until)
    if asked.until:
        return notice("paused_until", until=asked.until)
    return notice("paused")


def _open_currencies(s: Session, customer: Customer) -> list[str]:
    return list(
        s.scalars(
            select(Invoice.currency)
            .where(Invoice.customer_id == customer.id, Invoice.open_amount > 0)
            .distinct()
        )
    )


def promise(
    engine: Engine,
    account: str,
    actor: str,
    until: date | str | None,
    amount: Decimal | str | None,
    currency: str | None,
    reason: str | None = "",
) -> str:
    with transaction(engine) as s:
        customer = _customer(s, account)
        asked = check_promise(
            until, amount, currency, reason, local_today(customer), _open_currencies(s, customer)
        )
        pause_customer(
            s,
            customer,
            "promise",
            asked.reason,
            check_actor(actor),
            asked.until,
            asked.amount,
            asked.currency,
        )
        # the insurer hears of it: an extension (EXP) within the maximum extension period
        notes = extensions_for_promise(s, customer, asked.until, check_actor(actor))
    keys = ["promised"] + (["insurer_notes"] if notes else [])
    return notice(
        *keys, amount=formatting.amount(asked.amount), currency=asked.currency, until=asked.until
    )


def cancel_promise(engine: Engine, account: str, actor: str, reason: str | None = "") -> str:
    note = check_text(reason)
    with transaction(engine) as s:
        ended = end_promise(s, _customer(s, account), note, check_actor(actor))
        if ended is None:
            raise ActionError(f"{account} has no promise to pay to cancel", 409)
        until = ended.until
    return notice("promise_cancelled", until=until)


def resume(engine: Engine, account: str, actor: str, reason: str | None = "") -> str:
    """Lift the manual pauses; a promise to pay stays (`cancel_promise` ends it)."""
    note = check_text(reason)
    with transaction(engine) as s:
        customer = _customer(s, account)
        kept = active_promise(s, customer)
        stays = str(notice("promise_stays", until=kept.until)) if kept else ""
        lifted = resume_customer(s, customer, note, check_actor(actor))
        if not lifted:  # nothing written: the transaction rolls back
            raise ActionError(f"{account} has no manual pause to lift{stays}", 409)
    keys = ["resumed"] + (["promise_stays"] if kept else [])
    return notice(*keys, num=lifted, until=kept.until if kept else "")


def _invoice(s: Session, number: str, account: str | None) -> tuple[Invoice, str]:
    """The invoice and its customer's account; with `account`, only if it is that
    customer's (the pages act from a customer file)."""
    found = s.execute(
        select(Invoice, Customer.account)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.number == number)
    ).first()
    if found is None or (account is not None and found[1] != account):
        whose = f" for customer {account!r}" if account is not None else ""
        raise ActionError(f"no invoice {number!r}{whose}", 404)
    return found[0], found[1]


def dispute(
    engine: Engine, number: str, actor: str, reason: str | None, account: str | None = None
) -> tuple[str, str]:
    """Open a dispute on the invoice: (message, the customer's account to signal)."""
    text = check_text(reason, required=True)
    with transaction(engine) as s:
        invoice, owner = _invoice(s, number, account)
        if invoice.disputed:
            held = open_disputes(s, [invoice.id]).get(invoice.id)
            since = (
                f" (since {held.opened_at:%Y-%m-%d}, by {held.opened_by}: {held.reason})"
                if held
                else " (by the ERP import)"
            )
            raise ActionError(f"invoice {number} is already disputed{since}", 409)
        open_dispute(s, invoice, text, check_actor(actor))
    return notice("disputed", invoice=number), owner


def resolve(
    engine: Engine, number: str, actor: str, reason: str | None = "", account: str | None = None
) -> tuple[str, str]:
    """Resolve the invoice's dispute: (message, the customer's account to signal)."""
    note = check_text(reason)
    with transaction(engine) as s:
        invoice, owner = _invoice(s, number, account)
        if not invoice.disputed:
            raise ActionError(f"invoice {number} is not disputed", 409)
        resolve_dispute(s, invoice, note, check_actor(actor))
    return notice("resolved", invoice=number), owner


# ------------------------------------------------------------------ waking the workflow


@dataclass(frozen=True)
class Outcome:
    """What was recorded, and why the workflow was not told (None: it was)."""

    message: str
    unsignalled: str | None = None

    @property
    def text(self) -> str:
        if self.unsignalled is None:
            return self.message
        return (
            f"{self.message} (recorded; the reminders follow it from their next step: "
            f"{self.unsignalled})"
        )


async def signal(
    engine: Engine, settings: Settings, account: str, kind: str, detail: str, actor: str
) -> str | None:
    """Signal-with-start the customer's workflow, always (the history says who did what),
    and record its facts' digest so the next sync does not signal it again; on failure, say
    why instead of raising."""
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged
    from cobro.temporal_client import connect

    try:
        client = await asyncio.wait_for(connect(settings), 5)
        change = FactsChanged(kind, detail, actor)
        sent = notify_changed(client, engine, change, [account], settings, force=True)
        await asyncio.wait_for(sent, 10)
    except Exception as exc:  # the DB holds the fact; the workflow re-reads it before sending
        return describe(exc)[:300]
    return None


async def pause_dunning(
    engine: Engine,
    settings: Settings,
    account: str,
    actor: str,
    reason: str | None,
    until: date | str | None,
) -> Outcome:
    message = await asyncio.to_thread(pause, engine, account, actor, reason, until)
    return Outcome(message, await signal(engine, settings, account, "paused", reason or "", actor))


async def resume_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, reason: str | None
) -> Outcome:
    message = await asyncio.to_thread(resume, engine, account, actor, reason)
    return Outcome(message, await signal(engine, settings, account, "resumed", reason or "", actor))


async def promise_dunning(
    engine: Engine,
    settings: Settings,
    account: str,
    actor: str,
    until: date | str | None,
    amount: Decimal | str | None,
    currency: str | None,
    reason: str | None,
) -> Outcome:
    message = await asyncio.to_thread(
        promise, engine, account, actor, until, amount, currency, reason
    )
    signalled = await signal(engine, settings, account, "promise_to_pay", reason or "", actor)
    return Outcome(message, signalled)


async def cancel_promise_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, reason: str | None
) -> Outcome:
    message = await asyncio.to_thread(cancel_promise, engine, account, actor, reason)
    return Outcome(
        message, await signal(engine, settings, account, "promise_cancelled", reason or "", actor)
    )


async def dispute_dunning(
    engine: Engine,
    settings: Settings,
    number: str,
    actor: str,
    reason: str | None,
    account: str | None = None,
) -> Outcome:
    message, owner = await asyncio.to_thread(dispute, engine, number, actor, reason, account)
    detail = f"{number}: {reason or ''}".strip()
    return Outcome(message, await signal(engine, settings, owner, "dispute_opened", detail, actor))


async def resolve_dunning(
    engine: Engine,
    settings: Settings,
    number: str,
    actor: str,
    reason: str | None,
    account: str | None = None,
) -> Outcome:
    message, owner = await asyncio.to_thread(resolve, engine, number, actor, reason, account)
    detail = f"{number}: {reason or ''}".strip()
    return Outcome(message, await signal(engine, settings, owner, "dispute_closed", detail, actor))
