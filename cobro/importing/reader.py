"""CSV → rows with physical line numbers, streamed; separator detection; header checks.

The file is read as a stream (never whole): bytes go through a sha256 (recorded by the import
run), are decoded as UTF-8 with an optional BOM, split into physical lines and parsed with the
`csv` module, one record at a time. A row's line number is the physical line where the record
starts, so a quoted field that spans lines does not shift the numbering of the rows that
follow. Cells are stripped; empty cells are left out of `Row.values`.

The separator is read off the header row (or an Excel `sep=;` line before it): `,` (with `.`
decimals) or `;` (with a decimal comma, as Excel writes CSV in Spanish or French). Anything
else is said as seen.

Problems of the file itself each get their own `FILE:LINE: message`: not UTF-8 (the import
stops there), a NUL byte, an unclosed quote, a stray quote, a wrong number of fields.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MAX_ERRORS = 100  # errors listed; the rest are counted
FIELD_LIMIT = csv.field_size_limit()  # a longer value is an unclosed quote, not data
_BAD_CHAR = re.compile("[\x00\udc80-\udcff]")  # NUL, or a byte that is not UTF-8 (escaped)
_OTHER_SEPARATORS = {"\t": "tabs", "|": "'|'"}
_SEP_HINT = re.compile(r'"?sep=([,;])"?', re.IGNORECASE)


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


@dataclass(frozen=True)
class Dialect:
    """How the file is written: `,` with `.` decimals, or `;` with a decimal comma."""

    separator: str = ","

    @property
    def decimal_comma(self) -> bool:
        return self.separator == ";"

    def describe(self) -> str:
        return "';'-separated, decimal comma" if self.decimal_comma else "','-separated"


class Errors:
    """The errors of one file in file order: the first `limit` are kept as text, the rest
    only counted. Errors are gathered per batch of rows (`pending`, `(line, text)` pairs)
    and `flush`ed in line order once the batch is checked: batches follow each other in the
    file, so the kept errors are the file's first ones."""

    def __init__(self, file: str, limit: int = MAX_ERRORS) -> None:
        self.file = file
        self.limit = limit
        self.kept: list[str] = []
        self.pending: list[tuple[int, str]] = []
        self.total = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        self.pending.append((line, error_line(self.file, line, column, message)))

    def flush(self) -> None:
        self.pending.sort(key=lambda item: item[0])  # stable: a row's errors keep column order
        room = self.limit - len(self.kept)
        self.kept.extend(text for _, text in self.pending[: max(room, 0)])
        self.total += len(self.pending)
        self.pending = []

    def __bool__(self) -> bool:
        return bool(self.total or self.pending)

    def lines(self) -> list[str]:
        self.flush()
        more = self.total - len(self.kept)
        if more > 0:
            return [*self.kept, f"{self.file}: ... and {more} more error(s), {self.total} in all"]
        return list(self.kept)


