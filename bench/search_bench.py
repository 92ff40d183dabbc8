"""Customer search benchmark: the customers page's search (case and accents ignored,
`cobro.search.matches` on `customers.search_text`) on 100k customers, PostgreSQL (pg_trgm
index) and SQLite, against the naive way of ignoring accents: reading every customer's
fields and folding them in Python, in the same run.

Three searches, each a whole page read of `list_customers` (the count, the page, its
exposures), median of 5: a name fragment typed without accents ("nunez", 1 customer in 100
carries "Núñez"), an account ("B0077000" of 100k, one customer) and a VAT typed with
spaces ("fr 40 000 077 000"). Every answer is checked against the naive one.

    .venv/bin/python bench/search_bench.py --quick   # 20,000 customers
    .venv/bin/python bench/search_bench.py           # 100,000 customers

The LAST line is machine-readable:

    BENCH search pg_ms=<worst of the three, PostgreSQL> sqlite_ms=<worst, SQLite>
    naive_ms=<the naive scan, PostgreSQL> ratio=<naive / pg>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import pg_database, sqlite_database  # noqa: E402

NAMES = ["Ferretería", "Quincaillerie", "Eisenwaren", "Suministros", "Comercial", "Société"]
CITIES = ["Sevilla", "Lyon", "Köln", "Málaga", "Besançon", "Zaragoza", "Łódź"]
SEARCHES: dict[str, str] = {}  # set by main() for the portfolio's size


def searches(n: int) -> dict[str, str]:
    one = n * 77 // 100  # a customer about three quarters down the list
    vat = f"{one:09d}"
    return {
        "nunez": "nunez",
        "account": f"B{one:07d}",
        "vat": f"fr 40 {vat[:3]} {vat[3:6]} {vat[6:]}",
    }


def populate(url: str, n: int) -> None:
    from sqlalchemy import create_engine, insert

    from cobro.models import Customer
    from cobro.search import search_text

    engine = create_engine(url)
    rows = []
    for i in range(n):
        family = "Núñez" if i % 100 == 7 else ["García", "Martin", "Müller", "Dubois"][i % 4]
        name = f"{NAMES[i % len(NAMES)]} {family} {CITIES[i % len(CITIES)]} {i}"
        account, vat = f"B{i:07d}", f"FR40{i:09d}"
        email = f"ap{i}@client{i % 977}.example"
        rows.append(
            {
                "account": account,
                "name": name,
                "country": "FR",
                "vat": vat,
                "email": email,
                "language": "fr",
                "timezone": "Europe/Paris",
                "search_text": search_text(account, name, None, vat, email),
            }
        )
        if len(rows) == 5000 or i == n - 1:
            with engine.begin() as conn:
                conn.execute(insert(Customer), rows)
            rows = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE customers")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def timed(function, repeat: int = 5) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def page_search(url: str) -> dict[str, tuple[float, set[str], int]]:
    from sqlalchemy import create_engine

    from cobro.exposure.compute import ExposureRules
    from cobro.web.queries import CustomerFilters, list_customers

    engine = create_engine(url)
    rules = ExposureRules()
    out = {}
    for label, query in SEARCHES.items():
        ms, (rows, total) = timed(  # type: ignore[misc]
            lambda q=query: list_customers(
                engine, date.today(), CustomerFilters(q=q), exposure_rules=rules
            )
        )
        out[label] = (ms, {r.account for r in rows}, total)
    engine.dispose()
    return out


def naive_search(url: str) -> dict[str, tuple[float, list[str]]]:
    """Every customer's fields read and folded in Python, then the first page by account."""
    from sqlalchemy import create_engine, select

    from cobro.models import Customer
    from cobro.search import compact, fold

    engine = create_engine(url)
    out = {}
    for label, query in SEARCHES.items():

        def scan(q: str = query) -> list[str]:
            folded, squeezed = fold(q), compact(q)
            with engine.connect() as conn:
                found = [
                    r.account
                    for r in conn.execute(
                        select(Customer.account, Customer.name, Customer.vat, Customer.email)
                    )
                    if folded in fold(f"{r.account} {r.name} {r.email}")
                    or (len(squeezed) >= 5 and squeezed in compact(r.vat))
                ]
            return sorted(found)

        ms, found = timed(scan)
        out[label] = (ms, found)  # type: ignore[assignment]
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 customers")
    parser.add_argument("--customers", type=int, default=None)
    args = parser.parse_args()
    n = args.customers or (20_000 if args.quick else 100_000)
    worst: dict[str, float] = {}
    naive_ms = 0.0
    SEARCHES.update(searches(n))
    with (
        tempfile.TemporaryDirectory(prefix="cobro-search-") as tmp,
        pg_database() as pg_url,
        sqlite_database(Path(tmp)) as sqlite_url,
    ):
        for kind, url in (("pg", pg_url), ("sqlite", sqlite_url)):
            t = time.perf_counter()
            populate(url, n)
            print(f"{kind}: {n:,} customers inserted in {time.perf_counter() - t:.1f} s")
            ours = page_search(url)
            naive = naive_search(url)
            for label, (ms, accounts, total) in ours.items():
                expected = naive[label][1]
                if total != len(expected) or accounts != set(expected[:50]):
                    raise SystemExit(
                        f"{kind} {label}: {total} found, the naive scan finds {len(expected)}"
                    )
                print(
                    f"  {label:8} {SEARCHES[label]!r:20} {total:5} found: page {ms:7.1f} ms"
                    f"   naive scan {naive[label][0]:8.1f} ms"
                )
            worst[kind] = max(ms for ms, _, _ in ours.values())
            if kind == "pg":
                naive_ms = max(ms for ms, _ in naive.values())
    ratio = naive_ms / worst["pg"]
    print(
        f"BENCH search pg_ms={worst['pg']:.1f} sqlite_ms={worst['sqlite']:.1f} "
        f"naive_ms={naive_ms:.1f} ratio={ratio:.1f}"
    )


if __name__ == "__main__":
    main()
