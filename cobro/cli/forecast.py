"""`cobro forecast backtest [--weeks 8] [--json]`: forecasts made at past days from the data
as it was then, scored against the cash that actually came in (`cobro.forecast`): MAPE and
bias per horizon week of the model beside two naive baselines."""

from __future__ import annotations

import json

import typer

from cobro.cli.common import fail
from cobro.i18n import gettext

forecast_app = typer.Typer(help="The collection forecast: backtest it.", no_args_is_help=True)

LABELS = {"model": "model", "due_dates": "due dates", "overdue_next_week": "overdue next week"}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


@forecast_app.command("backtest")
def backtest_command(
    weeks: int = typer.Option(8, "--weeks", help="horizon in weeks (1-26)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Past forecasts (12 weekly origins) against the cash that came in: the model's error
    beside naive baselines (due dates as they are; every overdue invoice next week)."""
    from cobro.db import default_engine
    from cobro.forecast.backtest import METHODS
    from cobro.forecast.run import NotEnoughHistory, run_backtest

    if not 1 <= weeks <= 26:
        fail(f"--weeks must be between 1 and 26, not {weeks}")
    try:
        result = run_backtest(default_engine(), weeks)
    except NotEnoughHistory as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from cobro.formatting import amount

    console = Console(highlight=False)
    first, last = result.origins[0], result.origins[-1]
    console.print(
        f"{len(result.origins)} forecasts made weekly from {first} to {last}, each from the "
        f"data as it was that day, against the cash that came in over the next {weeks} weeks"
    )
    if not result.errors:
        console.print(gettext("no cash came in against the invoices open on those days"))
    for currency, methods in result.errors.items():
        table = Table(
            title=f"{currency}: error per horizon week "
            f"(actual cash {amount(result.actual[currency])} {currency})"
        )
        table.add_column("week", justify="right")
        for method in METHODS:
            table.add_column(f"{LABELS[method]} MAPE", justify="right")
            table.add_column(f"{LABELS[method]} bias", justify="right")
        for w in range(weeks):
            table.add_row(
                str(w + 1),
                *[
                    cell
                    for m in METHODS
                    for cell in (_pct(methods[m].mape[w]), _pct(methods[m].bias[w]))
                ],
            )
        table.add_row(
            "all",
            *[
                cell
                for m in METHODS
                for cell in (_pct(methods[m].mape_all), _pct(methods[m].bias_all))
            ],
            style="bold",
        )
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app, name="forecast")
