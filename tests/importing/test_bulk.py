"""The bulk machinery of the import: raw executemany INSERTs store exactly what SQLAlchemy's
`insert()` stores, and the import leaves the garbage collector as it found it."""

from __future__ import annotations

import gc
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from cobro.importing import ImportFailed, import_csv
from cobro.importing.upsert import BulkInsert, customers_t, events_t
from cobro.models import Invoice
from cobro.types import utcnow
from tests.helpers.importing import CUSTOMERS, write

invoices_t = Invoice.__table__


def raw_rows(engine: Engine, table: str) -> list[tuple[object, ...]]:
    """Rows as the driver returns them, before any SQLAlchemy result processing."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]


def test_bulk_insert_stores_what_insert_stores(engine: Engine) -> None:
    now = utcnow()
    customer = {  # explicit ids: the two runs must store identical rows
        "id": 7,
        "account": "C1",
        "name": "Alpha",
        "country": "FR",
        "language": "fr",
        "timezone": "Europe/Paris",
        "group_name": "G",
        "payment_terms_days": 30,
        "created_at": now,
        "updated_at": now,
    }
    invoice = {
        "id": 8,
        "customer_id": 7,
        "issue_date": date(2025, 1, 31),
        "due_date": date(2025, 3, 2),
        "currency": "EUR",
        "amount": Decimal("-1234.5678"),
        "open_amount": Decimal("-0.1"),
        "disputed": True,
        "created_at": now,
        "updated_at": now,
    }
    event = {"id": 9, "customer_id": 7, "kind": "k", "summary": "s", "data": {"a": ["é", 1, None]}}
    with engine.begin() as conn:
        conn.execute(insert(customers_t), [customer])
        conn.execute(insert(invoices_t), [{**invoice, "number": "I1"}])
        conn.execute(insert(events_t), [{**event, "at": now, "actor": "import"}])
    expected = {t: raw_rows(engine, t) for t in ("customers", "invoices", "timeline_events")}
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM timeline_events")
        conn.exec_driver_sql("DELETE FROM invoices")
        conn.exec_driver_sql("DELETE FROM customers")

    with engine.begin() as conn:
        # columns in an order of our own, some given as constants, defaults filled in
        names = ["timezone", "account", "id", "name", "payment_terms_days", "group_name"]
        constants = {"language": "fr", "country": "FR", "created_at": now, "updated_at": now}
        BulkInsert(conn, customers_t, names, constants).run([tuple(customer[n] for n in names)])
        names = ["number", *invoice][:-2]
        constants = {"created_at": now, "updated_at": now}
        BulkInsert(conn, invoices_t, names, constants).run(
            [("I1", *(invoice[n] for n in names[1:]))]
        )
        names = list(event)
        constants = {"at": now, "actor": "import"}
        BulkInsert(conn, events_t, names, constants).run([tuple(event.values())])
        BulkInsert(conn, events_t, names, constants).run([])
    got = {t: raw_rows(engine, t) for t in expected}
    assert got == expected
    assert all(len(rows) == 1 for rows in got.values())


def test_bulk_insert_wants_callable_defaults_given(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(ValueError, match="give a value for at"):
        BulkInsert(conn, events_t, ["customer_id", "kind", "summary", "data"])


@pytest.mark.parametrize("enabled", [True, False])
def test_import_leaves_the_gc_as_it_was(engine: Engine, tmp_path: Path, enabled: bool) -> None:
    good = write(tmp_path / "c.csv", CUSTOMERS)
    bad = write(tmp_path / "bad.csv", "account,name,country\nC9,Nine,XX\n")
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        import_csv("customers", good, engine)
        assert gc.isenabled() is enabled
        with pytest.raises(ImportFailed):
            import_csv("customers", bad, engine)
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar() == 3
