"""Users, roles and API tokens on both databases; the `cobro users` commands."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine
from cobro.models import ApiToken, User
from cobro.users import (
    UserError,
    authenticate,
    create_api_token,
    create_user,
    deactivate,
    revoke_api_token,
    set_password,
    set_role,
    user_for_token,
)

PW = "correct horse battery"


def test_create_and_authenticate(engine: Engine) -> None:
    create_user(engine, "ana", PW, "collector", "Ana")
    with engine.connect() as conn:
        stored = conn.scalar(select(User.password_hash).where(User.username == "ana"))
    assert stored and stored.startswith("$argon2") and PW not in stored
    user = authenticate(engine, "ana", PW)
    assert user is not None and user.role == "collector" and user.display_name == "Ana"
    assert user.can("viewer") and user.can("collector") and not user.can("admin")
    assert authenticate(engine, "ana", "wrong password") is None
    assert authenticate(engine, "nobody", PW) is None
    set_password(engine, "ana", "another long password")
    assert authenticate(engine, "ana", PW) is None
    assert authenticate(engine, "ana", "another long password") is not None
    set_role(engine, "ana", "admin")
    assert authenticate(engine, "ana", "another long password").can("admin")  # type: ignore[union-attr]
    deactivate(engine, "ana")
    assert authenticate(engine, "ana", "another long password") is None


def test_bad_input_is_one_clear_error(engine: Engine) -> None:
    with pytest.raises(UserError, match=r"unknown role 'colector'.*did you mean `collector`"):
        create_user(engine, "bo", PW, "colector")
    with pytest.raises(UserError, match="at least 10 characters"):
        create_user(engine, "bo", "short", "viewer")
    create_user(engine, "bo", PW, "viewer")
    with pytest.raises(UserError, match="already exists"):
        create_user(engine, "bo", PW, "viewer")
    with pytest.raises(UserError, match="no user 'zed'"):
        set_role(engine, "zed", "viewer")


def test_api_tokens_hashed_at_rest_and_revocable(engine: Engine) -> None:
    create_user(engine, "bot", PW, "viewer")
    token = create_api_token(engine, "bot", "nightly")
    with engine.connect() as conn:
        row = conn.execute(select(ApiToken.id, ApiToken.token_sha256)).one()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert user_for_token(engine, token).username == "bot"  # type: ignore[union-attr]
    assert user_for_token(engine, token + "x") is None
    assert user_for_token(engine, "not-a-token") is None
    revoke_api_token(engine, row.id)
    assert user_for_token(engine, token) is None


def test_cli(use_database: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["users", "add", "maria", "--role", "collector", "--name", "María", "--password-stdin"],
        input=PW + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "user maria (collector) created" in added.output
    listed = json.loads(runner.invoke(app, ["users", "list", "--json"]).output)
    assert [(u["username"], u["role"], u["display_name"]) for u in listed] == [
        ("maria", "collector", "María")
    ]
    token = runner.invoke(app, ["users", "token", "maria", "--name", "export"]).output.strip()
    assert token.startswith("cobro_")
    assert user_for_token(default_engine(), token) is not None
    bad = runner.invoke(app, ["users", "add", "x", "--role", "boss", "--password-stdin"], input="")
    assert bad.exit_code == 1
    assert [line for line in bad.output.splitlines() if line.strip()] == [
        "error: unknown role 'boss'; one of viewer, collector, admin"
    ]
    short = runner.invoke(
        app, ["users", "add", "y", "--role", "viewer", "--password-stdin"], input="abc\n"
    )
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert "Traceback" not in short.output
    assert runner.invoke(app, ["users", "role", "maria", "viewer"]).exit_code == 0
    assert runner.invoke(app, ["users", "deactivate", "nobody"]).exit_code == 1
