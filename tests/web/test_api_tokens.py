"""API tokens with a scope and an expiry, through the real FastAPI app on both databases: a
read token reads and is refused (403, naming the act scope) on every state-changing API
call, an act token acts, an expired token gets a 401 saying so, `never` only when asked for,
the last use is recorded and listed (`cobro users tokens`), and tokens made before the
scope existed (migration 0024) keep acting with no expiry."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine, insert, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cobro.cli import app as cli
from cobro.db import default_engine, make_engine, transaction, upgrade
from cobro.models import Alert, ApiToken, Customer
from cobro.settings import Settings
from cobro.types import utcnow
from cobro.users import (
    UserError,
    create_api_token,
    create_user,
    list_tokens,
    parse_expiry,
    user_for_token,
)
from cobro.web.api import router as api_router
from cobro.web.app import create_app
from tests.conftest import PG_ADMIN_DSN

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PW = "correct horse battery"


@pytest.fixture
def db(use_database: str) -> Engine:
    engine = default_engine()
    create_user(engine, "maria", PW, "collector")
    with transaction(engine) as s:
        customer = Customer(
            account="C1", name="Acme", country="FR", language="fr", timezone="Europe/Paris"
        )
        s.add(customer)
        s.flush()
        s.add(
            Alert(
                customer_id=customer.id,
                name="limit_almost_used",
                severity="warning",
                message="uses 95 % of its cover",
                dedup_key="t1",
                ruleset_hash="x" * 64,
            )
        )
    return engine


def client(engine: Engine, token: str) -> TestClient:
    app = create_app(Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def _writes() -> list[tuple[str, str]]:
    """Every state-changing route of the JSON API, path parameters filled with 1."""
    found = []
    for route in api_router.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/api/"):
            for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
                found.append((method, re.sub(r"\{[^}]+\}", "1", route.path)))
    return sorted(found)


def test_a_read_token_reads_and_is_refused_on_every_write(db: Engine) -> None:
    token = create_api_token(db, "maria", "export")  # the default scope: read
    with client(db, token) as api:
        assert api.get("/api/alerts").json()["total"] == 1
        writes = _writes()
        assert len(writes) >= 15, writes
        for method, path in writes:
            refused = api.request(method, path, json={})
            assert refused.status_code == 403, (method, path, refused.text)
            assert "act scope" in refused.json()["detail"], (method, path)
    with transaction(db) as s:
        alert = s.scalar(select(Alert))
        assert alert is not None and (alert.state, alert.assigned_to) == ("open", None)


def test_an_act_token_acts(db: Engine) -> None:
    token = create_api_token(db, "maria", "robot", scope="act")
    with client(db, token) as api:
        done = api.post("/api/alerts/1/acknowledge")
        assert done.status_code == 200, done.text
    with transaction(db) as s:
        assert s.scalar(select(Alert.acknowledged_by)) == "maria"


def test_the_role_still_bounds_an_act_token(db: Engine) -> None:
    create_user(db, "vera", PW, "viewer")
    token = create_api_token(db, "vera", "robot", scope="act")
    with client(db, token) as api:
        refused = api.post("/api/alerts/1/acknowledge")
        assert refused.status_code == 403 and "collector role" in refused.json()["detail"]


def test_an_expired_token_gets_a_clear_401(db: Engine) -> None:
    token = create_api_token(db, "maria", "old", scope="act", expires="1d")
    with client(db, token) as api:
        assert api.get("/api/alerts").status_code == 200
        with transaction(db) as s:
            s.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        for answer in (api.get("/api/alerts"), api.post("/api/alerts/1/acknowledge")):
            assert answer.status_code == 401
            assert answer.headers["content-type"].startswith("application/json")
            detail = answer.json()["detail"]
            assert "API token 1 (old) expired at" in detail and "cobro users token" in detail
    assert user_for_token(db, token) is None
    assert list_tokens(db)[0]["expired"] is True


def test_last_use_is_recorded_and_listed(db: Engine) -> None:
    token = create_api_token(db, "maria", "nightly")
    (row,) = list_tokens(db)
    assert row["last_used_at"] is None and row["scope"] == "read"
    with client(db, token) as api:
        api.get("/api/tasks")
    (row,) = list_tokens(db)
    assert row["last_used_at"] is not None
    assert token not in json.dumps(list_tokens(db))


def test_expiry_parsing() -> None:
    now = utcnow()
    assert parse_expiry("90d", now) == now + timedelta(days=90)
    assert parse_expiry("2w", now) == now + timedelta(days=14)
    assert parse_expiry("never", now) is None
    day = (now + timedelta(days=10)).date()
    assert parse_expiry(day.isoformat(), now).date() == day + timedelta(days=1)  # type: ignore[union-attr]
    for bad, message in [
        ("0d", "1 to 3660 days"),
        ("soon", "invalid expiry"),
        ("2001-01-01", "in the past"),
        ("99999d", "1 to 3660 days"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_expiry(bad, now)


def test_the_cli_makes_and_lists_scoped_tokens(db: Engine) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["users", "token", "maria", "--name", "ci", "--scope", "act"])
    assert made.exit_code == 0, made.output
    assert made.stdout.strip().startswith("cobro_") and len(made.stdout.split()) == 1
    assert "scope act, expires 20" in made.stderr
    forever = runner.invoke(
        cli, ["users", "token", "maria", "--name", "kiosk", "--expires", "never"]
    )
    assert forever.exit_code == 0 and "scope read, expires never" in forever.stderr
    bad = runner.invoke(cli, ["users", "token", "maria", "--name", "x", "--scope", "write"])
    assert bad.exit_code == 1 and "unknown token scope 'write'" in bad.output
    late = runner.invoke(cli, ["users", "token", "maria", "--name", "x", "--expires", "1y"])
    assert late.exit_code == 1 and "invalid expiry '1y'" in late.output

    listed = runner.invoke(cli, ["users", "tokens", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(t["id"], t["user"], t["name"], t["scope"]) for t in rows] == [
        (1, "maria", "ci", "act"),
        (2, "maria", "kiosk", "read"),
    ]
    assert rows[0]["expires_at"] is not None and rows[1]["expires_at"] is None
    assert {"last_used_at", "revoked", "expired", "created_at"} <= rows[0].keys()
    assert runner.invoke(cli, ["users", "revoke-token", "1"]).exit_code == 0
    table = runner.invoke(cli, ["users", "tokens"])
    assert table.exit_code == 0 and "kiosk" in table.output and "never" in table.output
    assert json.loads(runner.invoke(cli, ["users", "tokens", "--json"]).stdout)[0]["revoked"]


# ------------------------------------------------------------------ migration 0024
@pytest.fixture(params=["sqlite", "postgres"])
def at_0023(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to 0023, before tokens had a scope."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0023")
        yield url
        return
    name = f"cobro_test_mig_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url, "0023")
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_tokens_made_before_0024_keep_acting_with_no_expiry(at_0023: str) -> None:
    import hashlib

    old = "cobro_" + "o" * 43
    engine = make_engine(at_0023)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(
                    sa_table(
                        "users",
                        sa_column("username"),
                        sa_column("display_name"),
                        sa_column("password_hash"),
                        sa_column("role"),
                        sa_column("active"),
                        sa_column("created_at"),
                    )
                ).values(
                    username="maria",
                    display_name="",
                    password_hash="x",
                    role="collector",
                    active=True,
                    created_at=utcnow(),
                )
            )
            conn.execute(
                insert(
                    sa_table(
                        "api_tokens",
                        sa_column("user_id"),
                        sa_column("name"),
                        sa_column("token_sha256"),
                        sa_column("created_at"),
                    )
                ).values(
                    user_id=1,
                    name="legacy",
                    token_sha256=hashlib.sha256(old.encode()).hexdigest(),
                    created_at=utcnow(),
                )
            )
        upgrade(at_0023)
        with transaction(engine) as s:
            token = s.scalar(select(ApiToken))
            assert token is not None and (token.scope, token.expires_at) == ("act", None)
        user = user_for_token(engine, old)
        assert user is not None and user.scope == "act"
        new = create_api_token(engine, "maria", "new")
        assert user_for_token(engine, new).scope == "read"  # type: ignore[union-attr]
    finally:
        engine.dispose()
