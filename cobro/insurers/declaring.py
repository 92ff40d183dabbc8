"""File a customer's pending declarations through the connector and follow each job to the
insurer's answer: exactly once at the insurer.

For each pending declaration (`queued` or `filed`, `cobro.insurers.declarations_sql`):

1. `begin_filing` counts the attempt in its own transaction (a queued OVD whose invoice was
   paid before any attempt is cancelled instead);
2. the POST carries the declaration's deterministic client reference, so an attempt killed
   after the insurer received it sends the same reference again and the insurer answers
   with the same job: one declaration however many POSTs (`/_sim/declarations` counts both);
3. `mark_filed` records the job id; the job is then followed (`declaration_outcome`) to the
   registered declaration, `mark_registered`. A refusal (4xx) is `mark_rejected` with a task.

An insurer that is unavailable, or a job still pending after `follow_timeout`, raises
`DeclarationPending`: the caller (the dunning activity) retries later, resuming at the step
the database records.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cobro.faults import crash_point
from cobro.insurers import declarations as pure
from cobro.insurers import declarations_sql as store
from cobro.insurers.base import InsurerConnector, InsurerError, InsurerRequestError
from cobro.observability import metrics

log = logging.getLogger("cobro.insurers")

Run = Callable[..., Awaitable[Any]]  # run(function, *args): function(session, *args)
Heartbeat = Callable[[str], None]


class DeclarationPending(Exception):
    """Not answered yet (insurer unavailable, job pending): try again later."""


async def file_pending(
    references: list[str],
    connector: InsurerConnector,
    run: Run,
    heartbeat: Heartbeat = lambda _: None,
    follow_timeout: float = 60.0,
    poll_interval: float = 0.5,
) -> list[str]:
    """File and follow each declaration of `references`; returns one line per declaration.
    Raises `DeclarationPending` (after doing all it could) when one is not answered yet."""
    lines, pending = [], []
    for reference in references:
        try:
            lines.append(
                await _one(reference, connector, run, heartbeat, follow_timeout, poll_interval)
            )
        except InsurerError as exc:  # unavailable, rate limited, job still pending
            log.warning("declaration %s not answered yet: %s", reference, exc)
            pending.append(f"{reference}: {exc}")
    if pending:
        raise DeclarationPending("; ".join(pending))
    return lines


async def _one(
    reference: str,
    connector: InsurerConnector,
    run: Run,
    heartbeat: Heartbeat,
    follow_timeout: float,
    poll_interval: float,
) -> str:
    filing: store.Filing = await run(store.begin_filing, reference)
    if filing.declaration is None:
        return f"{reference}: {filing.status}"
    job_id = filing.job_id
    category = filing.declaration.category
    if filing.status == "queued":
        crash_point("before_declare")
        try:
            receipt = await connector.declare(pure.request(filing.declaration))
        except InsurerRequestError as exc:
            await run(store.mark_rejected, reference, str(exc))
            metrics.declaration(category, "rejected")
            return f"{reference}: rejected ({exc})"
        crash_point("after_declare")
        heartbeat(f"{reference} filed")
        job_id = receipt.job_id
        await run(store.mark_filed, reference, job_id)
        metrics.declaration(category, "filed")
    assert job_id is not None
    try:
        record = await connector.declaration_outcome(
            job_id, timeout=follow_timeout, poll_interval=poll_interval
        )
    except InsurerRequestError as exc:
        await run(store.mark_rejected, reference, str(exc))
        metrics.declaration(category, "rejected")
        return f"{reference}: rejected ({exc})"
    heartbeat(f"{reference} answered")
    await run(store.mark_registered, reference, record.overdue_id, record.status_code)
    metrics.declaration(category, "registered")
    return f"{reference}: {record.status_code.lower()} ({record.overdue_id})"
