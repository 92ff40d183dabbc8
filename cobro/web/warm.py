"""Today's portfolio figures kept computed while the dashboard runs: every `every_s`
seconds the portfolio page's KPIs (insurer obligations included) and the limit review are
asked for; while the data is unchanged that is one small query (`cobro.portfolio_cache`),
after a change (an import, a sync, a payment) they are computed again in the background,
so that the next person opening the portfolio seldom waits for them (seconds on 100k
customers). A reader arriving during that computation waits for it, not for another."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date

from sqlalchemy import Engine

log = logging.getLogger(__name__)


def warm(engine: Engine, day: date | None = None) -> None:
    from cobro.kpis import compute_kpis
    from cobro.web.queries import limit_review

    day = day or date.today()
    compute_kpis(engine, day, obligations=True)
    limit_review(engine, day)


async def keep_figures_warm(engine: Engine, stop: asyncio.Event, every_s: float = 30) -> None:
    """Until `stop` is set; a failed computation is logged and tried again next time."""
    if engine.dialect.name != "postgresql":
        return  # no change tracking: every read computes
    while not stop.is_set():
        try:
            await asyncio.to_thread(warm, engine)
        except Exception:
            log.exception("computing today's portfolio figures in the background")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
