"""Dashboard users and API tokens: roles viewer < collector < credit_manager < admin, argon2
password hashes, tokens stored as SHA-256 only (the plaintext is shown once). A token has a
scope (`read`: GET calls only, the default; `act`: also the state-changing calls its user's
role allows) and an expiry (default 90 days; `never` only when asked for). A role can do
everything the roles before it can; `credit_manager` is the role the dunning rules send
decisions to (`assignee_role: credit_manager`, see `cobro.queues`)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from cobro.db import transaction
from cobro.models import ApiToken, User, WebSession
from cobro.rules.errors import did_you_mean
from cobro.types import utcnow

ROLES = ("viewer", "collector", "credit_manager", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
MIN_PASSWORD = 10
TOKEN_PREFIX = "cobro_"
TOKEN_SCOPES = ("read", "act")  # read: GET calls only; act: also every state-changing call
DEFAULT_TOKEN_SCOPE = "read"  # the safe one: a leaked export token changes nothing
DEFAULT_TOKEN_EXPIRY = "90d"
MAX_TOKEN_DAYS = 3660
_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against for unknown users (same time as a real one); made on first
    use, not at import: every CLI command and worker imports this module."""
    return _hasher.hash("a password nobody has")


class UserError(ValueError):
    """Bad input for a user operation; the message is one line, fit for the CLI or a form."""


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    display_name: str
    role: str
    language: str | None = None  # the dashboard's language, as the user chose it
    scope: str | None = None  # an API token's scope ("read", "act"); None: a dashboard session

    def can(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_role(role: str) -> None:
    if role not in ROLES:
        hint = did_you_mean(role, ROLES)
        raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}{hint}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def _printable(value: str) -> bool:
    """No control characters (PostgreSQL refuses NUL in text; the others only mislead)."""
    return value.isprintable()


def _check_text(what: str, value: str, limit: int) -> str:
    value = value.strip()
    if not _printable(value) or len(value) > limit:
        raise UserError(f"{what} must be printable text of at most {limit} characters")
    return value


def _current(user: User) -> CurrentUser:
    return CurrentUser(user.id, user.username, user.display_name, user.role, user.language)


def _find(s: Any, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username)) if _printable(username) else None
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def create_user(
    engine: Engine | None, username: str, password: str, role: str, display_name: str = ""
) -> int:
    username = username.strip()
    if (
        not username
        or len(username) > 128
        or not _printable(username)
        or any(c.isspace() for c in username)
    ):
        raise UserError("a user name is 1 to 128 printable characters, without spaces")
    check_role(role)
    _check_password(password)
    display_name = _check_text("the display name", display_name, 255)
    password_hash = hash_password(password)
    try:
        with transaction(engine) as s:
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise UserError(f"user {username!r} already exists")
            user = User(
                username=username,
                display_name=display_name,
                password_hash=password_hash,
                role=role,
            )
            s.add(user)
            s.flush()
            return user.id
    except IntegrityError:  # created by someone else between the check and the insert
        raise UserError(f"user {username!r} already exists") from None


def check_user(engine: Engine | None, username: str) -> None:
    """UserError when there is no such user (the CLI asks before prompting a password)."""
    with transaction(engine) as s:
        _find(s, username)


def set_password(engine: Engine | None, username: str, password: str) -> None:
    """A new password also ends the user's open sessions (a stolen cookie stops working)."""
    _check_password(password)
    with transaction(engine) as s:
        user = _find(s, username)
        user.password_hash = hash_password(password)
        _end_sessions(s, user.id)


def set_language(engine: Engine | None, user_id: int, language: str | None) -> None:
    """The user's dashboard language (one of `cobro.i18n.LOCALES`; None: the browser's)."""
    from cobro.i18n import LOCALES

    if language is not None and language not in LOCALES:
        raise UserError(f"unknown language {language!r}; one of {', '.join(LOCALES)}")
    with transaction(engine) as s:
        user = s.get(User, user_id)
        if user is None:
            raise UserError(f"no user {user_id}")
        user.language = language


def set_role(engine: Engine | None, username: str, role: str) -> None:
    check_role(role)
    with transaction(engine) as s:
        _find(s, username).role = role


def deactivate(engine: Engine | None, username: str) -> None:
    with transaction(engine) as s:
        user = _find(s, username)
        user.active = False
        _end_sessions(s, user.id)


def authenticate(engine: Engine | None, username: str, password: str) -> CurrentUser | None:
    with transaction(engine) as s:
        user = None
        if _printable(username) and len(username) <= 128:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            verify_password(_dummy_hash(), password)  # same time as for a real user
            return None
        if not verify_password(user.password_hash, password) or not user.active:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        return _current(user)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- web sessions: the signed cookie carries a random key; the server keeps its SHA-256 --


def open_session(engine: Engine | None, user_id: int, hours: int) -> str:
    """Record a log-in valid for `hours`; return its key (for the signed cookie only)."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with transaction(engine) as s:
        # housekeeping: this user's ended sessions are of no further use
        s.execute(
            delete(WebSession).where(
                WebSession.user_id == user_id,
                or_(WebSession.expires_at < now, WebSession.revoked_at.is_not(None)),
            )
        )
        s.add(
            WebSession(
                user_id=user_id,
                key_sha256=_sha256(key),
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    return key


def user_for_session(engine: Engine | None, user_id: int, key: str) -> CurrentUser | None:
    """The user of a live session (not ended, not expired, user active), else None."""
    if len(key) > 200:
        return None
    with transaction(engine) as s:
        user = s.scalar(
            select(User)
            .join(WebSession, WebSession.user_id == User.id)
            .where(
                WebSession.key_sha256 == _sha256(key),
                WebSession.user_id == user_id,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > utcnow(),
                User.active.is_(True),
            )
        )
        return _current(user) if user is not None else None


def end_session(engine: Engine | None, key: str) -> None:
    """Log out: the session's cookie no longer works, even if someone kept a copy."""
    with transaction(engine) as s:
        _end(s, WebSession.key_sha256 == _sha256(key))


