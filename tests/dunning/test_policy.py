"""Dunning policies: offsets, validation errors with field paths, the shipped file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cobro.dunning.policy import (
    DunningRulesFile,
    PolicyError,
    format_offset,
    load_policies,
    load_policies_file,
    parse_offset,
    simple_match,
)
from tests.helpers import ROOT

SHIPPED = ROOT / "rules" / "dunning.yaml"


def policy(**overrides) -> dict:
    base = {
        "name": "p",
        "calendar": "FR",
        "steps": [
            {"at": "-5d", "channel": "email", "template": "pre_due"},
            {"at": "+1d", "channel": ["email", "sms"], "template": "due"},
            {"at": "+2w", "action": "task", "note": "call"},
            {"at": "+45d", "action": "claim"},
        ],
    }
    base.update(overrides)
    return {"policies": [base]}


def errors_of(data) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policies(data)
    assert isinstance(info.value, ValueError)
    return str(info.value).splitlines()


def test_parse_and_format_offsets() -> None:
    assert [parse_offset(x) for x in ("-5d", "+1d", "15d", "+2w", "-1w", " + 3 d ", 4)] == [
        -5,
        1,
        15,
        14,
        -7,
        3,
        4,
    ]
    assert [format_offset(x) for x in (-5, 15, 0)] == ["-5d", "+15d", "+0d"]
    for bad in ("5", "d", "+1m", "1.5d", "", True, None):
        with pytest.raises(ValueError, match="invalid offset"):
            parse_offset(bad)


def test_valid_policy_model() -> None:
    rules = load_policies(policy())
    p = rules.policies[0]
    assert [s.at for s in p.steps] == [-5, 1, 14, 45]
    assert [s.kind for s in p.steps] == ["send", "send", "task", "claim"]
    assert p.steps[0].channel == ("email",) and p.steps[1].channel == ("email", "sms")
    assert p.business_days and p.send_window == "09:00-18:00"
    assert p.send_days == ("mon", "tue", "wed", "thu", "fri")
    assert p.window.days == frozenset(range(5))
    # Frozen, and its JSON form loads back to the same model.
    with pytest.raises(ValueError):
        p.name = "other"  # type: ignore[misc]
    dumped = rules.model_dump(mode="json")
    assert dumped["policies"][0]["steps"][2]["at"] == "+2w"  # as written
    assert DunningRulesFile.model_validate(dumped) == rules


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"steps": [{"at": "5x", "channel": "email", "template": "due"}]},
            "policies[0].steps[0].at: invalid offset '5x'",
        ),
        (
            {
                "steps": [
                    {"at": "+7d", "channel": "email", "template": "reminder"},
                    {"at": "+1d", "channel": "email", "template": "due"},
                ]
            },
            "policies[0].steps: steps must be in strictly increasing `at` order: step 1 (+1d)",
        ),
        (
            {"steps": [{"at": "+1d", "channel": "fax", "template": "due"}]},
            "policies[0].steps[0].channel[0]: Input should be 'email', 'sms' or 'whatsapp'",
        ),
        (
            {"steps": [{"at": "+1d", "action": "task"}]},
            "policies[0].steps[0]: `action: task` needs a `note`",
        ),
        (
            {"steps": [{"at": "+1d", "channel": "email"}]},
            "policies[0].steps[0]: a message step needs `template`",
        ),
        (
            {"steps": [{"at": "+1d", "action": "claim", "channel": "email"}]},
            "policies[0].steps[0]: `action: claim` takes no `channel`/`template`",
        ),
        (
            {"steps": [{"at": "+1d", "channel": ["email", "email"], "template": "due"}]},
            "policies[0].steps[0].channel: duplicate channel",
        ),
        ({"calendar": "XX"}, "policies[0].calendar: unknown calendar 'XX'"),
        ({"send_window": "18:00-09:00"}, "policies[0].send_window: invalid send window"),
        ({"send_days": []}, "policies[0].send_days: at least one sending day"),
        ({"send_days": ["mon", "funday"]}, "policies[0].send_days[1]: Input should be"),
        ({"steps": []}, "policies[0].steps: "),
        ({"name": "Bad Name"}, "policies[0].name: String should match pattern"),
        ({"colour": "red"}, "policies[0].colour: Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_field_path(change: dict, expected: str) -> None:
    lines = errors_of(policy(**change))
    assert any(line.startswith(expected) for line in lines), lines


def test_duplicate_policy_names_and_bad_yaml() -> None:
    data = policy()
    data["policies"].append(data["policies"][0])
    assert errors_of(data) == ["policies: duplicate policy name `p`"]
    assert errors_of("policies: [")[0].startswith("invalid YAML")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "dunning.yaml"
    f.write_text("policies:\n  - name: x\n    steps: [{at: soon, action: claim}]\n")
    with pytest.raises(PolicyError) as info:
        load_policies_file(f)
    assert str(info.value).startswith(f"{f}: policies[0].steps[0].at: invalid offset 'soon'")


def test_shipped_policies() -> None:
    rules = load_policies_file(SHIPPED)
    names = [p.name for p in rules.policies]
    assert {"standard", "strict", "public_sector"} <= set(names)
    standard = rules.get("standard")
    assert [(s.label, s.kind, s.template) for s in standard.steps] == [
        ("-5d", "send", "pre_due"),
        ("+1d", "send", "due"),
        ("+1w", "send", "reminder"),
        ("+3w", "task", None),
        ("+30d", "send", "final_notice"),
        ("deadline - 5d", "declare", None),
    ]
    # business days: a week is five of them (the deadline counts calendar days); the
    # customer's own calendar by default
    assert [standard.offset_days(s) for s in standard.steps] == [-5, 1, 5, 15, 30, -5]
    assert standard.steps[-1].at.from_deadline and standard.fallback_days(5) == 45
    assert all(p.calendar == "customer" for p in rules.policies)
    assert standard.min_gap_days == 3 and standard.catch_up == "first_unsent"
    assert standard.not_insured.action == "task"
    assert standard.not_insured.note == "not insured: decide on legal action"
    assert standard.steps[1].channel == ("email", "sms")
    assert rules.select({"risk_class": "low", "segment": "sme"}).name == "standard"
    assert rules.select({"risk_class": "critical", "segment": "sme"}).name == "strict"
    assert rules.select({"risk_class": "low", "segment": "public_sector"}).name == "public_sector"
    # Every template a shipped policy names exists in every language, with every part.
    templates = ROOT / "templates"
    for p in rules.policies:
        for s in p.steps:
            for ch in s.channel or ():
                for lang in ("en", "fr", "es", "de"):
                    parts = ("subject", "txt", "html") if ch == "email" else ("txt",)
                    for part in parts:
                        assert (templates / ch / lang / f"{s.template}.{part}.j2").is_file()


def test_simple_match_is_only_a_placeholder() -> None:
    assert simple_match('risk_class in ["low", "medium"]', {"risk_class": "low"})
    assert not simple_match('segment == "public_sector" and grade != 3', {"segment": "x"})
    assert simple_match("true", {})
    with pytest.raises(NotImplementedError, match="rules engine"):
        simple_match("grade >= 8 or over_limit", {"grade": 9})


def test_rules_engine_builds_dunning_yaml(tmp_path: Path) -> None:
    from cobro.rules import RuleError
    from cobro.rules.ruleset import Ruleset

    shutil.copy(ROOT / "rules" / "risk_classes.yaml", tmp_path)
    shutil.copy(SHIPPED, tmp_path)
    built = Ruleset.load(tmp_path).built("dunning.yaml")
    assert built.select({"risk_class": "high", "segment": "sme"}).name == "strict"
    assert built.select({"risk_class": "watch", "segment": "sme"}).name == "standard"
    assert built.rules == load_policies_file(SHIPPED)

    (tmp_path / "dunning.yaml").write_text(
        "policies:\n"
        "  - name: x\n"
        "    applies_to: risk_clas == 'low'\n"
        "    steps:\n"
        "      - {at: 3, action: claim}\n"
        "      - {at: +1d, action: claim}\n"
    )
    with pytest.raises(RuleError) as info:
        Ruleset.load(tmp_path)
    text = str(info.value)
    assert "dunning.yaml:3:" in text and "risk_clas" in text
    assert "dunning.yaml:5:" in text and "strictly increasing" in text


def test_weeks_min_gap_catch_up_and_not_insured() -> None:
    data = policy(
        steps=[
            {"at": "+1w", "channel": "email", "template": "due"},
            {"at": "+6d", "channel": "email", "template": "reminder"},
        ],
        min_gap="1w",
        catch_up="latest",
        not_insured={"action": "skip"},
    )
    p = load_policies(data).policies[0]  # business days: +1w = 5 < +6d
    assert [p.offset_days(s) for s in p.steps] == [5, 6]
    assert [s.label for s in p.steps] == ["+1w", "+6d"]
    assert p.min_gap_days == 5 and p.catch_up == "latest" and p.not_insured.action == "skip"
    assert p.not_insured.note == "not insured: decide on legal action"
    # in calendar days the same steps are out of order (+1w = 7 > +6d)
    lines = errors_of({"policies": [{**data["policies"][0], "business_days": False}]})
    assert any("step 1 (+6d) does not come after step 0 (+1w)" in x for x in lines), lines
    defaults = load_policies(policy()).policies[0]
    assert defaults.min_gap_days == 3 and defaults.catch_up == "first_unsent"
    assert defaults.not_insured.action == "task"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"min_gap": "-2d"}, "policies[0].min_gap: invalid min_gap '-2d': it cannot be negative"),
        ({"catch_up": "oldest"}, "policies[0].catch_up: Input should be 'first_unsent' or"),
        ({"not_insured": {"action": "call"}}, "policies[0].not_insured.action: Input should be"),
    ],
)
def test_new_keys_are_validated(change: dict, expected: str) -> None:
    data = policy(**change)
    assert any(line.startswith(expected) for line in errors_of(data)), errors_of(data)
