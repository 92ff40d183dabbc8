"""Every CSV that Cobro writes for people (API downloads, `cobro exposure --csv`): one writer.

- UTF-8 with a BOM, so that Excel reads "Ferretería" and not "FerreterÃ­a";
- `,` separator with `.` decimals, or `;` with decimal commas (`CsvFormat(";")`), the way
  Excel reads and writes CSV in Spanish or French; lines end with CRLF (RFC 4180);
- every text cell that a spreadsheet would take for a formula (starting with `=`, `+`, `-`,
  `@`, a tab or a carriage return) is neutralised with a leading `'`, OWASP's rule against
  CSV injection: a customer named `=HYPERLINK(...)` is shown as text, never run. Numbers
  (`Decimal`, `int`, `float`) are written by Cobro itself and stay numbers (`-12.50`).

Dates are ISO, booleans `true`/`false`, `None` an empty cell. The writer streams: rows are
encoded as they come (`iter_csv`), so an export of any size holds one buffer in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SEPARATORS = {",": ",", ";": ";", "comma": ",", "semicolon": ";"}
_FLUSH_ROWS = 500


@dataclass(frozen=True)
class CsvFormat:
    """`separator` `,` (with `.` decimals) or `;` (with decimal commas)."""

    separator: str = ","

    def __post_init__(self) -> None:
        if self.separator not in (",", ";"):
            raise ValueError(f"separator must be ',' or ';', not {self.separator!r}")

    @property
    def decimal_comma(self) -> bool:
        return self.separator == ";"

    @classmethod
    def parse(cls, text: str | None) -> CsvFormat:
        """From an option or a query parameter: `,` / `;` or `comma` / `semicolon`."""
        if text is None or text == "":
            return cls()
        try:
            return cls(SEPARATORS[text.strip().lower()])
        except KeyError:
            raise ValueError(
                f"unknown CSV separator {text!r}: expected ',' or ';' (or comma, semicolon)"
            ) from None


def neutralise(text: str) -> str:
    """OWASP CSV injection: a cell read as a formula gets a leading `'`."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(value: Any, fmt: CsvFormat) -> str:
    """The text of one cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _number(format(value, "f"), fmt)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(repr(value), fmt)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return neutralise(str(value))


def _number(text: str, fmt: CsvFormat) -> str:
    return text.replace(".", ",") if fmt.decimal_comma else text


def iter_csv(
    header: Sequence[str], rows: Iterable[Sequence[Any]], fmt: CsvFormat | None = None
) -> Iterator[bytes]:
    """The encoded file, chunk by chunk: BOM and header first, then the rows."""
    fmt = fmt or CsvFormat()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=fmt.separator, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow([neutralise(name) for name in header])
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(value, fmt) for value in row])
        if count % _FLUSH_ROWS == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def to_bytes(
    header: Sequence[str], rows: Iterable[Sequence[Any]], fmt: CsvFormat | None = None
) -> bytes:
    return b"".join(iter_csv(header, rows, fmt))


def write_csv(
    out: IO[bytes],
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    fmt: CsvFormat | None = None,
) -> None:
    """Stream the file to a binary stream (a file, `sys.stdout.buffer`), flushed per chunk."""
    for chunk in iter_csv(header, rows, fmt):
        out.write(chunk)
        out.flush()
