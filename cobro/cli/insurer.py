"""`cobro insurer obligations [--within 7d] [--customer ACCOUNT] [--as-of DATE] [--json]`:
per insured open invoice, what the insurance policy obliges the company to do and by when —
declare-by, may-extend-until, stop-supplies-from, claim-by, expected indemnity date and
amount (`cobro.insurers.obligations`, terms from `rules/insurance.yaml`, calendar days).

`cobro insurer declarations [--status pending] [--json]` lists the overdue declarations,
`cobro insurer declarations approve --invoice NUMBER --by NAME` approves one waiting for
approval; `cobro insurer claim --invoice NUMBER --by NAME` hands an invoice over to the
insurer and `cobro insurer claims [--json]` reports the claims (claimed, indemnified,
recovered). The actions are `cobro.insurers.actions`, as the API's and the pages'.

The rules are the active version (`cobro rules apply`), or the rules directory when none was
applied. `--within 7d` keeps the invoices with a deadline in the next 7 days and the missed
declarations."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

import typer

from cobro.cli.common import describe, fail
from cobro.formatting import amount
from cobro.i18n import gettext

insurer_app = typer.Typer(
    help="Insurance policy obligations, declarations and claims.", no_args_is_help=True
)

STATUS_TEXT = {
    "missed": "MISSED",
    "at_risk": "declare soon",
    "ok": "",
    "below_minimum": "below minimum",
    "no_terms": "no terms",
}


def _within(value: str | None) -> int | None:
    if value is None:
        return None
    from cobro.rules.loader import parse_duration

    try:
        return parse_duration(value.strip()).days
    except ValueError:
        fail(f"--within: {value!r} is not a number of days like 7d or 2w")


def _day(value: date | None) -> str:
    return "—" if value is None else value.isoformat()


@insurer_app.command("obligations")
def obligations_command(
    within: str = typer.Option(
        None, "--within", help="only deadlines in the next N days (7d, 2w) and missed ones"
    ),
    customer: str = typer.Option(None, "--customer", help="one customer (account)"),
    as_of: str = typer.Option(None, "--as-of", help="the day to look at (YYYY-MM-DD; today)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Per insured open invoice: declare-by, may-extend-until, stop-supplies-from, claim-by
    dates, expected indemnity (calendar days, rules/insurance.yaml)."""
    from cobro.db import default_engine
    from cobro.rules import RuleError
    from cobro.web.queries import insurer_obligations

    days = _within(within)
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)")
    try:
        view = insurer_obligations(default_engine(), day, days, customer)
    except RuleError as exc:
        fail(f"{exc.messages[0] if exc.messages else exc} (run `cobro rules check`)")
    except Exception as exc:
        fail(f"obligations failed: {describe(exc)}")
    if view is None:
        fail(f"unknown customer {customer!r}")
    if as_json:
        typer.echo(json.dumps(view.as_json(), indent=2))
        return
    if not view.any_terms:
        typer.echo(gettext("no policy terms: add rules/insurance.yaml and run `cobro rules apply`"))
    _print_table(view.obligations, day, days)
    for currency, t in sorted(view.totals.items()):
        typer.echo(
            f"{currency}: {t.invoices} invoice(s), deadlines missed {t.deadlines_missed}"
            f" ({amount(t.missed_amount)}), at risk of losing cover {amount(t.at_risk_amount)},"
            f" expected indemnity {amount(t.expected_indemnity)}"
        )


