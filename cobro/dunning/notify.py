"""Tell the dunning workflows that facts changed: signal-with-start, bounded concurrency.

`notify` signals every account it is given (a collector's action: pause, promise...).
`notify_changed` is what a sync, a `cobro dev` start and an import use: it signals only the
customers whose dunning facts changed since their workflow was last signalled (digests, see
`cobro.dunning.digest`) and starts the missing workflows of customers with open invoices.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from cobro.dunning import digest_sql
from cobro.dunning.digest import CHANGED, DunningFacts, fact_digest, why_signal
from cobro.dunning.signals import SIGNAL, WORKFLOW_TYPE, DunningInput, FactsChanged, workflow_id
from cobro.settings import Settings, get_settings
from cobro.temporal_support import CUSTOMER_ID

CONCURRENCY = 64
RUNNING_QUERY = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"


async def notify(
    client: Client,
    accounts: Iterable[str],
    change: FactsChanged,
    settings: Settings | None = None,
    concurrency: int = CONCURRENCY,
) -> int:
    settings = settings or get_settings()
    gate = asyncio.Semaphore(concurrency)

    async def one(account: str) -> None:
        async with gate:
            await client.start_workflow(
                WORKFLOW_TYPE,
                DunningInput(account),
                id=workflow_id(account),
                task_queue=settings.temporal_task_queue,
                start_signal=SIGNAL,
                start_signal_args=[change],
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(CUSTOMER_ID, account)]
                ),
            )

    unique = sorted(set(accounts))
    await asyncio.gather(*(one(a) for a in unique))
    return len(unique)


@dataclass
class NotifyReport:
    """What `notify_changed` did: who was signalled and why, how many were left alone."""

    changed: list[str] = field(default_factory=list)  # facts changed: signalled
    not_running: list[str] = field(default_factory=list)  # open invoices, no workflow: started
    unchanged: int = 0  # nothing new: not signalled

    @property
    def signalled(self) -> int:
        return len(self.changed) + len(self.not_running)

    def summary(self) -> str:
        return (
            f"{self.signalled} dunning workflow(s) signalled or started"
            f" ({len(self.changed)} with changed facts, {len(self.not_running)} not running),"
            f" {self.unchanged} unchanged"
        )


async def notify_changed(
    client: Client,
    engine: Engine,
    change: FactsChanged,
    accounts: Iterable[str] | None = None,
    settings: Settings | None = None,
    concurrency: int = CONCURRENCY,
    force: bool = False,
) -> NotifyReport:
    """Signal (with start) the workflows of `accounts` (default: every customer with open
    invoices or a running workflow) whose facts changed since their last signal, and start
    the missing ones of customers with open invoices; then store the digests signalled.
    `force` (a collector's action, which the history should show): signal every given
    customer, and store the digests all the same, so the next sync does not repeat it.

    The digests are computed before the signals go out and stored after they succeeded, so
    a stored digest always means "a signal reached the workflow after these facts were
    committed": a concurrent writer can cause one signal too many, never one too few."""
    settings = settings or get_settings()
    running: set[str] | None = None
    if accounts is None:
        running = await all_running(client)
        with_open = await asyncio.to_thread(accounts_with_open_invoices, engine)
        candidates = sorted(set(with_open) | (running or set()))
    else:
        candidates = sorted(set(accounts))
    policy = await asyncio.to_thread(policy_fingerprint, engine)
    facts, stored = await asyncio.to_thread(_read, engine, candidates)
    digests = {f.customer_id: fact_digest(f, policy) for f in facts}
    if running is None and not force:
        # changed facts with open invoices are signalled (with start) either way: ask only
        # about the others
        unsure = [
            f.account
            for f in facts
            if not f.has_open_invoices or digests[f.customer_id] == stored.get(f.customer_id)
        ]
        running = await running_among(client, unsure, concurrency)
    live = running or set()
    report = NotifyReport()
    to_store: dict[int, str] = {}
    for f in facts:
        digest = digests[f.customer_id]
        previous = stored.get(f.customer_id)
        why = why_signal(digest, previous, f.has_open_invoices, f.account in live)
        if force:
            why = CHANGED
        if why is None:
            report.unchanged += 1
            continue
        (report.changed if why == CHANGED else report.not_running).append(f.account)
        to_store[f.customer_id] = digest
    await notify(client, [*report.changed, *report.not_running], change, settings, concurrency)
    await asyncio.to_thread(_store, engine, to_store, change.kind)
    return report


def _read(engine: Engine, accounts: list[str]) -> tuple[list[DunningFacts], dict[int, str]]:
    with engine.connect() as conn:
        facts = digest_sql.read_facts(conn, accounts)
        return facts, digest_sql.stored_digests(conn, [f.customer_id for f in facts])


def _store(engine: Engine, signalled: dict[int, str], kind: str) -> None:
    with engine.begin() as conn:
        digest_sql.store_digests(conn, signalled, kind, datetime.now(UTC))


def accounts_with_open_invoices(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return digest_sql.accounts_with_open_invoices(conn)


def policy_fingerprint(engine: Engine | None = None) -> str:
    """The dunning policies the planner reads (`cobro.dunning.store.policies`: the active
    rules version, else the rules directory), as parsed: a comment edited in `dunning.yaml`
    signals nobody, a changed step signals everyone."""
    from cobro.dunning.store import policies

    try:
        rules = policies(engine).rules
    except Exception as exc:  # missing or broken rules: the workflows cannot plan either
        return f"unavailable: {type(exc).__name__}"
    return hashlib.sha256(rules.model_dump_json().encode()).hexdigest()


async def all_running(client: Client) -> set[str] | None:
    """The accounts of every running dunning workflow, from one visibility listing; None
    when the server has no visibility (the time-skipping test server)."""
    prefix = workflow_id("")
    try:
        return {
            w.id.removeprefix(prefix)
            async for w in client.list_workflows(RUNNING_QUERY, page_size=1000)
            if w.id.startswith(prefix)
        }
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNIMPLEMENTED:
            return None
        raise


async def running_among(
    client: Client, accounts: Iterable[str], concurrency: int = CONCURRENCY
) -> set[str]:
    """Which of these accounts' dunning workflows are running: one describe each, bounded
    (exact, where visibility may lag a moment behind)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(account: str) -> str | None:
        async with gate:
            try:
                desc = await client.get_workflow_handle(workflow_id(account)).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
            return account if desc.status == WorkflowExecutionStatus.RUNNING else None

    found = await asyncio.gather(*(one(a) for a in accounts))
    return {a for a in found if a is not None}
