"""Benchmark of the collection forecast read (`/api/forecast`, the reports page's forecast)
on PostgreSQL: N generated invoices over 3 years with payments (`kpi_bench.load`: N/20
customers), as of the data's last day. Timed: the baseline (the previous forecast's query:
every customer's average days late over 12 months joined to the open invoices, in SQL), the
first read of the day (the model's profiles and groups computed and cached), and then the
reads that follow (median of 5) through the JSON API (HTTP in-process, bearer token).

    .venv/bin/python bench/forecast_bench.py [--quick] [--n N] [--url postgresql://...]

`--url`: a database already holding `kpi_bench.load`'s data (migrated to head), left as it
is apart from the forecast's cache, e.g. to time again without loading 2M invoices anew.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import pg_database  # noqa: E402
from kpi_bench import DATA_END, load  # noqa: E402
from sqlalchemy import Engine, Float, case, cast, delete, func, select  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from cobro.db import make_engine  # noqa: E402
from cobro.forecast.run import collection_forecast  # noqa: E402
from cobro.models import ForecastModel, ForecastProfile, Invoice, PaymentAllocation  # noqa: E402
from cobro.rules.facts_sql import days_between  # noqa: E402
from cobro.settings import Settings  # noqa: E402
from cobro.users import create_api_token, create_user  # noqa: E402
from cobro.web.app import create_app  # noqa: E402

AS_OF = DATA_END


def baseline(engine: Engine, as_of: date) -> int:
    """The forecast's previous query (main before issue 15): average days late per customer
    over 12 months, joined to the open invoices, grouped by due date and days late."""
    with engine.connect() as conn:
        a = PaymentAllocation
        late = days_between(conn, a.payment_date, a.due_date)
        per_customer = (
            select(
                a.customer_id.label("customer_id"),
                func.round(
                    cast(func.sum(case((late > 0, late), else_=0)), Float) / func.count()
                ).label("late"),
            )
            .where(a.payment_date > as_of - timedelta(days=365), a.payment_date <= as_of)
            .group_by(a.customer_id)
            .subquery()
        )
        conn.scalar(select(func.avg(per_customer.c.late)))
        rows = conn.execute(
            select(
                Invoice.due_date,
                Invoice.currency,
                Invoice.disputed,
                per_customer.c.late,
                func.sum(Invoice.open_amount),
            )
            .outerjoin(per_customer, per_customer.c.customer_id == Invoice.customer_id)
            .where(Invoice.open_amount > Decimal(0))
            .group_by(Invoice.due_date, Invoice.currency, Invoice.disputed, per_customer.c.late)
        ).all()
    return len(rows)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k invoices")
    parser.add_argument("--n", type=int, default=2_000_000, help="invoices (customers: n/20)")
    parser.add_argument("--url", help="an already loaded database (see above)")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.n
    with ExitStack() as stack:
        url = args.url
        if url is None:
            url = stack.enter_context(pg_database())
            start = time.perf_counter()
            load(url, n)
            took = time.perf_counter() - start
            print(f"loaded {n:,} invoices, {n // 20:,} customers in {took:.0f} s")
        engine = make_engine(url)
        with engine.begin() as conn:
            n = conn.scalar(select(func.count()).select_from(Invoice)) or 0
            conn.execute(delete(ForecastProfile))
            conn.execute(delete(ForecastModel))
        user = f"bench-{uuid.uuid4().hex[:6]}"
        create_user(engine, user, "correct horse battery", "viewer")
        token = create_api_token(engine, user, "bench")
        client = TestClient(create_app(Settings(database_url=url, web_secret_key="k" * 32), engine))
        headers = {"Authorization": f"Bearer {token}"}

        def api() -> None:
            r = client.get("/api/forecast", params={"as_of": AS_OF.isoformat()}, headers=headers)
            assert r.status_code == 200, r.text

        base = statistics.median(timed(lambda: baseline(engine, AS_OF)) for _ in range(3))
        first = timed(lambda: collection_forecast(engine, AS_OF))
        reads = [timed(api) for _ in range(5)]
        read = statistics.median(reads)
        f = collection_forecast(engine, AS_OF)
        for currency in f.currencies():
            weeks = " ".join(f"{float(v) / 1e6:.1f}" for v in f.by_currency.get(currency, []))
            later = float(f.later.get(currency, 0)) / 1e6
            never = float(f.not_expected.get(currency, 0)) / 1e6
            print(f"{currency} (M): weeks {weeks}; later {later:.1f}; not expected {never:.1f}")
        print(f"baseline (previous query): {base * 1000:.0f} ms (median of 3)")
        print(f"first read of the day (profiles computed): {first * 1000:.0f} ms")
        print(f"API reads: {' '.join(f'{r * 1000:.0f}' for r in reads)} ms")
        engine.dispose()
    print(
        f"BENCH forecast invoices={n} read_ms={read * 1000:.0f} first_ms={first * 1000:.0f} "
        f"baseline_ms={base * 1000:.0f} ratio={base / read:.1f}"
    )


if __name__ == "__main__":
    main()
