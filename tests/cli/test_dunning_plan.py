"""`cobro dunning plan --customer K1 --as-of 2026-12-02 --json` on both databases, with the
shipped rules: one grouped contact per channel and window, steps as written (`+1w`),
declarations only for the invoices covered at their due date (a named cover, or the
unnamed-buyer ceiling of exposure.yaml, which covers FR customers but not GB ones)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.models import Customer, InsurerCover
from cobro.settings import get_settings
from tests.helpers import RULES
from tests.helpers.dunning import import_rows

AS_OF = date(2026, 12, 2)
LONDON = ZoneInfo("Europe/London")
AGES = {"K1-N": -10, "K1-J": 1, "K1-A": 20, "K1-B": 40, "K1-U": 65}  # days late on AS_OF


def _k1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, country: str, zone: str) -> None:
    monkeypatch.setenv("COBRO_RULES_DIR", str(RULES))
    get_settings.cache_clear()
    import_rows(
        tmp_path,
        "customers",
        [{"account": "K1", "name": "Martin Ltd", "country": country, "timezone": zone,
          "language": "en", "email": "ap@martin.example", "phone": "+44 20 7946 0958"}],
    )  # fmt: skip
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": number,
                "account": "K1",
                "issue_date": (AS_OF - timedelta(days=late + 30)).isoformat(),
                "due_date": (AS_OF - timedelta(days=late)).isoformat(),
                "currency": "EUR",
                "amount": "300.00",  # 4 x 300 insured: above the EUR policy's minimum
            }
            for number, late in AGES.items()
        ],
    )
    with transaction() as s:
        customer = s.scalar(select(Customer).where(Customer.account == "K1"))
        s.add(
            InsurerCover(
                insurer="allianz_trade",
                policy_id="5012001",
                cover_id="K1-C",
                customer_id=customer.id,
                cover_type="permanent",
                granted_amount=Decimal("10000"),
                currency="EUR",
                status="granted",
                valid_from=AS_OF - timedelta(days=50),  # K1-U was not covered when due
            )
        )


@pytest.fixture
def k1(use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _k1(tmp_path, monkeypatch, "GB", "Europe/London")


def _plan() -> dict:
    out = CliRunner().invoke(
        app, ["dunning", "plan", "--customer", "K1", "--as-of", AS_OF.isoformat(), "--json"]
    )
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


@pytest.mark.usefixtures("k1")
def test_plan_json_one_grouped_contact_per_channel_steps_as_written() -> None:
    plan = _plan()
    assert plan["policy"] == "standard" and plan["calendar"] == "GB"
    actions = plan["actions"]
    day = lambda a: datetime.fromisoformat(a["at"]).astimezone(LONDON).date()  # noqa: E731
    first = [a for a in actions if day(a) == AS_OF]
    assert [(a["kind"], a["template"], a["step_at"]) for a in first] == [
        ("email", "due", "+1d"),
        ("sms", "due", "+1d"),
    ]
    assert first[0]["at"] == "2026-12-02T09:00:00+00:00"  # 09:00 in London
    assert first[0]["invoices"] == ["K1-A", "K1-B", "K1-J", "K1-U"]
    assert first[0]["levels"] == {"K1-A": 1, "K1-B": 1, "K1-J": 1, "K1-U": 1}
    # one contact per channel and day, all plan long
    per_day = Counter((a["kind"], day(a)) for a in actions if a["kind"] in ("email", "sms"))
    assert max(per_day.values()) == 1
    # the steps as the policy writes them
    assert {a["step_at"] for a in actions} <= {"-5d", "+1d", "+1w", "+3w", "+30d", "deadline - 5d"}
    assert any(a["step_at"] == "+1w" and a["template"] == "reminder" for a in actions)
    # declarations for the covered invoices only, 5 calendar days before each declare-by
    # date (the EUR policy: 30 days after a 60-day MEP), a task for the other at +45d
    claims = [a for a in actions if a["kind"] == "declare"]
    assert claims and all("K1-U" not in a["invoices"] for a in claims)
    a_due = AS_OF - timedelta(days=AGES["K1-A"])
    [declare_a] = [a for a in claims if "K1-A" in a["invoices"]]
    assert day(declare_a) == a_due + timedelta(days=85)
    uninsured = [a for a in actions if a["reason"] == "not_insured"]
    assert [a["invoices"] for a in uninsured] == [["K1-U"]]
    assert uninsured[0]["note"] == "not insured: decide on legal action"
    assert {s["invoice"] for s in plan["skipped"]} == {"K1-J", "K1-A", "K1-B", "K1-U"}


@pytest.mark.usefixtures("k1")
def test_plan_table_shows_steps_as_written() -> None:
    out = CliRunner().invoke(app, ["dunning", "plan", "--customer", "K1", "--as-of", "2026-12-02"])
    assert out.exit_code == 0, out.output
    text = "".join(ch for ch in out.output if ch.isalnum() or ch in "+-")  # the table wraps
    assert "+1w" in text and "+7d" not in text
    assert "K1-U" in text and "onlegalaction" in text, out.output
    assert "skippedK1-Ustep0itspre-duenoticecameafterthedue" in text


def test_unnamed_buyer_ceiling_covers_the_invoice_without_named_cover(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _k1(tmp_path, monkeypatch, "FR", "Europe/Paris")
    actions = _plan()["actions"]
    claimed = {n for a in actions if a["kind"] == "declare" for n in a["invoices"]}
    assert claimed == set(AGES)  # K1-U too: exposure.yaml's unnamed-buyer ceiling applied
    assert not [a for a in actions if a["reason"] == "not_insured"]
