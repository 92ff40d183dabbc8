"""cobro.web.auth on a tiny Starlette app (both databases): signed session cookies
(HttpOnly, SameSite=Lax, Secure on https, expiry, tampering) naming sessions recorded on
the server (logging out, a new password, deactivation end them), CSRF on cookie writes, API
tokens without CSRF, roles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr
from sqlalchemy import Engine, select, update
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from cobro.models import WebSession
from cobro.settings import Settings
from cobro.users import (
    authenticate,
    create_api_token,
    create_user,
    deactivate,
    end_session,
    open_session,
    revoke_api_token,
    set_password,
)
from cobro.web.auth import (
    SESSION_COOKIE,
    AuthMiddleware,
    check_csrf,
    clear_session,
    read_session,
    require,
    secret_key,
    session_cookie_value,
    set_session,
)

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PW = "correct horse battery"
SECRET = "test-secret-" + "k" * 32


def make_settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "var_dir": tmp_path,
        "web_secret_key": SecretStr(SECRET),
        "web_session_hours": 1,
        "public_base_url": "http://testserver",
    }
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


def make_app(engine: Engine, settings: Settings) -> Starlette:
    async def login(request: Request) -> Response:
        form = await request.form()
        user = authenticate(engine, str(form["username"]), str(form["password"]))
        if user is None:
            return JSONResponse({"error": "wrong login"}, status_code=401)
        key = open_session(engine, user.id, settings.web_session_hours)
        response = JSONResponse({"ok": True})
        set_session(response, settings, user.id, key)
        return response

    async def logout(request: Request) -> Response:
        require(request)
        await check_csrf(request)
        end_session(engine, request.state.session_key)
        response = JSONResponse({"ok": True})
        clear_session(response)
        return response

    async def me(request: Request) -> Response:
        user = require(request)
        return JSONResponse(
            {"username": user.username, "role": user.role, "csrf": request.state.csrf}
        )

    async def pause(request: Request) -> Response:
        user = require(request, "collector")
        await check_csrf(request)
        form = await request.form()  # still readable after check_csrf
        return JSONResponse({"by": user.username, "reason": form.get("reason")})

    async def api_pause(request: Request) -> Response:
        user = require(request, "collector")
        await check_csrf(request)
        body = await request.json()
        return JSONResponse({"by": user.username, "reason": body.get("reason")})

    return Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/me", me),
            Route("/pause", pause, methods=["POST"]),
            Route("/api/pause", api_pause, methods=["POST"]),
        ],
        middleware=[Middleware(AuthMiddleware, engine=engine, settings=settings)],
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    return {
        name: create_user(engine, name, PW, role, name.title())
        for name, role in (("vera", "viewer"), ("carl", "collector"), ("ada", "admin"))
    }


@pytest.fixture
def client(engine: Engine, settings: Settings, people: dict[str, int]) -> Iterator[TestClient]:
    with TestClient(make_app(engine, settings)) as c:
        yield c


def log_in(client: TestClient, username: str) -> str:
    """Log in; return the session's CSRF token."""
    done = client.post("/login", data={"username": username, "password": PW})
    assert done.status_code == 200, done.text
    me = client.get("/me")
    assert me.status_code == 200 and me.json()["username"] == username
    return me.json()["csrf"]


