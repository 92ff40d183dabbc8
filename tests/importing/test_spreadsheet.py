"""Files as spreadsheets write them (`;` and decimal commas, BOM, CRLF), and the file-level
errors of a streamed import: separators, NUL bytes, unclosed quotes, amounts finer than
their currency, the cap on errors, all-or-nothing across batches. SQLite and PostgreSQL."""

from __future__ import annotations

import tracemalloc
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine
from cobro.importing import MAX_ERRORS, ImportFailed, import_csv
from cobro.models import Customer, Invoice, Payment
from tests.helpers.importing import CUSTOMERS, dump, import_runs, write

HEADER = "number,account,issue_date,due_date,currency,amount,open_amount,disputed\n"

# as Excel (Spanish or French) saves "CSV UTF-8": BOM, ';', decimal commas, CRLF, quotes
EXCEL_CUSTOMERS = (
    "\ufeffaccount;name;country;email\r\n"
    'C1;"Ferretería Núñez; S.L.";ES;ap@ferreteria.es\r\n'
    "C2;Société Générale de Vis;FR;\r\n"
)
EXCEL_INVOICES = (
    "\ufeffnumber;account;issue_date;due_date;currency;amount;open_amount;disputed\r\n"
    "F1;C1;2026-01-01;2026-01-31;EUR;1234,56;1234,56;FALSO\r\n"
    "F2;C1;2026-01-15;2026-02-14;EUR;1.234.567,8;;VERDADERO\r\n"
    "F3;C2;2026-02-01;2026-03-03;EUR;1\u202f250,00;250,5;FAUX\r\n"
    "F4;C2;2026-02-01;2026-02-01;EUR;-50;-50;0\r\n"
    "F5;C2;2026-02-01;2026-03-03;JPY;1500;;\r\n"
)


def lines_of(exc: pytest.ExceptionInfo[ImportFailed]) -> list[str]:
    return exc.value.errors


def test_excel_semicolon_file_with_decimal_commas_imports(engine: Engine, tmp_path: Path) -> None:
    customers = write(tmp_path / "clientes.csv", EXCEL_CUSTOMERS)
    invoices = write(tmp_path / "facturas.csv", EXCEL_INVOICES)
    assert import_csv("customers", customers, engine).created == 2
    report = import_csv("invoices", invoices, engine)
    assert (report.created, report.separator) == (5, ";")
    assert "(';'-separated, decimal comma)" in report.summary()
    with Session(engine) as session:
        names = dict(session.execute(select(Customer.account, Customer.name)).all())
        rows = {
            i.number: (i.amount, i.open_amount, i.disputed, i.currency)
            for i in session.scalars(select(Invoice))
        }
    assert names == {"C1": "Ferretería Núñez; S.L.", "C2": "Société Générale de Vis"}
    assert rows == {
        "F1": (D("1234.56"), D("1234.56"), False, "EUR"),
        "F2": (D("1234567.8"), D("1234567.8"), True, "EUR"),
        "F3": (D("1250.00"), D("250.5"), False, "EUR"),
        "F4": (D("-50"), D("-50"), False, "EUR"),
        "F5": (D("1500"), D("1500"), False, "JPY"),
    }
    before = dump(engine)
    again = import_csv("invoices", invoices, engine)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert dump(engine) == before
    assert import_runs(engine)[-1].counts["separator"] == ";"


def test_semicolon_payments_through_the_cli(use_database: str, tmp_path: Path) -> None:
    runner = CliRunner()
    customers = write(tmp_path / "c.csv", EXCEL_CUSTOMERS)
    invoices = write(tmp_path / "i.csv", EXCEL_INVOICES)
    payments = write(
        tmp_path / "p.csv",
        "reference;account;date;currency;amount;invoice\r\nP1;C1;2026-02-01;EUR;1000,5;F1\r\n",
    )
    for kind, path in (("customers", customers), ("invoices", invoices), ("payments", payments)):
        result = runner.invoke(app, ["import", kind, str(path), "--no-notify"])
        assert result.exit_code == 0, result.output
    assert "(';'-separated, decimal comma)" in result.stdout
    engine = make_engine(use_database)
    with Session(engine) as session:
        assert session.scalar(select(Payment.amount)) == D("1000.5")
        assert session.scalar(select(Invoice.open_amount).where(Invoice.number == "F1")) == D(
            "234.06"
        )
    engine.dispose()


