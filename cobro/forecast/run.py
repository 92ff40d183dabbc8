"""The forecast and its backtest against the database: the model (`cobro.forecast.model`)
fed by the queries (`cobro.forecast.sql`), one implementation for the CLI, pages and API.

    collection_forecast(engine, date(2026, 12, 2))      # the next 8 weeks, per currency
    run_backtest(engine, weeks=8)                       # 12 weekly origins before the data end
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine

from cobro.forecast import sql, store
from cobro.forecast.backtest import ORIGINS, Backtest, baselines, origin_result, score, weekly
from cobro.forecast.model import Forecast


class NotEnoughHistory(ValueError):
    """No payment to score a past forecast against."""


def collection_forecast(engine: Engine, as_of: date, weeks: int = 8) -> Forecast:
    """Expected cash-in per week as of a day, from the data as it was that day."""
    return store.forecast_as_of(engine, as_of, weeks)


def backtest_origins(
    last_payment: date, today: date, weeks: int, count: int = ORIGINS
) -> list[date]:
    """Weekly origins, oldest first, the newest one `weeks` weeks before the data's end (its
    last payment, or today if earlier) so that every horizon week has happened."""
    end = min(last_payment, today)
    newest = end - timedelta(days=7 * weeks)
    return [newest - timedelta(days=7 * k) for k in reversed(range(count))]


def run_backtest(
    engine: Engine, weeks: int = 8, today: date | None = None, origins: int = ORIGINS
) -> Backtest:
    with engine.connect() as conn:
        last = sql.last_payment_date(conn)
    if last is None:
        raise NotEnoughHistory("no payment recorded: nothing to backtest a forecast against")
    results = []
    for as_of in backtest_origins(last, today or date.today(), weeks, origins):
        model = collection_forecast(engine, as_of, weeks)
        with engine.connect() as conn:
            naive = baselines(sql.due_groups(conn, as_of), as_of, weeks)
            cash = sql.cash_in(conn, as_of, 7 * weeks)
        actual = weekly(
            ((c, day, amount) for c, days in cash.items() for day, amount in days.items()),
            as_of,
            weeks,
        )
        results.append(origin_result(as_of, model, naive, actual))
    return score(results, weeks)
