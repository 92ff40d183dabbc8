"""The login form under a password-guessing attack (both databases, the real argon2
parameters): 40 wrong passwords in a row are refused quickly once the name's limit is hit
(no argon2 check), the right password is refused while the name is locked, and
`cobro users unlock NAME` lifts the lockout.

The clock the limits read is held still: on a loaded machine one argon2 check can outlast
the first 1-second delay, and the next wrong password would then rightly be checked."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cobro.cli import app as cli
from cobro.login_limits import USER_FREE
from cobro.settings import Settings
from cobro.users import create_user, verify_password
from cobro.web.app import create_app

PW = "correct horse battery"


def _client(engine: Engine, db_url: str, address: str = "192.0.2.1") -> tuple[TestClient, str]:
    settings = Settings(database_url=db_url, web_secret_key="k" * 32)
    client = TestClient(create_app(settings, engine), client=(address, 50000))
    client.get("/login")
    token = client.cookies.get("cobro_login_csrf")
    assert token
    return client, token


def _try(client: TestClient, token: str, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_forty_wrong_passwords_then_locked_until_unlocked(
    engine: Engine, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    still_clock = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    monkeypatch.setattr("cobro.login_limits.utcnow", lambda: still_clock)
    create_user(engine, "ann", PW, "viewer")
    stored = engine.connect().exec_driver_sql("SELECT password_hash FROM users").scalar()
    started = time.perf_counter()
    assert not verify_password(stored, "a wrong guess")
    one_check = time.perf_counter() - started  # what a wrong password costs unthrottled

    client, token = _client(engine, use_database)
    codes, took = [], []
    started = time.perf_counter()
    for i in range(40):
        t0 = time.perf_counter()
        codes.append(_try(client, token, "ann", f"guess number {i}").status_code)
        took.append(time.perf_counter() - t0)
    total = time.perf_counter() - started

    assert codes[:USER_FREE] == [401] * USER_FREE, "the first wrong passwords are checked"
    assert codes[USER_FREE:] == [429] * (40 - USER_FREE), "then refused unchecked"
    refused = took[USER_FREE:]
    assert sum(refused) < len(refused) * one_check / 4, (
        f"refusals cost {sum(refused) / len(refused):.4f} s each, an argon2 check {one_check:.4f}"
    )
    assert total < 40 * one_check, f"40 attempts took {total:.1f} s"

    locked = _try(client, token, "ann", PW)
    assert locked.status_code == 429 and "this user is locked" in locked.text
    assert "cobro_session" not in locked.headers.get("set-cookie", "")

    listed = CliRunner().invoke(cli, ["users", "list", "--json"])
    assert '"locked": true' in listed.output
    done = CliRunner().invoke(cli, ["users", "unlock", "ann"])
    assert done.exit_code == 0 and done.output.strip() == "ann unlocked", done.output
    again = CliRunner().invoke(cli, ["users", "unlock", "ann"])
    assert again.exit_code == 0 and again.output.strip() == "ann was not locked"

    still = _try(client, token, "ann", PW)
    assert still.status_code == 429 and "try again in" in still.text, "the address still waits"
    fresh, token = _client(engine, use_database, "198.51.100.2")  # ann, from her own desk
    ok = _try(fresh, token, "ann", PW)
    assert ok.status_code == 303 and "cobro_session=" in ok.headers["set-cookie"]
