"""Alert message templates are checked for cost on Jinja's AST before a rules version can be
applied: `cobro rules check` refuses loops, `range`, `|attr`, `|format`, `%`, `**`, text
repeated by a variable or a big number, statements and anything outside the filter and test
allow-lists, each as `alerts.yaml:LINE:COL: reason`; `cobro rules apply` of such a file keeps
the active version (both databases); what a real message needs still passes and renders in
the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.rules.classify import load_active_ruleset
from cobro.rules.ruleset import Ruleset
from cobro.rules.templates import ENVIRONMENT
from cobro.settings import get_settings
from tests.helpers.rules import ALERTS, write_rules

runner = CliRunner()
MESSAGE_LINE = 6  # the first alert's `message:` line in tests.helpers.rules.ALERTS
GOOD = '"{{ name }} has {{ overdue_amount | money }} overdue"'


def with_message(directory: Path, message: str) -> Path:
    assert GOOD in ALERTS
    return write_rules(directory, alerts=ALERTS.replace(GOOD, message))


REFUSED = {
    "attr": ("'{{ name | attr(\"upper\") }}'", "`|attr` is not allowed"),
    "format": ("'{{ \"%s!\" | format(name) }}'", "`|format` is not allowed"),
    "percent_format": ("'{{ \"%s owes\" % name }}'", "`%` is not allowed"),
    "range": ("'{{ range(10) }}'", "`range` is not allowed"),
    "loop": ("'{% for x in [1, 2] %}{{ name }}{% endfor %}'", "loops are not allowed"),
    "repeat_variable": ("'{{ name * grade }}'", "`*` of text or a list by a non-constant"),
    "repeat_big": ("'{{ name * 100000 }}'", "repeating text or a list 100000 times"),
    "list_repeat": ("'{{ [1] * 1000000 }}'", "repeating text or a list 1000000 times"),
    "power": ("'{{ 9 ** 999999 }}'", "`**` is not allowed"),
    "set": ("'{% set x = 1 %}{{ name }}'", "`set` is not allowed"),
    "macro": ("'{% macro m() %}x{% endmacro %}{{ name }}'", "macros are not allowed"),
    "filter_not_allowed": ("'{{ name | wordwrap(5) }}'", "filter `wordwrap` is not allowed"),
    "test_not_allowed": ("'{{ name is sameas name }}'", "test `sameas` is not allowed"),
    "call": ("'{{ name.upper() }}'", "not allowed in messages"),
    "lipsum": ("'{{ lipsum(100) }}'", "`lipsum` is not allowed"),
    "dict": ("'{{ {\"a\": 1} }}'", "dict literals are not allowed"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_rules_check_refuses_a_costly_message(case: str, tmp_path: Path) -> None:
    message, reason = REFUSED[case]
    rules = with_message(tmp_path / "rules", message)
    result = runner.invoke(app, ["rules", "check", str(rules)])
    assert result.exit_code == 1, result.output
    located = [
        line for line in result.output.splitlines() if f"alerts.yaml:{MESSAGE_LINE}:" in line
    ]
    assert located, result.output
    assert any(reason in line for line in located), (reason, located)
    assert "Traceback" not in result.output


ALLOWED = [
    '"{{ name }}: {{ limit_usage | percent }}, {{ max_days_overdue | days }}"',
    '"{{ name | upper }} {{ overdue_amount | round(2) }} {{ grade | default(0) }}"',
    '"{% if grade is none %}no grade{% else %}grade {{ grade * 2 - 1 }}{% endif %}"',
    "\"{{ name ~ ' ' ~ ('!' * 3) }} {{ 'yes' if risk_class in ['high', 'critical'] }}\"",
    '"{{ (outstanding / 1000) | int }}k, {{ name | length }} letters"',
]


@pytest.mark.parametrize("message", ALLOWED)
def test_what_a_message_needs_still_passes_and_renders(message: str, tmp_path: Path) -> None:
    ruleset = Ruleset.load(with_message(tmp_path / "rules", message))
    assert ruleset.alerts is not None
    fired = ruleset.alerts.evaluate(
        {"name": "Acme", "overdue_amount": 10, "outstanding": 5000, "grade": 4}
    )
    assert fired and fired[0].message


def test_messages_render_in_the_sandbox() -> None:
    assert isinstance(ENVIRONMENT, SandboxedEnvironment)


def test_the_shipped_alert_messages_pass() -> None:
    from tests.helpers import ROOT

    assert Ruleset.load(ROOT / "rules").alerts is not None


def test_apply_of_a_costly_message_keeps_the_active_version(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_rules(tmp_path / "good")
    monkeypatch.setenv("COBRO_RULES_DIR", str(good))
    get_settings.cache_clear()
    applied = runner.invoke(
        app, ["rules", "apply", str(good), "--author", "ana", "--message", "ok"]
    )
    assert applied.exit_code == 0, applied.output
    active = load_active_ruleset().hash
    for case in ("attr", "range", "repeat_variable", "percent_format"):
        costly = with_message(tmp_path / case, REFUSED[case][0])
        refused = runner.invoke(
            app, ["rules", "apply", str(costly), "--author", "b", "--message", "x"]
        )
        assert refused.exit_code == 1, (case, refused.output)
        assert f"alerts.yaml:{MESSAGE_LINE}:" in refused.output
        assert "active version unchanged" in refused.output
        assert load_active_ruleset().hash == active, case
