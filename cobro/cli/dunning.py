"""`cobro dunning plan|preview|show|pause|resume|promise [cancel]|dispute|resolve|settle|sync` and
`cobro dunning payment-plan request|approve|reject|cancel`: see and steer dunning. The actions
are `cobro.dunning.collector`'s (`cobro.dunning.plan_actions`' for plans), as in the web."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import (
    TemporalUnreachable,
    fail,
    run_async,
    run_with_temporal,
    wait_for_foreign_threads,
)
from cobro.formatting import money
from cobro.i18n import gettext

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cobro.dunning.collector import Outcome
    from cobro.settings import Settings

dunning_app = typer.Typer(
    help="Dunning: planned reminders, pauses, promises to pay, disputes.", no_args_is_help=True
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
        data = planned.plan.to_json()
        if facts.plan is not None:
            data["payment_plan"] = _payment_plan_json(facts.plan, planned.instalments)
            for number in facts.plan_invoices & set(data["excluded"]):
                data["excluded"][number] = "payment_plan"
        return data


def _payment_plan_json(plan: Any, reminders: list[Any]) -> dict[str, Any]:
    """The open payment plan: its instalments (what was paid of each) and reminders."""
    return {
        "id": plan.id,
        "status": plan.status,
        "currency": plan.row.currency,
        "invoices": list(plan.invoices),
        "instalments": [
            {"seq": i.seq, "due_date": i.due_date.isoformat(), "amount": str(i.amount),
             "paid": str(part)}
            for i, part in zip(plan.instalments, plan.paid_parts, strict=True)
        ],
        "reminders": [
            {"at": r.at.isoformat(), "channel": r.kind, "instalment": r.step_index,
             "template": r.template, "idempotency_key": r.idempotency_key}
            for r in reminders
        ],
    }  # fmt: skip


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
        amounts = ", ".join(money(v, k) for k, v in a.get("amounts", {}).items())
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
    plan = data.get("payment_plan")
    if plan:
        console.print(f"payment plan ({plan['status']}) of {', '.join(plan['invoices'])}:")
        for i in plan["instalments"]:
            paid = f", {money(i['paid'], plan['currency'])} paid" if Decimal(i["paid"]) else ""
            console.print(
                f"  instalment {i['seq']}: {i['due_date']} {money(i['amount'], plan['currency'])}"
                f"{paid}"
            )
        for r in plan["reminders"]:
            console.print(f"  reminder of instalment {r['instalment']}: {r['at']} {r['channel']}")


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
        typer.echo(
            gettext("%(customer)s: no contact planned (policy %(policy)s)")
            % {"customer": customer, "policy": preview.policy or gettext("none applies")}
        )
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
    """State of the customer's dunning workflow, what holds it back (pauses, promises to
    pay with what was paid towards them, disputed invoices), its plan and the latest
    timeline."""
    from sqlalchemy import select

    from cobro.db import transaction
    from cobro.dunning.store import holds
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
        held = [h.to_json() for h in holds(session, facts.customer.id)]
        currencies = sorted({i.currency for i in facts.invoices if i.open_amount > 0})
    workflow = _workflow_state(customer)
    data = {
        "workflow": workflow,
        "holds": held,
        "plan": _plan_json(customer, None),
        "timeline": timeline,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for line in workflow_lines(workflow, currencies[0] if len(currencies) == 1 else None):
        console.print(line, markup=False)
    for h in held:
        console.print(h["sentence"], markup=False)
    _print_plan(data["plan"])
    table = Table("when (UTC)", "what", "who", "details")
    for e in timeline:
        table.add_row(e["at"], e["title"], e["actor"], e["summary"])
    console.print(table)


def workflow_lines(state: dict[str, Any], currency: str | None) -> list[str]:
    """The workflow's state as sentences (not a dict): id, status, run, and what its
    `status` query says when it runs. `currency`: the one of the customer's open invoices
    (the workflow's overdue amount carries none)."""
    from cobro.formatting import money_or_dash

    run = f" (run {state['run_id']})" if state.get("run_id") else ""
    status = str(state.get("status"))
    status = status.lower() if status.isupper() else status  # RUNNING -> running
    lines = [f"workflow {state.get('workflow_id')}: {status}{run}"]
    query = state.get("query")
    if isinstance(query, dict):
        overdue = query.get("overdue_amount")
        parts = [f"stage {query.get('stage') or '—'}"]
        if query.get("next_at"):
            parts.append(f"next step at {query['next_at']}")
        if overdue is not None:
            shown = money_or_dash(Decimal(str(overdue)).quantize(Decimal("0.01")), currency)
            parts.append(f"overdue {shown}")
        if query.get("risk_class"):
            parts.append(f"risk class {query['risk_class']}")
        parts.append(f"{query.get('actions_done', 0)} action(s) done")
        lines.append("  " + "; ".join(parts))
        for outcome in query.get("last_outcomes") or []:
            lines.append(f"  last: {outcome}")
    return lines


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


def _act(
    make: Callable[[Engine, Settings], Coroutine[Any, Any, Outcome]], subject: str = ""
) -> None:
    """Run one of `cobro.dunning.collector`'s actions, as the pages and the API do: a refusal
    is one line and exit 1; so is a change recorded but not signalled (Temporal down)."""
    from cobro.db import default_engine
    from cobro.dunning.collector import ActionError
    from cobro.settings import get_settings

    try:
        done = run_async(lambda: make(default_engine(), get_settings()))
    except ActionError as exc:
        fail(str(exc))
    finally:
        wait_for_foreign_threads()  # the SDK's threads gone before exit (see common.py)
    said = f"{subject}: {done.message}" if subject else done.message
    if done.unsignalled is not None:
        fail(
            f"{said}, but the workflow could not be signalled"
            f" (Temporal unreachable: {done.unsignalled})"
        )
    typer.echo(said)


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
    from cobro.dunning.collector import pause_dunning

    _act(lambda e, s: pause_dunning(e, s, customer, actor, reason, until), customer)


promise_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@promise_app.callback()
def promise(
    ctx: typer.Context,
    customer: str = typer.Option(None, "--customer", help="customer account"),
    until: str = typer.Option(None, "--until", help="promised payment date (YYYY-MM-DD)"),
    amount: str = typer.Option(None, "--amount", help="promised amount"),
    currency: str = typer.Option(
        None, "--currency", help="ISO 4217 code; default: the open invoices' currency"
    ),
    reason: str = typer.Option("", "--reason", help="note"),
    actor: str = typer.Option("cli", "--by", help="who recorded the promise"),
) -> None:
    """Record a promise to pay (`promise --customer ID --until DATE --amount N`) or cancel
    it (`promise cancel --customer ID`). Reminders pause until that date; paid in full the
    promise is kept, in part "partly kept", not at all "broken" (both escalate one step and
    create a task). `resume` never ends a promise."""
    if ctx.invoked_subcommand is not None:
        return
    from cobro.dunning.collector import promise_dunning

    if not customer:
        fail("give --customer (the customer account)")
    _act(
        lambda e, s: promise_dunning(e, s, customer, actor, until, amount, currency, reason),
        customer,
    )


@promise_app.command("cancel")
def promise_cancel(
    customer: str = CUSTOMER,
    reason: str = typer.Option("", "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who cancels"),
) -> None:
    """Cancel the customer's promise to pay: reminders resume."""
    from cobro.dunning.collector import cancel_promise_dunning

    _act(lambda e, s: cancel_promise_dunning(e, s, customer, actor, reason), customer)


dunning_app.add_typer(promise_app, name="promise")

plan_app = typer.Typer(
    help="Payment plans: request (approved by rule within the policy's `payment_plans:` "
    "limits), approve, reject, cancel.",
    no_args_is_help=True,
)


@plan_app.command("request")
def plan_request(
    customer: str = CUSTOMER,
    instalments: int = typer.Option(..., "--instalments", help="number of instalments"),
    currency: str = typer.Option(
        None, "--currency", help="ISO 4217 code; default: the open invoices' currency"
    ),
    note: str = typer.Option("", "--note", help="note (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who asks"),
) -> None:
    """Ask for a payment plan of the customer's open invoices: approved by rule when its
    policy allows it, else a task for a collector."""
    from cobro.dunning.plan_actions import request_dunning

    _act(
        lambda e, s: request_dunning(e, s, customer, actor, instalments, currency, note),
        customer,
    )


@plan_app.command("approve")
def plan_approve(
    customer: str = CUSTOMER,
    note: str = typer.Option("", "--note", help="note (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who approves"),
) -> None:
    """Approve the customer's requested payment plan (outside the limits too)."""
    from cobro.dunning.plan_actions import approve_dunning

    _act(lambda e, s: approve_dunning(e, s, customer, actor, note), customer)


@plan_app.command("reject")
def plan_reject(
    customer: str = CUSTOMER,
    reason: str = typer.Option(..., "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who rejects"),
) -> None:
    """Reject the customer's requested payment plan: reminders go on as before."""
    from cobro.dunning.plan_actions import reject_dunning

    _act(lambda e, s: reject_dunning(e, s, customer, actor, reason), customer)


@plan_app.command("cancel")
def plan_cancel(
    customer: str = CUSTOMER,
    reason: str = typer.Option("", "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who cancels"),
) -> None:
    """Cancel the customer's payment plan: reminders follow the invoices' due dates again."""
    from cobro.dunning.plan_actions import cancel_dunning

    _act(lambda e, s: cancel_dunning(e, s, customer, actor, reason), customer)


dunning_app.add_typer(plan_app, name="payment-plan")

INVOICE = typer.Option(..., "--invoice", help="invoice number")


@dunning_app.command("dispute")
def dispute(
    invoice: str = INVOICE,
    reason: str = typer.Option(..., "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who records the dispute"),
) -> None:
    """The invoice is disputed: it leaves dunning until `resolve`."""
    from cobro.dunning.collector import dispute_dunning

    _act(lambda e, s: dispute_dunning(e, s, invoice, actor, reason))


@dunning_app.command("resolve")
def resolve(
    invoice: str = INVOICE,
    reason: str = typer.Option("", "--reason", help="how it was resolved"),
    actor: str = typer.Option("cli", "--by", help="who resolves"),
) -> None:
    """The invoice's dispute is resolved: it is back in dunning."""
    from cobro.dunning.collector import resolve_dunning

    _act(lambda e, s: resolve_dunning(e, s, invoice, actor, reason))


@dunning_app.command("settle")
def settle(
    contact: str = typer.Option(
        ..., "--contact", help="the uncertain contact's key or Message-ID (see its task)"
    ),
    sent: bool = typer.Option(False, "--sent", help="it went out: never resend it"),
    resend: bool = typer.Option(False, "--resend", help="it did not go out: send it now"),
    reason: str = typer.Option("", "--reason", help="how you know (kept on the timeline)"),
    actor: str = typer.Option("cli", "--by", help="who decides"),
) -> None:
    """Settle an `uncertain` contact (claimed, maybe accepted, the relay could not say):
    `--sent` records it as sent, `--resend` sends it now with the same Message-ID (not if
    its invoices were paid or disputed since)."""
    from cobro.dunning.settle import settle_contact

    if sent == resend:
        fail("give exactly one of --sent or --resend")
    decision = "sent" if sent else "resend"
    _act(lambda e, s: settle_contact(e, contact, decision, actor, reason))


@dunning_app.command("resume")
def resume(
    customer: str = CUSTOMER,
    reason: str = typer.Option("", "--reason", help="why (kept on the customer timeline)"),
    actor: str = typer.Option("cli", "--by", help="who resumes"),
) -> None:
    """Lift the customer's manual pauses (a promise to pay stays: `promise cancel`)."""
    from cobro.dunning.collector import resume_dunning

    _act(lambda e, s: resume_dunning(e, s, customer, actor, reason), customer)


@dunning_app.command("sync")
def sync() -> None:
    """Wake the dunning workflows whose customer's facts changed since their last signal,
    and start the missing ones of customers with open invoices (unchanged ones are left
    alone: their histories do not grow)."""
    from cobro.db import default_engine
    from cobro.dunning.notify import accounts_with_open_invoices, notify_changed
    from cobro.dunning.signals import FactsChanged

    engine = default_engine()
    accounts_with_open_invoices(engine)  # the database first: down or not migrated, say so
    change = FactsChanged("invoices_changed", "sync")
    report = run_with_temporal(lambda client: notify_changed(client, engine, change))
    typer.echo(report.summary())


def register(app: typer.Typer) -> None:
    app.add_typer(dunning_app, name="dunning")
