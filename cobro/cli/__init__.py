"""The `cobro` command line (typer + rich). Each command group lives in its own module."""

from __future__ import annotations

import typer

from cobro.cli.common import CobroGroup

app = typer.Typer(
    name="cobro",
    cls=CobroGroup,
    help="Cobro: insurer covers, YAML risk rules and durable dunning for receivables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_subcommands() -> None:
    """Each CLI module adds its commands; one import line per module, in help order."""
    from cobro.cli import (
        classify,
        covers,
        customers,
        db,
        dev,
        dunning,
        exposure,
        forecast,
        importing,
        insurer,
        kpis,
        portal,
        queues,
        replies,
        rules,
        sync,
        users,
    )

    modules = (db, importing, dev, sync, covers, insurer, rules, classify, dunning)
    for module in (*modules, kpis, forecast, exposure, queues, users, portal, customers, replies):
        module.register(app)


_register_subcommands()
