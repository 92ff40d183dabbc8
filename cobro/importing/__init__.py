"""ERP CSV import: `import_csv("customers" | "invoices" | "payments", path)`.

All or nothing: the whole file is read and validated (row models, then the checks that
need the database) inside one transaction; any error raises `ImportFailed` with every
error as `FILE:LINE: column: message` and nothing is written. Otherwise the rows are
upserted in batches (see `upsert.py`), every change lands on the customer timeline, and one
`ImportRun` row records the file, its sha256 and the counts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from cobro.importing import customers, invoices, payments
from cobro.importing.reader import CsvFile, Row, error_line, read_csv
from cobro.importing.schemas import REQUIRED, ROW_MODELS, columns, validate_rows
from cobro.importing.upsert import BATCH_SIZE, Context, Counts, check_accounts
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

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.rows} rows from {self.file}: {self.created} created,"
            f" {self.updated} updated, {self.unchanged} unchanged"
        )


def import_csv(
    kind: str, path: Path | str, engine: Engine | None = None, *, batch_size: int = BATCH_SIZE
) -> ImportReport:
    """Import one ERP file; raises `ImportFailed` (nothing written) on any bad row."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}")
    with _gc_paused():
        return _import(kind, Path(path), engine, batch_size)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """An import holds every row of the file (hundreds of thousands of small objects, freed
    by reference counting, not in cycles) for its whole duration, and the cyclic garbage
    collector would walk them again and again as more are allocated: a fifth of the
    import's time. It is paused meanwhile and resumed (as it was) afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _import(kind: str, path: Path, engine: Engine | None, batch_size: int) -> ImportReport:
    csv_file, file_errors = read_csv(path, known=columns(kind), required=REQUIRED[kind])
    if file_errors:
        raise ImportFailed(file_errors)
    display = csv_file.display
    errors: list[tuple[int, str]] = []
    good = validate_rows(ROW_MODELS[kind], csv_file.rows, display, errors)
    _duplicates(csv_file, NATURAL_KEYS[kind], errors)

    if engine is None:
        from cobro.db import default_engine

        engine = default_engine()
    with engine.begin() as conn:
        ctx = Context(conn=conn, source=path.name, now=utcnow(), batch_size=batch_size)
        if kind == "customers":
            _raise_if(errors)
            counts = customers.write(ctx, good, set(csv_file.columns))  # type: ignore[arg-type]
        elif kind == "invoices":
            accounts = check_accounts(conn, display, csv_file.rows, errors)
            _raise_if(errors)
            counts = invoices.write(ctx, good, accounts)  # type: ignore[arg-type]
        else:
            plan = payments.check(conn, display, csv_file.rows, good, errors)  # type: ignore[arg-type]
            _raise_if(errors)
            counts = payments.write(ctx, plan)
        report = _report(kind, csv_file, counts)
        conn.execute(
            insert(ImportRun.__table__),  # type: ignore[arg-type]
            {
                "kind": kind,
                "file_name": path.name,
                "file_sha256": csv_file.sha256,
                "counts": report.as_dict() | {"file": display},
                "at": ctx.now,
            },
        )
    return report


def _duplicates(csv_file: CsvFile, key: str, errors: list[tuple[int, str]]) -> None:
    first: dict[str, int] = {}
    for row in csv_file.rows:
        value = row.values.get(key)
        if value is None:
            continue
        if value in first:
            errors.append(
                (
                    row.line,
                    error_line(
                        csv_file.display,
                        row.line,
                        key,
                        f"duplicate {key} {value!r} (first on line {first[value]})",
                    ),
                )
            )
        else:
            first[value] = row.line


def _raise_if(errors: list[tuple[int, str]]) -> None:
    if errors:
        errors.sort(key=lambda item: item[0])  # stable: a row's errors keep column order
        raise ImportFailed([text for _, text in errors])


def _report(kind: str, csv_file: CsvFile, counts: Counts) -> ImportReport:
    return ImportReport(
        kind=kind,
        file=csv_file.display,
        sha256=csv_file.sha256,
        rows=len(csv_file.rows),
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        extra=dict(counts.extra),
    )


__all__ = ["KINDS", "ImportFailed", "ImportReport", "Row", "import_csv"]
