"""What a collector does to a customer's dunning — pause, resume, record a promise to pay —
written once for the CLI (`cobro dunning ...`), the dashboard pages and the JSON API.

Each action is three steps:

1. `check_*`: pure validation of what the person typed (text from a CLI option or a form,
   or values the API already parsed), with the customer's local `today`; a refusal is an
   `ActionError` whose one-line message every front end shows as is;
2. one transaction that records the change and its customer timeline event, with who did it
   (`pause`, `resume`, `promise`);
3. a signal that wakes the customer's Dunning workflow (`*_dunning`). The database holds the
   fact, so a Temporal outage does not undo the action: the outcome says it was not
   signalled, and each front end decides how loud to be about it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.dunning.store import pause_customer, resume_customer
from cobro.models import Customer
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
    amount: Decimal | None
    currency: str | None
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
        raise ActionError(f"the promised amount must be below {MAX_AMOUNT:,}")
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
) -> PromiseRequest:
    """A promise has a payment date, today or later, and a positive amount if one is said."""
    day = check_day(until, "the promised date")
    if day is None:
        raise ActionError("give the promised payment date")
    if day < today:
        raise ActionError(f"the promised date ({day}) is in the past")
    return PromiseRequest(day, check_amount(amount), check_currency(currency), check_text(reason))


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
        pause_customer(s, customer, "pause", asked.reason, actor, asked.until)
    return "dunning paused" + (f" until {asked.until}" if asked.until else "")


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
        asked = check_promise(until, amount, currency, reason, local_today(customer))
        pause_customer(
            s,
            customer,
            "promise",
            asked.reason,
            actor,
            asked.until,
            asked.amount,
            asked.currency,
        )
    return f"promise to pay recorded until {asked.until}"


def resume(engine: Engine, account: str, actor: str, reason: str | None = "") -> str:
    note = check_text(reason)
    with transaction(engine) as s:
        lifted = resume_customer(s, _customer(s, account), note, actor)
    return f"{lifted} pause(s) lifted"


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
            f"{self.message} (recorded; the workflow will see it at its next step:"
            f" {self.unsignalled})"
        )


async def signal(
    settings: Settings, account: str, kind: str, detail: str, actor: str
) -> str | None:
    """Signal-with-start the customer's workflow; on failure, say why instead of raising."""
    from cobro.dunning.notify import notify
    from cobro.dunning.signals import FactsChanged
    from cobro.temporal_client import connect

    try:
        client = await asyncio.wait_for(connect(settings), 5)
        change = FactsChanged(kind, detail, actor)
        await asyncio.wait_for(notify(client, [account], change, settings), 10)
    except Exception as exc:  # the DB holds the fact; the workflow re-reads it before sending
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
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
    return Outcome(message, await signal(settings, account, "paused", reason or "", actor))


async def resume_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, reason: str | None
) -> Outcome:
    message = await asyncio.to_thread(resume, engine, account, actor, reason)
    return Outcome(message, await signal(settings, account, "resumed", reason or "", actor))


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
    return Outcome(message, await signal(settings, account, "promise_to_pay", reason or "", actor))