class _Hashing(io.RawIOBase):
    """A raw binary reader that feeds every byte read to a sha256."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.hash.update(memoryview(buffer)[:n])
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class CsvSource:
    """One open CSV file: its header and dialect, then its rows, streamed once (`rows()`).

    Use as a context manager (the file is closed on exit). `sha256` is complete once
    `rows()` is exhausted."""

    def __init__(self, path: Path, errors: Errors) -> None:
        self.path = path
        self.display = errors.file
        self.errors = errors
        self.columns: list[str] = []
        self.dialect = Dialect()
        self.fatal = False  # the rest of the file cannot be read (not UTF-8)
        self.physical = 0  # physical lines read so far
        self._nuls: list[int] = []
        self._hashing: _Hashing | None = None
        self._text: io.TextIOWrapper | None = None
        self._first: list[str] = []

    # --- opening ----------------------------------------------------------------------

    def open(self, known: Sequence[str], required: Sequence[str]) -> bool:
        """Open the file and read its header; False (with errors) if it cannot be imported."""
        try:
            raw = self.path.open("rb", buffering=0)
        except OSError as exc:
            self.errors.kept.append(f"{self.display}: cannot read the file: {exc.strerror}")
            self.errors.total += 1
            return False
        self._hashing = _Hashing(raw)
        buffered = io.BufferedReader(self._hashing, 1 << 16)
        start = buffered.peek(4)[:4]
        if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
            self.errors.add(1, None, "the file is UTF-16: save it as UTF-8 (Excel: CSV UTF-8)")
            return False
        self._text = io.TextIOWrapper(
            buffered, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        self._lines = self._physical_lines()
        header_line, declared = None, None
        for text in self._lines:
            if not text.strip(" \t\r\n,;"):
                continue
            hint = _SEP_HINT.fullmatch(text.strip())
            if hint is not None and declared is None:  # Excel's "sep=;" first line
                declared = hint.group(1)
                continue
            header_line = text
            break
        if header_line is None:
            if not self.fatal:
                self.errors.add(1, None, "empty file: expected a header row")
            return False
        separator = declared or self._separator(header_line, known)
        if separator is None:
            return False
        self.dialect = Dialect(separator)
        header_start = self.physical
        self._first = [header_line]
        self._reader = csv.reader(self._replay(), delimiter=separator, strict=True)
        try:
            record = next(self._reader)
        except (csv.Error, StopIteration):
            self.errors.add(header_start, None, "malformed header row (a quote left open?)")
            return False
        header = [cell.strip().lower() for cell in record]
        self.columns = header
        self._header_line = header_start
        problems = _check_header(header, known, required)
        for column, message in problems:
            self.errors.add(header_start, column, message)
        return not problems and not self._nuls_to_errors()

    def _separator(self, line: str, known: Sequence[str]) -> str | None:
        bare = line.replace('"', "").strip().lower()
        commas, semicolons = bare.count(","), bare.count(";")
        if commas and semicolons:
            by_comma = sum(name.strip() in known for name in bare.split(","))
            by_semicolon = sum(name.strip() in known for name in bare.split(";"))
            if by_comma != by_semicolon:
                return "," if by_comma > by_semicolon else ";"
            self.errors.add(
                self.physical,
                None,
                f"cannot tell the separator: the header row {_shorten(line)} has both ',' and"
                " ';' (write one of them between the column names)",
            )
            return None
        if semicolons:
            return ";"
        if not commas:
            for char, name in _OTHER_SEPARATORS.items():
                if char in bare:
                    self.errors.add(
                        self.physical,
                        None,
                        f"the header row {_shorten(line)} is separated by {name}: Cobro reads"
                        " files separated by ',' (with '.' decimals) or ';' (with decimal"
                        " commas)",
                    )
                    return None
        return ","

    # --- lines ------------------------------------------------------------------------

    def _physical_lines(self) -> Iterator[str]:
        """Physical lines (any of \\n, \\r\\n, \\r ends one), counted; NULs remembered for
        the record they belong to; stops at the first byte that is not UTF-8."""
        assert self._text is not None
        for text in self._text:
            self.physical += 1
            bad = _BAD_CHAR.search(text)
            if bad is not None:
                if bad.group() != "\x00" or _BAD_CHAR.search(text.replace("\x00", "")):
                    self._not_utf8(text)
                    return
                self._nuls.append(self.physical)
            yield text

    def _not_utf8(self, text: str) -> None:
        self.fatal = True
        char = next(c for c in text if "\udc80" <= c <= "\udcff")
        byte = ord(char) - 0xDC00
        hint = " (Windows-1252 or Latin-1?)" if byte >= 0xA0 else ""
        self.errors.add(
            self.physical,
            None,
            f"not valid UTF-8 (save the file as UTF-8): byte 0x{byte:02x}{hint}",
        )

    def _replay(self) -> Iterator[str]:
        yield from self._first
        self._first = []
        yield from self._lines

    def _nuls_to_errors(self) -> bool:
        if not self._nuls:
            return False
        for line in self._nuls:
            self.errors.add(
                line,
                None,
                "NUL byte (\\0) in the line: not a text CSV file? save it as CSV UTF-8",
            )
        self._nuls = []
        return True

    # --- rows -------------------------------------------------------------------------

    def rows(self) -> Iterator[Row]:
        """Every good record as a `Row`; problems go to `errors` (the record is skipped)."""
        header, width = self.columns, len(self.columns)
        reader = self._reader
        consumed = self.physical
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, consumed = consumed + 1, self.physical
                if not self.fatal:
                    self._csv_error(start, consumed, str(exc))
                self._nuls = []
                continue
            start, consumed = consumed + 1, self.physical
            if self._nuls_to_errors():
                continue
            if not record or all(not cell.strip() for cell in record):
                continue
            if len(record) != width:
                self._width_error(start, consumed, len(record), width)
                continue
            values = {}
            for name, cell in zip(header, record, strict=True):
                cell = cell.strip()
                if cell:
                    values[name] = cell
            if "" in values:  # a spreadsheet's unnamed column, with something in it
                position = next(
                    i
                    for i, (name, cell) in enumerate(zip(header, record, strict=True), 1)
                    if not name and cell.strip()
                )
                self.errors.add(
                    start, None, f"a value in column {position}, which has no name in the header"
                )
                continue
            yield Row(start, values)
        self.close()

    def _csv_error(self, start: int, end: int, message: str) -> None:
        add = self.errors.add
        if "unexpected end of data" in message:
            add(
                start,
                None,
                "unclosed quote: the quoted value that starts on this line is never closed"
                f" (it runs to the end of the file, line {end})",
            )
        elif "field larger than field limit" in message:
            add(
                start,
                None,
                f"unclosed quote? a value runs over {FIELD_LIMIT} characters from this line"
                f" to line {end}",
            )
        elif "expected after" in message:
            if end > start:
                add(
                    start,
                    None,
                    f"unclosed quote? the quoted value that starts on this line ends on line"
                    f" {end} in the middle of a value",
                )
            else:
                sep = self.dialect.separator
                add(
                    start,
                    None,
                    f'stray quote: a \'"\' inside a value must be doubled ("") and the value'
                    f" quoted, or the quote must be followed by '{sep}'",
                )
        else:
            add(start, None, f"malformed CSV: {message}")

    def _width_error(self, start: int, end: int, got: int, width: int) -> None:
        sep = self.dialect.separator
        message = f"{got} fields but the header has {width}"
        if end > start:
            message += f" (a quoted value runs from this line to line {end}: is a quote left open?)"
        else:
            message += f" (a '{sep}' inside a value must be quoted)"
        self.errors.add(start, None, message)

    @property
    def sha256(self) -> str:
        return self._hashing.hash.hexdigest() if self._hashing is not None else ""

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
        elif self._hashing is not None:
            self._hashing.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_csv(
    path: Path, *, known: Sequence[str], required: Sequence[str], errors: Errors
) -> CsvSource:
    """Open `path` and check its header; `errors` says whether it can be read further."""
    source = CsvSource(path, errors)
    if not source.open(known, required):
        source.close()
    return source


@dataclass
class CsvFile:
    display: str
    sha256: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    dialect: Dialect = field(default_factory=Dialect)


def read_csv(
    path: Path, *, known: Sequence[str], required: Sequence[str]
) -> tuple[CsvFile, list[str]]:
    """The whole file in memory (small files: tests, samples); returns the file and its
    formatted errors (header, structure), uncapped."""
    errors = Errors(str(path), limit=10**9)
    source = open_csv(path, known=known, required=required, errors=errors)
    rows: list[Row] = []
    if not errors:
        rows = list(source.rows())
    source.close()
    return (
        CsvFile(errors.file, source.sha256, source.columns, rows, source.dialect),
        errors.lines(),
    )


def _shorten(line: str, width: int = 60) -> str:
    text = line.strip()
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _check_header(
    header: list[str], known: Sequence[str], required: Sequence[str]
) -> list[tuple[str | None, str]]:
    errors: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for name in header:
        if not name:  # spreadsheets save empty columns ("a;b;c;;"): ignored if left empty
            continue
        if name not in known:
            errors.append((name or "(empty)", f"unknown column; expected {', '.join(known)}"))
        elif name in seen:
            errors.append((name, "column appears twice"))
        seen.add(name)
    for name in required:
        if name not in seen:
            errors.append((name, "required column is missing"))
    return errors
