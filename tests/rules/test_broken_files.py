"""What a collections person sees for each classic mistake in a rules file: `cobro rules
check` exits 1 with exactly one `path:line:col: message` line pointing at the mistake, and
never a traceback; `cobro rules apply` of the same directory leaves the active version alone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from tests.helpers import RULES

POSITION = re.compile(r"^(?P<path>[^:\n]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")

# name: (file, text replaced, replacement, expected line, expected col, words in the message)
CASES = {
    "unknown fact": (
        "risk_classes.yaml",
        "when: avg_days_late > 10 or",
        "when: avg_days_lat > 10 or",
        29,
        11,
        ["unknown name `avg_days_lat`", "did you mean `avg_days_late`"],
    ),
    "type error": (
        "risk_classes.yaml",
        "grade >= 8\n",
        'grade > "high"\n',
        6,
        15,
        ["type error", "`grade` is a number", "string"],
    ),
    "bad indentation": (
        "alerts.yaml",
        '    severity: warning\n    cooldown: 7d\n    message:\n      en: "{{ name }} uses',
        '    severity: warning\n      cooldown: 7d\n    message:\n      en: "{{ name }} uses',
        16,
        15,
        ["YAML syntax error", "indented"],
    ),
    "duplicate key": (
        "alerts.yaml",
        "    severity: critical\n    cooldown: 1d\n",
        "    severity: critical\n    cooldown: 1d\n    cooldown: 2d\n",
        27,
        5,
        ["duplicate key `cooldown`", "first at line 26"],
    ),
    "unknown template variable": (
        "alerts.yaml",
        "{{ name }}: insurer grade went",
        "{{ nme }}: insurer grade went",
        38,
        15,
        ["unknown variable `nme`", "did you mean `name`"],
    ),
    "missing default class": (
        "risk_classes.yaml",
        "  - name: low\n    because: nothing worrying\n",
        "  - name: low\n    when: grade < 3\n    because: nothing worrying\n",
        33,
        11,
        ["missing default class", "must have no `when`"],
    ),
    "bad duration": (
        "alerts.yaml",
        "cooldown: 14d",
        "cooldown: 14x",
        36,
        15,
        ["invalid duration '14x'", "7d"],
    ),
    "unknown severity": (
        "alerts.yaml",
        "severity: info\n    cooldown: 3d",
        "severity: urgent\n    cooldown: 3d",
        75,
        15,
        ["severity", "'info', 'warning' or 'critical'"],
    ),
    "unknown function": (
        "risk_classes.yaml",
        "avg_days_late > 10 or",
        "avg(avg_days_late) > 10 or",
        29,
        11,
        ["unknown function `avg`", "available"],
    ),
    "exponent bomb": (
        "risk_classes.yaml",
        "avg_days_late > 10 or",
        "avg_days_late ** 99999999 > 10 or",
        29,
        11,
        ["`**`"],
    ),
    "attribute access": (
        "risk_classes.yaml",
        "avg_days_late > 10 or",
        "grade.__class__ > 10 or",
        29,
        11,
        [],
    ),
}


def broken_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    text = (target / file).read_text()
    assert old in text, f"the shipped {file} changed: update this test's case"
    (target / file).write_text(text.replace(old, new, 1))
    return target


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_one_clear_positioned_message(case: str, tmp_path: Path) -> None:
    file, old, new, line, col, words = CASES[case]
    directory = broken_copy(tmp_path, file, old, new)

    result = CliRunner().invoke(app, ["rules", "check", str(directory)])
    output = result.output

    assert result.exit_code == 1, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    positioned = [m for m in map(POSITION.match, output.splitlines()) if m]
    assert len(positioned) == 1, f"expected exactly one positioned message:\n{output}"
    found = positioned[0]
    assert Path(found["path"]) == directory / file
    if case != "attribute access":  # its column depends on how the name is reported
        assert (int(found["line"]), int(found["col"])) == (line, col), output
    else:
        assert int(found["line"]) == line, output
    for word in words:
        assert word in found["msg"], output


def test_the_shipped_rules_are_clean() -> None:
    result = CliRunner().invoke(app, ["rules", "check", str(RULES)])
    assert result.exit_code == 0, result.output
