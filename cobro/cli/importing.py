"""`cobro import customers|invoices|payments FILE`: all-or-nothing ERP CSV import."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cobro.cli.common import describe, fail, run_with_temporal
from cobro.i18n import gettext as _

import_app = typer.Typer(
    help=(
        "Import ERP CSV files (UTF-8 with or without BOM, header row, ISO dates): ','"
        " separator with '.' decimals, or ';' with decimal commas as Excel writes in Spanish"
        " or French (detected from the header). All or nothing: any bad row prints the"
        " errors as FILE:LINE: column: message (the first 100, then how many more), exits 1"
        " and writes nothing. Files of any size are streamed. Re-importing the same file"
        " changes nothing."
    ),
    no_args_is_help=True,
)

FILE_ARG = typer.Argument(..., help="the CSV file to import", dir_okay=False)
JSON_OPT = typer.Option(False, "--json", help="print the counts as JSON")
NOTIFY_OPT = typer.Option(
    True, "--notify/--no-notify", help="wake the changed customers' dunning workflows"
)
CLASSIFY_OPT = typer.Option(
    True,
    "--classify/--no-classify",
    help="classify the imported accounts right after (the Classify workflow, as the daily run)",
)
CHANGE_KIND = {
    "customers": "customer_changed",
    "invoices": "invoices_changed",
    "payments": "payment_received",
}


def _accounts_in(kind: str, file: Path) -> list[str]:
    """The accounts named in an imported file, read the way the import read it."""
    from cobro.importing.reader import Errors, open_csv
    from cobro.importing.schemas import REQUIRED, columns

    errors = Errors(str(file))
    with open_csv(file, known=columns(kind), required=REQUIRED[kind], errors=errors) as source:
        if errors:
            return []
        return sorted({row.values["account"] for row in source.rows() if "account" in row.values})


async def _start_classification(client, kind: str, accounts: list[str]) -> str:  # type: ignore[no-untyped-def]
    """Start the Classify workflow — the same one the daily run uses, with its alerts,
    dunning signals and digest — for the imported accounts only; returns its id."""
    import uuid
    from datetime import UTC, datetime

    from cobro.settings import get_settings
    from workflows.classify import Classify, ClassifyInput

    workflow_id = f"classify-import-{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    await client.start_workflow(
        Classify.run,
        ClassifyInput(accounts=accounts),
        id=workflow_id,
        task_queue=get_settings().temporal_sync_queue,
    )
    return workflow_id


def _after_import(kind: str, file: Path, notify: bool, classify: bool) -> None:
    """Through one Temporal connection: signal-with-start the dunning workflow of every
    account in the file whose dunning facts changed (or that has open invoices and no
    workflow), and have the worker classify the imported accounts right away. The import
    is already committed: if Temporal is unreachable, say how to catch up, and succeed."""

    from cobro.db import default_engine
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged

    accounts = _accounts_in(kind, file)
    change = FactsChanged(CHANGE_KIND[kind], file.name, "import")

    async def go(client):  # type: ignore[no-untyped-def]
        report = (
            await notify_changed(client, default_engine(), change, accounts) if notify else None
        )
        started = await _start_classification(client, kind, accounts) if classify else None
        return report, started

    try:
        report, started = run_with_temporal(go)
    except Exception as exc:
        missed = [
            *([_("dunning workflows not notified")] if notify else []),
            *(
                [_("%(num)s imported account(s) not classified") % {"num": len(accounts)}]
                if classify
                else []
            ),
        ]
        todo = [
            *(["`cobro dunning sync`"] if notify else []),
            *(["`cobro classify`"] if classify else []),
        ]
        and_ = _(" and ")
        also = "".join(and_ + m for m in missed[1:])
        line = _("warning: %(missed)s (%(why)s)%(also)s; run %(todo)s once it is up") % {
            "missed": missed[0],
            "why": describe(exc),
            "also": also,
            "todo": and_.join(todo),
        }
        typer.echo(line, err=True)
        return
    if report is not None:
        line = _("dunning: %(num)s workflow(s) notified") % {"num": report.signalled}
        typer.echo(line, err=True)
    if started is not None:
        line = _("classification: %(num)s account(s) being classified (workflow %(id)s)") % {
            "num": len(accounts),
            "id": started,
        }
        typer.echo(line, err=True)


def _run(kind: str, file: Path, as_json: bool, notify: bool = True, classify: bool = True) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from cobro.importing import ImportFailed, import_csv

    try:
        report = import_csv(kind, file)
    except ImportFailed as exc:
        for line in exc.errors:
            typer.echo(line, err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        fail(
            _("%(file)s: import failed, nothing written: %(why)s")
            % {"file": file, "why": describe(exc)}
        )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        typer.echo(report.summary())
    if (notify or classify) and (report.created or report.updated):
        _after_import(kind, file, notify, classify)


@import_app.command("customers")
def import_customers(
    file: Path = FILE_ARG,
    as_json: bool = JSON_OPT,
    notify: bool = NOTIFY_OPT,
    classify: bool = CLASSIFY_OPT,
) -> None:
    """Upsert customers on `account`.

    Required columns: account, name, country (ISO 3166 alpha-2).
    Optional: siren, vat, duns, insurer_buyer_id, language, timezone, email, phone, segment,
    group, payment_terms_days, in any order.
    A column absent from the file leaves existing values alone; an empty cell clears it.
    phone: normalised to E.164, national numbers read in the customer's country.
    language (ISO 639-1) and timezone (IANA): default from the country.
    email: one or more addresses separated by ';'.
    """
    _run("customers", file, as_json, notify, classify)


@import_app.command("invoices")
def import_invoices(
    file: Path = FILE_ARG,
    as_json: bool = JSON_OPT,
    notify: bool = NOTIFY_OPT,
    classify: bool = CLASSIFY_OPT,
) -> None:
    """Upsert invoices on `number`.

    Required columns: number, account, issue_date, due_date, currency, amount.
    Optional: open_amount (default: amount), disputed (true/false/1/0/yes/no, default false).
    The account must exist; issue_date <= due_date; 0 <= open_amount <= amount.
    A negative amount is a credit note: its open_amount lies between amount and 0.
    open_amount is the ERP's, before the payments imported into Cobro (deducted from it).
    """
    _run("invoices", file, as_json, notify, classify)


@import_app.command("payments")
def import_payments(
    file: Path = FILE_ARG,
    as_json: bool = JSON_OPT,
    notify: bool = NOTIFY_OPT,
    classify: bool = CLASSIFY_OPT,
) -> None:
    """Import payments (immutable, keyed by `reference`), allocated in file order.

    Required columns: reference, account, date, currency, amount (> 0). Optional: invoice.
    The named invoice is paid first: it must belong to the account, in the same currency.
    Then the account's oldest open, non-disputed invoices of that currency are paid.
    Whatever is left stays unallocated on the payment.
    A reference imported before with identical data is skipped; different data is an error.
    """
    _run("payments", file, as_json, notify, classify)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
