"""`cobro users add|list|passwd|role|deactivate|token|revoke-token` on both databases:
passwords from stdin or COBRO_NEW_USER_PASSWORD (CI has no terminal), JSON output, the
token printed once, errors as one line with exit code 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine
from cobro.users import authenticate, user_for_token

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PW = "correct horse battery"


@pytest.fixture
def runner(use_database: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("COBRO_NEW_USER_PASSWORD", raising=False)
    return CliRunner()


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def users(runner: CliRunner) -> list[dict]:
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.output)


def test_add_list_token(runner: CliRunner) -> None:
    added = runner.invoke(
        app,
        ["users", "add", "maria", "--role", "collector", "--name", "María", "--password-stdin"],
        input=PW + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "user maria (collector) created" in added.output
    assert PW not in added.output
    assert authenticate(default_engine(), "maria", PW) is not None
    listed = users(runner)
    assert [(u["username"], u["role"], u["display_name"], u["active"]) for u in listed] == [
        ("maria", "collector", "María", True)
    ]
    made = runner.invoke(app, ["users", "token", "maria", "--name", "export"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("cobro_") and len(lines(made.stdout)) == 1
    assert "scope read, expires" in made.stderr  # the safe default, said aside
    assert user_for_token(default_engine(), token).username == "maria"  # type: ignore[union-attr]
    (tok,) = users(runner)[0]["tokens"]
    assert tok["name"] == "export" and tok["revoked"] is False
    assert token not in runner.invoke(app, ["users", "list", "--json"]).output
    table = runner.invoke(app, ["users", "list"])
    assert table.exit_code == 0 and "maria" in table.output and "export" in table.output

    revoked = runner.invoke(app, ["users", "revoke-token", str(tok["id"])])
    assert revoked.exit_code == 0, revoked.output
    assert user_for_token(default_engine(), token) is None
    assert users(runner)[0]["tokens"][0]["revoked"] is True


def test_password_from_environment(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBRO_NEW_USER_PASSWORD", PW)
    added = runner.invoke(app, ["users", "add", "env", "--role", "viewer"])
    assert added.exit_code == 0, added.output
    assert authenticate(default_engine(), "env", PW) is not None


def test_no_terminal_no_password_is_a_clear_error(runner: CliRunner) -> None:
    added = runner.invoke(app, ["users", "add", "tty", "--role", "viewer"])
    assert added.exit_code == 1
    assert lines(added.output) == [
        "error: no terminal to ask the password: use --password-stdin or COBRO_NEW_USER_PASSWORD"
    ]


def test_passwd_role_deactivate(runner: CliRunner) -> None:
    add = ["users", "add", "ana", "--role", "viewer", "--password-stdin"]
    assert runner.invoke(app, add, input=PW + "\n").exit_code == 0
    new_pw = "a brand new passphrase"
    changed = runner.invoke(app, ["users", "passwd", "ana", "--password-stdin"], input=new_pw)
    assert changed.exit_code == 0, changed.output
    assert authenticate(default_engine(), "ana", PW) is None
    assert authenticate(default_engine(), "ana", new_pw) is not None

    role = runner.invoke(app, ["users", "role", "ana", "admin"])
    assert role.exit_code == 0 and "ana is now admin" in role.output
    assert users(runner)[0]["role"] == "admin"

    gone = runner.invoke(app, ["users", "deactivate", "ana"])
    assert gone.exit_code == 0, gone.output
    assert users(runner)[0]["active"] is False
    assert authenticate(default_engine(), "ana", new_pw) is None


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["users", "add", "x", "--role", "boss", "--password-stdin"],
            "",
            "error: unknown role 'boss'; one of viewer, collector, credit_manager, admin",
        ),
        (
            ["users", "add", "x", "--role", "colector", "--password-stdin"],
            "",
            "error: unknown role 'colector'; one of viewer, collector, credit_manager, admin"
            " (did you mean `collector`?)",
        ),
        (
            ["users", "add", "y", "--role", "viewer", "--password-stdin"],
            "abc\n",
            "error: the password must have at least 10 characters",
        ),
        (
            ["users", "add", "y", "--role", "viewer", "--password-stdin"],
            "",
            "error: the password must have at least 10 characters",
        ),
        (
            ["users", "passwd", "nobody", "--password-stdin"],
            PW,
            "error: no user 'nobody'",
        ),
        (["users", "role", "nobody", "viewer"], "", "error: no user 'nobody'"),
        (["users", "deactivate", "nobody"], "", "error: no user 'nobody'"),
        (["users", "token", "nobody", "--name", "n"], "", "error: no user 'nobody'"),
        (["users", "revoke-token", "42"], "", "error: no API token 42"),
    ],
)
def test_errors_are_one_line(runner: CliRunner, args: list[str], stdin: str, message: str) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 1, result.output
    assert lines(result.output) == [message]


def test_username_taken(runner: CliRunner) -> None:
    add = ["users", "add", "dup", "--role", "viewer", "--password-stdin"]
    assert runner.invoke(app, add, input=PW).exit_code == 0
    again = runner.invoke(app, add, input=PW)
    assert again.exit_code == 1
    assert lines(again.output) == ["error: user 'dup' already exists"]


def test_passwd_of_unknown_user_fails_before_prompting(runner: CliRunner) -> None:
    result = runner.invoke(app, ["users", "passwd", "nobody"])  # no terminal, no stdin flag
    assert lines(result.output) == ["error: no user 'nobody'"]


def test_help() -> None:
    result = CliRunner().invoke(app, ["users", "--help"])
    assert result.exit_code == 0
    for command in ("add", "list", "passwd", "role", "deactivate", "token", "revoke-token"):
        assert command in result.output
