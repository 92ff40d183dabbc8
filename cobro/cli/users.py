"""`cobro users add|list|passwd|role|deactivate|unlock|token|tokens|revoke-token`: dashboard
logins and API tokens for scripts (a scope, read or act, and an expiry each)."""

from __future__ import annotations

import json
import os
import sys

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import fail
from cobro.i18n import gettext as _

users_app = typer.Typer(
    help="Dashboard users (viewer, collector, credit_manager, admin) and API tokens."
)
console = Console(highlight=False)
STDIN = typer.Option(False, "--password-stdin", help="read the password from standard input")


def _engine():  # type: ignore[no-untyped-def]
    from cobro.db import default_engine, upgrade
    from cobro.settings import get_settings

    upgrade(get_settings().resolved_database_url)
    return default_engine()


def _password(from_stdin: bool) -> str:
    """--password-stdin, else COBRO_NEW_USER_PASSWORD, else asked twice (hidden)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    env = os.environ.get("COBRO_NEW_USER_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        fail("no terminal to ask the password: use --password-stdin or COBRO_NEW_USER_PASSWORD")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(call, *args):  # type: ignore[no-untyped-def]
    from cobro.users import UserError

    try:
        return call(*args)
    except UserError as exc:
        fail(str(exc))


@users_app.command("add")
def add(
    username: str = typer.Argument(..., help="the login"),
    role: str = typer.Option(..., "--role", help="viewer, collector, credit_manager or admin"),
    name: str = typer.Option("", "--name", help="display name"),
    password_stdin: bool = STDIN,
) -> None:
    """Create a dashboard user."""
    from cobro.users import check_role, create_user

    _run(check_role, role)  # before asking a password for nothing
    engine = _engine()
    _run(create_user, engine, username, _password(password_stdin), role, name)
    typer.echo(_("user %(name)s (%(role)s) created") % {"name": username, "role": role})


@users_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every user, role, last login and API tokens."""
    from cobro.users import list_users

    users = list_users(_engine())
    if as_json:
        typer.echo(json.dumps(users, indent=2))
        return
    table = Table()
    for col in ("user", "name", "role", "active", "locked", "last login", "API tokens"):
        table.add_column(col)
    for u in users:
        tokens = ", ".join(
            f"{t['id']}:{t['name']}" + (" (revoked)" if t["revoked"] else "") for t in u["tokens"]
        )
        table.add_row(
            u["username"],
            u["display_name"],
            u["role"],
            "yes" if u["active"] else "no",
            "LOCKED" if u["locked"] else "",
            u["last_login_at"] or "never",
            tokens,
        )
    console.print(table)


@users_app.command("passwd")
def passwd(username: str, password_stdin: bool = STDIN) -> None:
    """Set a user's password (the user's open dashboard sessions end)."""
    from cobro.users import check_user, set_password

    engine = _engine()
    _run(check_user, engine, username)  # before asking a password for nothing
    _run(set_password, engine, username, _password(password_stdin))
    typer.echo(
        _("password of %(name)s changed; their open sessions are ended") % {"name": username}
    )


@users_app.command("role")
def role(username: str, new_role: str = typer.Argument(..., metavar="ROLE")) -> None:
    """Change a user's role."""
    from cobro.users import set_role

    _run(set_role, _engine(), username, new_role)
    typer.echo(_("%(name)s is now %(role)s") % {"name": username, "role": new_role})


@users_app.command("deactivate")
def deactivate(username: str) -> None:
    """Lock a user out (sessions and API tokens stop working at once)."""
    from cobro.users import deactivate as deactivate_user

    _run(deactivate_user, _engine(), username)
    typer.echo(_("%(name)s deactivated") % {"name": username})


@users_app.command("unlock")
def unlock(username: str) -> None:
    """Lift a login lockout (too many failed log-ins) and any delay of a user name."""
    from cobro.login_limits import unlock as unlock_name

    if unlock_name(_engine(), username):
        typer.echo(_("%(name)s unlocked") % {"name": username})
    else:
        typer.echo(_("%(name)s was not locked") % {"name": username})


@users_app.command("token")
def token(
    username: str,
    name: str = typer.Option(..., "--name", help="what the token is for"),
    scope: str = typer.Option(
        "read",
        "--scope",
        help="read: GET calls only (the default); act: also the state-changing calls "
        "(pause, promise, acknowledge...) the user's role allows",
    ),
    expires: str = typer.Option(
        "90d", "--expires", help="90d, 12w, a date (2027-03-31, end of day UTC) or never"
    ),
) -> None:
    """Create an API token for scripts (`Authorization: Bearer ...`). Shown once, on
    standard output; its scope and expiry go to standard error."""
    from cobro.users import check_scope, create_api_token, parse_expiry

    _run(check_scope, scope)
    expires_at = _run(parse_expiry, expires)
    secret = _run(create_api_token, _engine(), username, name, scope, expires)
    typer.echo(secret)
    until = expires_at.isoformat(timespec="minutes") if expires_at else "never"
    typer.echo(f"token {name} of {username}: scope {scope}, expires {until}", err=True)


@users_app.command("tokens")
def tokens(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every API token: id, user, name, scope, expiry, last use, revoked (never the secret)."""
    from cobro.users import list_tokens

    rows = list_tokens(_engine())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for col in ("id", "user", "name", "scope", "expires", "last used", "revoked"):
        table.add_column(col)
    for t in rows:
        expires = t["expires_at"] or "never"
        table.add_row(
            str(t["id"]),
            t["user"],
            t["name"],
            t["scope"],
            expires + (" (EXPIRED)" if t["expired"] else ""),
            t["last_used_at"] or "never",
            t["revoked_at"] or "",
        )
    console.print(table)


@users_app.command("revoke-token")
def revoke_token(token_id: int) -> None:
    """Revoke an API token (its id is in `cobro users tokens`)."""
    from cobro.users import revoke_api_token

    _run(revoke_api_token, _engine(), token_id)
    typer.echo(_("token %(id)s revoked") % {"id": token_id})


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
