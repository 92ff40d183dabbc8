"""`cobro portal link|revoke|activity`: the customers' signed self-service links, and what
the customers did with them."""

from __future__ import annotations

import json

import typer

from cobro.cli.common import fail
from cobro.i18n import gettext as _

portal_app = typer.Typer(help="The customers' self-service page: signed links.")


def _engine():  # type: ignore[no-untyped-def]
    from cobro.db import default_engine, upgrade
    from cobro.settings import get_settings

    upgrade(get_settings().resolved_database_url)
    return default_engine()


@portal_app.command("link")
def link(
    customer: str = typer.Option(..., "--customer", help="the customer's account"),
    days: int | None = typer.Option(
        None, "--days", help="how long it works (default COBRO_PORTAL_LINK_DAYS, 60)"
    ),
    by: str = typer.Option("cli", "--by", help="who made it (kept with the link)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print a new signed self-service link for one customer."""
    from cobro.portal.links import create_link
    from cobro.settings import get_settings

    settings = get_settings()
    chosen = settings.portal_link_days if days is None else days
    if not 1 <= chosen <= 3650:
        fail(f"--days must be between 1 and 3650 (got {chosen})")
    try:
        made = create_link(_engine(), customer, chosen, by, settings)
    except LookupError as exc:
        fail(str(exc.args[0]))
    if as_json:
        out = {
            "id": made.id,
            "customer": made.account,
            "url": made.url,
            "expires_at": made.expires_at.isoformat(),
        }
        typer.echo(json.dumps(out))
        return
    typer.echo(made.url)
    typer.echo(
        f"link {made.id} for {made.account}, works until {made.expires_at:%Y-%m-%d %H:%M} UTC",
        err=True,
    )


@portal_app.command("revoke")
def revoke(
    link_id: int = typer.Argument(..., help="the link's id (printed by `portal link`)"),
) -> None:
    """Revoke a link: it stops working at once."""
    from cobro.portal.links import revoke as revoke_link

    try:
        account = revoke_link(_engine(), link_id)
    except LookupError as exc:
        fail(str(exc.args[0]))
    typer.echo(f"portal link {link_id} of {account} revoked")


@portal_app.command("activity")
def activity(
    days: int = typer.Option(30, "--days", help="the days counted, ending --as-of"),
    as_of: str | None = typer.Option(None, "--as-of", help="YYYY-MM-DD (default today)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What the customers did and wrote: visits, actions, replies, opt-outs, bounces."""
    from datetime import date

    from cobro.customer_activity import customer_activity

    if not 1 <= days <= 366:
        fail(f"--days must be between 1 and 366 (got {days})")
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        fail(f"--as-of must be YYYY-MM-DD (got {as_of!r})")
    counted = customer_activity(_engine(), day, days)
    if as_json:
        typer.echo(json.dumps(counted.to_json()))
        return
    lines = [
        _("%(since)s to %(until)s") % {"since": counted.since, "until": counted.until},
        _("self-service visits: %(num)s, by %(customers)s customers")
        % {"num": counted.visits, "customers": counted.visitors},
        _("customers' actions: %(num)s, by %(customers)s customers")
        % {"num": counted.actions, "customers": counted.acting},
        _("replies: %(num)s") % {"num": counted.replies},
        _("SMS opt-outs: %(num)s") % {"num": counted.opt_outs},
        _("bounced addresses: %(num)s") % {"num": counted.bounces},
    ]
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.add_typer(portal_app, name="portal")
