"""Classification of the portfolio on SQLite and PostgreSQL: only changes are written, alerts
fire once per episode with cooldown, explanations, and `cobro classify`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from cobro.db import transaction
from cobro.models import Alert, GradeHistory, Invoice, RiskAssessment, TimelineEvent
from cobro.rules.classify import classify_portfolio, explain_customer
from cobro.rules.ruleset import Ruleset
from tests.helpers.rules import DAY1, add_invoice, counts, seed, write_rules


@pytest.fixture
def ruleset(tmp_path: Path) -> Ruleset:
    return Ruleset.load(write_rules(tmp_path / "rules"))


def test_only_changes_are_written_and_alerts_follow_episodes(
    engine: Engine, ruleset: Ruleset
) -> None:
    ids = seed(engine)
    day = lambda n: DAY1 + timedelta(days=n - 1)  # noqa: E731

    # day 1: first classification of everyone; B's overdue alert fires
    r1 = classify_portfolio(engine, ruleset, now=day(1), batch_size=2)
    assert r1.evaluated == 3
    assert {(c.account, c.previous, c.risk_class) for c in r1.changes} == {
        ("A", None, "low"),
        ("B", None, "low"),
        ("C", None, "low"),
    }
    assert [(a.account, a.name, a.dedup_key) for a in r1.alerts] == [
        ("B", "overdue", f"{ids['B']}:overdue:1")
    ]
    assert r1.alerts[0].message == "Name B has €100.00 overdue"  # in the currency fact
    assert counts(engine) == (3, 1, 4)

    # same day again: nothing changed, nothing fires, nothing is written
    r1b = classify_portfolio(engine, ruleset, now=day(1) + timedelta(hours=2))
    assert (r1b.changes, r1b.alerts) == ([], [])
    assert counts(engine) == (3, 1, 4)

    # day 2: A is graded 9 -> critical (alert); B pays (its overdue episode ends)
    with transaction(engine) as s:
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=day(2).date()))
        s.execute(update(Invoice).where(Invoice.number == "B1").values(open_amount=Decimal(0)))
    r2 = classify_portfolio(engine, ruleset, now=day(2))
    assert [(c.account, c.previous, c.risk_class) for c in r2.changes] == [("A", "low", "critical")]
    assert [(a.account, a.name) for a in r2.alerts] == [("A", "became_critical")]
    assert r2.alerts[0].message == "Name A is now critical (was low)"
    assert r2.resolved == 1
    with engine.connect() as conn:
        ra = conn.execute(
            select(
                RiskAssessment.risk_class,
                RiskAssessment.previous_class,
                RiskAssessment.ruleset_hash,
                RiskAssessment.explanation,
            )
            .where(RiskAssessment.customer_id == ids["A"])
            .order_by(RiskAssessment.id.desc())
        ).first()
        assert tuple(ra[:3]) == ("critical", "low", ruleset.hash)
        assert ra.explanation["matched"]["facts"] == {"grade": 9, "max_days_overdue": 0}
        assert ra.explanation["facts"]["previous.grade"] == 5
        kinds = conn.execute(
            select(TimelineEvent.kind, func.count()).group_by(TimelineEvent.kind)
        ).all()
        assert dict(kinds) == {"risk.class_changed": 4, "alert.fired": 2}
        states = dict(conn.execute(select(Alert.name, Alert.state)).all())
        assert states == {"overdue": "resolved", "became_critical": "open"}

    # day 3: B overdue again, but within the 3-day cooldown of day 1's alert: pending
    with transaction(engine) as s:
        add_invoice(s, ids["B"], "B2", day(3).date() - timedelta(days=1), "40")
    r3 = classify_portfolio(engine, ruleset, now=day(3))
    assert (r3.changes, r3.alerts) == ([], [])
    # day 4: still overdue, cooldown over -> second episode fires, with its own dedup key
    r4 = classify_portfolio(engine, ruleset, now=day(4))
    assert [(a.account, a.dedup_key) for a in r4.alerts] == [("B", f"{ids['B']}:overdue:2")]
    # day 5: still overdue: the episode was notified, nothing more
    assert classify_portfolio(engine, ruleset, now=day(5)).alerts == []


def test_preview_writes_nothing(engine: Engine, ruleset: Ruleset) -> None:
    seed(engine)
    preview = classify_portfolio(engine, ruleset, now=DAY1, write=False)
    assert len(preview.changes) == 3 and len(preview.alerts) == 1
    assert preview.transitions() == {(None, "low"): 3}
    assert counts(engine) == (0, 0, 0)
    again = classify_portfolio(engine, ruleset, now=DAY1, write=False)
    assert len(again.changes) == 3


def test_explanation_of_one_customer(engine: Engine, ruleset: Ruleset) -> None:
    ids = seed(engine)
    with transaction(engine) as s:
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=DAY1.date()))
    a = explain_customer(engine, "A", ruleset, now=DAY1)
    assert a is not None and a.risk_class == "critical"
    assert "grade=9" in a.lines()[0] and "because insurer grade 8+" in a.lines()[0]
    c = explain_customer(engine, "C", ruleset, now=DAY1)
    assert c is not None and c.risk_class == "low"
    text = "\n".join(c.lines())
    assert "default class" in text
    # why earlier classes did not match, with the (null) facts they read
    assert (
        "not `critical`: `grade >= 8 or max_days_overdue > 90` is null "
        "(grade=null, max_days_overdue=0); null facts: grade"
    ) in text
    assert "not `high`: `over_limit` is false (over_limit=false)" in text
    assert a.as_json()["explanation"]["matched"]["name"] == "critical"
    assert explain_customer(engine, "nobody", ruleset, now=DAY1) is None
    with engine.connect() as conn:  # the explanation run also wrote the changes
        assert conn.scalar(select(func.count()).select_from(RiskAssessment)) == 2


def test_cli_classify(use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.cli import app
    from cobro.db import default_engine
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_RULES_DIR", str(write_rules(tmp_path / "rules")))
    get_settings.cache_clear()
    seed(default_engine(), datetime.now(UTC).date())
    runner = CliRunner()
    first = runner.invoke(app, ["classify", "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert data["evaluated"] == 3 and data["transitions"] == [
        {"from": None, "to": "low", "customers": 3}
    ]
    assert [a["name"] for a in data["alerts"]] == ["overdue"]
    second = runner.invoke(app, ["classify"])
    assert second.exit_code == 0, second.output
    assert "3 customer(s): 0 class change(s), 0 alert(s) fired" in second.output
    one = runner.invoke(app, ["classify", "--customer", "B"])
    assert one.exit_code == 0, one.output
    assert "B: risk class `low` (class 3): default class" in one.output
    assert "alert `overdue`: `overdue_amount > 0` is true" in one.output
    missing = runner.invoke(app, ["classify", "--customer", "nobody"])
    assert missing.exit_code == 1 and "unknown customer" in missing.output


def test_a_first_classification_is_a_change_from_unclassified(
    engine: Engine, tmp_path: Path
) -> None:
    """previous.risk_class is "unclassified" at a customer's first classification, so
    became_critical (`previous.risk_class != "critical"`) and an alert written on the first
    classification itself fire; the stored assessment has no previous class."""
    alerts = """\
