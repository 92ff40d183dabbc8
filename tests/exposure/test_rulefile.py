"""A broken rules/exposure.yaml: `cobro rules check` exits 1 with exactly one
`path:line:col: message` line at the mistake; `cobro rules apply` refuses it and the last good
version stays active (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.exposure.rulefile import rules_of
from cobro.rules.classify import load_active_ruleset
from tests.helpers import RULES

POSITION = re.compile(r"^(?P<path>[^:\n]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")

# name: (text replaced, replacement, the mistake's first characters, words in the message)
CASES = {
    "unknown fact": (
        "(grade is null",
        "(grde is null",
        "grde",
        ["unknown name `grde`", "did you mean `grade`"],
    ),
    "unknown value": (
        '["refused", "cancelled"]',
        '["refusd", "cancelled"]',
        '"refusd"',
        ["refusd", "did you mean `refused`"],
    ),
    "misspelt key": (
        "  disputed: true",
        "  disputd: true",
        "disputd",
        ["unknown field `disputd`", "did you mean `disputed`"],
    ),
    "amount not a number": (
        "sme: 5000",
        "sme: 5k",
        "5k",
        ["an amount must be a number", "'5k'"],
    ),
    "negative ceiling": (
        "ceiling: 20000",
        "ceiling: -20000",
        "-20000",
        ["cannot be negative"],
    ),
    "not a boolean": (
        "credit_notes: true",
        "credit_notes: netted",
        "netted",
        ["used.credit_notes", "expected true or false", "'netted'"],
    ),
    "duplicate policy": (
        '    when: cover_status not in ["refused", "cancelled"]',
        '    when: cover_status not in ["refused", "cancelled"] and grade < 9\n'
        '  - policy: "5012001"\n    ceiling: 5000\n'
        '    when: cover_status not in ["refused", "cancelled"]',
        '"5012001"\n    ceiling: 5000',
        ["duplicate policy `5012001`"],
    ),
    "condition not boolean": (
        "max_days_overdue <= 60",
        "max_days_overdue + 60",
        None,
        ["bool"],
    ),
}


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    f = target / "exposure.yaml"
    text = f.read_text()
    assert old in text, "the shipped exposure.yaml changed: update this test's case"
    f.write_text(text.replace(old, new, 1))
    return target


def where(text: str, marker: str) -> tuple[int, int]:
    """1-based (line, col) of `marker`'s first occurrence in `text`."""
    i = text.index(marker)
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_one_clear_positioned_message(case: str, tmp_path: Path) -> None:
    old, new, marker, words = CASES[case]
    directory = broken_copy(tmp_path, old, new)
    result = CliRunner().invoke(app, ["rules", "check", str(directory)])
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output
    positioned = [m for m in map(POSITION.match, output.splitlines()) if m]
    assert len(positioned) == 1, f"expected exactly one positioned message:\n{output}"
    found = positioned[0]
    assert Path(found["path"]) == directory / "exposure.yaml"
    text = (directory / "exposure.yaml").read_text()
    if marker is not None:
        if case == "duplicate policy":  # the second occurrence
            i = text.index(marker)
            line = text.count("\n", 0, i) + 1
            col = 13
        else:
            line, col = where(text, marker)
        assert (int(found["line"]), int(found["col"])) == (line, col), output
    else:
        assert int(found["line"]) == where(text, new)[0], output
    for word in words:
        assert word in found["msg"], output


def test_a_policy_number_is_read_as_text(tmp_path: Path) -> None:
    directory = broken_copy(tmp_path, 'policy: "5012001"', "policy: 5012001")
    from cobro.rules.ruleset import Ruleset

    assert rules_of(Ruleset.load(directory)).unnamed_buyers[0].policy == "5012001"


def test_apply_refuses_a_broken_exposure_file_and_keeps_the_last_good(
    use_database: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    good = tmp_path / "good"
    shutil.copytree(RULES, good)
    ok = runner.invoke(app, ["rules", "apply", str(good), "--author", "ana", "--message", "ok"])
    assert ok.exit_code == 0, ok.output
    active = load_active_ruleset()
    assert rules_of(active).discretionary.segments["sme"] == 5000

    broken = broken_copy(tmp_path / "b", "sme: 5000", "smee: 5000\n    sme: -1")
    refused = runner.invoke(
        app, ["rules", "apply", str(broken), "--author", "bo", "--message", "x"]
    )
    assert refused.exit_code == 1, refused.output
    assert "active version unchanged" in refused.output
    lines = [m for m in map(POSITION.match, refused.output.splitlines()) if m]
    assert [Path(m["path"]).name for m in lines] == ["exposure.yaml"]
    assert "cannot be negative" in lines[0]["msg"]
    assert load_active_ruleset().hash == active.hash
    assert rules_of(load_active_ruleset()).discretionary.segments["sme"] == 5000
