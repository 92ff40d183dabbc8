"""`cobro dunning plan|preview|show|pause|resume|promise|sync`: see and steer dunning."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import TemporalUnreachable, fail, run_with_temporal

dunning_app = typer.Typer(
    help="Dunning: planned reminders, pauses, promises.", no_args_is_help=True
)
console = Console(highlight=False)

CUSTOMER = typer.Option(..., "--customer", help="customer account")
JSON = typer.Option(False, "--json", help="print JSON")


def _facts(session, account: str):  # type: ignore[no-untyped-def]
    from cobro.dunning.store import load_customer_facts

    facts = load_customer_facts(session, account)
    if facts is None:
        fail(f"unknown customer {account!r}")
    return facts


def _plan_json(account: str, as_of: date | None) -> dict[str, Any]:
    from cobro.db import transaction
    from cobro.dunning.schedule import as_of_instant
    from cobro.dunning.store import current_plan

    with transaction() as session:
        facts = _facts(session, account)
        now = as_of_instant(as_of, facts.customer.timezone) if as_of else datetime.now(UTC)
        planned = current_plan(facts, now)
        if planned.plan is None:
            return {
                "account": account,
                "policy": None,
                "computed_at": now.isoformat(),
                "actions": [],
            }
        return planned.plan.to_json()


PLAN_HELP = (
    "The planned reminder schedule, computed from the facts (nothing is sent).\n\n"
    "--as-of DATE moves only the clock: the plan is what the planner would do at the start of"
    " that day with what Cobro knows now. It does not rebuild the facts of that day: the"
    " invoices and open amounts are today's (a payment recorded since that day stays applied;"
    " an invoice paid since is not planned), and so are the steps already sent (even after"
    " that day), the pauses and promises, the risk class and the policies."
)


@dunning_app.command("plan", help=PLAN_HELP)
def plan_command(
    customer: str = CUSTOMER,
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="set the clock to the start of this day (YYYY-MM-DD, customer's time zone);"
        " the facts stay today's",
    ),
    as_json: bool = JSON,
) -> None:
    """The planned reminder schedule, computed from the facts (nothing is sent)."""
    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)")
    try:
        data = _plan_json(customer, day)
    except FileNotFoundError as exc:
        fail(f"no dunning policies: {exc}")
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    _print_plan(data)


def _print_plan(data: dict[str, Any]) -> None:
    calendar = f", holidays of {data['calendar']}" if data.get("calendar") else ""
    console.print(
        f"{data['account']}: policy {data.get('policy') or '(none applies)'}{calendar},"
        f" as of {data['computed_at']}"
    )
    table = Table("when (UTC)", "step", "action", "invoices (level reached)", "amounts")
    for a in data.get("actions", []):
        amounts = ", ".join(f"{v} {k}" for k, v in a.get("amounts", {}).items())
        what = a.get("template") or a.get("note") or ""
        levels = a.get("levels") or {}
        table.add_row(
            a["at"],
            a.get("step_at", str(a["step_index"])),
            f"{a['kind']} {what}".strip(),
            ", ".join(
                f"{n} ({levels[n]})" if n in levels and levels[n] != a["step_index"] else n
                for n in a["invoices"]
            ),
            amounts,
        )
    console.print(table)
    for s in data.get("skipped", []):
        why = {"past_due": "its pre-due notice came after the due date"}.get(
            s["reason"], f"superseded by step {s.get('superseded_by')}"
        )
        console.print(f"skipped: {s['invoice']} step {s['step_index']} ({why})")
    for invoice, reason in data.get("excluded", {}).items():
        console.print(f"excluded: {invoice} ({reason})")


@dunning_app.command("preview")
def preview_command(
    customer: str = CUSTOMER,
    as_of: str = typer.Option(
        None, "--as-of", help="the next contact as of this date (YYYY-MM-DD), like `plan`"
    ),
    as_json: bool = JSON,
) -> None:
    """The next contact rendered exactly as the customer will get it (subject, text, HTML,
    SMS). Nothing is sent or written."""
    from cobro.db import transaction
    from cobro.dunning.preview import next_contact
    from cobro.dunning.schedule import as_of_instant

    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)")
    with transaction() as session:
        facts = _facts(session, customer)
        now = as_of_instant(day, facts.customer.timezone) if day else datetime.now(UTC)
        preview = next_contact(facts, now)
    if as_json:
        typer.echo(json.dumps(preview.to_json(), indent=2, default=str))
        return
    if not preview.contacts:
        typer.echo(f"{customer}: no contact planned (policy {preview.policy or 'none applies'})")
        return
    for c in preview.contacts:
        typer.echo(f"== {c.channel} {c.template} (step {c.step_at}) to {c.recipient} at {c.at}")
        typer.echo(f"   invoices: {', '.join(c.invoices)}; language: {c.language}")
        if c.subject is not None:
            typer.echo(f"Subject: {c.subject}")
        typer.echo("")
        typer.echo(c.text.rstrip())
        typer.echo("")


@dunning_app.command("show")
def show(customer: str = CUSTOMER, as_json: bool = JSON) -> None:
    """State of the customer's dunning workflow, its plan and the latest timeline."""
    from sqlalchemy import select

    from cobro.db import transaction
    from cobro.models import TimelineEvent
    from cobro.timeline import title

    with transaction() as session:
        facts = _facts(session, customer)
        events = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.customer_id == facts.customer.id)
            .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc())
            .limit(20)
        ).all()
        timeline = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "title": title(e.kind),
                "actor": e.actor,
                "summary": e.summary,
            }
            for e in events
        ]
    workflow = _workflow_state(customer)
    data = {"workflow": workflow, "plan": _plan_json(customer, None), "timeline": timeline}
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console.print(f"workflow: {workflow}")
    _print_plan(data["plan"])
    table = Table("when (UTC)", "what", "who", "details")
    for e in timeline:
        table.add_row(e["at"], e["title"], e["actor"], e["summary"])
    console.print(table)


