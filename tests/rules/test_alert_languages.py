"""Alert messages in the team's language, on SQLite and PostgreSQL: `message` may be one
template per language; an alert is stored in the team's language (COBRO_TEAM_LANGUAGE, its
numbers and money), with every language's text beside it, and each reader of the inbox or
the customer file gets theirs; a single-text message works as before; a bad language key or
a broken template in one language is refused at its line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.i18n import using
from cobro.models import Alert
from cobro.queues.lists import AlertFilters, alerts_inbox
from cobro.rules.classify import classify_portfolio
from cobro.rules.errors import RuleError
from cobro.rules.ruleset import Ruleset
from tests.helpers.rules import DAY1, add_invoice, seed, write_rules

ALERTS = """\
alerts:
  - name: overdue
    when: overdue_amount > 0
    severity: warning
    cooldown: 3d
    message:
      en: "{{ name }} has {{ overdue_amount | money }} overdue, {{ max_days_overdue | days }} late"
      es: "{{ name }} debe {{ overdue_amount | money }}, {{ max_days_overdue | days }} de retraso"
      de: "{{ name }} schuldet {{ overdue_amount | money }} überfällig"
  - name: became_critical
    when: risk_class == "critical" and previous.risk_class != "critical"
    severity: critical
    cooldown: 1d
    message: "{{ name }} is now critical (was {{ previous.risk_class | label('risk class') }})"
"""


@pytest.fixture
def ruleset(tmp_path: Path) -> Ruleset:
    return Ruleset.load(write_rules(tmp_path / "rules", alerts=ALERTS))


@pytest.fixture
def spanish_team(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_TEAM_LANGUAGE", "es")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("COBRO_TEAM_LANGUAGE")
    get_settings.cache_clear()


def test_stored_in_the_team_language_read_in_each_readers(
    engine: Engine, ruleset: Ruleset, spanish_team: None
) -> None:
    ids = seed(engine)
    with transaction(engine) as s:
        add_invoice(s, ids["C"], "C1", DAY1.date() - timedelta(days=3), "1359.36")
    classify_portfolio(engine, ruleset, now=DAY1)
    with transaction(engine) as s:
        stored = {a.customer_id: a for a in s.scalars(select(Alert))}
    c = stored[ids["C"]]
    assert c.message == "Name C debe 1.359,36\u00a0€, 3 días de retraso"
    assert c.messages == {
        "en": "Name C has €1,359.36 overdue, 3 days late",
        "es": "Name C debe 1.359,36\u00a0€, 3 días de retraso",
        "de": "Name C schuldet 1.359,36\u00a0€ überfällig",
    }

    def inbox(language: str) -> dict[str, str]:
        with using(language):
            rows, _ = alerts_inbox(engine, AlertFilters())
        return {r.account: r.message for r in rows}

    assert inbox("de")["C"] == "Name C schuldet 1.359,36\u00a0€ überfällig"
    assert inbox("en")["C"] == "Name C has €1,359.36 overdue, 3 days late"
    assert inbox("fr")["C"] == c.message, "no French text: the team's"


def test_a_single_text_reads_the_same_for_everyone(engine: Engine, ruleset: Ruleset) -> None:
    from cobro.models import GradeHistory

    ids = seed(engine)
    with transaction(engine) as s:
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=DAY1.date()))
    classify_portfolio(engine, ruleset, now=DAY1)
    with transaction(engine) as s:
        a = s.scalar(select(Alert).where(Alert.name == "became_critical"))
    assert a is not None and a.messages is None
    assert a.message == "Name A is now critical (was unclassified)"


@pytest.mark.parametrize(
    ("message", "wanted"),
    [
        ('\n      spanish: "{{ name }}"', "alerts.yaml:7"),
        ('\n      en: "{{ name }}"\n      es: "{{ nombre }}"', "alerts.yaml:8"),
        ("{}", "alerts.yaml:6"),
    ],
)
def test_a_bad_language_or_template_is_refused_at_its_line(
    tmp_path: Path, message: str, wanted: str
) -> None:
    text = f"""\
alerts:
  - name: overdue
    when: overdue_amount > 0
    severity: warning
    cooldown: 3d
    message: {message}
"""
    with pytest.raises(RuleError) as failed:
        Ruleset.load(write_rules(tmp_path / "rules", alerts=text))
    assert wanted in str(failed.value), str(failed.value)
