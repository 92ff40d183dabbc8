"""`cobro exposure [--customer ACCOUNT] [--over-limit] [--json | --csv [--separator ';']]
[--as-of DATE] [--rules DIR]`: per customer, total authorised (insured part + discretionary
limit), used, available and usage %, as defined by `rules/exposure.yaml` (`cobro.exposure`).

The rules are the active version (`cobro rules apply`), or the rules directory when none was
applied; `--rules DIR` tries a directory instead. The table is in customer order, or most
over-limit first with `--over-limit`; JSON and CSV stream batch by batch. The CSV is written
by `cobro.csv_export` (UTF-8 with BOM, formula cells neutralised; `--separator ';'` for
decimal commas)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from cobro.cli.common import describe, fail
from cobro.formatting import money_or_dash
from cobro.i18n import gettext

CSV_COLUMNS = (
    "account",
    "name",
    "segment",
    "currency",
    "insured",
    "insured_basis",
    "insured_policies",
    "discretionary",
    "discretionary_basis",
    "authorised",
    "used",
    "available",
    "usage_pct",
    "over_limit",
    "excess",
)
WIDE_TABLE = 120  # console columns needed for the name and insured-basis columns
PART_LABELS = {
    "overdue": "overdue",
    "disputed_overdue": "disputed, overdue",
    "not_due": "not yet due",
    "disputed_not_due": "disputed, not yet due",
    "credit_notes": "credit notes",
    "unbilled_orders": "unbilled orders",
}


def _money(value: Decimal | None, currency: str | None) -> str:
    return money_or_dash(value, currency)


def _ruleset(directory: Path | None):  # type: ignore[no-untyped-def]
    from cobro.rules import RuleError
    from cobro.rules.classify import load_active_ruleset
    from cobro.rules.ruleset import Ruleset

    try:
        return Ruleset.load(directory) if directory is not None else load_active_ruleset()
    except RuleError as exc:
        first = str(exc.messages[0]) if exc.messages else str(exc)
        more = len(exc.messages) - 1
        fail(first + (f" (and {more} more: run `cobro rules check`)" if more > 0 else ""))
    except Exception as exc:
        fail(f"cannot read the rules: {describe(exc)}")


def _insured_text(e: Any) -> str:
    if e.insured_basis == "named":
        return "named cover(s) in force" + (
            f": policy {', '.join(e.insured_policies)}" if e.insured_policies else ""
        )
    if e.insured_basis == "unnamed":
        return f"unnamed-buyer ceiling of policy {e.insured_policies[0]}"
    return "no cover"


def _discretionary_text(e: Any) -> str:
    return {
        "customer": "the customer's own limit",
        "segment": f"segment {e.segment}",
        "default": "default",
    }[e.discretionary_basis]


def exposure_command(
    customer: str = typer.Option(None, "--customer", help="one customer (account), explained"),
    over_limit: bool = typer.Option(False, "--over-limit", help="only customers over limit"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    as_csv: bool = typer.Option(False, "--csv", help="print CSV (UTF-8 with BOM)"),
    separator: str = typer.Option(
        ",",
        "--separator",
        help="CSV separator: ',' (with '.' decimals) or ';' (with decimal commas, as Excel"
        " reads CSV in Spanish or French)",
    ),
    as_of: str = typer.Option(None, "--as-of", help="the day to look at (YYYY-MM-DD; today)"),
    rules: Path = typer.Option(
        None, "--rules", help="rules directory to use instead of the active rules"
    ),
) -> None:
    """Per customer: total authorised (insured + discretionary), used, available, usage %."""
    from cobro.csv_export import CsvFormat
    from cobro.db import default_engine
    from cobro.exposure.rulefile import rules_of
    from cobro.exposure.sql import customer_ids_by_account, iter_exposures

    if as_json and as_csv:
        fail("choose one of --json and --csv")
    try:
        fmt = CsvFormat.parse(separator)
    except ValueError as exc:
        fail(f"--separator: {exc}")
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)")
    ruleset = _ruleset(rules)
    exposure_rules = rules_of(ruleset)
    try:
        with default_engine().connect() as conn:
            ids = None
            if customer:
                found = customer_ids_by_account(conn, [customer])
                if customer not in found:
                    fail(f"unknown customer {customer!r}")
                ids = [found[customer]]
            batches = iter_exposures(conn, day, exposure_rules, ids, explain=bool(customer))
            rows = (
                e for batch in batches for e in batch if customer or not over_limit or e.over_limit
            )
            header = {"as_of": day.isoformat(), "rules_hash": ruleset.hash}
            if as_json and customer:
                (e,) = list(rows)
                typer.echo(json.dumps({**header, **e.as_json()}, indent=2))
            elif as_json:
                _stream_json(header, rows)
            elif as_csv:
                _stream_csv(rows, fmt)
            elif customer:
                (e,) = list(rows)
                _print_one(e, day, ruleset, exposure_rules)
            else:
                _print_table(list(rows), day, ruleset, over_limit, exposure_rules)
    except typer.Exit:
        raise
    except BrokenPipeError:  # `cobro exposure --csv | head`: the reader is gone, stop quietly
        _silence_stdout()
        raise typer.Exit(0) from None
    except Exception as exc:
        fail(f"exposure failed: {describe(exc)}")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _stream_json(header: dict[str, Any], rows: Iterable[Any]) -> None:
    out = sys.stdout
    out.write(json.dumps(header)[:-1] + ', "customers": [')
    for i, e in enumerate(rows):
        out.write(("," if i else "") + "\n  " + json.dumps(e.as_json()))
    out.write("\n]}\n")
    out.flush()


def _csv_rows(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """Values as they are (Decimals, bools): the export writer formats them."""
    for e in rows:
        values = {name: getattr(e, name) for name in CSV_COLUMNS}
        values["insured_policies"] = " ".join(e.insured_policies)
        yield [values[c] for c in CSV_COLUMNS]


def _stream_csv(rows: Iterable[Any], fmt: Any) -> None:
    from cobro.csv_export import write_csv

    sys.stdout.flush()
    write_csv(sys.stdout.buffer, CSV_COLUMNS, _csv_rows(rows), fmt)


def _notes(ruleset: Any, rules: Any) -> list[str]:
    """What the reader should know about the rules used."""
    out = []
    if "exposure.yaml" not in ruleset.files:
        out.append(
            "no exposure.yaml in the rules used: defaults (every open invoice counts, credit "
            "notes deducted, customers' own limits only, no unnamed-buyer cover)"
        )
    if rules.used.unbilled_orders:
        out.append("unbilled orders: none imported yet, counted as 0")
    return out


def _print_one(e: Any, day: date, ruleset: Any, rules: Any) -> None:
    lines = [
        f"{e.account} {e.name}"
        + (f" (segment {e.segment})" if e.segment else "")
        + f" as of {day}",
        f"  insured        {_money(e.insured, e.currency):>16}  {_insured_text(e)}",
        f"  discretionary  {_money(e.discretionary, e.currency):>16}  {_discretionary_text(e)}",
        f"  authorised     {_money(e.authorised, e.currency):>16}",
        f"  used           {_money(e.used, e.currency):>16}",
    ]
    for key, value in e.used_parts.items():
        lines.append(f"    {PART_LABELS.get(key, key):<22} {_money(value, e.currency):>14}")
    usage = "— (nothing authorised)" if e.usage_pct is None else f"{e.usage_pct} %"
    lines += [
        f"  available      {_money(e.available, e.currency):>16}"
        + ("  OVER LIMIT" if e.over_limit else ""),
        f"  usage          {usage:>16}",
    ]
    lines += [f"  {note}" for note in e.notes]
    lines += [f"  {note}" for note in _notes(ruleset, rules)]
    typer.echo("\n".join(lines))


def _print_table(rows: list[Any], day: date, ruleset: Any, over: bool, rules: Any) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=160)  # a file or a pipe: no squeezing
    if over:
        rows.sort(key=lambda e: (e.available, e.account))
    what = "over limit" if over else "exposure"
    title = f"Customers {what} as of {day} (rules {ruleset.hash[:12]})"
    wide = console.width >= WIDE_TABLE  # narrow terminals: no name / basis columns
    table = (
        Table(title=title)
        if wide
        else Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    )
    table.add_column("account", no_wrap=True)
    if wide:
        table.add_column("name", overflow="ellipsis", max_width=40)
    table.add_column("insured", justify="right", no_wrap=True)
    if wide:
        table.add_column("", no_wrap=True)
    limits = ("discretionary", "authorised") if wide else ("discr.", "authorised")
    for col in (*limits, "used", "available", "usage %"):
        table.add_column(col, justify="right", no_wrap=True)
    basis = {"named": "named", "unnamed": "unnamed", "none": ""}
    for e in rows:
        cells: list[Any] = [Text(e.account)]
        if wide:
            cells.append(Text(e.name))
        cells.append(_money(e.insured, e.currency))
        if wide:
            cells.append(basis[e.insured_basis])
        cells += [
            _money(e.discretionary, e.currency),
            _money(e.authorised, e.currency),
            _money(e.used, e.currency),
            Text(_money(e.available, e.currency), style="red" if e.over_limit else ""),
            "—" if e.usage_pct is None else str(e.usage_pct),
        ]
        table.add_row(*cells)
    if rows:
        console.print(table)
    n_over = sum(1 for e in rows if e.over_limit)
    console.print(
        gettext("%(num)s customer(s), %(over)s over limit") % {"num": len(rows), "over": n_over},
        markup=False,
    )
    for currency in sorted({e.currency for e in rows}, key=lambda c: c or ""):
        of = [e for e in rows if e.currency == currency]
        authorised = sum((e.authorised for e in of), Decimal(0))
        used = sum((e.used for e in of), Decimal(0))
        excess = sum((e.excess for e in of), Decimal(0))
        over = sum(1 for e in of if e.over_limit)
        console.print(
            f"  {currency or 'no currency'}: {len(of)} customer(s), authorised "
            f"{_money(authorised, currency)}, used {_money(used, currency)}; {over} over limit "
            f"by {_money(excess, currency)}",
            markup=False,
        )
    for note in _notes(ruleset, rules):
        console.print(note, markup=False)


def register(app: typer.Typer) -> None:
    app.command("exposure")(exposure_command)
