"""The review queue and manual actions on covers: what is unmatched (and why), linking a
cover to a customer by hand (kept by every later sync), listing a customer's covers, and
filing a cover request with the insurer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from cobro.db import transaction
from cobro.insurers.base import CompanySearch, CoverRequest, IdType
from cobro.insurers.matching import CustomerIds, MatchIndex, normalise, siren_of
from cobro.insurers.sync_store import money
from cobro.models import CoverHistory, Customer, GradeHistory, InsurerCover, TimelineEvent
from cobro.types import utcnow


class CoverError(Exception):
    """A one-line, user-facing problem (unknown cover, unknown customer...)."""


@dataclass(frozen=True)
class CoverRow:
    cover_id: str
    policy_id: str
    account: str | None
    buyer_id: str | None
    buyer_name: str | None
    siren: str | None
    vat: str | None
    duns: str | None
    cover_type: str
    status: str
    granted_amount: Decimal | None
    requested_amount: Decimal | None
    currency: str
    grade: int | None
    request_date: date | None
    decision_date: date | None
    valid_from: date | None
    valid_until: date | None
    match_method: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
            for k, v in self.__dict__.items()
        }


def _rows(engine: Engine | None, *where: Any) -> list[CoverRow]:
    with transaction(engine) as s:
        result = s.execute(
            select(
                InsurerCover.cover_id,
                InsurerCover.policy_id,
                Customer.account,
                InsurerCover.insurer_buyer_id,
                InsurerCover.buyer_name,
                InsurerCover.buyer_siren,
                InsurerCover.buyer_vat,
                InsurerCover.buyer_duns,
                InsurerCover.cover_type,
                InsurerCover.status,
                InsurerCover.granted_amount,
                InsurerCover.requested_amount,
                InsurerCover.currency,
                InsurerCover.grade,
                InsurerCover.request_date,
                InsurerCover.decision_date,
                InsurerCover.valid_from,
                InsurerCover.valid_until,
                InsurerCover.match_method,
            )
            .outerjoin(Customer, Customer.id == InsurerCover.customer_id)
            .where(*where)
            .order_by(InsurerCover.cover_id)
        )
        return [CoverRow(*r) for r in result]


def list_covers(engine: Engine | None = None, account: str | None = None) -> list[CoverRow]:
    if account is None:
        return _rows(engine)
    if _customer(engine, account) is None:
        raise CoverError(f"unknown customer {account!r}")
    return _rows(engine, Customer.account == account)


NO_NATIONAL_ID = " (the insurer sent no SIREN, VAT or DUNS: only its buyer id can match)"


def unmatched(engine: Engine | None = None) -> list[tuple[CoverRow, str]]:
    """Unmatched covers with the reason, as a sync would find it now."""
    rows = _rows(engine, InsurerCover.customer_id.is_(None))
    with transaction(engine) as s:
        index = MatchIndex(
            CustomerIds(*r)
            for r in s.execute(
                select(
                    Customer.id,
                    Customer.account,
                    Customer.insurer_buyer_id,
                    Customer.siren,
                    Customer.vat,
                    Customer.duns,
                )
            )
        )
    out = []
    for row in rows:
        reasons = []
        for kind, value in (
            ("buyer_id", row.buyer_id),
            ("siren", siren_of(row.siren)),
            ("vat", normalise(row.vat)),
            ("duns", normalise(row.duns)),
        ):
            if value and len(index.by[kind].get(value, ())) > 1:
                reasons.append(f"ambiguous {kind} {value}")
        tried = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("buyer id", row.buyer_id),
                ("SIREN", row.siren),
                ("VAT", row.vat),
                ("DUNS", row.duns),
            )
            if v
        )
        reason = "; ".join(reasons) or f"no customer with {tried}"
        if not (row.siren or row.vat or row.duns):
            reason += NO_NATIONAL_ID
        out.append((row, reason))
    return out


def _customer(engine: Engine | None, account: str) -> Customer | None:
    with transaction(engine) as s:
        c = s.scalars(select(Customer).where(Customer.account == account)).first()
        if c is not None:
            s.expunge(c)
        return c


def link_cover(engine: Engine | None, cover_id: str, account: str, actor: str = "cli") -> CoverRow:
    """Link a cover to a customer by hand; later syncs keep the link."""
    now = utcnow()
    with transaction(engine) as s:
        cover = s.scalars(select(InsurerCover).where(InsurerCover.cover_id == cover_id)).first()
        if cover is None:
            raise CoverError(f"unknown cover {cover_id!r} (see `cobro covers unmatched`)")
        customer = s.scalars(select(Customer).where(Customer.account == account)).first()
        if customer is None:
            raise CoverError(f"unknown customer {account!r}")
        previous = cover.customer_id
        s.execute(
            update(InsurerCover)
            .where(InsurerCover.id == cover.id)
            .values(customer_id=customer.id, match_method="manual", updated_at=now)
        )
        s.execute(
            insert(CoverHistory),
            [
                {
                    "insurer_cover_id": cover.id,
                    "customer_id": customer.id,
                    "kind": "matched",
                    "old": {"customer_id": previous},
                    "new": {"by": "manual", "actor": actor},
                    "at": now,
                }
            ],
        )
        summary = (
            f"cover {cover.cover_id} linked by hand ({cover.buyer_name}, "
            f"{money(cover.granted_amount, cover.currency)}, {cover.status})"
        )
        s.add(
            TimelineEvent(
                customer_id=customer.id,
                at=now,
                kind="cover.linked",
                actor=actor,
                summary=summary,
                data={"cover_id": cover.cover_id},
            )
        )
        if cover.grade is not None:
            graded_today = s.scalars(
                select(GradeHistory).where(
                    GradeHistory.customer_id == customer.id,
                    GradeHistory.insurer == cover.insurer,
                    GradeHistory.graded_on == now.date(),
                )
            ).first()
            if graded_today is None:
                s.add(
                    GradeHistory(
                        customer_id=customer.id,
                        insurer=cover.insurer,
                        grade=cover.grade,
                        graded_on=now.date(),
                    )
                )
            else:
                graded_today.grade = cover.grade
    return _rows(engine, InsurerCover.cover_id == cover_id)[0]


async def request_cover(
    engine: Engine | None,
    connector: Any,
    account: str,
    amount: Decimal,
    currency: str = "EUR",
    policy_id: str | None = None,
    actor: str = "cli",
) -> str:
    """File a cover request for a customer: find the buyer at the insurer (buyer id, else by
    national identifier), request the amount; returns the insurer's job id. A later sync
    picks up the decision."""
    import asyncio

    customer = await asyncio.to_thread(_customer, engine, account)
    if customer is None:
        raise CoverError(f"unknown customer {account!r}")
    if amount <= 0:
        raise CoverError("the amount must be positive")
    company_id = customer.insurer_buyer_id
    if not company_id:
        for kind, value in (
            (IdType.SIREN, siren_of(customer.siren)),
            (IdType.VAT, normalise(customer.vat)),
            (IdType.DUNS, normalise(customer.duns)),
        ):
            if not value:
                continue
            found = await connector.search_companies(
                CompanySearch(identifier_type=kind, identifier_value=value)
            )
            if len(found) == 1:
                company_id = found[0].company_id
                break
    if not company_id:
        raise CoverError(
            f"the insurer knows no company with {account}'s identifiers "
            "(set its SIREN, VAT or DUNS, or insurer_buyer_id)"
        )
    if policy_id is None:
        policy_id = await asyncio.to_thread(_policy_for, engine, currency)
    job_id = await connector.request_cover(
        CoverRequest(
            policy_id=policy_id,
            company_id=company_id,
            requested_amount=amount,
            currency=currency,
            client_reference=f"cobro-{account}"[:64],
        )
    )
    await asyncio.to_thread(_record_request, engine, customer.id, amount, currency, job_id, actor)
    return job_id


def _policy_for(engine: Engine | None, currency: str) -> str:
    with transaction(engine) as s:
        policy = s.scalar(
            select(InsurerCover.policy_id).where(InsurerCover.currency == currency).limit(1)
        )
    if policy is None:
        raise CoverError(f"no known {currency} policy: run `cobro sync now` first or pass --policy")
    return policy


def _record_request(
    engine: Engine | None, customer_id: int, amount: Decimal, currency: str, job_id: str, actor: str
) -> None:
    with transaction(engine) as s:
        s.add(
            TimelineEvent(
                customer_id=customer_id,
                at=utcnow(),
                kind="cover.requested",
                actor=actor,
                summary=f"cover requested: {money(amount, currency)} (insurer job {job_id})",
                data={"job_id": job_id, "amount": str(amount), "currency": currency},
            )
        )
