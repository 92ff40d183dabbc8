"""`cobro rules check` catches message-template and dunning-policy mistakes with positions, and
the running workers keep the last good dunning policies while the rules directory is broken."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.dunning.rulefile import templates_directory
from cobro.rules import RuleError
from cobro.rules.classify import ruleset_from_directory
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers import ROOT

runner = CliRunner()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped rules and templates: (rules dir, templates dir)."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path / "rules", tmp_path / "templates"


@pytest.fixture
def settings_templates(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path]]:
    """The copy's templates directory is the one in the settings (COBRO_TEMPLATES_DIR)."""
    monkeypatch.setenv("COBRO_TEMPLATES_DIR", str(tree[1]))
    get_settings.cache_clear()
    yield tree
    get_settings.cache_clear()


def check(rules: Path, templates: Path | None = None) -> tuple[int, str]:
    args = ["rules", "check", str(rules)]
    if templates is not None:
        args += ["--templates", str(templates)]
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout  # the summary line goes to stderr


def insert_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(line - 1, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based (line, col) of `text[index]`."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the `occurrence`-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return line_col(text, index)


def edit_dunning(rules: Path, anchor: str, new: str) -> tuple[int, int]:
    """In dunning.yaml, replace the last word of the first `anchor` (`channel: sms, template:
    due}` -> `due}`) by `new`; return the (line, col) of `new`."""
    f = rules / "dunning.yaml"
    text = f.read_text(encoding="utf-8")
    old = anchor.split()[-1]
    index = text.index(anchor) + len(anchor) - len(old)
    edited = text[:index] + new + text[index + len(old) :]
    f.write_text(edited, encoding="utf-8")
    return line_col(edited, index)


# ---------------------------------------------------------------- the shipped files


def test_shipped_rules_and_templates_pass(tree: tuple[Path, Path]) -> None:
    code, out = check(ROOT / "rules", ROOT / "templates")
    assert code == 0, out
    assert out.startswith("OK ") and len(out.strip().splitlines()) == 1
    assert re.search(r", \d+ template file\(s\) rendered hash=", out)
    code, out = check(*tree)  # the copy too, so that every failure below is the edit's
    assert code == 0, out
    assert out.startswith("OK ")


# ---------------------------------------------------------------- templates render


def test_unknown_template_variable_fails_with_file_and_line(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    insert_line(templates / "email" / "fr" / "reminder.txt.j2", 2, "Client : {{ customer.nme }}")
    code, out = check(rules, templates)
    assert code == 1
    problems = out.strip().splitlines()
    assert len(problems) == 1, out
    assert problems[0].startswith(f"{templates}/email/fr/reminder.txt.j2:2: ")
    assert "nme" in problems[0]


def test_jinja_syntax_error_fails_with_file_and_line(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    insert_line(templates / "sms" / "de" / "due.txt.j2", 3, "{% if payment_url %}oops")
    code, out = check(rules, templates)
    assert code == 1
    lines = [x for x in out.splitlines() if "sms/de/due.txt.j2" in x]
    assert len(lines) == 1, out
    # the end of the file is where Jinja finds the unclosed `if`
    last = len((templates / "sms" / "de" / "due.txt.j2").read_text().splitlines())
    assert lines[0].startswith(f"{templates}/sms/de/due.txt.j2:{last}: ")
    assert "endif" in lines[0]


def test_template_missing_from_a_language_fails(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    (templates / "email" / "es" / "due.html.j2").unlink()
    code, out = check(rules, templates)
    assert code == 1
    assert f"{templates}/email/es/due.html.j2:1: missing template" in out


def test_templates_directory_from_the_settings(settings_templates: tuple[Path, Path]) -> None:
    rules, templates = settings_templates
    insert_line(templates / "email" / "en" / "due.subject.j2", 1, "{{ customer.nme }}")
    code, out = check(rules)
    assert code == 1
    assert f"{templates}/email/en/due.subject.j2:1: " in out


def test_missing_templates_directory(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    shutil.rmtree(templates)
    code, out = check(rules, templates)
    assert code == 1
    assert f"{templates}:1: templates directory does not exist" in out
    assert f"templates directory `{templates}` does not exist" in out  # dunning.yaml too


# ---------------------------------------------------------------- dunning steps name templates


def test_misspelt_template_is_positioned_with_did_you_mean(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    line, col = edit_dunning(rules, "template: reminder}", "remider}")
    code, out = check(rules, templates)
    assert code == 1
    errors = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{rules}/dunning.yaml:{line}:{col}: ")
    assert "unknown email template `remider`" in errors[0]
    assert "did you mean `reminder`" in errors[0]


def test_sms_step_with_an_email_only_template(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    line, col = edit_dunning(rules, "channel: sms, template: due}", "final_notice}")
    code, out = check(rules, templates)
    assert code == 1
    errors = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{rules}/dunning.yaml:{line}:{col}: ")
    assert "unknown sms template `final_notice`" in errors[0]
    assert "exists for email only" in errors[0]
    assert "sms templates: due, reminder" in errors[0]


def test_each_channel_of_a_step_needs_its_template(tree: tuple[Path, Path]) -> None:
    """`[email, sms]` with a template that only exists for email: the sms half is an error."""
    rules, templates = tree
    line, col = edit_dunning(rules, "channel: [email, sms], template: reminder}", "final_notice}")
    code, out = check(rules, templates)
    assert code == 1
    errors = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert [e.split(": ", 1)[0] for e in errors] == [f"{rules}/dunning.yaml:{line}:{col}"]
    assert "unknown sms template `final_notice`" in errors[0]


def test_template_must_exist_in_the_fallback_language(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    for lang in ("fr", "de", "es"):
        (templates / "sms" / lang / "final_notice.txt.j2").write_text("{{ company.name }}\n")
    line, col = edit_dunning(rules, "channel: sms, template: due}", "final_notice}")
    with templates_directory(templates), pytest.raises(RuleError) as info:
        Ruleset.load(rules)
    [message] = info.value.messages
    assert (message.line, message.col) == (line, col)
    assert "no `" in message.message and "/sms/en/final_notice.txt.j2`" in message.message


def test_email_template_needs_all_three_parts(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    (templates / "email" / "en" / "final_notice.html.j2").unlink()
    with templates_directory(templates), pytest.raises(RuleError) as info:
        Ruleset.load(rules)
    text = (rules / "dunning.yaml").read_text()
    # every email step naming final_notice, one error each
    expected = [position(text, "final_notice}", n) for n in (1, 2, 3)]
    assert [(m.line, m.col) for m in info.value.messages] == expected
    for m in info.value.messages:
        assert "email template `final_notice` is incomplete" in m.message
        assert "email/en/final_notice.html.j2" in m.message


# ---------------------------------------------------------------- other step mistakes


@pytest.mark.parametrize(
    ("anchor", "new", "message"),
    [
        ("channel: email", "[]", "at least one channel (email, sms, whatsapp)"),
        ("channel: email", "fax", "Input should be 'email', 'sms' or 'whatsapp'"),
        ("channel: [email, sms]", "smss]", "did you mean `sms`?"),
        ("at: +10d", "+10x", "invalid offset '+10x'"),
        ("at: +1w", "7 days", "invalid offset '7 days'"),
    ],
)
def test_step_mistakes_are_positioned(
    tree: tuple[Path, Path], anchor: str, new: str, message: str
) -> None:
    rules, templates = tree
    line, col = edit_dunning(rules, anchor, new)
    code, out = check(rules, templates)
    assert code == 1
    errors = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{rules}/dunning.yaml:{line}:{col}: ")
    assert message in errors[0]


def test_steps_out_of_order_are_positioned(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    edit_dunning(rules, "at: +10d", "-10d")
    text = (rules / "dunning.yaml").read_text()
    steps_line, _ = position(text, "- {at: -5d")  # the first policy's steps
    code, out = check(rules, templates)
    assert code == 1
    errors = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"{rules}/dunning.yaml:{steps_line}:")
    assert "strictly increasing `at` order: step 2 (-10d)" in errors[0]


def test_rules_and_template_problems_are_reported_together(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    edit_dunning(rules, "template: reminder}", "remider}")
    insert_line(templates / "email" / "de" / "due.txt.j2", 1, "{{ customer.nme }}")
    code, out = check(rules, templates)
    assert code == 1
    assert "did you mean `reminder`" in out
    assert f"{templates}/email/de/due.txt.j2:1: " in out


# ---------------------------------------------------------------- hot reload keeps the last good


def _write(path: Path, text: str, mtime: float) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))  # the reload is keyed on mtimes: make each edit visible


def policies(directory: Path):  # type: ignore[no-untyped-def]
    """The rules directory's dunning policies, as a worker reads them before any apply."""
    return ruleset_from_directory(directory).built("dunning.yaml")


def test_policies_hot_reload_keeps_the_last_good_version(
    settings_templates: tuple[Path, Path],
) -> None:
    rules, _ = settings_templates
    f = rules / "dunning.yaml"
    shipped = f.read_text(encoding="utf-8")
    base = f.stat().st_mtime

    good = policies(rules)
    assert [p.name for p in good.rules.policies] == ["public_sector", "strict", "standard"]
    assert policies(rules) is good

    broken = shipped.replace(
        "    calendar: customer\n", "   calendar: customer\n", 1
    )  # bad indentation
    _write(f, broken, base + 10)
    with pytest.raises(RuleError, match="YAML syntax error"):
        Ruleset.load(rules)
    assert policies(rules) is good

    _write(f, shipped.replace("reminder}", "remider}", 1), base + 20)  # unknown template
    with pytest.raises(RuleError, match="did you mean `reminder`"):
        Ruleset.load(rules)
    assert policies(rules) is good

    _write(f, shipped.replace("name: strict", "name: strict_v2"), base + 30)  # fixed
    new = policies(rules)
    assert new is not good
    assert [p.name for p in new.rules.policies] == ["public_sector", "strict_v2", "standard"]
    assert new.select({"risk_class": "high", "segment": "sme"}).name == "strict_v2"
    assert policies(rules) is new


# ---------------------------------------------------------------- WhatsApp steps


@pytest.mark.parametrize(
    ("anchor", "new"),
    [
        ("channel: sms, template: due}", "channel: whatsapp, template: due}"),
        (
            "channel: [email, sms], template: reminder}",
            "channel: [email, sms, whatsapp], template: reminder}",
        ),
    ],
    ids=["alone", "in-a-list"],
)
def test_a_whatsapp_step_is_accepted(tree: tuple[Path, Path], anchor: str, new: str) -> None:
    rules, templates = tree
    f = rules / "dunning.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace(anchor, new, 1), encoding="utf-8")
    code, out = check(rules, templates)
    assert code == 0, out


def test_an_unknown_whatsapp_channel_is_positioned(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    line, col = edit_dunning(rules, "channel: [email, sms]", "whatsap]")
    code, out = check(rules, templates)
    assert code == 1
    [error] = [x for x in out.splitlines() if "dunning.yaml:" in x]
    assert error.startswith(f"{rules}/dunning.yaml:{line}:{col}: ")
    assert "did you mean `whatsapp`?" in error


def test_a_whatsapp_step_needs_its_approved_template(tree: tuple[Path, Path]) -> None:
    """`pre_due` has email templates only: a WhatsApp step naming it is refused, with the
    file it lacks and the WhatsApp templates there are."""
    rules, templates = tree
    f = rules / "dunning.yaml"
    text = f.read_text(encoding="utf-8").replace(
        "channel: email, template: pre_due}", "channel: whatsapp, template: pre_due}", 1
    )
    f.write_text(text, encoding="utf-8")
    code, out = check(rules, templates)
    assert code == 1
    [error] = [x for x in out.splitlines() if "dunning.yaml:" in x]
    line, col = position(text, "pre_due}")
    assert error.startswith(f"{rules}/dunning.yaml:{line}:{col}: ")
    assert "unknown whatsapp template `pre_due`" in error
    assert "whatsapp/en/pre_due.json" in error
    assert "whatsapp templates: due, reminder" in error
