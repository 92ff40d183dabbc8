"""The `cobro` command line (typer + rich). Each command group lives in its own module."""

from __future__ import annotations

import typer

from cobro.cli_common import fail

app = typer.Typer(
    name="cobro",
    help="Cobro: insurer covers, YAML risk rules and durable dunning for receivables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

db_app = typer.Typer(help="Database schema (alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


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
        fail(f"database upgrade failed: {exc}")
    typer.echo(f"database at {revision}: {_safe_url(get_settings().resolved_database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_subcommands() -> None:
    """Each CLI module adds its commands; one import line per module, in help order."""
    from cobro import (
        cli_classify,
        cli_covers,
        cli_dev,
        cli_dunning,
        cli_exposure,
        cli_import,
        cli_kpis,
        cli_rules,
        cli_sync,
        cli_users,
    )

    modules = (cli_import, cli_dev, cli_sync, cli_covers, cli_rules, cli_classify, cli_dunning)
    for module in (*modules, cli_kpis, cli_exposure, cli_users):
        module.register(app)


_register_subcommands()
