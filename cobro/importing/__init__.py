"""ERP CSV import: `import_csv("customers" | "invoices" | "payments", path)`.

Streamed, and all or nothing. The file is read once, batch by batch (`BATCH_SIZE` rows),
inside one transaction: each batch is parsed, validated (row models), checked against the
database (accounts, invoices, keys already seen in the file: `seen.py`) and, as long as the
file has shown no error, upserted (see `upsert.py`); every change lands on the customer
timeline. Any error anywhere rolls the whole transaction back: `ImportFailed` lists the
file's first `MAX_ERRORS` errors as `FILE:LINE: column: message`, then how many more, and
nothing is written. Only a batch is ever held in memory, so the peak memory does not grow
with the file. A successful import records one `ImportRun` row (file, sha256, counts).

The separator is detected from the header (`reader.Dialect`): `,` with `.` decimals, or `;`
with decimal commas (Excel in Spanish or French).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert

from cobro.importing import customers, invoices, payments
from cobro.importing.reader import MAX_ERRORS, CsvSource, Errors, Row, open_csv
from cobro.importing.schemas import REQUIRED, ROW_MODELS, columns, validate_rows
from cobro.importing.seen import SeenKeys
from cobro.importing.upsert import BATCH_SIZE, Context, Counts, check_accounts, check_owners
from cobro.models import ImportRun
from cobro.types import utcnow

KINDS = ("customers", "invoices", "payments")
NATURAL_KEYS = {"customers": "account", "invoices": "number", "payments": "reference"}


class ImportFailed(Exception):
    """The file was rejected; `errors` are formatted lines, in file order."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s):\n" + "\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ImportReport:
    kind: str
    file: str
    sha256: str
    rows: int
    created: int
    updated: int
    unchanged: int
    extra: dict[str, Any] = field(default_factory=dict)
    separator: str = ","  # ';': the file had decimal commas

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}

    def summary(self) -> str:
        from cobro.i18n import gettext as _

        how = _(" (';'-separated, decimal comma)") if self.separator == ";" else ""
        return _(
            "%(kind)s: %(rows)s rows from %(file)s%(how)s: %(created)s created,"
            " %(updated)s updated, %(unchanged)s unchanged"
        ) % {
            "kind": self.kind,
            "rows": self.rows,
            "file": self.file,
            "how": how,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


def import_csv(
    kind: str, path: Path | str, engine: Engine | None = None, *, batch_size: int = BATCH_SIZE
) -> ImportReport:
    """Import one ERP file; raises `ImportFailed` (nothing written) on any bad row."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}")
    path = Path(path)
    errors = Errors(str(path), MAX_ERRORS)
    known, required = columns(kind), REQUIRED[kind]
    with _gc_frozen(), open_csv(path, known=known, required=required, errors=errors) as source:
        if errors:
            raise ImportFailed(errors.lines())
        if engine is None:
            from cobro.db import default_engine

            engine = default_engine()
        with engine.begin() as conn:
            return _import(kind, source, conn, errors, batch_size)


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """The import allocates millions of short-lived objects (freed by reference counting):
    each time they trigger a collection, the cyclic collector would also walk every object
    already alive (the modules of SQLAlchemy, pydantic, babel: hundreds of thousands).
    `gc.freeze()` sets those aside for the import's duration; only a batch is ever alive."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while batch := list(islice(rows, size)):
        yield batch


def _import(
    kind: str, source: CsvSource, conn: Connection, errors: Errors, batch_size: int
) -> ImportReport:
    path = source.path
    ctx = Context(conn=conn, source=path.name, now=utcnow(), batch_size=batch_size)
    seen = SeenKeys(conn, NATURAL_KEYS[kind])
    model = ROW_MODELS[kind]
    header = set(source.columns)
    decimal_comma = source.dialect.decimal_comma
    counts = Counts()
    rows = 0
    for batch in _batches(source.rows(), batch_size):
        rows += len(batch)
        pending = errors.pending
        good = validate_rows(model, batch, errors.file, pending, decimal_comma=decimal_comma)
        repeated = seen.duplicates(batch, errors)
        if repeated:
            good = [(row, m) for row, m in good if row.line not in repeated]
        if kind == "customers":
            check_owners(conn, errors.file, good, pending)  # type: ignore[arg-type]
            if not errors:
                counts.add(customers.write(ctx, good, header))  # type: ignore[arg-type]
        elif kind == "invoices":
            fresh = [row for row in batch if row.line not in repeated]
            accounts = check_accounts(conn, errors.file, fresh, pending)
            if not errors:
                counts.add(invoices.write(ctx, good, accounts))  # type: ignore[arg-type]
        else:
            fresh = [row for row in batch if row.line not in repeated]
            plan = payments.check(conn, errors.file, fresh, good, pending)  # type: ignore[arg-type]
            if not errors:
                counts.add(payments.write(ctx, plan))
        errors.flush()
    if errors:
        raise ImportFailed(errors.lines())  # rolls the transaction back
    seen.drop()
    report = ImportReport(
        kind=kind,
        file=errors.file,
        sha256=source.sha256,
        rows=rows,
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        extra=dict(counts.extra),
        separator=source.dialect.separator,
    )
    conn.execute(
        insert(ImportRun.__table__),  # type: ignore[arg-type]
        {
            "kind": kind,
            "file_name": path.name,
            "file_sha256": source.sha256,
            "counts": report.as_dict(),
            "at": ctx.now,
        },
    )
    return report


__all__ = ["KINDS", "MAX_ERRORS", "ImportFailed", "ImportReport", "Row", "import_csv"]
