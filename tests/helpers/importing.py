"""Helpers of the import tests: write CSV files, dump tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from cobro.models import (
    Customer,
    ImportRun,
    Invoice,
    Payment,
    PaymentAllocation,
    TimelineEvent,
)

DOMAIN_TABLES = (Customer, Invoice, Payment, PaymentAllocation, TimelineEvent)

CUSTOMERS = """\
account,name,country,phone,email
C1,Alpha SAS,FR,01 23 45 67 89,ap@alpha.fr
C2,Beta Inc.,US,(201) 555-0123,ap@beta.com;boss@beta.com
C3,Gamma GmbH,DE,,
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def dump(engine: Engine, models: tuple[type, ...] = DOMAIN_TABLES) -> dict[str, list[Any]]:
    """Every row of every given table, ordered by id: equal dumps mean nothing changed."""
    out = {}
    with engine.connect() as conn:
        for model in models:
            table = model.__table__  # type: ignore[attr-defined]
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
    return out


def count(engine: Engine, model: type) -> int:
    return len(dump(engine, (model,))[model.__table__.name])  # type: ignore[attr-defined]


def events(engine: Engine, kind: str | None = None) -> list[TimelineEvent]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        stmt = select(TimelineEvent).order_by(TimelineEvent.id)
        if kind:
            stmt = stmt.where(TimelineEvent.kind == kind)
        return list(session.scalars(stmt))


def import_runs(engine: Engine) -> list[ImportRun]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(ImportRun).order_by(ImportRun.id)))
