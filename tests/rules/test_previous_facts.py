"""`previous.*` facts are the values of the customer's last classification run, on SQLite
and PostgreSQL: null before the first run, then the last run's values; a snapshot row is
written only when they change."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from cobro.db import transaction
from cobro.models import CustomerFactSnapshot, Invoice
from cobro.rules.classify import classify_portfolio
from cobro.rules.facts_sql import facts_by_customer
from cobro.rules.ruleset import Ruleset
from tests.helpers.rules import DAY1, RISK_CLASSES, add_invoice, seed, write_rules

ALERTS = """\
alerts:
  - name: overdue_grew
    when: overdue_amount > previous.overdue_amount
    severity: warning
    cooldown: 1d
    message: "{{ name }}: {{ previous.overdue_amount | money }} -> {{ overdue_amount | money }}"
"""


def previous(engine: Engine, cid: int, day) -> dict:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        facts = facts_by_customer(conn, day, ids=[cid])[cid]
    return {k: v for k, v in facts.items() if k.startswith("previous.") and "class" not in k}


def snapshot_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(CustomerFactSnapshot)) or 0


def test_previous_facts_are_the_last_runs_values(engine: Engine, tmp_path: Path) -> None:
    ids = seed(engine)
    b = ids["B"]
    rs = Ruleset.load(write_rules(tmp_path / "rules", RISK_CLASSES, ALERTS))
    day1 = DAY1.date()

    assert previous(engine, b, day1) == {
        "previous.grade": None,
        "previous.cover_amount": None,
        "previous.overdue_amount": None,
        "previous.max_days_overdue": None,
    }
    first = classify_portfolio(engine, rs, now=DAY1)
    assert first.alerts == []  # nothing to compare with yet
    assert snapshot_rows(engine) == 3
    # B: one invoice of 100 due 5 days before day 1
    assert previous(engine, b, day1)["previous.overdue_amount"] == Decimal("100")
    assert previous(engine, b, day1)["previous.max_days_overdue"] == 5
    assert previous(engine, b, day1)["previous.cover_amount"] is None

    # day 2: a second invoice of 250, due 3 days before day 2 -> overdue 350, oldest 6 days
    day2 = DAY1 + timedelta(days=1)
    with transaction(engine) as s:
        add_invoice(s, b, "B2", day2.date() - timedelta(days=3), "250")
    second = classify_portfolio(engine, rs, now=day2)
    assert [(a.account, a.name) for a in second.alerts] == [("B", "overdue_grew")]
    assert second.alerts[0].message == "Name B: €100.00 -> €350.00"
    assert previous(engine, b, day2.date())["previous.overdue_amount"] == Decimal("350")
    assert previous(engine, b, day2.date())["previous.max_days_overdue"] == 6

    # day 3: B pays everything; A and C did not change -> only B's snapshot is rewritten
    with transaction(engine) as s:
        s.execute(update(Invoice).where(Invoice.customer_id == b).values(open_amount=0))
    with engine.connect() as conn:
        before = dict(
            conn.execute(select(CustomerFactSnapshot.customer_id, CustomerFactSnapshot.as_of)).all()
        )
    day3 = DAY1 + timedelta(days=2)
    classify_portfolio(engine, rs, now=day3)
    with engine.connect() as conn:
        after = dict(
            conn.execute(select(CustomerFactSnapshot.customer_id, CustomerFactSnapshot.as_of)).all()
        )
    assert after[ids["A"]] == before[ids["A"]] and after[ids["C"]] == before[ids["C"]]
    assert after[b] == day3
    assert previous(engine, b, day3.date())["previous.overdue_amount"] == Decimal("0")
    assert previous(engine, b, day3.date())["previous.max_days_overdue"] == 0


def test_a_dry_run_writes_no_snapshot(engine: Engine, tmp_path: Path) -> None:
    from cobro.rules.classify import diff_rulesets

    seed(engine)
    rs = Ruleset.load(write_rules(tmp_path / "rules", RISK_CLASSES, ALERTS))
    diff_rulesets(engine, rs, rs, now=DAY1)
    assert snapshot_rows(engine) == 0
