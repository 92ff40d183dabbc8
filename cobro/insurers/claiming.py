"""File a customer's queued claims through the connector, follow each job to the insurer's
acknowledgement, and ask acknowledged claims for the insurer's decision: exactly once at the
insurer (the claim's deterministic client reference, as `cobro.insurers.declaring` does for
declarations).

For each claim `cobro.insurers.claims_sql.pending_references` names:

1. `begin_filing` counts the attempt (queued) in its own transaction;
2. the POST carries the client reference: an attempt killed after the insurer received it
   sends the same reference again and gets the same job (`/_sim/claims` counts both);
3. `mark_filed` records the job; the job is followed to the claim the insurer opened,
   `mark_acknowledged`;
4. an acknowledged claim is read again (`GET` its claim id): `mark_decided` once the insurer
   indemnified or refused it, else `mark_checked` (asked again a day later).

An insurer that is unavailable, or a job still pending, raises `ClaimPending`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from cobro.faults import crash_point
from cobro.insurers import claims as pure
from cobro.insurers import claims_sql as store
from cobro.insurers.base import (
    ClaimRecord,
    ClaimStatus,
    InsurerConnector,
    InsurerError,
    InsurerRequestError,
)

log = logging.getLogger("cobro.insurers")

Run = Callable[..., Awaitable[Any]]  # run(function, *args): function(session, *args)
Heartbeat = Callable[[str], None]


class ClaimPending(Exception):
    """Not answered yet (insurer unavailable, job pending): try again later."""


async def follow_claims(
    references: list[str],
    connector: InsurerConnector,
    run: Run,
    now: datetime,
    heartbeat: Heartbeat = lambda _: None,
    follow_timeout: float = 60.0,
    poll_interval: float = 0.5,
) -> list[str]:
    """File, follow or ask each claim of `references`; returns one line per claim. Raises
    `ClaimPending` (after doing all it could) when one is not answered yet."""
    lines, pending = [], []
    for reference in references:
        try:
            lines.append(
                await _one(reference, connector, run, now, heartbeat, follow_timeout, poll_interval)
            )
        except InsurerError as exc:
            log.warning("claim %s not answered yet: %s", reference, exc)
            pending.append(f"{reference}: {exc}")
    if pending:
        raise ClaimPending("; ".join(pending))
    return lines


async def _one(
    reference: str,
    connector: InsurerConnector,
    run: Run,
    now: datetime,
    heartbeat: Heartbeat,
    follow_timeout: float,
    poll_interval: float,
) -> str:
    filing: store.Filing = await run(store.begin_filing, reference)
    if filing.claim is None:
        return f"{reference}: {filing.status}"
    if filing.status == "acknowledged":
        assert filing.insurer_reference is not None
        return await _decision(reference, await connector.get_claim(filing.insurer_reference),
                               run, now)  # fmt: skip
    job_id = filing.job_id
    if filing.status == "queued":
        crash_point("before_claim_post")
        try:
            job_id = await connector.file_claim(pure.request(filing.claim))
        except InsurerRequestError as exc:
            await run(store.mark_failed, reference, str(exc), now)
            return f"{reference}: refused ({exc})"
        crash_point("after_claim_post")
        heartbeat(f"{reference} filed")
        await run(store.mark_filed, reference, job_id, now)
    assert job_id is not None
    record = await connector.claim_outcome(
        job_id, timeout=follow_timeout, poll_interval=poll_interval
    )
    heartbeat(f"{reference} acknowledged")
    await run(store.mark_acknowledged, reference, record.claim_id, now)
    return await _decision(reference, record, run, now)


async def _decision(reference: str, record: ClaimRecord, run: Run, now: datetime) -> str:
    if record.status_code is ClaimStatus.INDEMNIFIED:
        amount = record.indemnified_amount if record.indemnified_amount is not None else None
        if amount is None:
            amount = record.claim_amount
        await run(store.mark_decided, reference, amount, None, record.decision_date, now)
        return f"{reference}: indemnified {amount} ({record.claim_id})"
    if record.status_code is ClaimStatus.REFUSED:
        reason = record.refusal_reason or "refused"
        await run(store.mark_decided, reference, None, reason, record.decision_date, now)
        return f"{reference}: refused ({reason})"
    await run(store.mark_checked, reference, now)
    return f"{reference}: acknowledged ({record.claim_id}), decision awaited"