def _workflow_state(account: str) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.service import RPCError

    from cobro.dunning.signals import workflow_id

    async def describe(client: Client) -> dict[str, Any]:
        handle = client.get_workflow_handle(workflow_id(account))
        desc = await handle.describe()
        state: dict[str, Any] = {
            "workflow_id": desc.id,
            "run_id": desc.run_id,
            "status": desc.status.name if desc.status else None,
        }
        if desc.status is not None and desc.status.name == "RUNNING":
            status = await handle.query("status")
            state["query"] = status
        return state

    try:
        return run_with_temporal(describe)
    except RPCError as exc:
        return {"workflow_id": workflow_id(account), "status": f"not found ({exc.message})"}
    except TemporalUnreachable as exc:
        return {"workflow_id": workflow_id(account), "status": f"Temporal unreachable: {exc}"}


def _signal(account: str, kind: str, detail: str, actor: str) -> None:
    from cobro.dunning.notify import notify
    from cobro.dunning.signals import FactsChanged

    try:
        run_with_temporal(lambda c: notify(c, [account], FactsChanged(kind, detail, actor)))
    except TemporalUnreachable as exc:
        fail(f"recorded, but the workflow could not be signalled (Temporal unreachable): {exc}")


@dunning_app.command("pause")
def pause(
    customer: str = CUSTOMER,
    reason: str = typer.Option(..., "--reason", help="why (kept on the customer timeline)"),
    until: str = typer.Option(
        None, "--until", help="last paused day (YYYY-MM-DD); default: until resumed"
    ),
    actor: str = typer.Option("cli", "--by", help="who pauses"),
) -> None:
    """Pause the customer's reminders (until a date, or until `resume`)."""
    _pause(customer, "pause", reason, until, actor, None, None)


@dunning_app.command("promise")
def promise(
    customer: str = CUSTOMER,
    until: str = typer.Option(..., "--until", help="promised payment date (YYYY-MM-DD)"),
    amount: str = typer.Option(None, "--amount", help="promised amount"),
    currency: str = typer.Option(None, "--currency", help="ISO 4217 currency of the amount"),
    reason: str = typer.Option("", "--reason", help="note"),
    actor: str = typer.Option("cli", "--by", help="who recorded the promise"),
) -> None:
    """Record a promise to pay: reminders pause until that date; a broken promise
    escalates one step and creates a task."""
    _pause(customer, "promise", reason, until, actor, amount, currency)


def _pause(
    account: str,
    kind: str,
    reason: str,
    until: str | None,
    actor: str,
    amount: str | None,
    currency: str | None,
) -> None:
    from cobro.db import transaction
    from cobro.dunning.store import pause_customer

    try:
        day = date.fromisoformat(until) if until else None
    except ValueError:
        fail(f"--until: {until!r} is not a date (YYYY-MM-DD)")
    try:
        money = Decimal(amount) if amount else None
    except ArithmeticError:
        fail(f"--amount: {amount!r} is not a number")
    with transaction() as session:
        facts = _facts(session, account)
        pause_customer(session, facts.customer, kind, reason, actor, day, money, currency)
    _signal(account, "promise_to_pay" if kind == "promise" else "paused", reason, actor)
    typer.echo(f"{account}: {kind} recorded" + (f" until {day}" if day else ""))


@dunning_app.command("resume")
def resume(
    customer: str = CUSTOMER,
    reason: str = typer.Option("", "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who resumes"),
) -> None:
    """Lift every active pause and promise of the customer."""
    from cobro.db import transaction
    from cobro.dunning.store import resume_customer

    with transaction() as session:
        facts = _facts(session, customer)
        lifted = resume_customer(session, facts.customer, reason, actor)
    _signal(customer, "resumed", reason, actor)
    typer.echo(f"{customer}: {lifted} pause(s) lifted")


@dunning_app.command("sync")
def sync() -> None:
    """Start or wake the dunning workflow of every customer with open invoices."""
    from cobro.db import default_engine
    from cobro.dunning.notify import accounts_with_open_invoices, notify
    from cobro.dunning.signals import FactsChanged

    accounts = accounts_with_open_invoices(default_engine())
    change = FactsChanged("invoices_changed", "sync")
    count = run_with_temporal(lambda client: notify(client, accounts, change))
    typer.echo(f"{count} dunning workflow(s) started or signalled")


def register(app: typer.Typer) -> None:
    app.add_typer(dunning_app, name="dunning")