def old_cookie(user_id: int, age_s: int, key: str = "no-such-session", secret: str = SECRET) -> str:
    """A session cookie as `session_cookie_value` makes it, signed `age_s` seconds ago."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(secret, salt="cobro-session", signer=PastSigner)
    return serializer.dumps({"uid": user_id, "sid": key, "csrf": "c" * 32})


# -- the session cookie -----------------------------------------------------------------


def test_cookie_flags(client: TestClient) -> None:
    done = client.post("/login", data={"username": "carl", "password": PW})
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/" in flags
    assert "max-age=3600" in flags, "web_session_hours=1"
    assert "secure" not in flags, "plain http: a Secure cookie would never come back"


def test_cookie_secure_on_https(engine: Engine, tmp_path: Path, people: dict[str, int]) -> None:
    settings = make_settings(tmp_path, public_base_url="https://cobro.example.com")
    with TestClient(make_app(engine, settings), base_url="https://testserver") as client:
        done = client.post("/login", data={"username": "carl", "password": PW})
        flags = [p.strip().lower() for p in done.headers["set-cookie"].split(";")]
        assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags
        assert client.get("/me").json()["username"] == "carl"


def test_cookie_holds_no_password_and_is_signed(client: TestClient) -> None:
    client.post("/login", data={"username": "carl", "password": PW})
    value = client.cookies[SESSION_COOKIE]
    assert PW not in value and "carl" not in value
    data = read_session(SECRET, value, 3600)
    assert data is not None and set(data) == {"uid", "sid", "csrf"} and len(data["csrf"]) >= 24
    assert len(data["sid"]) >= 32
    assert read_session("another secret", value, 3600) is None


def test_wrong_password_sets_no_cookie(client: TestClient) -> None:
    bad = client.post("/login", data={"username": "carl", "password": "not it at all"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    assert client.get("/me").status_code == 401


def test_no_session_is_401(client: TestClient) -> None:
    assert client.get("/me").status_code == 401
    assert client.post("/pause", data={"reason": "x"}).status_code == 401


def test_tampered_cookie_rejected(client: TestClient, people: dict[str, int]) -> None:
    log_in(client, "vera")
    value = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    payload, stamp, signature = value.rsplit(".", 2)
    # the first character: the last one of base64 carries unused bits, changing it may
    # leave the decoded signature as it was
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged_payload = session_cookie_value(SECRET, people["ada"], "made-up").split(".")[0]
    for bad in (
        f"{payload}.{stamp}.{flipped}",  # signature changed
        f"{forged_payload}.{stamp}.{signature}",  # someone else's uid, old signature
        session_cookie_value("not our secret", people["ada"], "made-up"),  # another key
        "garbage",
        "",
    ):
        client.cookies.set(SESSION_COOKIE, bad)
        assert client.get("/me").status_code == 401, bad
        client.cookies.clear()


def test_expired_session_rejected(
    client: TestClient, engine: Engine, people: dict[str, int]
) -> None:
    key = open_session(engine, people["carl"], 1)
    client.cookies.set(SESSION_COOKIE, old_cookie(people["carl"], age_s=30 * 60, key=key))
    assert client.get("/me").status_code == 200, "30 minutes into a 1-hour session"
    client.cookies.set(SESSION_COOKIE, old_cookie(people["carl"], age_s=2 * 3600, key=key))
    assert client.get("/me").status_code == 401, "2 hours into a 1-hour session"
    assert read_session(SECRET, old_cookie(1, age_s=2 * 3600), 3600) is None
    assert read_session(SECRET, old_cookie(1, age_s=2 * 3600), 3 * 3600) is not None


def test_deactivated_user_loses_session(
    client: TestClient, engine: Engine, people: dict[str, int]
) -> None:
    log_in(client, "carl")
    deactivate(engine, "carl")
    assert client.get("/me").status_code == 401


def test_logout_clears_cookie(client: TestClient) -> None:
    csrf = log_in(client, "vera")
    out = client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 200
    cookie = out.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "max-age=0" in cookie
    assert client.get("/me").status_code == 401


def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    """A copy of the cookie kept from before logging out no longer opens anything."""
    csrf = log_in(client, "carl")
    copy = client.cookies[SESSION_COOKIE]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 200
    client.cookies.set(SESSION_COOKIE, copy)
    assert client.get("/me").status_code == 401
    assert client.post("/pause", data={"csrf_token": csrf}).status_code == 401


def test_logout_ends_only_that_session(
    engine: Engine, settings: Settings, people: dict[str, int]
) -> None:
    with (
        TestClient(make_app(engine, settings)) as laptop,
        TestClient(make_app(engine, settings)) as phone,
    ):
        csrf = log_in(laptop, "carl")
        log_in(phone, "carl")
        laptop.post("/logout", data={"csrf_token": csrf})
        assert laptop.get("/me").status_code == 401
        assert phone.get("/me").json()["username"] == "carl"


def test_new_password_ends_open_sessions(client: TestClient, engine: Engine) -> None:
    log_in(client, "carl")
    set_password(engine, "carl", "a brand new password")
    assert client.get("/me").status_code == 401
    done = client.post("/login", data={"username": "carl", "password": "a brand new password"})
    assert done.status_code == 200 and client.get("/me").json()["username"] == "carl"


def test_signed_cookie_without_a_live_server_session_is_refused(
    client: TestClient, engine: Engine, people: dict[str, int]
) -> None:
    # correctly signed, fresh, but naming no session the server opened
    client.cookies.set(SESSION_COOKIE, session_cookie_value(SECRET, people["ada"], "made-up"))
    assert client.get("/me").status_code == 401
    # a real session of another user does not open this user's account
    vera = open_session(engine, people["vera"], 1)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(SECRET, people["ada"], vera))
    assert client.get("/me").status_code == 401
    # a session expired on the server (the cookie itself still in date)
    key = open_session(engine, people["ada"], 1)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(SECRET, people["ada"], key))
    assert client.get("/me").json()["username"] == "ada"
    with engine.begin() as conn:
        conn.execute(
            update(WebSession)
            .where(WebSession.user_id == people["ada"])
            .values(expires_at=WebSession.created_at)
        )
    assert client.get("/me").status_code == 401


def test_ended_sessions_are_cleared_at_the_next_login(
    client: TestClient, engine: Engine, people: dict[str, int]
) -> None:
    for _ in range(3):
        csrf = log_in(client, "carl")
        client.post("/logout", data={"csrf_token": csrf})
    log_in(client, "carl")
    with engine.connect() as conn:
        rows = conn.execute(
            select(WebSession.revoked_at).where(WebSession.user_id == people["carl"])
        ).all()
    assert rows == [(None,)], "only the open session is kept"


def test_every_login_gets_a_new_csrf_token(client: TestClient) -> None:
    first = log_in(client, "carl")
    second = log_in(client, "carl")
    assert first != second


def test_secret_key_generated_once_and_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, web_secret_key=None)
    key = secret_key(settings)
    path = tmp_path / "web_secret.key"
    assert len(key) >= 40 and path.stat().st_mode & 0o777 == 0o600
    assert secret_key(settings) == key, "kept across restarts"
    assert secret_key(make_settings(tmp_path)) == SECRET, "COBRO_WEB_SECRET_KEY wins"


# -- CSRF -------------------------------------------------------------------------------


def test_post_without_csrf_is_403(client: TestClient) -> None:
    log_in(client, "carl")
    refused = client.post("/pause", data={"reason": "dispute"})
    assert refused.status_code == 403 and "CSRF token missing or wrong" in refused.text


@pytest.mark.parametrize("wrong", ["x", "", "é" * 32, "c" * 32])
def test_post_with_wrong_csrf_is_403(client: TestClient, wrong: str) -> None:
    log_in(client, "carl")
    assert client.post("/pause", data={"reason": "x", "csrf_token": wrong}).status_code == 403
    # raw bytes: a non-ASCII header reaches the app (decoded as latin-1) and must not be a 500
    header = {"X-CSRF-Token": wrong.encode()}
    assert client.post("/pause", data={"reason": "x"}, headers=header).status_code == 403


def test_post_with_csrf_is_200(client: TestClient) -> None:
    csrf = log_in(client, "carl")
    done = client.post("/pause", data={"reason": "dispute", "csrf_token": csrf})
    assert done.status_code == 200 and done.json() == {"by": "carl", "reason": "dispute"}
    header = client.post("/pause", data={"reason": "call"}, headers={"X-CSRF-Token": csrf})
    assert header.status_code == 200 and header.json()["reason"] == "call"
    multipart = client.post(
        "/pause", data={"reason": "mp", "csrf_token": csrf}, files={"f": ("a.txt", b"x")}
    )
    assert multipart.status_code == 200 and multipart.json()["reason"] == "mp"


def test_json_write_from_cookie_needs_csrf_header(client: TestClient) -> None:
    csrf = log_in(client, "carl")
    assert client.post("/api/pause", json={"reason": "x"}).status_code == 403
    body_token = client.post("/api/pause", json={"reason": "x", "csrf_token": csrf})
    assert body_token.status_code == 403, "a JSON body is not a form: the header is needed"
    ok = client.post("/api/pause", json={"reason": "x"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json() == {"by": "carl", "reason": "x"}


def test_csrf_of_another_session_is_refused(
    engine: Engine, settings: Settings, people: dict[str, int]
) -> None:
    app = make_app(engine, settings)
    with TestClient(app) as attacker, TestClient(app) as victim:
        attacker_csrf = log_in(attacker, "ada")
        log_in(victim, "carl")
        forged = victim.post("/pause", data={"reason": "x", "csrf_token": attacker_csrf})
        assert forged.status_code == 403


# -- API tokens and roles ---------------------------------------------------------------


def test_bearer_token_works_without_csrf(client: TestClient, engine: Engine) -> None:
    token = create_api_token(engine, "carl", "script", scope="act")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/me", headers=headers).json()["username"] == "carl"
    assert client.get("/me", headers=headers).json()["csrf"] is None
    done = client.post("/pause", data={"reason": "bulk"}, headers=headers)
    assert done.status_code == 200 and done.json() == {"by": "carl", "reason": "bulk"}
    api = client.post("/api/pause", json={"reason": "json"}, headers=headers)
    assert api.status_code == 200 and api.json()["by"] == "carl"
    assert "set-cookie" not in done.headers


def test_bad_or_revoked_bearer_is_401(client: TestClient, engine: Engine) -> None:
    token = create_api_token(engine, "carl", "script", scope="act")
    for bad in ("cobro_wrong", token + "x", "", token.upper()):
        assert client.get("/me", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    revoke_api_token(engine, 1)
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.post("/pause", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_bad_bearer_does_not_fall_back_to_the_cookie(client: TestClient) -> None:
    log_in(client, "carl")
    assert client.get("/me", headers={"Authorization": "Bearer cobro_wrong"}).status_code == 401


def test_viewer_gets_403_on_collector_route(client: TestClient, engine: Engine) -> None:
    csrf = log_in(client, "vera")
    refused = client.post("/pause", data={"reason": "x", "csrf_token": csrf})
    assert refused.status_code == 403 and "needs the collector role" in refused.text
    token = create_api_token(engine, "vera", "read-only")
    by_token = client.post("/pause", headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 403 and "needs the collector role" in by_token.text
    assert client.get("/me").status_code == 200, "a viewer still reads"


def test_admin_may_do_what_a_collector_does(client: TestClient) -> None:
    csrf = log_in(client, "ada")
    assert client.post("/pause", data={"reason": "x", "csrf_token": csrf}).json()["by"] == "ada"


def test_role_change_applies_to_the_open_session(client: TestClient, engine: Engine) -> None:
    from cobro.users import set_role

    csrf = log_in(client, "vera")
    assert client.post("/pause", data={"csrf_token": csrf}).status_code == 403
    set_role(engine, "vera", "collector")
    assert client.post("/pause", data={"csrf_token": csrf}).status_code == 200
