"""`cobro alerts ...`, `cobro tasks ...`, `cobro customers ...`: the work queues from the
command line, through the same functions as the pages and the API (`cobro.queues`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import fail
from cobro.cli.customers import customers_app
from cobro.i18n import gettext

alerts_app = typer.Typer(help="The alerts inbox: list with filters, acknowledge, assign.")
tasks_app = typer.Typer(help="Tasks: yours, the role queues you may take from, done.")
console = Console(highlight=False)
BY = typer.Option("cli", "--by", help="who does it (kept on the customer timeline)")
AS_USER = typer.Option(..., "--as", help="the user (a dashboard username)")
JSON = typer.Option(False, "--json", help="the rows as JSON")


def _engine():  # type: ignore[no-untyped-def]
    from cobro.db import default_engine

    return default_engine()


def _act(action: Callable[..., str], *args: Any) -> None:
    """One of `cobro.queues.actions`: a refusal is one line and exit 1."""
    from cobro.queues.actions import ActionError

    try:
        typer.echo(action(_engine(), *args))
    except ActionError as exc:
        fail(str(exc))


def _print(rows: list[Any], columns: list[str], as_json: bool, total: int | None = None) -> None:
    if as_json:
        data = [asdict(r) for r in rows]
        typer.echo(
            json.dumps(
                data if total is None else {"total": total, "rows": data}, default=str, indent=2
            )
        )
        return
    table = Table()
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(*(_cell(getattr(r, c)) for c in columns))
    console.print(table)
    if total is not None and total > len(rows):
        console.print(
            gettext("%(shown)s of %(total)s (--limit, --offset for more)")
            % {"shown": len(rows), "total": total}
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()[:16].replace("T", " ")
    return str(value)


@alerts_app.command("list")
def alerts_list(
    state: str = typer.Option("open", "--state", help="open, acknowledged, resolved or all"),
    severity: str = typer.Option("", "--severity", help="critical, warning, info"),
    name: str = typer.Option("", "--type", help="the alert's rule name (limit_almost_used...)"),
    risk_class: str = typer.Option("", "--class", help="the customer's risk class"),
    assignee: str = typer.Option("", "--assignee", help="a username, or none"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = JSON,
) -> None:
    """The alerts inbox, most severe and most recent first (as the dashboard's page)."""
    from cobro.queues.lists import ALERT_STATES, AlertFilters, alerts_inbox

    if state not in (*ALERT_STATES, "all"):
        fail(f"--state {state!r}: one of {', '.join(ALERT_STATES)} or all")
    filters = AlertFilters("" if state == "all" else state, severity, name, risk_class, assignee)
    rows, total = alerts_inbox(_engine(), filters, limit, offset)
    columns = ["id", "fired_at", "severity", "name", "account", "risk_class", "state"]
    _print(rows, [*columns, "assigned_to", "message"], as_json, total)


@alerts_app.command("ack")
def alerts_ack(ids: list[int] = typer.Argument(..., help="alert ids"), actor: str = BY) -> None:
    """Acknowledge one or many alerts."""
    from cobro.queues.actions import acknowledge_alerts

    _act(acknowledge_alerts, ids, actor)


@alerts_app.command("assign")
def alerts_assign(
    ids: list[int] = typer.Argument(..., help="alert ids"),
    to: str = typer.Option(..., "--to", help="a username (collector or above), or none"),
    actor: str = BY,
) -> None:
    """Give one or many alerts to a user (`--to none`: to nobody)."""
    from cobro.queues.actions import assign_alerts

    _act(assign_alerts, ids, None if to == "none" else to, actor)


@tasks_app.command("list")
def tasks_list(
    view: str = typer.Option(
        "open", "--view", help="mine, queue (what you may take), open (all) or done"
    ),
    user: str = typer.Option("", "--as", help="the user whose tasks / queues (mine, queue)"),
    queue: str = typer.Option("", "--queue", help="one role queue (collector, credit_manager)"),
    assignee: str = typer.Option("", "--assignee", help="a username, or none"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = JSON,
) -> None:
    """Tasks, the most urgent first: `--view mine --as maria`, `--view queue --as maria`."""
    from sqlalchemy import select

    from cobro.models import User
    from cobro.queues.lists import TASK_VIEWS, TaskFilters, tasks_list

    if view not in TASK_VIEWS:
        fail(f"--view {view!r}: one of {', '.join(TASK_VIEWS)}")
    engine = _engine()
    role = ""
    if view in ("mine", "queue"):
        if not user:
            fail(f"--view {view} needs --as USER")
        with engine.connect() as conn:
            role = conn.scalar(select(User.role).where(User.username == user)) or ""
        if not role:
            fail(f"no user {user!r}")
    filters = TaskFilters(view, user, role, assignee, queue)
    rows, total = tasks_list(engine, filters, limit, offset)
    columns = ["id", "due_date", "account", "kind", "assignee_role", "assignee", "status"]
    _print(rows, [*columns, "note"], as_json, total)


@tasks_app.command("take")
def tasks_take(task_id: int = typer.Argument(..., help="the task id"), user: str = AS_USER) -> None:
    """Take a task waiting in a queue you may work: it becomes yours."""
    from cobro.queues.actions import take_task

    _act(take_task, task_id, user)


@tasks_app.command("done")
def tasks_done(
    task_id: int = typer.Argument(..., help="the task id"),
    note: str = typer.Option("", "--note", help="what was done (on the customer timeline)"),
    actor: str = BY,
) -> None:
    """Mark a task done."""
    from cobro.queues.actions import complete_task

    _act(complete_task, task_id, actor, note)


@customers_app.command("owner")
def customers_owner(
    account: str = typer.Argument(..., help="the customer's account"),
    owner: str = typer.Argument("", help="the owner's username (collector or above)"),
    clear: bool = typer.Option(False, "--clear", help="no owner any more"),
    actor: str = BY,
) -> None:
    """Set (or `--clear`) the customer's owner; its open tasks and alerts follow."""
    from cobro.queues.actions import set_owner

    if bool(owner) == clear:
        fail("give the owner's username, or --clear")
    _act(set_owner, account, None if clear else owner, actor)


@customers_app.command("list")
def customers_list(
    owner: str = typer.Option("", "--owner", help="a username (their customers), or none"),
    search: str = typer.Option(
        "", "--search", help="name, account, SIREN, VAT or email (case and accents ignored)"
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    as_json: bool = JSON,
) -> None:
    """Customers (by account), with their owner: `--owner maria` lists maria's, `--search
    nunez` finds "Núñez"."""
    from cobro.web.queries import CustomerFilters, list_customers

    filters = CustomerFilters(q=search.strip()[:200], owner=owner)
    rows, total = list_customers(_engine(), date.today(), filters, 1, limit)
    columns = ["account", "name", "country", "risk_class", "outstanding", "owner"]
    _print(rows, columns, as_json, total)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(tasks_app, name="tasks")
