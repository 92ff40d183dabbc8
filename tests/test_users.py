"""Users, roles and API tokens on both databases (SQLite, PostgreSQL): argon2 at rest,
authentication, role ranks, token hashing and revocation, one-line errors."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select, update

from cobro.models import ApiToken, User
from cobro.users import (
    ROLE_RANK,
    ROLES,
    CurrentUser,
    UserError,
    authenticate,
    check_user,
    create_api_token,
    create_user,
    deactivate,
    hash_password,
    list_users,
    revoke_api_token,
    set_password,
    set_role,
    user_for_token,
    verify_password,
)

PW = "correct horse battery"


def test_hash_and_verify_are_argon2() -> None:
    stored = hash_password(PW)
    assert stored.startswith("$argon2id$") and PW not in stored
    assert hash_password(PW) != stored, "salted: the same password hashes differently"
    assert verify_password(stored, PW)
    assert not verify_password(stored, PW + "!")
    assert not verify_password("not a hash", PW)


def test_role_ranks() -> None:
    assert ROLES == ("viewer", "collector", "credit_manager", "admin")
    assert ROLE_RANK == {"viewer": 0, "collector": 1, "credit_manager": 2, "admin": 3}
    viewer, collector, manager, admin = (CurrentUser(i, r, "", r) for i, r in enumerate(ROLES))
    assert manager.can("collector") and manager.can("credit_manager") and not manager.can("admin")
    assert viewer.can("viewer") and not viewer.can("collector") and not viewer.can("admin")
    assert collector.can("viewer") and collector.can("collector") and not collector.can("admin")
    assert all(admin.can(r) for r in ROLES)


def test_create_and_authenticate(engine: Engine) -> None:
    user_id = create_user(engine, "ana", PW, "collector", "Ana")
    with engine.connect() as conn:
        stored = conn.scalar(select(User.password_hash).where(User.username == "ana"))
    assert stored and stored.startswith("$argon2") and PW not in stored
    user = authenticate(engine, "ana", PW)
    assert user == CurrentUser(user_id, "ana", "Ana", "collector")
    assert user.can("viewer") and user.can("collector") and not user.can("admin")
    assert authenticate(engine, "ana", "wrong password") is None
    assert authenticate(engine, "nobody", PW) is None
    assert authenticate(engine, "nul\x00name", PW) is None  # PostgreSQL refuses NUL in text
    set_password(engine, "ana", "another long password")
    assert authenticate(engine, "ana", PW) is None
    assert authenticate(engine, "ana", "another long password") is not None
    set_role(engine, "ana", "admin")
    assert authenticate(engine, "ana", "another long password").can("admin")  # type: ignore[union-attr]


def test_login_time_recorded(engine: Engine) -> None:
    create_user(engine, "lu", PW, "viewer")
    assert list_users(engine)[0]["last_login_at"] is None
    assert authenticate(engine, "lu", "a wrong password") is None
    assert list_users(engine)[0]["last_login_at"] is None, "only a successful login counts"
    authenticate(engine, "lu", PW)
    assert datetime.fromisoformat(list_users(engine)[0]["last_login_at"])


def test_inactive_user_cannot_log_in(engine: Engine) -> None:
    create_user(engine, "gone", PW, "admin")
    deactivate(engine, "gone")
    assert authenticate(engine, "gone", PW) is None
    assert list_users(engine)[0]["active"] is False


def test_outdated_hash_rehashed_on_login(engine: Engine) -> None:
    create_user(engine, "old", PW, "viewer")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PW)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.username == "old").values(password_hash=weak))
    assert authenticate(engine, "old", PW) is not None
    with engine.connect() as conn:
        stored = conn.scalar(select(User.password_hash).where(User.username == "old"))
    assert stored != weak and not PasswordHasher().check_needs_rehash(stored)
    assert authenticate(engine, "old", PW) is not None


def test_bad_input_is_one_clear_error(engine: Engine) -> None:
    with pytest.raises(UserError, match=r"unknown role 'colector'.*did you mean `collector`"):
        create_user(engine, "bo", PW, "colector")
    with pytest.raises(UserError, match="at least 10 characters"):
        create_user(engine, "bo", "short", "viewer")
    with pytest.raises(UserError, match="without spaces"):
        create_user(engine, "b o", PW, "viewer")
    with pytest.raises(UserError, match="printable"):
        create_user(engine, "b\x00o", PW, "viewer")
    with pytest.raises(UserError, match="display name"):
        create_user(engine, "bo", PW, "viewer", "B\x00")
    create_user(engine, "bo", PW, "viewer")
    with pytest.raises(UserError, match="'bo' already exists"):
        create_user(engine, "bo", PW, "viewer")
    with pytest.raises(UserError, match="no user 'zed'"):
        set_role(engine, "zed", "viewer")
    with pytest.raises(UserError, match="no user 'zed'"):
        set_password(engine, "zed", PW)
    with pytest.raises(UserError, match="no user 'zed'"):
        deactivate(engine, "zed")
    with pytest.raises(UserError, match="no user 'zed'"):
        check_user(engine, "zed")
    with pytest.raises(UserError, match="unknown role 'root'"):
        set_role(engine, "bo", "root")
    with pytest.raises(UserError, match="at least 10"):
        set_password(engine, "bo", "tiny")
    check_user(engine, "bo")


def test_api_tokens_hashed_at_rest_and_revocable(engine: Engine) -> None:
    create_user(engine, "bot", PW, "collector")
    token = create_api_token(engine, "bot", "nightly")
    assert token.startswith("cobro_") and len(token) > 40
    with engine.connect() as conn:
        row = conn.execute(select(ApiToken.id, ApiToken.token_sha256, ApiToken.name)).one()
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert row.name == "nightly"
        every_value = [str(v) for r in conn.execute(select(ApiToken)).all() for v in r]
    assert not any(token in v for v in every_value), "the plaintext token is never stored"
    user = user_for_token(engine, token)
    assert user is not None and user.username == "bot" and user.role == "collector"
    with engine.connect() as conn:
        assert conn.scalar(select(ApiToken.last_used_at)) is not None
    assert user_for_token(engine, token + "x") is None
    assert user_for_token(engine, "not-a-token") is None
    assert user_for_token(engine, "") is None
    second = create_api_token(engine, "bot", "export")
    assert second != token
    revoke_api_token(engine, row.id)
    assert user_for_token(engine, token) is None
    assert user_for_token(engine, second) is not None, "revoking one token keeps the others"
    revoke_api_token(engine, row.id)  # again: no error, still revoked
    assert user_for_token(engine, token) is None
    tokens = list_users(engine)[0]["tokens"]
    assert [(t["name"], t["revoked"]) for t in tokens] == [("nightly", True), ("export", False)]
    with pytest.raises(UserError, match="no API token 999"):
        revoke_api_token(engine, 999)


def test_token_of_deactivated_user_stops_working(engine: Engine) -> None:
    create_user(engine, "bot", PW, "viewer")
    token = create_api_token(engine, "bot", "cron")
    deactivate(engine, "bot")
    assert user_for_token(engine, token) is None


def test_token_errors(engine: Engine) -> None:
    with pytest.raises(UserError, match="no user 'ghost'"):
        create_api_token(engine, "ghost", "x")
    create_user(engine, "bot", PW, "viewer")
    with pytest.raises(UserError, match="needs a name"):
        create_api_token(engine, "bot", "  ")
    with pytest.raises(UserError, match="token name"):
        create_api_token(engine, "bot", "a\x00b")


def test_list_users(engine: Engine) -> None:
    create_user(engine, "zoe", PW, "admin", "Zoé")
    create_user(engine, "al", PW, "viewer")
    listed = list_users(engine)
    assert [(u["username"], u["display_name"], u["role"], u["active"]) for u in listed] == [
        ("al", "", "viewer", True),
        ("zoe", "Zoé", "admin", True),
    ]
    assert all("password_hash" not in u for u in listed)
