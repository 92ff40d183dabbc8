"""The forecast's cache, per day: the portfolio curve (`forecast_models.portfolio`), each
customer's rounded profile (`forecast_profiles`) and the forecasts made from them
(`forecast_models.forecasts`, by number of weeks), so that reading a forecast is a few
primary-key lookups instead of a year of payments and every open invoice.

`forecast_as_of(engine, as_of, weeks)`: the profiles are recomputed (one transaction) when
none is stored for the day or the history's fingerprint changed (a new allocation, invoice
or import: `cobro.forecast.sql.fingerprints`); the forecast is recomputed from the open
invoices (one grouped query joined to the profiles) when the open fingerprint changed too
(also: a timeline event, e.g. a dispute opened or resolved). The newest `KEEP` days are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cobro.bulk import bulk_insert
from cobro.forecast import sql
from cobro.forecast.model import Forecast, Portfolio, forecast, portfolio, profile
from cobro.models import ForecastModel, ForecastProfile

KEEP = 16
T = TypeVar("T")


def forecast_as_of(engine: Engine, as_of: date, weeks: int) -> Forecast:
    m = ForecastModel
    for _ in range(3):
        with engine.connect() as conn:
            history, current = sql.fingerprints(conn)
            row = conn.execute(
                select(m.fingerprint, m.portfolio, m.open_fingerprint, m.forecasts).where(
                    m.as_of == as_of
                )
            ).first()
        if row is not None and row.fingerprint == history:
            break
        with suppress(IntegrityError):  # another reader stored the same day meanwhile
            refresh_profiles(engine, as_of, history)
    else:
        raise RuntimeError(f"the data kept changing while the forecast as of {as_of} was computed")
    stored: dict[str, Any] = (row.forecasts or {}) if row.open_fingerprint == current else {}
    if str(weeks) in stored:
        return Forecast.from_json(stored[str(weeks)])
    book = Portfolio.from_json(row.portfolio)
    with engine.connect() as conn:
        groups = sql.open_groups(conn, as_of, profile(None, book))
    result = forecast(groups, book, as_of, weeks)
    with engine.begin() as conn:
        conn.execute(
            update(m)
            .where(m.as_of == as_of, m.fingerprint == history)
            .values(open_fingerprint=current, forecasts={**stored, str(weeks): result.to_json()})
        )
    return result


def refresh_profiles(engine: Engine, as_of: date, history: str) -> Portfolio:
    def read(query: Callable[[Connection, date], T]) -> T:
        with engine.connect() as conn:
            return query(conn, as_of)

    # two scans of the year's payments at once, one connection each (PostgreSQL: two cores)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sums_job = pool.submit(read, sql.lateness_sums)
        counts_job = pool.submit(read, sql.survival_counts)
        sums, counts = sums_job.result(), counts_job.result()
    book = portfolio(sums.values(), counts)
    default = profile(None, book)
    rows = []
    for cid, s in sums.items():
        p = profile(s, book)
        if p != default:
            rows.append(
                {
                    "as_of": as_of,
                    "customer_id": cid,
                    "delay_days": p.delay_days,
                    "spread_step": p.spread_step,
                }
            )
    with Session(engine) as session, session.begin():
        session.execute(delete(ForecastProfile).where(ForecastProfile.as_of == as_of))
        session.execute(delete(ForecastModel).where(ForecastModel.as_of == as_of))
        session.add(ForecastModel(as_of=as_of, fingerprint=history, portfolio=book.to_json()))
        session.flush()
        bulk_insert(session, ForecastProfile, rows)
        old = session.scalars(
            select(ForecastModel.as_of).order_by(ForecastModel.computed_at.desc()).offset(KEEP)
        ).all()
        if old:
            session.execute(delete(ForecastProfile).where(ForecastProfile.as_of.in_(old)))
            session.execute(delete(ForecastModel).where(ForecastModel.as_of.in_(old)))
    return book
