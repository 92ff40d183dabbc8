"""`cobro exposure`: table, one customer explained, --over-limit, --json, --csv, --rules, and
one-line errors (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine
from tests.helpers import RULES
from tests.helpers.exposure import seed

AS_OF = ["--as-of", "2026-06-30"]


@pytest.fixture
def seeded(use_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_RULES_DIR", str(RULES))
    monkeypatch.setenv("COLUMNS", "160")  # rich's table width outside a terminal
    get_settings.cache_clear()
    engine = make_engine(use_database)
    seed(engine)
    engine.dispose()
    return use_database


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["exposure", *args], terminal_width=200)


def test_table_of_every_customer(seeded: str) -> None:
    result = run(*AS_OF)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Customers exposure as of 2026-06-30" in out
    for account in "ABCDEF":
        assert f"Name {account}" in out
    assert "23,849.50" in out and "20.50" in out  # A: available, usage %
    assert "6 customer(s), 2 over limit" in out
    assert (
        "EUR: 6 customer(s), authorised €90,500.00, used €8,350.50; 2 over limit by €400.00" in out
    )


def test_over_limit_most_over_first(seeded: str) -> None:
    result = run(*AS_OF, "--over-limit")
    assert result.exit_code == 0, result.output
    lines = [x for x in result.output.splitlines() if "Name " in x]
    assert [x.split()[1] for x in lines] == ["D", "F"]  # -300.00 then -100.00
    assert "2 customer(s), 2 over limit" in result.output


def test_one_customer_explained(seeded: str) -> None:
    result = run(*AS_OF, "--customer", "B")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("B Name B as of 2026-06-30")
    assert "€20,000.00  unnamed-buyer ceiling of policy 5012001" in out
    assert "€500.00  the customer's own limit" in out
    assert "3.90 %" in out
    assert "policy 5012001: unnamed-buyer ceiling 20000" in out
    assert "grade=4" in out

    d = run(*AS_OF, "--customer", "D")
    assert "OVER LIMIT" in d.output and "— (nothing authorised)" in d.output


def test_json(seeded: str) -> None:
    result = run(*AS_OF, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["as_of"] == "2026-06-30" and len(data["rules_hash"]) == 64
    by = {c["account"]: c for c in data["customers"]}
    assert list(by) == ["A", "B", "C", "D", "E", "F"]
    assert by["A"]["authorised"] == "30000.0000" and by["A"]["usage_pct"] == "20.50"
    assert by["D"]["usage_pct"] is None and by["D"]["over_limit"] is True

    one = json.loads(run(*AS_OF, "--customer", "C", "--json").output)
    assert one["account"] == "C" and one["insured_basis"] == "none" and one["notes"]

    over = json.loads(run(*AS_OF, "--json", "--over-limit").output)
    assert [c["account"] for c in over["customers"]] == ["D", "F"]


def test_csv(seeded: str) -> None:
    result = run(*AS_OF, "--csv", "--over-limit")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert [r["account"] for r in rows] == ["D", "F"]
    assert rows[0]["available"] == "-300.0000" and rows[0]["usage_pct"] == ""  # numbers stay
    assert rows[0]["over_limit"] == "true" and rows[0]["segment"] == "public_sector"

    semicolons = run(*AS_OF, "--csv", "--over-limit", "--separator", ";")
    assert semicolons.exit_code == 0, semicolons.output
    text = semicolons.stdout_bytes.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert rows[0]["available"] == "-300,0000" and rows[0]["account"] == "D"
    bad = run(*AS_OF, "--csv", "--separator", "|")
    assert bad.exit_code == 1 and "unknown CSV separator '|'" in bad.output


def test_rules_directory_option(seeded: str, tmp_path: Path) -> None:
    other = tmp_path / "rules"
    shutil.copytree(RULES, other)
    f = other / "exposure.yaml"
    f.write_text(f.read_text().replace("disputed: true", "disputed: false"))
    result = run(*AS_OF, "--customer", "A", "--json", "--rules", str(other))
    assert json.loads(result.output)["used"] == "3750.5000"  # 6150.50 - 2000 - 400


def test_errors_are_one_line(seeded: str, tmp_path: Path) -> None:
    unknown = run(*AS_OF, "--customer", "ZZZ")
    assert unknown.exit_code == 1 and "unknown customer 'ZZZ'" in unknown.output

    both = run("--json", "--csv")
    assert both.exit_code == 1 and "choose one of --json and --csv" in both.output

    bad_day = run("--as-of", "2026-13-01")
    assert bad_day.exit_code == 1 and "is not a date" in bad_day.output

    broken = tmp_path / "broken"
    shutil.copytree(RULES, broken)
    f = broken / "exposure.yaml"
    f.write_text(f.read_text().replace("sme: 5000", "sme: -5"))
    result = run(*AS_OF, "--rules", str(broken))
    assert result.exit_code == 1
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == [
        f"error: {f}:26:10: discretionary.segments.sme: an amount cannot be negative, got -5"
    ]
    assert "Traceback" not in result.output


def test_narrow_terminal_drops_name_and_basis(seeded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = run(*AS_OF)
    assert result.exit_code == 0, result.output
    assert "Name A" not in result.output and "discr." in result.output
    assert max(len(x) for x in result.output.splitlines()) <= 80
    assert "€23,849.50" in result.output and "-€300.00" in result.output


def test_the_active_applied_version_is_used(seeded: str, tmp_path: Path) -> None:
    applied = tmp_path / "applied"
    shutil.copytree(RULES, applied)
    f = applied / "exposure.yaml"
    f.write_text(f.read_text().replace("sme: 5000", "sme: 1000"))
    ok = CliRunner().invoke(
        app, ["rules", "apply", str(applied), "--author", "a", "--message", "m"]
    )
    assert ok.exit_code == 0, ok.output
    a = json.loads(run(*AS_OF, "--customer", "A", "--json").output)
    assert a["discretionary"] == "1000.0000" and a["authorised"] == "26000.0000"


def test_notes_on_missing_file_and_orders(seeded: str, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(RULES, bare)
    (bare / "exposure.yaml").unlink()
    out = run(*AS_OF, "--rules", str(bare)).output
    assert "no exposure.yaml in the rules used: defaults" in out
    # A: named 25000; B: its own 500; C, D, E, F: 0 (no segments, no unnamed cover)
    assert "6 customer(s), 4 over limit" in out
    assert "EUR: 6 customer(s), authorised €25,500.00" in out

    orders = tmp_path / "orders"
    shutil.copytree(RULES, orders)
    f = orders / "exposure.yaml"
    f.write_text(f.read_text().replace("unbilled_orders: false", "unbilled_orders: true"))
    one = run(*AS_OF, "--rules", str(orders), "--customer", "A").output
    assert "unbilled orders: none imported yet, counted as 0" in one
    assert re.search(r"^    unbilled orders +€0.00$", one, re.M)
