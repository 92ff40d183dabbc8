"""Dunning: one long-lived workflow per customer account (`dunning-<account>`).

Thin orchestration. The database holds the facts; this workflow holds the schedule:
  1. ask `dunning_next` what is due now and when the next action is (the activity reads the
     facts as of `workflow.now()` and runs the pure planner);
  2. run each due action through `dunning_execute` (which re-reads the facts, claims the
     idempotency key, sends, confirms — exactly once);
  3. sleep on a durable timer until the next action, or until a signal says the facts
     changed (invoices, payment, dispute, promise, pause, resume, policy, risk class).
It completes when nothing is open and continues-as-new before its history grows large.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.dunning import (
        DunningDecision,
        ExecuteInput,
        ExecuteOutcome,
        NextInput,
        dunning_execute,
        dunning_next,
    )
    from cobro.dunning.actions import ActionSpec
    from cobro.dunning.signals import DunningInput, FactsChanged
    from cobro.temporal_support import (
        CUSTOMER_ID,
        DUNNING_STAGE,
        OVERDUE_AMOUNT,
        RISK_CLASS,
    )

# planning is a cheap, idempotent read: retried at least every 15 s, so a few killed
# workers (each attempt a timeout) never leave a customer waiting minutes on the backoff
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    non_retryable_error_types=["PermanentSendError"],
)
# a send refused for now is tried again at least every 30 s (its row says "delayed:
# ..., attempt N"); a claim in flight or a database outage set their own, shorter delay
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["PermanentSendError"],
)
# the activities heartbeat every 2 s while they run (activities/dunning.py)
HEARTBEAT_TIMEOUT = timedelta(seconds=8)


@dataclass
class DunningStatus:
    account: str
    stage: str = "starting"
    next_at: str | None = None
    overdue_amount: float = 0.0
    risk_class: str = ""
    actions_done: int = 0
    last_outcomes: list[str] = field(default_factory=list)


@workflow.defn(name="Dunning")
class Dunning:
    def __init__(self) -> None:
        self._changes: list[FactsChanged] = []
        self._status = DunningStatus(account="")
        self._published: tuple[str, str, float, str] | None = None

    @workflow.signal(name="facts_changed")
    def facts_changed(self, change: FactsChanged) -> None:
        self._changes.append(change)

    @workflow.query
    def status(self) -> DunningStatus:
        return self._status

    @workflow.run
    async def run(self, inp: DunningInput) -> DunningStatus:
        self._status.account = inp.account
        info = workflow.info()
        while True:
            self._changes.clear()
            decision: DunningDecision = await workflow.execute_activity(
                dunning_next,
                NextInput(
                    account=inp.account,
                    now=workflow.now(),
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                ),
                start_to_close_timeout=timedelta(seconds=20),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            self._publish(decision)
            if not decision.open:
                self._status.stage = "closed"
                return self._status
            if workflow.patched("due-actions-side-by-side"):
                # v2: the due actions run side by side, so an SMS never waits behind an
                # email whose relay refuses for now (each retries on its own)
                outcomes = await asyncio.gather(
                    *(self._execute(inp.account, action) for action in decision.due)
                )
            else:  # v1 histories (tests/histories/*_v1.json): one after the other
                outcomes = [await self._execute(inp.account, action) for action in decision.due]
            for outcome in outcomes:
                self._status.actions_done += 1
                self._status.last_outcomes = [*self._status.last_outcomes[-9:], outcome.summary]
            if decision.due:
                continue  # re-plan right away: the facts may have moved meanwhile
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(DunningInput(inp.account))
            await self._sleep_until_next(decision)

    async def _execute(self, account: str, action: ActionSpec) -> ExecuteOutcome:
        info = workflow.info()
        return await workflow.execute_activity(
            dunning_execute,
            ExecuteInput(
                account=account,
                action=action,
                now=workflow.now(),
                workflow_id=info.workflow_id,
                run_id=info.run_id,
            ),
            # long enough to confirm an accepted send through a database outage (retried
            # in place, with heartbeats); a killed worker is noticed by the heartbeat
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=SEND_RETRY,
        )

    async def _sleep_until_next(self, decision: DunningDecision) -> None:
        timeout = None
        if decision.next_at is not None:
            timeout = max(decision.next_at - workflow.now(), timedelta(seconds=1))
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: bool(self._changes), timeout=timeout)

    def _publish(self, decision: DunningDecision) -> None:
        attributes = (
            decision.account,
            decision.stage,
            decision.overdue_amount,
            decision.risk_class or "unclassified",
        )
        # v2: upsert only what changed, so a long wait does not grow the history.
        # Histories recorded by v1 (tests/histories/*_v1.json) replay with the old path.
        if workflow.patched("search-attributes-on-change") and attributes == self._published:
            self._status.stage = decision.stage
            self._status.next_at = decision.next_at.isoformat() if decision.next_at else None
            return
        self._published = attributes
        self._status.stage = decision.stage
        self._status.next_at = decision.next_at.isoformat() if decision.next_at else None
        self._status.overdue_amount = decision.overdue_amount
        self._status.risk_class = decision.risk_class
        workflow.upsert_search_attributes(
            [
                CUSTOMER_ID.value_set(decision.account),
                DUNNING_STAGE.value_set(decision.stage),
                OVERDUE_AMOUNT.value_set(decision.overdue_amount),
                RISK_CLASS.value_set(decision.risk_class or "unclassified"),
            ]
        )
