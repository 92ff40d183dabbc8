"""`rules/insurance.yaml`: the shipped file loads and its examples pass; a broken file is
one `path:line:col: message` per problem; examples that fail say what they got."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cobro.insurers.terms_rulefile import terms_of
from cobro.rules import RuleError
from cobro.rules.examples import run_examples
from cobro.rules.ruleset import Ruleset, load_file
from tests.helpers import RULES


def test_shipped_file_builds_both_policies_and_its_examples_pass() -> None:
    ruleset = Ruleset.load(RULES)
    terms = terms_of(ruleset)
    eur, usd = terms.policies["5012001"], terms.policies["5012002"]
    assert (eur.max_extension_days, eur.declare_overdue.after, eur.declarations) == (
        60,
        "max_extension",
        "approval",
    )
    assert (usd.insured_percent, usd.min_declarable, usd.claim.after) == (
        Decimal(85),
        Decimal(500),
        "due_date",
    )
    assert terms.at_risk_within_days == 14
    _, failures = run_examples(ruleset)
    assert failures == []


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "insurance.yaml"
    path.write_text(text)
    return path


POLICY = """policies:
  - policy: "P1"
    insured_percent: 90
    declare_overdue: {days: 30, after: due_date}
    claim: {days: 60, after: declaration}
    waiting_period: {days: 150, after: claim}
"""


def test_an_anchor_after_itself_is_refused_at_its_line(tmp_path: Path) -> None:
    bad = POLICY.replace("{days: 60, after: declaration}", "{days: 60, after: claim}")
    with pytest.raises(RuleError) as exc:
        load_file(_write(tmp_path, bad))
    (msg,) = exc.value.messages
    assert (msg.line, msg.col) == (5, 30)  # at `claim` after `after:`
    assert "`claim` cannot count from `claim`: use one of due_date, max_extension, declaration" in (
        msg.message
    )


def test_bad_values_and_unknown_keys(tmp_path: Path) -> None:
    bad = POLICY.replace("insured_percent: 90", "insured_percent: 120\n    max_extention_days: 3")
    bad = bad.replace("{days: 30, after: due_date}", "{days: -1, after: due_date}")
    with pytest.raises(RuleError) as exc:
        load_file(_write(tmp_path, bad))
    text = "\n".join(str(m) for m in exc.value.messages)
    assert "insurance.yaml:3:22: policies[0].insured_percent: insured_percent must be above 0" in (
        text
    )
    assert "max_extention_days" in text and "max_extension_days" in text  # did you mean
    assert "days must be between 0 and 3650, got -1" in text


def test_duplicate_policy_and_example_of_an_unknown_policy(tmp_path: Path) -> None:
    text = (
        POLICY
        + POLICY.split("\n", 1)[1]
        + (
            "examples:\n  - policy: P2\n    due_date: 2026-01-31\n"
            "    expect: {declare_by: 2026-03-02}\n"
        )
    )
    with pytest.raises(RuleError) as exc:
        load_file(_write(tmp_path, text))
    messages = [m.message for m in exc.value.messages]
    assert any("duplicate policy `P1`" in m for m in messages)
    assert any("unknown policy `P2` (policies in this file: P1)" in m for m in messages)


def test_a_failing_example_says_what_it_got(tmp_path: Path) -> None:
    for f in RULES.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    text = POLICY + (
        "examples:\n  - policy: P1\n    due_date: 2026-01-31\n    amount: 100\n"
        "    expect: {declare_by: 2026-03-03, claim_by: 2026-05-01, indemnity: 90}\n"
    )
    (tmp_path / "insurance.yaml").write_text(text)
    _, failures = run_examples(Ruleset.load(tmp_path))
    (failure,) = failures
    # 31 Jan + 30 = 2 Mar (2026 is not a leap year); + 60 = 1 May
    assert str(failure.message).endswith(
        "example 1: declare_by: expected 2026-03-03, got 2026-03-02"
    )
    assert date(2026, 3, 2).isoformat() in str(failure.message)
