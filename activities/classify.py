"""Classification activities: plan the pages of customers, classify one page (facts SQL,
rules, write changes and alerts), and tell the dunning workflows whose risk class changed.

Every run pins one ruleset (by content hash) so all its pages use the same rules even if a
new version is applied meanwhile; the next run picks up the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cobro.db import transaction
from cobro.models import RulesetVersion
from cobro.observability import metrics
from cobro.rules.classify import (
    classify_page,
    classify_portfolio,
    customer_ids,
    load_active_ruleset,
    pages,
    ruleset_from_files,
)
from cobro.rules.facts import UNCLASSIFIED
from cobro.rules.facts_sql import BATCH_SIZE
from cobro.rules.ruleset import Ruleset


@dataclass
class ClassifyStart:
    batch_size: int = BATCH_SIZE
    accounts: list[str] = field(default_factory=list)  # empty: the whole portfolio


@dataclass
class ClassifyPlan:
    ruleset_hash: str
    pages: list[tuple[int, int]] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)  # per page, when only some customers


@dataclass
class ClassifyBatchInput:
    lo: int
    hi: int
    now: datetime
    ruleset_hash: str
    ids: list[int] | None = None  # these customers only (their ids lie in [lo, hi])


@dataclass
class ClassChangeOut:
    account: str
    previous: str | None
    risk_class: str


@dataclass
class ClassifyBatchResult:
    evaluated: int = 0
    changes: list[ClassChangeOut] = field(default_factory=list)
    alerts: int = 0
    resolved: int = 0
    alert_counts: dict[str, int] = field(default_factory=dict)  # alert name -> fired


@dataclass
class DigestInput:
    run_at: datetime
    ruleset_hash: str


@dataclass
class RiskChangeNotice:
    changes: list[ClassChangeOut]
    actor: str = "classifier"


def ruleset_for_hash(content_hash: str) -> Ruleset:
    """The stored version with this hash, else the rules directory if it has this hash."""
    with transaction() as session:
        files = session.scalar(
            select(RulesetVersion.files).where(RulesetVersion.content_hash == content_hash)
        )
    if files is not None:
        return ruleset_from_files(dict(files))
    ruleset = load_active_ruleset()
    if ruleset.hash != content_hash:
        raise ApplicationError(
            f"ruleset {content_hash[:12]} is gone (now {ruleset.hash[:12]})",
            type="RulesetChanged",
            non_retryable=True,
        )
    return ruleset


@activity.defn
def classify_plan(inp: ClassifyStart) -> ClassifyPlan:
    """The ruleset to pin and the pages: id ranges of the whole portfolio, or the given
    accounts' ids in batches (accounts unknown by now are left out)."""
    ruleset = load_active_ruleset()
    if not inp.accounts:
        return ClassifyPlan(ruleset.hash, pages(None, inp.batch_size))
    ids = customer_ids(None, inp.accounts)
    chunks = [ids[i : i + inp.batch_size] for i in range(0, len(ids), inp.batch_size)]
    return ClassifyPlan(ruleset.hash, [(c[0], c[-1]) for c in chunks], chunks)


@activity.defn
def classify_batch(inp: ClassifyBatchInput) -> ClassifyBatchResult:
    """One page of customers in one transaction. Idempotent: a retry after a commit finds
    the classes and alert episodes already written and changes nothing."""
    ruleset = ruleset_for_hash(inp.ruleset_hash)
    if inp.ids is not None:
        report = classify_portfolio(None, ruleset, inp.now, ids=inp.ids, batch_size=len(inp.ids))
    else:
        report = classify_page(None, ruleset, inp.lo, inp.hi, inp.now)
    counts: dict[str, int] = {}
    for a in report.alerts:
        counts[a.name] = counts.get(a.name, 0) + 1
    metrics.classified(report.evaluated, len(report.changes), len(report.alerts))
    return ClassifyBatchResult(
        evaluated=report.evaluated,
        changes=[ClassChangeOut(c.account, c.previous, c.risk_class) for c in report.changes],
        alerts=len(report.alerts),
        resolved=report.resolved,
        alert_counts=counts,
    )


@activity.defn
async def notify_risk_changes(inp: RiskChangeNotice) -> int:
    """Signal (with start) the dunning workflow of each changed customer that has open
    invoices or a running workflow: `FactsChanged("risk_class_changed", "from -> to")`.
    The digests are stored, so a later sync does not signal them again. Returns how many."""
    from cobro.db import default_engine
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged

    groups: dict[tuple[str | None, str], list[str]] = {}
    for c in inp.changes:
        groups.setdefault((c.previous, c.risk_class), []).append(c.account)
    client = activity.client()
    total = 0
    for (before, after), group in sorted(groups.items(), key=str):
        move = f"{before or UNCLASSIFIED} -> {after}"
        change = FactsChanged("risk_class_changed", move, inp.actor)
        total += (await notify_changed(client, default_engine(), change, group)).signalled
        activity.heartbeat(total)
    return total


@activity.defn
async def send_classification_digest(inp: DigestInput) -> str:
    """Email the run's digest to the collections team, exactly once per run (see
    `cobro.rules.digest`). Returns what happened."""
    import asyncio

    from cobro.channels.email import EmailError, SmtpConfig, send_email
    from cobro.i18n import using
    from cobro.rules.digest import DigestClaim, build_digest, claim_digest, mark_sent
    from cobro.settings import get_settings

    settings = get_settings()
    dashboard = settings.public_base_url.rstrip("/") + "/alerts"
    try:  # the classes in their rules' order; a ruleset gone since only loses the order
        ruleset = await asyncio.to_thread(ruleset_for_hash, inp.ruleset_hash)
        classes: tuple[str, ...] = tuple(ruleset.classifier.names)
    except ApplicationError:
        classes = ()
    digest = await asyncio.to_thread(
        build_digest, None, inp.run_at, inp.ruleset_hash, dashboard, classes
    )
    if digest.empty:
        return "nothing to say"

    def claim_in_team_language() -> DigestClaim:
        with using(settings.team_language):  # the subject and text are written here
            return claim_digest(None, digest, settings.collections_team_email)

    claim = await asyncio.to_thread(claim_in_team_language)
    if claim.already_sent:
        return "already sent"
    try:
        message_id = await send_email(
            to=[a.strip() for a in claim.recipient.split(",") if a.strip()],
            subject=claim.subject,
            text=claim.body,
            idempotency_key=claim.key,
            config=SmtpConfig.from_settings(settings),
        )
    except EmailError as exc:
        raise ApplicationError(
            str(exc), type=type(exc).__name__, non_retryable=exc.permanent
        ) from exc
    await asyncio.to_thread(mark_sent, None, claim, message_id)
    return "sent"