def _end_sessions(s: Any, user_id: int) -> None:
    _end(s, WebSession.user_id == user_id)


def _end(s: Any, which: Any) -> None:
    s.execute(
        update(WebSession).where(which, WebSession.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


def check_scope(scope: str) -> None:
    if scope not in TOKEN_SCOPES:
        hint = did_you_mean(scope, TOKEN_SCOPES)
        raise UserError(f"unknown token scope {scope!r}; one of {', '.join(TOKEN_SCOPES)}{hint}")


_EXPIRY_RE = re.compile(r"^(\d+)([dw])$")


def parse_expiry(value: str, now: datetime | None = None) -> datetime | None:
    """`90d`, `12w`, a date `2027-03-31` (the end of that day, UTC) or `never` (None): when
    a new token stops working."""
    now = now or utcnow()
    text = value.strip().lower()
    if text == "never":
        return None
    m = _EXPIRY_RE.match(text)
    if m:
        days = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise UserError(f"a token lasts 1 to {MAX_TOKEN_DAYS} days (or `never`), not {value}")
        return now + timedelta(days=days)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"invalid expiry {value!r}: a number of days or weeks (90d, 12w), a date "
            "(2027-03-31) or `never`"
        ) from None
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    if end <= now:
        raise UserError(f"the expiry {value} is in the past")
    if end - now > timedelta(days=MAX_TOKEN_DAYS):
        raise UserError(f"a token lasts at most {MAX_TOKEN_DAYS} days (or `never`)")
    return end


def create_api_token(
    engine: Engine | None,
    username: str,
    name: str,
    scope: str = DEFAULT_TOKEN_SCOPE,
    expires: str = DEFAULT_TOKEN_EXPIRY,
) -> str:
    """A new token of `username` (shown once): `scope` read or act, `expires` as
    `parse_expiry` reads it."""
    name = _check_text("a token name", name, 128)
    if not name:
        raise UserError("a token needs a name (what it is for)")
    check_scope(scope)
    expires_at = parse_expiry(expires)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(engine) as s:
        user = _find(s, username)
        s.add(
            ApiToken(
                user_id=user.id,
                name=name,
                token_sha256=_sha256(token),
                scope=scope,
                expires_at=expires_at,
            )
        )
    return token


def revoke_api_token(engine: Engine | None, token_id: int) -> None:
    with transaction(engine) as s:
        token = s.get(ApiToken, token_id)
        if token is None:
            raise UserError(f"no API token {token_id}")
        token.revoked_at = token.revoked_at or utcnow()


@dataclass(frozen=True)
class TokenCheck:
    """What a bearer token is worth: its user (None when refused) and, if refused for a
    reason the holder should know (expired, revoked), that reason in one line."""

    user: CurrentUser | None
    refusal: str | None = None


def check_token(engine: Engine | None, token: str) -> TokenCheck:
    """The user of a live token (its `scope` set), recording its use; else why not."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return TokenCheck(None)
    with transaction(engine) as s:
        row = s.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_sha256 == _sha256(token))
        ).first()
        if row is None:
            return TokenCheck(None)
        api_token, user = row
        if not user.active:
            return TokenCheck(None)
        if api_token.revoked_at is not None:
            return TokenCheck(None, f"API token {api_token.id} ({api_token.name}) was revoked")
        now = utcnow()
        if api_token.expires_at is not None and api_token.expires_at <= now:
            return TokenCheck(
                None,
                f"API token {api_token.id} ({api_token.name}) expired at "
                f"{api_token.expires_at.isoformat(timespec='seconds')}: make a new one with "
                "`cobro users token`",
            )
        api_token.last_used_at = now
        return TokenCheck(replace(_current(user), scope=api_token.scope))


def user_for_token(engine: Engine | None, token: str) -> CurrentUser | None:
    return check_token(engine, token).user


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def list_tokens(engine: Engine | None) -> list[dict[str, Any]]:
    """Every API token (never its secret): id, user, name, scope, created, expires, last
    used, revoked; `expired` when past its expiry."""
    now = utcnow()
    with transaction(engine) as s:
        rows = s.execute(
            select(ApiToken, User.username)
            .join(User, User.id == ApiToken.user_id)
            .order_by(ApiToken.id)
        ).all()
        return [
            {
                "id": t.id,
                "user": username,
                "name": t.name,
                "scope": t.scope,
                "created_at": _when(t.created_at),
                "expires_at": _when(t.expires_at),
                "expired": t.expires_at is not None and t.expires_at <= now,
                "last_used_at": _when(t.last_used_at),
                "revoked": t.revoked_at is not None,
                "revoked_at": _when(t.revoked_at),
            }
            for t, username in rows
        ]


def list_users(engine: Engine | None) -> list[dict[str, Any]]:
    from cobro.login_limits import locked_names

    locked = locked_names(engine)
    with transaction(engine) as s:
        users = s.scalars(select(User).order_by(User.username)).all()
        tokens = s.execute(
            select(ApiToken.id, ApiToken.user_id, ApiToken.name, ApiToken.revoked_at)
        ).all()
        return [
            {
                "username": u.username,
                "display_name": u.display_name,
                "role": u.role,
                "language": u.language,
                "active": u.active,
                "locked": u.username in locked,
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                "tokens": [
                    {"id": t.id, "name": t.name, "revoked": t.revoked_at is not None}
                    for t in tokens
                    if t.user_id == u.id
                ],
            }
            for u in users
        ]
