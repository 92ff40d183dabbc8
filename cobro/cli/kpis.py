"""`cobro kpis [--as-of DATE] [--currency EUR] [--days N] [--json]`: the portfolio KPIs
(DSO both ways, aging, % overdue, CEI, ADD, covered share, covers, over-limit, top debtors),
computed in the database (`cobro.kpis`)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import typer

from cobro.cli.common import describe, fail
from cobro.formatting import amount


def _fmt(value: Decimal | None, suffix: str = "") -> str:
    return "—" if value is None else f"{amount(value)}{suffix}"


def kpis_command(
    as_of: str = typer.Option(None, "--as-of", help="the day to look at (YYYY-MM-DD; today)"),
    currency: str = typer.Option(None, "--currency", help="only this currency (ISO 4217)"),
    days: int = typer.Option(90, "--days", help="DSO / CEI period in days"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Portfolio KPIs as of a date, per currency."""
    from cobro.db import default_engine
    from cobro.kpis import compute_kpis

    if as_of is None:
        day = date.today()
    else:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)")
    if days < 1:
        fail("--days must be at least 1")
    try:
        kpis = compute_kpis(
            default_engine(), day, currency=currency.upper() if currency else None, period_days=days
        )
    except Exception as exc:
        fail(f"KPIs failed: {describe(exc)}")
    if as_json:
        typer.echo(json.dumps(kpis.to_json(), indent=2))
        return
    _print_tables(kpis)


def _print_tables(kpis) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not kpis.currencies:
        console.print(f"no receivables as of {kpis.as_of}")
        return
    main = Table(title=f"KPIs as of {kpis.as_of} (period {kpis.period_days} days)")
    main.add_column("KPI")
    codes = list(kpis.currencies)
    for code in codes:
        main.add_column(code, justify="right")
    ks = [kpis.currencies[c] for c in codes]
    rows = [
        ("receivables", [_fmt(k.receivables) for k in ks]),
        ("open invoices", [str(k.open_invoices) for k in ks]),
        *[(f"aging {label}", [_fmt(k.aging[label]) for k in ks]) for label in kpis.buckets],
        ("% overdue", [_fmt(k.overdue_pct, " %") for k in ks]),
        (f"credit sales ({kpis.period_days} d)", [_fmt(k.credit_sales) for k in ks]),
        ("DSO", [_fmt(k.dso) for k in ks]),
        ("countback DSO", [_fmt(k.countback_dso) for k in ks]),
        ("best possible DSO", [_fmt(k.best_possible_dso) for k in ks]),
        ("ADD (days delinquent)", [_fmt(k.add) for k in ks]),
        ("CEI", [_fmt(k.cei, " %") for k in ks]),
        ("covered by insurance", [_fmt(k.covered) for k in ks]),
        ("covered share", [_fmt(k.covered_pct, " %") for k in ks]),
        ("covers expiring (30 d)", [str(k.covers_expiring) for k in ks]),
        ("covers expired", [str(k.covers_expired) for k in ks]),
        ("customers over limit", [str(k.over_limit_customers) for k in ks]),
        ("total over limit", [_fmt(k.over_limit_excess) for k in ks]),
    ]
    for name, values in rows:
        main.add_row(name, *values)
    console.print(main)
    for k in ks:
        top = Table(title=f"top debtors {k.currency}")
        for col in ("account", "name", "open", "overdue", "covered", "limit", "over by"):
            top.add_column(col, justify="left" if col in ("account", "name") else "right")
        for d in k.top_debtors:
            top.add_row(
                d.account,
                d.name,
                _fmt(d.open),
                _fmt(d.overdue),
                _fmt(d.covered),
                _fmt(d.limit),
                _fmt(d.excess) if d.excess is not None else "",
            )
        console.print(top)


def register(app: typer.Typer) -> None:
    app.command("kpis")(kpis_command)
