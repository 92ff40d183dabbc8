"""`cobro dunning plan --as-of DATE` moves the clock, not the facts: payments recorded after
that day stay applied (as its --help and the README say)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cobro.cli import app


def test_as_of_moves_the_clock_and_keeps_todays_payments(use_database: str, tmp_path: Path) -> None:
    files = {
        "customers": "account,name,country,email\nK1,Kay SARL,FR,kay@example.com\n",
        "invoices": "number,account,issue_date,due_date,currency,amount\n"
        "F1,K1,2026-01-05,2026-02-04,EUR,100.00\nF2,K1,2026-01-05,2026-02-04,EUR,250.00\n",
        "payments": "reference,account,date,currency,amount,invoice\n"
        "P1,K1,2026-03-10,EUR,100.00,F1\nP2,K1,2026-03-10,EUR,50.00,F2\n",
    }
    runner = CliRunner()
    for kind, text in files.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text)
        imported = runner.invoke(app, ["import", kind, str(path), "--no-notify"])
        assert imported.exit_code == 0, imported.output

    result = runner.invoke(app, ["dunning", "plan", "--customer", "K1", "--as-of", "2026-02-20"])
    assert result.exit_code == 0, result.output
    planned = runner.invoke(
        app, ["dunning", "plan", "--customer", "K1", "--as-of", "2026-02-20", "--json"]
    )
    data = json.loads(planned.stdout)
    assert data["computed_at"] == "2026-02-19T23:00:00+00:00"  # 20 Feb 00:00 in Paris
    assert data["actions"], data
    assert all(a["at"] >= data["computed_at"] for a in data["actions"])
    # F1 was paid on 10 March, after the date: still paid, so not planned; F2's amount is
    # what is open today (250 - 50), not what was open on 20 February
    assert {n for a in data["actions"] for n in a["invoices"]} == {"F2"}
    assert {a["amounts"]["EUR"].rstrip("0").rstrip(".") for a in data["actions"]} == {"200"}

    shown = runner.invoke(app, ["dunning", "plan", "--help"], env={"COLUMNS": "200"})
    help_text = " ".join(shown.output.split())
    assert "--as-of DATE moves only the clock" in help_text
    assert "a payment recorded since that day stays applied" in help_text
