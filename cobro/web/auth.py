"""Who is asking: a signed session cookie (HttpOnly, SameSite=Lax, expires after
`web_session_hours`) or an API token (`Authorization: Bearer cobro_...`). The cookie holds
the user id, the key of a session recorded on the server (`cobro.users.open_session`:
logging out, a new password or deactivating the user end it, so a copied cookie stops
working) and a CSRF token that every form and cookie-authenticated API write must echo
(`csrf_token` field or `X-CSRF-Token` header). Bearer requests are not CSRF-prone (a browser
never adds that header by itself), but a token of the `read` scope is refused (403) on every
state-changing call, and an expired or revoked token gets a 401 saying so."""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cobro.i18n import DEFAULT_LOCALE, gettext, negotiate, normalise, using
from cobro.i18n.codes import label
from cobro.settings import Settings
from cobro.users import ROLE_RANK, CurrentUser, check_token, user_for_session

SESSION_COOKIE = "cobro_session"
LANGUAGE_COOKIE = "cobro_lang"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def secret_key(settings: Settings) -> str:
    """COBRO_WEB_SECRET_KEY, else a random key kept in var/ (created once, mode 0600)."""
    if settings.web_secret_key is not None:
        return settings.web_secret_key.get_secret_value()
    path = Path(settings.var_dir) / "web_secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="cobro-session")


def session_cookie_value(secret: str, user_id: int, session_key: str) -> str:
    return _serializer(secret).dumps(
        {"uid": user_id, "sid": session_key, "csrf": secrets.token_urlsafe(24)}
    )


def read_session(secret: str, value: str, max_age_s: int) -> dict[str, Any] | None:
    try:
        data = _serializer(secret).loads(value, max_age=max_age_s)
    except BadData:  # bad signature, expired (SignatureExpired), undecodable payload
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("uid"), int)
        or not isinstance(data.get("sid"), str)
    ):
        return None
    return data


def set_session(response: Response, settings: Settings, user_id: int, session_key: str) -> None:
    """The cookie of a session opened with `cobro.users.open_session`."""
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie_value(secret_key(settings), user_id, session_key),
        max_age=settings.web_session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


class AuthMiddleware:
    """Sets `request.state.user` (a CurrentUser or None), `.csrf`, `.session_key` and
    `.via` ("session", "token" or None), and `.auth_refusal` (why a bearer token was
    refused, when its holder should know). It authenticates; routes authorise (`require`)."""

    def __init__(self, app: ASGIApp, engine: Engine, settings: Settings) -> None:
        self.app = app
        self.engine = engine
        self.settings = settings
        self.secret = secret_key(settings)
        self.max_age = settings.web_session_hours * 3600

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        state = scope.setdefault("state", {})
        state.update(user=None, csrf=None, via=None, session_key=None, auth_refusal=None)
        header = conn.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            checked = await asyncio.to_thread(check_token, self.engine, header[7:].strip())
            state.update(
                user=checked.user,
                via="token" if checked.user else None,
                auth_refusal=checked.refusal,
            )
        elif SESSION_COOKIE in conn.cookies:
            data = read_session(self.secret, conn.cookies[SESSION_COOKIE], self.max_age)
            if data is not None:
                user = await asyncio.to_thread(
                    user_for_session, self.engine, data["uid"], data["sid"]
                )
                if user is not None:
                    state.update(
                        user=user, csrf=data.get("csrf"), via="session", session_key=data["sid"]
                    )
        await self.app(scope, receive, send)


class LocaleMiddleware:
    """The request's language (`cobro.i18n.using`, `request.state.locale`): the user's own
    choice, else the language cookie of the header's switch, else the browser's
    `Accept-Language` (Babel's negotiation), else English."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        state = scope.setdefault("state", {})
        user = state.get("user")
        locale = (
            normalise(getattr(user, "language", None))
            or normalise(conn.cookies.get(LANGUAGE_COOKIE))
            or negotiate(conn.headers.get("accept-language"))
            or DEFAULT_LOCALE
        )
        state["locale"] = locale
        with using(locale):
            await self.app(scope, receive, send)


async def check_csrf(request: Request) -> None:
    """Every state-changing call goes through here: an API token needs the `act` scope, a
    session cookie the CSRF token."""
    if request.method not in WRITE_METHODS:
        return
    if getattr(request.state, "via", None) == "token":
        user: CurrentUser | None = getattr(request.state, "user", None)
        if user is None or user.scope != "act":
            # a script's error (a token never comes from a browser): in English, like the
            # token refusals of `cobro.users.check_token`
            scope = getattr(user, "scope", None) or "read"
            raise HTTPException(
                403,
                f"this API token has the {scope} scope: this call needs a token with the act "
                "scope (cobro users token USER --scope act)",
            )
        return
    expected = getattr(request.state, "csrf", None)
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get("csrf_token", ""))
    # bytes: compare_digest raises TypeError on non-ASCII str (a 500 instead of a 403)
    if (
        not expected
        or not sent
        or not hmac.compare_digest(str(sent).encode(), str(expected).encode())
    ):
        raise HTTPException(403, gettext("CSRF token missing or wrong"))


def require(request: Request, role: str = "viewer") -> CurrentUser:
    user: CurrentUser | None = getattr(request.state, "user", None)
    if user is None:
        refusal = getattr(request.state, "auth_refusal", None)
        raise HTTPException(401, refusal or gettext("log in first (or send an API token)"))
    if ROLE_RANK.get(user.role, -1) < ROLE_RANK[role]:
        raise HTTPException(
            403,
            gettext("needs the %(role)s role (you are %(current)s)")
            % {"role": label("role", role), "current": label("role", user.role)},
        )
    return user