def test_decimal_comma_errors(engine: Engine, tmp_path: Path) -> None:
    import_csv("customers", write(tmp_path / "c.csv", EXCEL_CUSTOMERS), engine)
    path = write(
        tmp_path / "i.csv",
        "number;account;issue_date;due_date;currency;amount\n"
        "F1;C1;2026-01-01;2026-01-31;EUR;100.50\n"
        "F2;C1;2026-01-01;2026-01-31;EUR;1.234\n"
        "F3;C1;2026-01-01;2026-01-31;EUR;12,345\n",
    )
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", path, engine)
    assert lines_of(exc) == [
        f"{path}:2: amount: invalid amount '100.50': a ';'-separated file writes amounts with"
        " a decimal comma (1234,56 or 1.234,56), at most 4 decimals",
        f"{path}:3: amount: ambiguous amount '1.234' in a ';'-separated file: write 1234 or 1,234",
        f"{path}:4: amount: amount 12.345 has 3 decimals but EUR has 2 decimal(s) at most",
    ]


def test_what_the_header_shows(engine: Engine, tmp_path: Path) -> None:
    tabs = write(tmp_path / "t.csv", "account\tname\tcountry\nC1\tA\tFR\n")
    with pytest.raises(ImportFailed) as exc:
        import_csv("customers", tabs, engine)
    assert lines_of(exc) == [
        f"{tabs}:1: the header row 'account\\tname\\tcountry' is separated by tabs: Cobro reads"
        " files separated by ',' (with '.' decimals) or ';' (with decimal commas)"
    ]
    both = write(tmp_path / "b.csv", "account,name;country\n")
    with pytest.raises(ImportFailed) as exc:
        import_csv("customers", both, engine)
    assert lines_of(exc) == [
        f"{both}:1: cannot tell the separator: the header row 'account,name;country' has both"
        " ',' and ';' (write one of them between the column names)"
    ]
    # a comma file whose amounts have decimal commas (quoted) is told why
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    commas = write(tmp_path / "i.csv", HEADER + 'I1,C1,2026-01-01,2026-01-31,EUR,"10,5",,\n')
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", commas, engine)
    assert lines_of(exc)[0].endswith("at most 4 decimals (is the file ';'-separated?)")


def test_nul_unclosed_quote_and_minor_units_each_have_their_message(
    engine: Engine, tmp_path: Path
) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    before = dump(engine)
    path = tmp_path / "i.csv"
    path.write_bytes(
        (
            HEADER
            + "I1,C1,2026-01-01,2026-01-31,EUR,10.00,,\n"  # 2 fine
            + "I2,C1,2026-01-01,2026-01-31,EUR,10.\x0050,,\n"  # 3 NUL
            + "I3,C1,2026-01-01,2026-01-31,EUR,10.505,,\n"  # 4 EUR has cents
            + "I4,C1,2026-01-01,2026-01-31,JPY,10.5,,\n"  # 5 JPY has none
            + 'I5,C1,2026-01-01,2026-01-31,EUR,"1"0,,\n'  # 6 stray quote
            + "I6,C1,2026-01-01,2026-01-31,EUR,10.00,,\n"  # 7 fine
            + 'I7,"C1,2026-01-01,2026-01-31,EUR,10.00,,\n'  # 8 quote never closed
            + "I8,C1,2026-01-01,2026-01-31,EUR,10.00,,\n"
        ).encode()
    )
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", path, engine)
    assert lines_of(exc) == [
        f"{path}:3: NUL byte (\\0) in the line: not a text CSV file? save it as CSV UTF-8",
        f"{path}:4: amount: amount 10.505 has 3 decimals but EUR has 2 decimal(s) at most",
        f"{path}:5: amount: amount 10.5 has 1 decimals but JPY has no decimals",
        f'{path}:6: stray quote: a \'"\' inside a value must be doubled ("") and the value'
        " quoted, or the quote must be followed by ','",
        f"{path}:8: unclosed quote: the quoted value that starts on this line is never closed"
        " (it runs to the end of the file, line 9)",
    ]
    assert dump(engine) == before


def test_quote_left_open_in_the_middle(engine: Engine, tmp_path: Path) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    path = write(
        tmp_path / "i.csv",
        HEADER
        + 'I1,C1,2026-01-01,2026-01-31,EUR,10.00,,"false\n'
        + "I2,C1,2026-01-01,2026-01-31,EUR,10.00,,false\n"
        + 'I3,C1,2026-01-01,2026-01-31,EUR,10.00,,"false"\n',
    )
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", path, engine)
    assert lines_of(exc) == [
        f"{path}:2: unclosed quote? the quoted value that starts on this line ends on line 4"
        " in the middle of a value"
    ]


