"""`cobro covers list|unmatched|link|request`: the insurer covers, the review queue of
covers no customer matches, manual links, and cover (credit limit) requests."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import fail, run_async
from cobro.i18n import gettext

covers_app = typer.Typer(
    help="Insurer covers: list, review queue, link, request.", no_args_is_help=True
)


def _table(rows, with_reason: list[str] | None = None) -> Table:  # type: ignore[no-untyped-def]
    from cobro.insurers.sync_store import money

    table = Table(show_lines=False)
    for col in (
        "cover",
        "customer",
        "buyer",
        "ids",
        "type",
        "status",
        "granted",
        "grade",
        "valid until",
    ):
        table.add_column(col)
    if with_reason is not None:
        table.add_column("why unmatched")
    for i, r in enumerate(rows):
        ids = " ".join(x for x in (r.siren, r.vat, r.duns) if x)
        cells = [
            r.cover_id,
            r.account or "-",
            f"{r.buyer_name} ({r.buyer_id})",
            ids,
            r.cover_type,
            r.status,
            money(r.granted_amount, r.currency),
            str(r.grade or "-"),
            str(r.valid_until or "open-ended"),
        ]
        if with_reason is not None:
            cells.append(with_reason[i])
        table.add_row(*cells)
    return table


@covers_app.command("list")
def covers_list(
    customer: str = typer.Option(None, "--customer", help="only this customer's covers"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The covers synced from the insurer."""
    from cobro.insurers.covers import CoverError, list_covers

    try:
        rows = list_covers(None, customer)
    except CoverError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in rows], indent=2))
    else:
        Console().print(_table(rows))


@covers_app.command("unmatched")
def covers_unmatched(as_json: bool = typer.Option(False, "--json")) -> None:
    """Covers that match no customer (by buyer id, SIREN/SIRET, VAT or DUNS), with the reason."""
    from cobro.insurers.covers import unmatched

    found = unmatched(None)
    if as_json:
        typer.echo(json.dumps([{**r.as_json(), "reason": why} for r, why in found], indent=2))
        return
    if not found:
        typer.echo(gettext("no unmatched cover"))
        return
    Console().print(_table([r for r, _ in found], [why for _, why in found]))
    typer.echo(
        gettext("%(num)s unmatched; link one with `cobro covers link COVER_ID ACCOUNT`")
        % {"num": len(found)}
    )


@covers_app.command("link")
def covers_link(
    cover_id: str = typer.Argument(..., help="the insurer's cover id"),
    account: str = typer.Argument(..., help="the customer account"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Link a cover to a customer by hand; later syncs keep the link."""
    from cobro.insurers.covers import CoverError, link_cover

    try:
        row = link_cover(None, cover_id, account)
    except CoverError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(row.as_json(), indent=2))
    else:
        typer.echo(
            gettext("cover %(cover)s linked to %(account)s")
            % {"cover": row.cover_id, "account": row.account}
        )


@covers_app.command("request")
def covers_request(
    customer: str = typer.Option(..., "--customer", help="customer account"),
    amount: str = typer.Option(..., "--amount", help="the limit to request, e.g. 100000"),
    currency: str = typer.Option("EUR", "--currency"),
    policy: str = typer.Option(None, "--policy", help="policy id (default: the currency's)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """File a cover (credit limit) request with the insurer; a later sync picks up the decision."""
    from cobro.insurers.allianz_trade import AllianzTradeConnector
    from cobro.insurers.base import InsurerError
    from cobro.insurers.covers import CoverError, request_cover
    from cobro.settings import get_settings

    try:
        value = Decimal(amount)
    except InvalidOperation:
        fail(f"--amount {amount!r} is not a number")
    settings = get_settings()

    async def go() -> str:
        async with AllianzTradeConnector(settings.insurer_base_url, settings.insurer_api_key) as c:
            return await request_cover(None, c, customer, value, currency.upper(), policy)

    try:
        job = run_async(go)
    except CoverError as exc:
        fail(str(exc))
    except InsurerError as exc:
        fail(f"the insurer at {settings.insurer_base_url} refused or is unreachable: {exc}")
    if as_json:
        typer.echo(
            json.dumps(
                {"customer": customer, "amount": str(value), "currency": currency, "job_id": job}
            )
        )
    else:
        typer.echo(
            f"requested {currency} {value} for {customer}: insurer job {job}; "
            "the next sync picks up the decision"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(covers_app, name="covers")
