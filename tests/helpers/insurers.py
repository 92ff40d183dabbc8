"""Insurer-sync test fixtures: customers matching the simulator's buyers, a digest of what a
sync stored, forgetting a sync."""

from __future__ import annotations

import hashlib
import json

from pydantic import SecretStr
from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.allianz_trade import AllianzTradeConnector, HttpRetries
from cobro.models import (
    CoverHistory,
    Customer,
    GradeHistory,
    InsurerCover,
    InsurerQuarantine,
    SyncRun,
    TimelineEvent,
)

FAST = HttpRetries(max_attempts=8, base_delay=0.01, max_delay=0.05)


def connector(sim: InsurerSimulator) -> AllianzTradeConnector:
    return AllianzTradeConnector(sim.base_url, SecretStr(sim.api_key), retry=FAST, timeout=5)


def seed_customers(engine: Engine, sim: InsurerSimulator, share: float = 0.75) -> dict[str, str]:
    """Customers for most of the simulator's buyers, known by different identifiers (buyer id,
    SIREN written with spaces, French VAT only, DUNS only); the rest stay unknown.
    Returns insurer company id -> account."""
    known = {}
    with transaction(engine) as s:
        for i, buyer in enumerate(sim.portfolio.buyers[: int(len(sim.portfolio.buyers) * share)]):
            account = f"C{i:04d}"
            ids: dict[str, str | None] = {}
            way = i % 4
            if way == 0:
                ids["insurer_buyer_id"] = buyer.company_id
            elif way == 1 and buyer.siren:
                s9 = buyer.siren
                ids["siren"] = f"{s9[:3]} {s9[3:6]} {s9[6:]}"
            elif way == 2 or (way == 1 and not buyer.siren):
                ids["vat"] = buyer.vat
            elif buyer.duns:
                ids["duns"] = buyer.duns
            else:
                ids["vat"] = buyer.vat
            s.add(
                Customer(
                    account=account,
                    name=buyer.name,
                    country=buyer.country,
                    language="fr",
                    timezone="Europe/Paris",
                    **ids,
                )
            )
            known[buyer.company_id] = account
    return known


def digest(engine: Engine) -> str:
    """Covers and grades as stored: what must not depend on faults."""
    with engine.connect() as conn:
        covers = conn.execute(
            select(
                InsurerCover.cover_id,
                InsurerCover.customer_id,
                InsurerCover.status,
                InsurerCover.granted_amount,
                InsurerCover.valid_until,
                InsurerCover.grade,
            ).order_by(InsurerCover.cover_id)
        ).all()
        grades = conn.execute(
            select(GradeHistory.customer_id, GradeHistory.grade, GradeHistory.graded_on).order_by(
                GradeHistory.customer_id, GradeHistory.graded_on
            )
        ).all()
    text = json.dumps([[str(v) for v in r] for r in [*covers, *grades]])
    return hashlib.sha256(text.encode()).hexdigest()


def forget_sync(engine: Engine) -> None:
    from sqlalchemy import delete

    with transaction(engine) as s:
        for model in (
            TimelineEvent,
            CoverHistory,
            InsurerQuarantine,
            GradeHistory,
            InsurerCover,
            SyncRun,
        ):
            s.execute(delete(model))