def test_not_utf8_and_utf16(engine: Engine, tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("account,name,country\nC1,Ferretería,ES\n".encode("cp1252"))
    with pytest.raises(ImportFailed) as exc:
        import_csv("customers", latin, engine)
    assert lines_of(exc) == [
        f"{latin}:2: not valid UTF-8 (save the file as UTF-8): byte 0xed (Windows-1252 or Latin-1?)"
    ]
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("account,name,country\nC1,A,ES\n".encode("utf-16"))
    with pytest.raises(ImportFailed) as exc:
        import_csv("customers", utf16, engine)
    assert lines_of(exc) == [f"{utf16}:1: the file is UTF-16: save it as UTF-8 (Excel: CSV UTF-8)"]


def test_errors_are_capped(engine: Engine, tmp_path: Path) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    before = dump(engine)
    bad = [f"I{n},C1,2026-01-01,2026-01-31,EUR,x{n},,\n" for n in range(250)]
    path = write(tmp_path / "i.csv", HEADER + "".join(bad))
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", path, engine, batch_size=40)
    errors = lines_of(exc)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0].startswith(f"{path}:2: amount: invalid amount 'x0'")
    assert errors[MAX_ERRORS - 1].startswith(f"{path}:101: amount: invalid amount 'x99'")
    assert errors[-1] == f"{path}: ... and 150 more error(s), 250 in all"
    assert dump(engine) == before


def test_an_error_in_a_late_batch_rolls_back_the_written_ones(
    engine: Engine, tmp_path: Path
) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    before = dump(engine)
    good = [f"I{n},C1,2026-01-01,2026-01-31,EUR,{n}.00,,\n" for n in range(1, 40)]
    late = [
        "I5,C2,2026-01-01,2026-01-31,USD,1.00,,\n",  # line 41: duplicate of line 6
        "I99,NOPE,2026-01-01,2026-01-31,EUR,1.00,,\n",  # line 42
    ]
    path = write(tmp_path / "i.csv", HEADER + "".join(good + late))
    with pytest.raises(ImportFailed) as exc:
        import_csv("invoices", path, engine, batch_size=7)
    assert lines_of(exc) == [
        f"{path}:41: number: duplicate number 'I5' (first on line 6)",
        f"{path}:42: account: unknown account 'NOPE'",
    ]
    assert dump(engine) == before
    assert [run.kind for run in import_runs(engine)] == ["customers"]
    # the same file without its bad tail imports, in batches, and re-imports as unchanged
    fixed = write(tmp_path / "fixed.csv", HEADER + "".join(good))
    assert import_csv("invoices", fixed, engine, batch_size=7).created == 39
    assert import_csv("invoices", fixed, engine, batch_size=5).unchanged == 39


def test_memory_does_not_grow_with_the_file(sqlite_url: str, tmp_path: Path) -> None:
    """Python memory at its peak is about one batch, whatever the number of rows."""
    engine = make_engine(sqlite_url)
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)

    def peak(rows: int) -> float:
        lines = (f"N{rows}-{n},C1,2026-01-01,2026-01-31,EUR,{n}.25,,\n" for n in range(rows))
        path = write(tmp_path / f"i{rows}.csv", HEADER + "".join(lines))
        tracemalloc.start()
        try:
            assert import_csv("invoices", path, engine, batch_size=500).created == rows
            return tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()

    small, large = peak(1_000), peak(10_000)
    assert large < small * 1.5 + 1, (small, large)
    engine.dispose()


def test_empty_columns_a_spreadsheet_adds_are_ignored(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "account;name;country;;\r\nC1;Uno;ES;;\r\n;;;;\r\n")
    assert import_csv("customers", path, engine).created == 1
    filled = write(tmp_path / "d.csv", "account;name;country;;\r\nC2;Dos;ES;;x\r\n")
    with pytest.raises(ImportFailed) as exc:
        import_csv("customers", filled, engine)
    assert lines_of(exc) == [f"{filled}:2: a value in column 5, which has no name in the header"]


def test_excel_sep_line_declares_the_separator(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "sep=;\r\naccount;name;country\r\nC1;Uno, Dos;ES\r\n")
    assert import_csv("customers", path, engine).separator == ";"
    with Session(engine) as session:
        assert session.scalar(select(Customer.name)) == "Uno, Dos"
