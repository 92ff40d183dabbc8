"""Classify: the daily classification of the whole portfolio (run by the schedule, after
DailySync). Thin orchestration:
  1. `classify_plan` pins the active ruleset (content hash) and pages the customer ids (of
     the whole portfolio, or of the `accounts` given: `cobro import` classifies the
     accounts it imported right after the import);
  2. one `classify_batch` activity per page: facts in bulk SQL, rules, only changes written,
     alerts raised once per episode (all at `workflow.now()`); two in flight (the pages are
     customers of disjoint id ranges: on two worker processes, two cores);
  3. `notify_risk_changes` signals the dunning workflow of each customer whose class changed;
  4. `send_classification_digest` emails the collections team what the run changed (once;
     nothing when nothing changed). A digest that cannot be sent does not fail the run.
It continues-as-new with its cursor when the history grows large.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.classify import (
        ClassifyBatchInput,
        ClassifyBatchResult,
        ClassifyPlan,
        ClassifyStart,
        DigestInput,
        RiskChangeNotice,
        classify_batch,
        classify_plan,
        notify_risk_changes,
        send_classification_digest,
    )
    from cobro.rules.facts import UNCLASSIFIED
    from cobro.rules.facts_sql import BATCH_SIZE

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=["RulesetChanged", "RuleError"],
)
NOTIFY_CHUNK = 1000
TWO_PAGES_IN_FLIGHT = "classify-two-pages-in-flight"


@dataclass
class ClassifyResult:
    ruleset_hash: str = ""
    pages: int = 0
    evaluated: int = 0
    changes: int = 0
    alerts: int = 0
    resolved: int = 0
    notified: int = 0
    transitions: dict[str, int] = field(default_factory=dict)  # "from -> to" -> customers
    alert_counts: dict[str, int] = field(default_factory=dict)
    digest: str = ""  # sent, already sent, nothing to say, failed: ...


@dataclass
class ClassifyInput:
    batch_size: int = BATCH_SIZE
    notify_dunning: bool = True
    # carried over by continue-as-new
    plan: ClassifyPlan | None = None
    next_page: int = 0
    run_at: str | None = None  # ISO instant shared by every page of the run
    carried: ClassifyResult | None = None
    send_digest: bool = True
    accounts: list[str] = field(default_factory=list)  # these only (an import); empty: all


@workflow.defn(name="Classify")
class Classify:
    def __init__(self) -> None:
        self._result = ClassifyResult()

    @workflow.query
    def progress(self) -> ClassifyResult:
        return self._result

    @workflow.run
    async def run(self, inp: ClassifyInput) -> ClassifyResult:
        from datetime import datetime

        result = self._result = inp.carried or ClassifyResult()
        plan = inp.plan or await workflow.execute_activity(
            classify_plan,
            ClassifyStart(inp.batch_size, inp.accounts),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )
        now = datetime.fromisoformat(inp.run_at) if inp.run_at else workflow.now()
        result.ruleset_hash = plan.ruleset_hash
        # the next page's activity runs while this one's results are handled; histories
        # recorded before this ran one page at a time
        ahead = 1 if workflow.patched(TWO_PAGES_IN_FLIGHT) else 0
        in_flight: dict[int, workflow.ActivityHandle[ClassifyBatchResult]] = {}
        index = inp.next_page
        while index < len(plan.pages):
            # before a continue-as-new, the page in flight is waited for, none started
            lead = 0 if workflow.info().is_continue_as_new_suggested() else ahead
            for n in range(index, min(index + lead, len(plan.pages) - 1) + 1):
                if n not in in_flight:
                    lo, hi = plan.pages[n]
                    in_flight[n] = workflow.start_activity(
                        classify_batch,
                        ClassifyBatchInput(
                            lo, hi, now, plan.ruleset_hash, plan.ids[n] if plan.ids else None
                        ),
                        start_to_close_timeout=timedelta(minutes=10),
                        retry_policy=RETRY,
                    )
            try:
                batch = await in_flight.pop(index)
            except ActivityError:
                for handle in in_flight.values():
                    handle.cancel()
                raise
            index += 1
            result.pages += 1
            result.evaluated += batch.evaluated
            result.changes += len(batch.changes)
            result.alerts += batch.alerts
            result.resolved += batch.resolved
            for name, n in batch.alert_counts.items():
                result.alert_counts[name] = result.alert_counts.get(name, 0) + n
            for c in batch.changes:
                key = f"{c.previous or UNCLASSIFIED} -> {c.risk_class}"
                result.transitions[key] = result.transitions.get(key, 0) + 1
            if inp.notify_dunning:
                for start in range(0, len(batch.changes), NOTIFY_CHUNK):
                    result.notified += await workflow.execute_activity(
                        notify_risk_changes,
                        RiskChangeNotice(batch.changes[start : start + NOTIFY_CHUNK]),
                        start_to_close_timeout=timedelta(minutes=10),
                        heartbeat_timeout=timedelta(minutes=1),
                        retry_policy=RETRY,
                    )
            if (
                workflow.info().is_continue_as_new_suggested()
                and index < len(plan.pages)
                and not in_flight
            ):
                workflow.continue_as_new(
                    ClassifyInput(
                        inp.batch_size,
                        inp.notify_dunning,
                        plan,
                        index,
                        now.isoformat(),
                        result,
                        send_digest=inp.send_digest,
                        accounts=inp.accounts,
                    )
                )
        if inp.send_digest and workflow.patched("classification-digest"):
            try:
                result.digest = await workflow.execute_activity(
                    send_classification_digest,
                    DigestInput(now, plan.ruleset_hash),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=30),
                        maximum_attempts=5,
                        non_retryable_error_types=["PermanentEmailError"],
                    ),
                )
            except ActivityError as exc:
                cause = exc.cause.message if exc.cause else str(exc)  # type: ignore[attr-defined]
                result.digest = f"failed: {cause}"
                workflow.logger.warning("classification digest not sent: %s", cause)
        return result
