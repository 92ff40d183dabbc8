"""`cobro classify [--customer ACCOUNT] [--json]`: classify the portfolio now with the active
ruleset (writes only changes, raises alerts), or explain one customer's class."""

from __future__ import annotations

import json
from typing import Any

import typer

from cobro.cli.common import describe, fail
from cobro.i18n import gettext as _
from cobro.i18n.codes import label


def _ruleset():  # type: ignore[no-untyped-def]
    from cobro.rules import RuleError
    from cobro.rules.classify import load_active_ruleset

    try:
        return load_active_ruleset()
    except RuleError as exc:
        fail(
            _("the rules do not load: %(why)s") % {"why": exc.messages[0] if exc.messages else exc}
        )


def classify_command(
    customer: str = typer.Option(None, "--customer", help="explain this customer (account)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Classify every customer now (or one, with its explanation); writes only changes."""
    from cobro.rules.classify import classify_portfolio, explain_customer
    from cobro.rules.facts import UNCLASSIFIED

    ruleset = _ruleset()
    if customer:
        try:
            result = explain_customer(None, customer, ruleset)
        except Exception as exc:
            fail(_("classification failed: %(why)s") % {"why": describe(exc)})
        if result is None:
            fail(_("unknown customer %(account)r") % {"account": customer})
        if as_json:
            typer.echo(json.dumps(result.as_json(), indent=2))
        else:
            typer.echo("\n".join(result.lines()))
            typer.echo(_("ruleset %(hash)s") % {"hash": ruleset.hash[:12]})
        return
    try:
        report = classify_portfolio(None, ruleset)
    except Exception as exc:
        fail(_("classification failed: %(why)s") % {"why": describe(exc)})
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
        return
    typer.echo(
        _(
            "classified %(num)s customer(s): %(changes)s class change(s), %(alerts)s alert(s)"
            " fired, %(resolved)s resolved (ruleset %(hash)s)"
        )
        % {
            "num": report.evaluated,
            "changes": len(report.changes),
            "alerts": len(report.alerts),
            "resolved": report.resolved,
            "hash": ruleset.hash[:12],
        }
    )
    for (before, after), n in report.transitions().items():
        was, now = label("risk class", before or UNCLASSIFIED), label("risk class", after)
        typer.echo(f"  {was} -> {now}: {n}")
    for a in report.alerts:
        typer.echo(f"  [{label('severity', a.severity)}] {a.account} {a.name}: {a.message}")


def report_json(report: Any) -> dict[str, Any]:
    return {
        "ruleset_hash": report.ruleset_hash,
        "evaluated": report.evaluated,
        "classes": report.classes,
        "changes": [
            {"account": c.account, "from": c.previous, "to": c.risk_class} for c in report.changes
        ],
        "transitions": [
            {"from": a, "to": b, "customers": n} for (a, b), n in report.transitions().items()
        ],
        "alerts": [
            {"account": a.account, "name": a.name, "severity": a.severity, "message": a.message}
            for a in report.alerts
        ],
        "resolved": report.resolved,
    }


def register(app: typer.Typer) -> None:
    app.command("classify")(classify_command)
