"""The `cobro customers` group: `whatsapp-opt-in` records (or withdraws) a customer's
WhatsApp opt-in; `owner` and `list` (who owns a customer) are the work queues' commands, in
`cobro/cli/queues.py`."""

from __future__ import annotations

import json

import typer

from cobro.cli.common import fail

customers_app = typer.Typer(help="Customers: who owns them, their WhatsApp opt-in.")


@customers_app.command("whatsapp-opt-in")
def whatsapp_opt_in(
    customer: str = typer.Option(..., "--customer", help="the customer's account"),
    source: str = typer.Option(
        "cli", "--source", help="how it was given (signed form, call of 2026-12-01...)"
    ),
    withdraw: bool = typer.Option(False, "--withdraw", help="withdraw the opt-in"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record that the customer agreed to WhatsApp reminders (or, with --withdraw, no more)."""
    from cobro.consent import record_whatsapp_opt_in
    from cobro.db import default_engine, upgrade
    from cobro.settings import get_settings

    upgrade(get_settings().resolved_database_url)
    try:
        at = record_whatsapp_opt_in(default_engine(), customer, source, withdraw=withdraw)
    except LookupError as exc:
        fail(str(exc.args[0]))
    if as_json:
        out = {"customer": customer, "opt_in_at": at.isoformat() if at else None}
        typer.echo(json.dumps({**out, "source": source}))
        return
    if at is None:
        typer.echo(f"{customer}: WhatsApp opt-in withdrawn ({source})")
    else:
        typer.echo(f"{customer}: WhatsApp opt-in recorded at {at:%Y-%m-%d %H:%M} UTC ({source})")


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
