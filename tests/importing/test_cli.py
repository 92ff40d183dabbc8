"""`cobro import ...` through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine
from tests.helpers.importing import CUSTOMERS, dump, write

INVOICES_HEADER = "number,account,issue_date,due_date,currency,amount,open_amount,disputed\n"


def good_invoice(n: int) -> str:
    return f"I{n},C1,2026-01-01,2026-01-31,EUR,{n}00.00,,false\n"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_bad_invoices_file_lists_every_error(use_database: str, tmp_path: Path) -> None:
    customers = write(tmp_path / "customers.csv", CUSTOMERS)
    assert run("import", "customers", str(customers)).exit_code == 0
    engine = make_engine(use_database)
    before = dump(engine)
    lines = [good_invoice(n) for n in range(2, 7)]  # lines 2..6
    lines.append("I7,C1,2026-13-01,2026-01-31,EUR,700.00,,false\n")  # line 7: bad date
    lines.append(good_invoice(8))
    lines.append("I9,UNKNOWN,2026-01-01,2026-01-31,EUR,900.00,,false\n")  # line 9
    lines.append(good_invoice(10))
    bad = write(tmp_path / "bad.csv", INVOICES_HEADER + "".join(lines))
    result = run("import", "invoices", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{bad}:7: issue_date: invalid date '2026-13-01': no such day",
        f"{bad}:9: account: unknown account 'UNKNOWN'",
    ]
    assert dump(engine) == before
    engine.dispose()


def test_summary_json_and_reimport(use_database: str, tmp_path: Path) -> None:
    customers = write(tmp_path / "customers.csv", CUSTOMERS)
    first = run("import", "customers", str(customers))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == (
        f"customers: 3 rows from {customers}: 3 created, 0 updated, 0 unchanged"
    )
    second = run("import", "customers", str(customers), "--json")
    assert second.exit_code == 0
    counts = json.loads(second.stdout)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["rows"]) == (
        0,
        0,
        3,
        3,
    )
    assert counts["kind"] == "customers"


def test_header_errors_and_missing_file(use_database: str, tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "reference,account,when,amount\n")
    result = run("import", "payments", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:1: when: unknown column; expected reference, account, date, currency, amount,"
        " invoice",
        f"{path}:1: date: required column is missing",
        f"{path}:1: currency: required column is missing",
    ]
    missing = run("import", "payments", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1
    assert "nope.csv: cannot read the file" in missing.stderr


def test_help() -> None:
    result = run("import", "--help")
    assert result.exit_code == 0
    for command in ("customers", "invoices", "payments"):
        assert command in result.stdout
        sub = run("import", command, "--help")
        assert sub.exit_code == 0
        assert "--json" in sub.stdout
    assert "E.164" in run("import", "customers", "--help").stdout