alerts:
  - name: became_critical
    when: risk_class == "critical" and previous.risk_class != "critical"
    severity: critical
    cooldown: 1d
    message: "{{ name }} is now critical (was {{ previous.risk_class }})"
  - name: newly_classified
    when: previous.risk_class == "unclassified"
    severity: info
    cooldown: 1d
    message: "{{ name }} classified {{ risk_class }}"
"""
    rs = Ruleset.load(write_rules(tmp_path / "rules", alerts=alerts))
    ids = seed(engine)
    with transaction(engine) as s:
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=DAY1.date()))
    first = classify_portfolio(engine, rs, now=DAY1)
    assert sorted((a.account, a.name) for a in first.alerts) == [
        ("A", "became_critical"),
        ("A", "newly_classified"),
        ("B", "newly_classified"),
        ("C", "newly_classified"),
    ]
    assert next(a for a in first.alerts if a.name == "became_critical").message == (
        "Name A is now critical (was unclassified)"
    )
    a = next(c for c in first.changes if c.account == "A")
    assert (a.previous, a.risk_class) == (None, "critical")
    assert a.summary.startswith("risk class unclassified → critical")
    with engine.connect() as conn:
        assert conn.scalar(select(RiskAssessment.previous_class).limit(1)) is None
    # the second run compares with the stored class: nothing new
    again = classify_portfolio(engine, rs, now=DAY1 + timedelta(days=2))
    assert (again.changes, again.alerts) == ([], [])


def test_unclassified_is_reserved(tmp_path: Path) -> None:
    from cobro.rules import RuleError

    classes = """\
classes:
  - name: unclassified
    when: grade >= 8
  - name: low
"""
    with pytest.raises(RuleError) as exc:
        Ruleset.load(write_rules(tmp_path / "rules", classes=classes))
    assert any("`unclassified` is reserved" in str(m) for m in exc.value.messages)