def _print_table(rows: Iterable[Any], day: date, days: int | None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=180)
    window = f", deadlines within {days} days" if days is not None else ""
    table = Table(title=f"Insurer obligations as of {day}{window} (calendar days)")
    for col in ("account", "invoice", "due", "policy", "extend until", "declare by"):
        table.add_column(col, no_wrap=True)
    for col in ("claim by", "stop supplies", "indemnity on"):
        table.add_column(col, no_wrap=True)
    table.add_column("open", justify="right", no_wrap=True)
    table.add_column("indemnity", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for o in rows:
        stop = o.stop_supplies_from
        table.add_row(
            Text(o.account),
            Text(o.number),
            o.due_date.isoformat(),
            Text(o.policy or "—"),
            _day(o.may_extend_until),
            Text(_day(o.declare_by), style="red" if o.status == "missed" else ""),
            _day(o.claim_by),
            Text(_day(stop), style="red" if stop is not None and stop <= day else ""),
            _day(o.expected_indemnity_on),
            f"{amount(o.open_amount)} {o.currency}",
            amount(o.expected_indemnity),
            Text(STATUS_TEXT.get(o.status, o.status)),
        )
    console.print(table)
    sys.stdout.flush()


# ------------------------------------------------------------------------- declarations

declarations_app = typer.Typer(
    help="Overdue declarations (OVD, EXP, RES): list them, approve the ones waiting.",
    invoke_without_command=True,
)


@declarations_app.callback()
def declarations_command(
    ctx: typer.Context,
    status: str = typer.Option(
        None, "--status", help="pending (awaiting approval, queued, filed) or one status"
    ),
    customer: str = typer.Option(None, "--customer", help="one customer (account)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the declarations, newest first (`cobro insurer declarations approve` approves)."""
    if ctx.invoked_subcommand is not None:
        return
    from cobro.db import default_engine
    from cobro.dunning.collector import ActionError
    from cobro.insurers.actions import declarations

    try:
        rows = declarations(default_engine(), status, customer)
    except ActionError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    columns = ("id", "account", "invoice", "category", "status", "policy", "amount",
               "deadline", "attempts")  # fmt: skip
    _print_rows("Insurer declarations", columns, rows, money=("amount",))
    waiting = sum(1 for r in rows if r["status"] == "awaiting_approval")
    if waiting:
        typer.echo(
            f"{waiting} awaiting approval: cobro insurer declarations approve --invoice NUMBER "
            "--by NAME"
        )


@declarations_app.command("approve")
def approve_command(
    invoice: str = typer.Option(None, "--invoice", help="the invoice of the OVD"),
    declaration: int = typer.Option(None, "--declaration", help="the declaration's id"),
    actor: str = typer.Option(..., "--by", help="who approves (kept on the timeline)"),
) -> None:
    """Approve an overdue declaration (OVD) waiting for approval: the customer's workflow
    files it with the insurer."""
    from cobro.cli.dunning import _act
    from cobro.insurers.actions import approve_declaration_dunning

    if (invoice is None) == (declaration is None):
        fail("give either --invoice NUMBER or --declaration ID")
    _act(lambda e, s: approve_declaration_dunning(e, s, actor, invoice, declaration))


# ------------------------------------------------------------------------------- claims


@insurer_app.command("claims")
def claims_command(
    customer: str = typer.Option(None, "--customer", help="one customer (account)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The claims report: status, claimed, indemnified and recovered amounts (and the
    recoveries' share to pass on to the insurer), with totals per currency."""
    from cobro.db import default_engine
    from cobro.dunning.collector import ActionError
    from cobro.insurers.actions import claims_report

    try:
        report = claims_report(default_engine(), customer)
    except ActionError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
        return
    columns = ("account", "invoice", "status", "policy", "claimed", "indemnified",
               "recovered", "recovered_to_insurer", "filed_on", "insurer_reference")  # fmt: skip
    money = ("claimed", "indemnified", "recovered", "recovered_to_insurer")
    _print_rows("Insurer claims", columns, report.claims, money=money)
    for currency, t in report.totals.items():
        typer.echo(
            f"{currency}: claimed {amount(Decimal(t['claimed']))}, indemnified "
            f"{amount(Decimal(t['indemnified']))}, recovered {amount(Decimal(t['recovered']))}"
            f" ({amount(Decimal(t['recovered_to_insurer']))} to pass on to the insurer)"
        )


@insurer_app.command("claim")
def claim_command(
    invoice: str = typer.Option(..., "--invoice", help="the insured, declared invoice"),
    actor: str = typer.Option(..., "--by", help="who hands it over (kept on the timeline)"),
) -> None:
    """Hand an invoice over to the insurer: its claim is filed once by the customer's
    workflow and followed to the insurer's decision."""
    from cobro.cli.dunning import _act
    from cobro.insurers.actions import file_claim_dunning

    _act(lambda e, s: file_claim_dunning(e, s, invoice, actor))


def _print_rows(
    title: str, columns: tuple[str, ...], rows: list[dict[str, Any]], money: tuple[str, ...]
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=180)
    table = Table(title=title)
    for col in columns:
        table.add_column(col.replace("_", " "), no_wrap=True,
                         justify="right" if col in money else "left")  # fmt: skip
    for r in rows:
        cells = []
        for col in columns:
            value = r.get(col)
            if value is None:
                cells.append(Text("—"))
            elif col in money:
                cells.append(Text(amount(Decimal(value))))
            else:
                cells.append(Text(str(value)))
        table.add_row(*cells)
    if not rows:
        console.print(gettext("%(title)s: none") % {"title": title})
    else:
        console.print(table)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    insurer_app.add_typer(declarations_app, name="declarations")
    app.add_typer(insurer_app, name="insurer")
