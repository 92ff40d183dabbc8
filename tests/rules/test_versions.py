"""`cobro rules apply|diff` on SQLite and PostgreSQL: versions stored in the database, refused
when broken, picked up by the next classification; diffs write nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.models import RulesetVersion
from cobro.rules.classify import load_active_ruleset
from cobro.settings import get_settings
from tests.helpers.rules import ALERTS, RISK_CLASSES, counts, seed, write_rules

STRICTER = RISK_CLASSES.replace("grade >= 8", "grade >= 5")


@pytest.fixture
def dirs(use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    base = write_rules(tmp_path / "base")
    monkeypatch.setenv("COBRO_RULES_DIR", str(base))
    get_settings.cache_clear()
    return {
        "base": base,
        "stricter": write_rules(tmp_path / "stricter", STRICTER),
        "broken": write_rules(tmp_path / "broken", RISK_CLASSES.replace("grade >=", "grade >> ")),
        "failing": write_rules(
            tmp_path / "failing",
            STRICTER + "examples:\n  - given: {grade: 6}\n    expect: low\n",
        ),
        "bad_message": write_rules(
            tmp_path / "bad_message", alerts=ALERTS.replace("{{ name }} has", "{{ nme }} has")
        ),
    }


def _versions() -> list[tuple[str, bool, str]]:
    with transaction(default_engine()) as s:
        return [
            (v.content_hash, v.active, v.author)
            for v in s.scalars(select(RulesetVersion).order_by(RulesetVersion.id))
        ]


def test_apply_stores_an_active_version_and_refuses_broken_ones(dirs: dict[str, Path]) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app, ["rules", "apply", str(dirs["stricter"]), "--author", "ana", "--message", "grade 5+"]
    )
    assert ok.exit_code == 0, ok.output
    assert "stored version 1" in ok.output
    [(hash1, active, author)] = _versions()
    assert active and author == "ana"
    with transaction(default_engine()) as s:
        stored = s.scalars(select(RulesetVersion)).one()
        assert stored.files["risk_classes.yaml"] == STRICTER
        assert stored.message == "grade 5+"
    # the active version wins over the rules directory, with the same content hash
    assert load_active_ruleset().hash == hash1

    for name in ("broken", "failing", "bad_message"):
        refused = runner.invoke(
            app, ["rules", "apply", str(dirs[name]), "--author", "bob", "--message", "oops"]
        )
        assert refused.exit_code == 1, (name, refused.output)
        assert "active version unchanged" in refused.output
        assert _versions() == [(hash1, True, "ana")]
        assert load_active_ruleset().hash == hash1
    broken = runner.invoke(
        app, ["rules", "apply", str(dirs["broken"]), "--author", "b", "--message", "m"]
    )
    assert "risk_classes.yaml:" in broken.output  # the located message, no traceback
    assert "Traceback" not in broken.output

    base = runner.invoke(
        app, ["rules", "apply", str(dirs["base"]), "--author", "cy", "--message", "back"]
    )
    assert base.exit_code == 0
    again = runner.invoke(
        app, ["rules", "apply", str(dirs["stricter"]), "--author", "d", "--message", "x"]
    )
    assert "re-activated version 1" in again.output
    assert [active for _, active, _ in _versions()] == [True, False]


def test_next_classification_uses_the_newly_applied_version(dirs: dict[str, Path]) -> None:
    from cobro.rules.classify import classify_portfolio

    seed(default_engine(), datetime.now(UTC).date())
    runner = CliRunner()
    first = classify_portfolio()
    assert {c.account: c.risk_class for c in first.changes} == {"A": "low", "B": "low", "C": "low"}
    applied = runner.invoke(
        app, ["rules", "apply", str(dirs["stricter"]), "--author", "a", "--message", "m"]
    )
    assert applied.exit_code == 0, applied.output
    second = classify_portfolio()  # same process, no reload: the DB version is read per run
    assert [(c.account, c.previous, c.risk_class) for c in second.changes] == [
        ("A", "low", "critical")
    ]
    assert second.ruleset_hash == _versions()[0][0]


def test_diff_shows_what_would_change_and_writes_nothing(dirs: dict[str, Path]) -> None:
    seed(default_engine(), datetime.now(UTC).date())
    runner = CliRunner()
    out = runner.invoke(app, ["rules", "diff", str(dirs["stricter"])])
    assert out.exit_code == 0, out.output
    assert "1 of 3 customer(s) would change class" in out.output
    assert "low -> critical: 1" in out.output
    # no stored class yet: A's first classification is a change from "unclassified"
    assert "[critical] A became_critical" in out.output
    assert "[warning] B overdue" in out.output
    data = json.loads(runner.invoke(app, ["rules", "diff", str(dirs["stricter"]), "--json"]).output)
    assert data["transitions"] == [{"from": "low", "to": "critical", "customers": 1}]
    assert {a["name"] for a in data["alerts"]} == {"overdue", "became_critical"}
    assert counts(default_engine()) == (0, 0, 0)
    assert _versions() == []
    broken = runner.invoke(app, ["rules", "diff", str(dirs["broken"])])
    assert broken.exit_code == 1 and "risk_classes.yaml:" in broken.output
