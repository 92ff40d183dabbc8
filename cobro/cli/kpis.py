"""`cobro kpis [--as-of DATE] [--currency EUR] [--days N] [--json]`: the portfolio KPIs
(DSO both ways, aging, % overdue, CEI, ADD, covered share, covers, over-limit, top debtors),
computed in the database (`cobro.kpis`)."""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal

import typer

from cobro.cli.common import describe, fail
from cobro.formatting import amount, day, money_or_dash
from cobro.i18n import gettext as _


def _fmt(value: Decimal | None, suffix: str = "") -> str:
    return "—" if value is None else f"{amount(value)}{suffix}"


def _days(value: Decimal | None) -> str:
    return "—" if value is None else _("%(num)s d") % {"num": amount(value)}


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
            fail(_("--as-of: %(raw)r is not a date (YYYY-MM-DD)") % {"raw": as_of})
    if days < 1:
        fail(_("--days must be at least 1"))
    try:
        kpis = compute_kpis(
            default_engine(),
            day,
            currency=currency.upper() if currency else None,
            period_days=days,
            obligations=True,
        )
    except Exception as exc:
        fail(_("KPIs failed: %(why)s") % {"why": describe(exc)})
    if as_json:
        typer.echo(json.dumps(kpis.to_json(), indent=2))
        return
    _print_tables(kpis)


def _print_tables(kpis) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=140)  # a file or a pipe: no squeezing
    shown = kpis.shown()  # currencies with nothing open are left out
    if not shown:
        console.print(_("no receivables as of %(date)s") % {"date": day(kpis.as_of)})
        return
    main = Table(
        title=_("KPIs as of %(date)s (period %(days)s days)")
        % {"date": day(kpis.as_of), "days": kpis.period_days}
    )
    main.add_column(_("KPI"))
    codes = list(shown)
    for code in codes:
        main.add_column(code, justify="right")
    ks = [shown[c] for c in codes]

    def cash(k, value):  # type: ignore[no-untyped-def]
        return money_or_dash(value, k.currency)

    aging = _("aging %(bucket)s")
    rows = [
        (_("receivables (net)"), [cash(k, k.receivables) for k in ks]),
        (_("  of which open credit notes"), [cash(k, k.credit_notes) for k in ks]),
        (_("open invoices"), [str(k.open_invoices) for k in ks]),
        *[(aging % {"bucket": b}, [cash(k, k.aging[b]) for k in ks]) for b in kpis.buckets],
        (_("%% overdue") % {}, [_fmt(k.overdue_pct, " %") for k in ks]),
        (
            _("credit sales (%(days)s d)") % {"days": kpis.period_days},
            [cash(k, k.credit_sales) for k in ks],
        ),
        ("DSO", [_days(k.dso) for k in ks]),
        (_("countback DSO"), [_days(k.countback_dso) for k in ks]),
        (_("best possible DSO"), [_days(k.best_possible_dso) for k in ks]),
        (_("ADD (days delinquent)"), [_days(k.add) for k in ks]),
        ("CEI", [_fmt(k.cei, " %") for k in ks]),
        (_("covered by insurance"), [cash(k, k.covered) for k in ks]),
        (_("covered share"), [_fmt(k.covered_pct, " %") for k in ks]),
        (_("covers expiring (30 d)"), [str(k.covers_expiring) for k in ks]),
        (_("covers expired"), [str(k.covers_expired) for k in ks]),
        (_("customers over limit"), [str(k.over_limit_customers) for k in ks]),
        (_("total over limit"), [cash(k, k.over_limit_excess) for k in ks]),
        (_("insurer deadlines missed (goal 0)"), [str(k.insurer_deadlines_missed) for k in ks]),
        (_("at risk of losing cover"), [cash(k, k.amount_at_risk_of_losing_cover) for k in ks]),
        (_("expected indemnity"), [cash(k, k.expected_indemnity) for k in ks]),
    ]
    for name, values in rows:
        main.add_row(name, *values)
    console.print(main)
    for k in ks:
        top = Table(title=_("top debtors %(currency)s") % {"currency": k.currency})
        columns = [_("account"), _("name"), _("open"), _("overdue"), _("covered"), _("limit")]
        for i, col in enumerate([*columns, _("over by")]):
            top.add_column(col, justify="left" if i < 2 else "right")
        for d in k.top_debtors:
            top.add_row(
                d.account,
                d.name,
                cash(k, d.open),
                cash(k, d.overdue),
                cash(k, d.covered),
                cash(k, d.limit),
                cash(k, d.excess) if d.excess is not None else "",
            )
        console.print(top)
    console.print(
        _(
            "limit, over limit: the exposure engine's authorised and used (rules/exposure.yaml),"
            " as `cobro exposure --over-limit` lists them"
        )
    )


def register(app: typer.Typer) -> None:
    app.command("kpis")(kpis_command)
