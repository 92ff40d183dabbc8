"""Risk classes (first match, explanations), alerts (overrides, episodes), shipped rules via
the real CLI."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.rules import EpisodeState, decide_episode
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES

CLASSES = """
classes:
  - name: critical
    when: grade >= 8 or max_days_overdue > 90
    because: insurer grade 8+ or 90 days late
  - name: high
    when: over_limit or grade - previous.grade >= 2
  - name: low
examples:
  - given: {grade: 9, max_days_overdue: 0}
    expect: critical
"""

ALERTS = """
thresholds: {limit_usage_warn: 0.9}
alerts:
  - name: limit_almost_used
    when: outstanding > limit_usage_warn * cover_amount
    severity: warning
    cooldown: 7d
    message: "{{ name }} uses {{ (outstanding / cover_amount) | percent }} of its cover"
  - name: new_critical
    when: risk_class == "critical" and previous.risk_class != "critical"
    severity: critical
    message: "{{ name }} became critical"
overrides:
  - segment: public_sector
    thresholds: {limit_usage_warn: 1.0}
examples:
  - given: {name: A, outstanding: 95, cover_amount: 100}
    expect: [limit_almost_used]
"""


@pytest.fixture
def ruleset(tmp_path: Path) -> Ruleset:
    (tmp_path / "risk_classes.yaml").write_text(CLASSES)
    (tmp_path / "alerts.yaml").write_text(ALERTS)
    return Ruleset.load(tmp_path)


def test_first_match_wins_and_default(ruleset: Ruleset) -> None:
    c = ruleset.classifier
    assert c.classify({"grade": 9, "over_limit": True}).risk_class == "critical"
    assert c.classify({"grade": 3, "over_limit": True}).risk_class == "high"
    assert c.classify({"grade": 6, "previous.grade": 4}).rule_index == 1
    full = {"grade": 3, "previous.grade": 3, "over_limit": False, "max_days_overdue": 0}
    assert c.classify(full).risk_class == "low"
    assert c.classify({}).risk_class == "low"  # everything null: nothing matches


def test_explanation(ruleset: Ruleset) -> None:
    cls = ruleset.classifier.classify({"grade": 6, "previous.grade": 4, "max_days_overdue": 12})
    e = cls.explanation
    assert e.risk_class == "high" and e.matched is not None and e.matched.value is True
    assert e.matched.facts == {"over_limit": None, "grade": 6, "previous.grade": 4}
    (rejected,) = e.rejected
    assert rejected.name == "critical" and rejected.value is False
    assert rejected.facts == {"grade": 6, "max_days_overdue": 12}
    text = str(e)
    assert "risk class `high`" in text and "not `critical`" in text and "grade=6" in text


def test_explanation_lists_null_facts(ruleset: Ruleset) -> None:
    e = ruleset.classifier.classify({"max_days_overdue": 3}).explanation
    assert e.matched is None and e.risk_class == "low"
    first = e.rejected[0]
    assert first.value is None and first.null_facts == ["grade"]
    assert "null facts: grade" in str(e)


def test_alerts_with_segment_overrides(ruleset: Ruleset) -> None:
    alerts = ruleset.alerts
    assert alerts is not None
    facts = {"name": "Acme", "outstanding": Decimal(95), "cover_amount": Decimal(100)}
    (fired,) = alerts.evaluate(facts)
    assert fired.name == "limit_almost_used" and fired.severity == "warning"
    assert fired.cooldown == timedelta(days=7)
    assert fired.message == "Acme uses 95 % of its cover"
    assert fired.thresholds == {"limit_usage_warn": Decimal("0.9")}
    assert alerts.evaluate({**facts, "segment": "public_sector"}) == []
    assert [a.name for a in alerts.evaluate({**facts, "segment": "other"})] == ["limit_almost_used"]


def test_ruleset_evaluate_feeds_the_class_to_alerts(ruleset: Ruleset) -> None:
    cls, fired = ruleset.evaluate({"name": "X", "grade": 9, "previous.risk_class": "low"})
    assert cls.risk_class == "critical"
    assert [a.name for a in fired] == ["new_critical"]


def test_message_that_cannot_render_does_not_break_evaluation(ruleset: Ruleset) -> None:
    alerts = ruleset.alerts
    assert alerts is not None
    rule = alerts.rules[0]
    msg = alerts.render(rule, {"outstanding": 1, "cover_amount": None}, {})
    assert "could not be rendered" in msg


def test_episodes_and_cooldown() -> None:
    t0 = datetime(2026, 11, 1, 8)
    cd = timedelta(days=7)
    d = decide_episode(None, True, t0, cd)
    assert d.fire and d.state.active and d.state.last_fired_at == t0
    d = decide_episode(d.state, True, t0 + timedelta(days=1), cd)  # same episode
    assert not d.fire
    d = decide_episode(d.state, False, t0 + timedelta(days=2), cd)  # episode ends
    assert not d.fire and not d.state.active
    d = decide_episode(d.state, True, t0 + timedelta(days=3), cd)  # new episode, in cooldown
    assert not d.fire and "cooldown" in d.reason
    d = decide_episode(d.state, True, t0 + timedelta(days=8), cd)  # cooldown over, still true
    assert d.fire
    d = decide_episode(d.state, None, t0 + timedelta(days=9), cd)  # null counts as false
    assert not d.fire and not d.state.active
    d = decide_episode(d.state, True, t0 + timedelta(days=20), cd)
    assert d.fire and d.reason == "new episode"
    assert decide_episode(EpisodeState(), False, t0, cd).state == EpisodeState()


# ---------------------------------------------------------------- the shipped rules, real CLI

runner = CliRunner()


def test_shipped_rules_pass_check_and_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.settings import get_settings

    # no database at all (whatever ./var holds): nothing to say about customers' languages
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["rules", "check", str(RULES)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("OK 5 file(s)") and "hash=" in result.output
        result = runner.invoke(app, ["rules", "test", str(RULES)])
        assert result.exit_code == 0, result.output
        assert "example(s) passed" in result.output
    finally:
        get_settings.cache_clear()  # the next test reads its own settings


def test_check_reports_positions_and_exits_1(tmp_path: Path) -> None:
    shutil.copy(RULES / "risk_classes.yaml", tmp_path)
    (tmp_path / "alerts.yaml").write_text(ALERTS.replace("severity: warning", "severity: warn"))
    result = runner.invoke(app, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'alerts.yaml'}:6:15: alerts[0].severity" in result.output


def test_test_shows_failures_with_explanation(tmp_path: Path) -> None:
    (tmp_path / "risk_classes.yaml").write_text(CLASSES.replace("expect: critical", "expect: low"))
    result = runner.invoke(app, ["rules", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert "expected `low`, got `critical`" in result.output
    assert "risk class `critical`" in result.output and "grade=9" in result.output


def test_alert_example_failure(tmp_path: Path) -> None:
    (tmp_path / "risk_classes.yaml").write_text(CLASSES)
    (tmp_path / "alerts.yaml").write_text(
        ALERTS.replace("expect: [limit_almost_used]", "expect: []")
    )
    result = runner.invoke(app, ["rules", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert "fires `limit_almost_used`" in result.output


def test_facts_documentation() -> None:
    result = runner.invoke(app, ["rules", "facts"])
    assert result.exit_code == 0 and "| `previous.grade` | number | yes |" in result.output
    result = runner.invoke(app, ["rules", "facts", "--json"])
    assert result.exit_code == 0 and '"name": "cover_amount"' in result.output


def test_shipped_classifier_fast_path_equals_exact_semantics() -> None:
    import random

    rs = Ruleset.load(RULES)
    clf = rs.classifier
    rng = random.Random(7)
    for _ in range(2000):
        facts = {
            "grade": rng.choice([None, *range(1, 11)]),
            "previous.grade": rng.choice([None, 3, 5]),
            "max_days_overdue": rng.choice([None, 0, 31, 61, 95]),
            "outstanding": rng.choice([None, Decimal(0), Decimal(40000)]),
            "overdue_amount": rng.choice([None, Decimal(0), Decimal(15000)]),
            "over_limit": rng.choice([None, True, False]),
            "limit_usage": rng.choice([None, 0.5, 0.9]),
            "cover_status": rng.choice([None, "active", "reduced", "cancelled"]),
            "broken_promises": rng.choice([None, 0, 3]),
            "disputed_amount": rng.choice([None, Decimal(0), Decimal(10)]),
        }
        index = clf.index(facts)
        values = clf._bound.values(facts)
        expected = next((i for i, v in enumerate(values) if v is True), len(values))
        assert index == expected, facts
