"""CSV → rows with physical line numbers; header checks.

The file is read whole (its sha256 is recorded by the import run), decoded as UTF-8 with an
optional BOM and parsed with the `csv` module. A row's line number is the physical line
where the record starts, so a quoted field that spans lines does not shift the numbering of
the rows that follow. Cells are stripped; empty cells are left out of `Row.values`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def error_line(file: str, line: int, column: str | None, message: str) -> str:
    """`FILE:LINE: column: message`, the one format every import error uses."""
    message = " ".join(message.split())
    if column:
        return f"{file}:{line}: {column}: {message}"
    return f"{file}:{line}: {message}"


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, str]


@dataclass
class CsvFile:
    display: str
    sha256: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)


def read_csv(
    path: Path, *, known: Sequence[str], required: Sequence[str]
) -> tuple[CsvFile, list[str]]:
    """Parse `path`; returns the file and the list of formatted errors (header, structure)."""
    display = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return CsvFile(display, "", []), [f"{display}: cannot read the file: {exc.strerror}"]
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return CsvFile(display, sha256, []), [
            error_line(display, line, None, "not valid UTF-8 (save the file as UTF-8)")
        ]

    errors: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[Row] = []
    consumed = 0  # physical lines consumed so far
    try:
        for record in reader:
            start, consumed = consumed + 1, reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                errors.extend(_check_header(display, start, header, known, required))
                if errors:
                    return CsvFile(display, sha256, header), errors
                continue
            if len(record) != len(header):
                errors.append(
                    error_line(
                        display,
                        start,
                        None,
                        f"{len(record)} fields but the header has {len(header)}"
                        " (a ',' inside a value must be quoted)",
                    )
                )
                continue
            values = {}
            for name, cell in zip(header, record, strict=True):
                cell = cell.strip()
                if cell:
                    values[name] = cell
            rows.append(Row(start, values))
    except csv.Error as exc:
        errors.append(error_line(display, consumed + 1, None, f"malformed CSV: {exc}"))
    if header is None:
        errors.append(error_line(display, 1, None, "empty file: expected a header row"))
        return CsvFile(display, sha256, []), errors
    return CsvFile(display, sha256, header, rows), errors


def _check_header(
    display: str, line: int, header: list[str], known: Sequence[str], required: Sequence[str]
) -> list[str]:
    errors = []
    seen: set[str] = set()
    for name in header:
        if name not in known:
            errors.append(
                error_line(
                    display, line, name or "(empty)", f"unknown column; expected {', '.join(known)}"
                )
            )
        elif name in seen:
            errors.append(error_line(display, line, name, "column appears twice"))
        seen.add(name)
    for name in required:
        if name not in seen:
            errors.append(error_line(display, line, name, "required column is missing"))
    return errors
