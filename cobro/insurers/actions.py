"""The insurer actions a person takes, one implementation for the CLI, the API and the
pages: hand an invoice over to the insurer (a claim), approve an overdue declaration that
waits for approval; and the lists they are taken from. Each records the change in the
database, then signals the customer's dunning workflow, which files it through the connector
(`cobro.insurers.declaring`, `cobro.insurers.claiming`). A refusal is an `ActionError` with
one clear line and an HTTP-like status."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.dunning.collector import ActionError, Outcome, check_actor, signal
from cobro.insurers import claims_sql, declarations_sql
from cobro.insurers.declarations import DONE, OPEN
from cobro.models import Customer
from cobro.notices import notice
from cobro.settings import Settings

DECLARATION_STATUSES = ("pending", *OPEN, *DONE)


def file_claim(
    engine: Engine, invoice_number: str, actor: str, today: date | None = None
) -> tuple[str, str]:
    """Record the claim of an insured, declared invoice; returns (message, account)."""
    who = check_actor(actor)
    with transaction(engine) as s:
        try:
            row = claims_sql.file_claim(s, invoice_number.strip(), who, today)
        except claims_sql.ClaimError as exc:
            raise ActionError(str(exc), exc.status) from None
        account = s.scalar(select(Customer.account).where(Customer.id == row.customer_id))
        said = notice(
            "claim_queued",
            invoice=invoice_number.strip(),
            amount=f"{row.claimed_amount.normalize():f}",
            currency=row.currency,
        )
    return said, str(account)


async def file_claim_dunning(
    engine: Engine, settings: Settings, invoice_number: str, actor: str
) -> Outcome:
    message, account = await asyncio.to_thread(file_claim, engine, invoice_number, actor)
    told = await signal(engine, settings, account, "claim_filed", invoice_number, actor)
    return Outcome(message, told)


def approve_declaration(
    engine: Engine, actor: str, invoice_number: str | None = None, declaration_id: int | None = None
) -> tuple[str, str]:
    """Approve an overdue declaration awaiting approval; returns (message, account)."""
    who = check_actor(actor)
    if declaration_id is not None and not 1 <= declaration_id < 2**31:
        raise ActionError(f"no declaration {declaration_id}", 404)
    with transaction(engine) as s:
        try:
            row = declarations_sql.approve(s, invoice_number, who, declaration_id)
        except declarations_sql.DeclarationError as exc:
            raise ActionError(str(exc), exc.status) from None
        account = s.scalar(select(Customer.account).where(Customer.id == row.customer_id))
        number = row.invoice_number
    return notice("declaration_approved", invoice=number), str(account)


async def approve_declaration_dunning(
    engine: Engine,
    settings: Settings,
    actor: str,
    invoice_number: str | None = None,
    declaration_id: int | None = None,
) -> Outcome:
    message, account = await asyncio.to_thread(
        approve_declaration, engine, actor, invoice_number, declaration_id
    )
    detail = invoice_number or f"declaration {declaration_id}"
    return Outcome(message, await signal(engine, settings, account, "declaration_approved",
                                         detail, actor))  # fmt: skip


def _customer_id(engine: Engine, account: str | None) -> int | None:
    if account is None:
        return None
    with engine.connect() as conn:
        found = conn.scalar(select(Customer.id).where(Customer.account == account))
    if found is None:
        raise ActionError(f"no customer {account!r}", 404)
    return found


def declarations(
    engine: Engine, status: str | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    """The declarations (newest first); `status` `pending` = awaiting approval, queued or
    filed (not answered yet)."""
    if status is not None and status not in DECLARATION_STATUSES:
        raise ActionError(f"status {status!r}: one of {', '.join(DECLARATION_STATUSES)}", 422)
    customer_id = _customer_id(engine, account)
    with engine.connect() as conn:
        return declarations_sql.declaration_rows(conn, status, customer_id)


@dataclass(frozen=True)
class ClaimsReport:
    claims: list[dict[str, Any]]
    totals: dict[str, dict[str, str]]  # per currency: claimed, indemnified, recovered, ...

    def as_json(self) -> dict[str, Any]:
        return {"totals": self.totals, "claims": self.claims}


def claims_report(engine: Engine, account: str | None = None) -> ClaimsReport:
    customer_id = _customer_id(engine, account)
    with engine.connect() as conn:
        rows = claims_sql.claim_rows(conn, customer_id)
    return ClaimsReport(rows, claims_sql.totals(rows))
