"""Positioned errors of the rules loader (`path:line:col: message`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cobro.rules import RuleError
from cobro.rules.loader import parse_yaml
from cobro.rules.ruleset import Ruleset, load_file


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def _errors(path: Path) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_file(path)
    return [str(m) for m in info.value.messages]


GOOD_CLASSES = """
classes:
  - name: critical
    when: grade >= 8
  - name: low
"""


def test_expression_syntax_error_points_into_the_string(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grade >= 8 and (max_days_overdue >
      - name: low
    """,
    )
    (err,) = _errors(p)
    assert err.startswith(f"{p}:3:26: syntax error")


def test_unknown_fact_with_did_you_mean(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grade >= 8 or max_day_overdue > 90
      - name: low
    """,
    )
    (err,) = _errors(p)
    assert err == f"{p}:3:25: unknown name `max_day_overdue` (did you mean `max_days_overdue`?)"


def test_type_error_position(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grade > "high"
      - name: low
    """,
    )
    (err,) = _errors(p)
    assert err.startswith(f"{p}:3:19: type error: `grade` is a number")


def test_position_inside_folded_and_literal_blocks(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: >-
          grade >= 8
          or grd > 2
      - name: high
        when: |
          over_limit
            or segment > 1
      - name: low
    """,
    )
    errs = _errors(p)
    assert errs[0].startswith(f"{p}:5:10: unknown name `grd`")
    assert errs[1].startswith(f"{p}:9:22: type error: `segment` is a string")


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grade >= 8
        when: grade >= 9
      - name: low
    """,
    )
    (err,) = _errors(p)
    assert err == f"{p}:4:5: duplicate key `when` (first at line 3)"


def test_missing_default_class(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grade >= 8
      - name: high
        when: grade >= 6
    """,
    )
    (err,) = _errors(p)
    assert err.startswith(f"{p}:5:11: missing default class")


def test_class_without_when_before_the_last(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
      - name: low
    """,
    )
    (err,) = _errors(p)
    assert err.startswith(f"{p}:2:5: class `critical` has no `when`")


def test_unknown_field_did_you_mean(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        wen: grade >= 8
      - name: low
    """,
    )
    errs = _errors(p)
    assert f"{p}:3:5: unknown field `wen` (did you mean `when`?)" in errs


ALERT = """
thresholds: {{limit_usage_warn: 0.9}}
alerts:
  - name: limit_almost_used
    when: outstanding > limit_usage_warn * cover_amount
    severity: {severity}
    cooldown: {cooldown}
    message: "{message}"
"""


def _alert(tmp_path: Path, severity="warning", cooldown="7d", message="{{ name }}") -> Path:
    return _write(
        tmp_path, "alerts.yaml", ALERT.format(severity=severity, cooldown=cooldown, message=message)
    )


def test_unknown_severity(tmp_path: Path) -> None:
    (err,) = _errors(_alert(tmp_path, severity="critcal"))
    assert err.startswith(f"{tmp_path / 'alerts.yaml'}:5:15: alerts[0].severity: Input should be")
    assert "(did you mean `critical`?)" in err


def test_bad_cooldown(tmp_path: Path) -> None:
    (err,) = _errors(_alert(tmp_path, cooldown="7 days"))
    assert err.startswith(f"{tmp_path / 'alerts.yaml'}:6:15: alerts[0].cooldown: invalid duration")


def test_template_with_unknown_variable(tmp_path: Path) -> None:
    errs = _errors(_alert(tmp_path, message="{{ nme }} over {{ limit_usage_wrn }}"))
    p = tmp_path / "alerts.yaml"
    assert len(errs) == 2
    assert errs[0] == f"{p}:7:18: unknown variable `nme` in message (did you mean `name`?)"
    errs = _errors(_alert(tmp_path, message="{{ name }} {{ limit_usage_wrn }}"))
    assert errs == [
        f"{p}:7:29: unknown variable `limit_usage_wrn` in message "
        "(did you mean `limit_usage_warn`?)"
    ]


def test_template_unknown_filter_and_attribute(tmp_path: Path) -> None:
    errs = _errors(_alert(tmp_path, message="{{ name | percnt }} {{ name.__class__ }}"))
    assert any("unknown filter `percnt` (did you mean `percent`?)" in e for e in errs)
    assert any("attribute access is not allowed" in e for e in errs)


def test_template_syntax_error(tmp_path: Path) -> None:
    (err,) = _errors(_alert(tmp_path, message="{{ name "))
    assert "template syntax error" in err and ":7:" in err


def test_override_of_unknown_threshold(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "alerts.yaml",
        ALERT.format(severity="info", cooldown="1d", message="x")
        + textwrap.dedent("""
    overrides:
      - segment: public_sector
        thresholds: {limit_usage_wran: 1.0}
    """),
    )
    (err,) = _errors(p)
    assert "unknown threshold `limit_usage_wran` (did you mean `limit_usage_warn`?)" in err
    assert err.startswith(f"{p}:11:")


def test_all_errors_of_a_file_are_reported(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        """
    classes:
      - name: critical
        when: grde >= 8
      - name: high
        when: over_limit and
      - name: low
    examples:
      - given: {grade: 9}
        expect: critcal
    """,
    )
    errs = _errors(p)
    assert len(errs) == 3
    assert "did you mean `critical`" in errs[2]


def test_example_given_facts_are_checked(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "risk_classes.yaml",
        GOOD_CLASSES
        + """
examples:
  - given: {grad: 9, max_days_overdue: "many"}
    expect: critical
""",
    )
    errs = _errors(p)
    assert any("unknown fact `grad` (did you mean `grade`?)" in e for e in errs)
    assert any("`max_days_overdue` is a number" in e for e in errs)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "risk_classes.yaml", "classes:\n  - name: [a\n")
    (err,) = _errors(p)
    assert err.startswith(f"{p}:") and "YAML syntax error" in err


def test_decimals_are_exact() -> None:
    located = parse_yaml("a: 0.1\nb: 3\nc: 'x'\n", "t.yaml")
    from decimal import Decimal

    assert located.data == {"a": Decimal("0.1"), "b": 3, "c": "x"}
    assert located.pos[("b",)] == (2, 4)


def test_unknown_file_and_missing_required_file(tmp_path: Path) -> None:
    _write(tmp_path, "alrets.yaml", "alerts: []\n")
    with pytest.raises(RuleError) as info:
        Ruleset.load(tmp_path)
    text = str(info.value)
    assert "unknown rules file `alrets.yaml` (did you mean `alerts.yaml`?)" in text
    assert "risk_classes.yaml:1:1: required rules file is missing" in text


def test_content_hash_is_stable(tmp_path: Path) -> None:
    _write(tmp_path, "risk_classes.yaml", GOOD_CLASSES)
    a = Ruleset.load(tmp_path).hash
    assert a == Ruleset.load(tmp_path).hash
    _write(tmp_path, "risk_classes.yaml", GOOD_CLASSES + "\n")
    assert Ruleset.load(tmp_path).hash != a
