"""CSV reading and row validation, no database: line numbers, header checks, normalisers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cobro.importing import normalise
from cobro.importing.reader import read_csv
from cobro.importing.schemas import REQUIRED, CustomerRow, InvoiceRow, columns, validate_rows
from tests.helpers.importing import write


def read(path: Path, kind: str = "invoices"):  # type: ignore[no-untyped-def]
    return read_csv(path, known=columns(kind), required=REQUIRED[kind])


def test_bom_and_physical_line_numbers_with_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(
        b'\xef\xbb\xbfaccount,name,country\r\nC1,"Two\r\nlines",FR\r\n\r\nC2,"x\ny\nz",FR\nC3,n,FR\n'
    )
    csv_file, errors = read(path, "customers")
    assert errors == []
    assert csv_file.columns == ["account", "name", "country"]
    assert [(r.line, r.values["account"]) for r in csv_file.rows] == [
        (2, "C1"),
        (5, "C2"),
        (8, "C3"),
    ]
    assert csv_file.rows[0].values["name"] == "Two\r\nlines"


def test_header_errors_are_on_line_1(tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", "number,account,issue_date,amount,colour,amount\nI1,C1\n")
    _, errors = read(path)
    assert errors == [
        f"{path}:1: colour: unknown column; expected {', '.join(columns('invoices'))}",
        f"{path}:1: amount: column appears twice",
        f"{path}:1: due_date: required column is missing",
        f"{path}:1: currency: required column is missing",
    ]


def test_wrong_field_count_and_empty_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "account,name,country\nC1, Alpha ,FR\nC2,x\nC3,,FR\n")
    csv_file, errors = read(path, "customers")
    assert errors == [
        f"{path}:3: 2 fields but the header has 3 (a ',' inside a value must be quoted)"
    ]
    assert csv_file.rows[0].values == {"account": "C1", "name": "Alpha", "country": "FR"}
    assert csv_file.rows[1].values == {"account": "C3", "country": "FR"}


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"account,name,country\nC1,ok,FR\nC2,caf\xe9,FR\n")
    _, errors = read(path, "customers")
    assert errors == [
        f"{path}:3: not valid UTF-8 (save the file as UTF-8): byte 0xe9 (Windows-1252 or Latin-1?)"
    ]


def test_missing_file(tmp_path: Path) -> None:
    _, errors = read(tmp_path / "nope.csv")
    assert errors[0].startswith(f"{tmp_path / 'nope.csv'}: cannot read the file")


def test_row_errors_are_translated(tmp_path: Path) -> None:
    path = write(
        tmp_path / "i.csv",
        "number,account,issue_date,due_date,currency,amount,open_amount,disputed\n"
        "I1,C1,2026-02-30,2026-03-01,EUR,100.00,,maybe\n"
        "I2,,2026-03-01,2026-02-01,eur,1 000,,\n"
        "I3,C1,2026-03-01,2026-03-31,EUR,100,120,\n"
        "I4,C1,2026-03-01,2026-03-31,EUR,100.12345,,\n"
        "I5,C1,01/03/2026,2026-03-31,EUR,-50,-20,yes\n",
    )
    csv_file, _ = read(path)
    errors: list[tuple[int, str]] = []
    good = validate_rows(InvoiceRow, csv_file.rows, str(path), errors)
    assert good == []
    assert [e for _, e in errors] == [
        f"{path}:2: issue_date: invalid date '2026-02-30': no such day",
        f"{path}:2: disputed: invalid boolean 'maybe': expected true/false, 1/0 or yes/no",
        f"{path}:3: account: required value is missing",
        f"{path}:3: due_date: due date 2026-02-01 is before the issue date 2026-03-01",
        f"{path}:3: amount: invalid amount '1 000': expected digits with '.' as decimal"
        " separator and at most 4 decimals",
        f"{path}:4: open_amount: open amount 120 must lie between 0 and 100",
        f"{path}:5: amount: invalid amount '100.12345': expected digits with '.' as decimal"
        " separator and at most 4 decimals",
        f"{path}:6: issue_date: invalid date '01/03/2026': expected YYYY-MM-DD",
    ]


def test_credit_note_and_defaults() -> None:
    raw = {
        "number": "CN1",
        "account": "C1",
        "issue_date": "2026-01-01",
        "due_date": "2026-01-01",
        "currency": "eur",
        "amount": "-50.5",
    }
    row = InvoiceRow.model_validate(raw)
    assert row.currency == "EUR"
    assert row.effective_open_amount == Decimal("-50.5")
    assert row.disputed is False
    for flag, expected in [("TRUE", True), ("1", True), ("yes", True), ("No", False), ("0", False)]:
        data = raw | {"disputed": flag, "open_amount": "-10"}
        assert InvoiceRow.model_validate(data).disputed is expected


def test_customer_normalisation() -> None:
    row = CustomerRow.model_validate(
        {
            "account": "C1",
            "name": "Alpha",
            "country": "fr",
            "phone": "06 12 34 56 78",
            "email": " a@alpha.fr ; b@alpha.fr ",
            "language": "FR",
            "payment_terms_days": "45",
        }
    )
    assert (row.country, row.phone, row.email, row.language, row.payment_terms_days) == (
        "FR",
        "+33612345678",
        "a@alpha.fr;b@alpha.fr",
        "fr",
        45,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("country", "XX", "unknown country 'XX'"),
        ("language", "fra", "unknown language 'fra'"),
        ("timezone", "Europe/Parys", "unknown time zone 'Europe/Parys'"),
        ("email", "a@alpha.fr;nope", "invalid e-mail address 'nope'"),
        ("phone", "12345", "invalid phone number '12345' for country FR"),
        ("phone", "call me", "invalid phone number 'call me'"),
        ("payment_terms_days", "30.5", "invalid whole number '30.5'"),
        ("duns", "1234567890", "too long (9 characters at most)"),
    ],
)
def test_customer_errors(field: str, value: str, message: str) -> None:
    errors: list[tuple[int, str]] = []
    from cobro.importing.reader import Row

    values = {"account": "C1", "name": "Alpha", "country": "FR", field: value}
    validate_rows(CustomerRow, [Row(4, values)], "c.csv", errors)
    assert len(errors) == 1
    assert errors[0][1].startswith(f"c.csv:4: {field}: {message}")


def test_defaults_from_country() -> None:
    assert normalise.default_language("FR") == "fr"
    assert normalise.default_language("US") == "en"
    assert normalise.default_language("BE") == "nl"
    assert normalise.default_timezone("FR") == "Europe/Paris"
    assert normalise.default_timezone("US") == "America/New_York"
    assert normalise.default_timezone("ES") == "Europe/Madrid"
    assert normalise.default_timezone("JP") == "Asia/Tokyo"
    for country in normalise.countries():
        normalise.timezone(normalise.default_timezone(country))
        normalise.language(normalise.default_language(country))
