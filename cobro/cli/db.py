"""`cobro db`: the database schema (alembic migrations)."""

from __future__ import annotations

import typer

from cobro.cli.common import describe, fail, safe_url
from cobro.i18n import gettext as _

db_app = typer.Typer(help="Database schema (alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="alembic revision to reach"),
) -> None:
    """Apply the database migrations (SQLite by default, PostgreSQL via COBRO_DATABASE_URL)."""
    from cobro.db import upgrade
    from cobro.settings import get_settings

    try:
        upgrade(revision=revision)
    except Exception as exc:  # one clear line, no traceback
        fail(f"database upgrade failed: {describe(exc)}")
    url = safe_url(get_settings().resolved_database_url)
    typer.echo(_("database at %(revision)s: %(url)s") % {"revision": revision, "url": url})


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
