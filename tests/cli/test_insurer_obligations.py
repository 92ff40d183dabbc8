"""`cobro insurer obligations`: the table, --within, --customer, --json (the DESIGN.md
contract) and one-line errors, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine
from tests.helpers import RULES
from tests.insurers.test_obligations_sql import seed

AS_OF = ["--as-of", "2026-03-20"]


@pytest.fixture
def seeded(use_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_RULES_DIR", str(RULES))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    engine = make_engine(use_database)
    seed(engine)
    engine.dispose()
    return use_database


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["insurer", "obligations", *args], terminal_width=200)


def test_table_and_json(seeded: str) -> None:
    result = run(*AS_OF)
    assert result.exit_code == 0, result.output
    assert "2026-05-01" in result.output and "declare soon" in result.output  # A1, B1
    assert "B2" not in result.output and "D1" not in result.output  # not insured
    assert "deadlines missed 0" in result.output

    result = run(*AS_OF, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["as_of"] == "2026-03-20" and data["within_days"] is None
    by_invoice = {o["invoice"]: o for o in data["obligations"]}
    assert list(by_invoice) == ["A1", "A2", "B1", "C1"]
    a1 = by_invoice["A1"]
    assert (a1["may_extend_until"], a1["declare_by"], a1["claim_by"]) == (
        "2026-04-01",
        "2026-05-01",
        "2026-06-30",
    )
    assert (a1["stop_supplies_from"], a1["expected_indemnity"]) == ("2026-04-01", "5400.00")
    assert data["totals"]["EUR"]["amount_at_risk_of_losing_cover"] == "800.0000"


def test_within_and_customer(seeded: str) -> None:
    data = json.loads(run(*AS_OF, "--within", "7d", "--json").output)
    assert [o["invoice"] for o in data["obligations"]] == ["B1"]  # declare by 27 March
    data = json.loads(run(*AS_OF, "--within", "2w", "--json").output)
    assert [o["invoice"] for o in data["obligations"]] == ["A1", "A2", "B1"]  # + 1 April
    data = json.loads(run(*AS_OF, "--customer", "A", "--json").output)
    assert [o["invoice"] for o in data["obligations"]] == ["A1", "A2"]


def test_one_line_errors(seeded: str) -> None:
    for args, message in (
        (["--within", "soon"], "error: --within: 'soon' is not a number of days like 7d or 2w"),
        (["--as-of", "2026-13-01"], "error: --as-of: '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--customer", "ZZ"], "error: unknown customer 'ZZ'"),
    ):
        result = run(*args)
        assert result.exit_code == 1
        assert result.output.strip() == message
