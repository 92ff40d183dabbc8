"""The digest of one classification run, emailed once to the collections team: a summary,
whatever the portfolio size. Customers classified for the first time are counted per class
(a first run over 300 customers reads "300 customers classified: 30 critical, ..."), real
class changes (from → to) are listed with the first few names, and the alerts the run
raised are counted per severity and per alert, the top few of each severity listed (largest
open balance first), the rest left to the dashboard. Every row a run writes carries the
run's instant (`assessed_at` / `fired_at`), so the digest is read back from the database: a
retried activity rebuilds the same text.

Exactly once: the `team_notifications` row (unique idempotency key per run) is claimed
before the SMTP call and marked sent after; a run whose digest is marked sent never sends
again. If the worker dies between the SMTP call and the mark, the retry sends it again with
the same Message-ID (derived from the key), which mail systems use to drop duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine, func, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from cobro.db import transaction
from cobro.formatting import moment
from cobro.i18n import gettext, ngettext
from cobro.i18n.codes import label
from cobro.models import Alert, Customer, Invoice, RiskAssessment, TeamNotification
from cobro.rules.facts import UNCLASSIFIED
from cobro.types import Money, utcnow

SEVERITY_ORDER = ("critical", "warning", "info")
NAMES_PER_TRANSITION = 10
TOP_ALERTS = 10  # listed per severity; the others are counted
KIND = "classification_digest"


def _environment() -> Environment:
    """The digest's text template, in the team's language (`COBRO_TEAM_LANGUAGE`, set by
    the activity with `cobro.i18n.using`); dates and codes as the dashboard writes them."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(moment=moment, label=lambda code, context: label(context, code))
    return env


TEXT = _environment().get_template("digest.txt.j2")


@dataclass(frozen=True)
class Transition:
    before: str | None
    after: str
    count: int
    customers: list[str]


@dataclass(frozen=True)
class DigestAlert:
    name: str
    account: str
    customer: str
    message: str


@dataclass(frozen=True)
class SeverityGroup:
    severity: str
    count: int
    per_alert: list[tuple[str, int]]  # alert name -> fired, most first
    top: list[DigestAlert]  # the first TOP_ALERTS, largest open balance first

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{label('alert type', name)} {n}" for name, n in self.per_alert)


@dataclass
class Digest:
    run_at: datetime
    ruleset_hash: str
    dashboard_url: str
    first: list[tuple[str, int]] = field(default_factory=list)  # class -> first classified
    transitions: list[Transition] = field(default_factory=list)
    alerts: list[SeverityGroup] = field(default_factory=list)

    @property
    def first_total(self) -> int:
        return sum(n for _, n in self.first)

    @property
    def changes(self) -> int:
        return sum(t.count for t in self.transitions)

    @property
    def alert_total(self) -> int:
        return sum(g.count for g in self.alerts)

    @property
    def empty(self) -> bool:
        return not self.first and not self.transitions and not self.alerts

    @property
    def subject(self) -> str:
        parts = []
        if self.first:
            most = self.first[0]
            parts.append(
                gettext("%(num)s customer(s) classified (%(most)s %(risk_class)s)")
                % {
                    "num": self.first_total,
                    "most": most[1],
                    "risk_class": label("risk class", most[0]),
                }
            )
        if self.changes:
            parts.append(gettext("%(num)s risk class change(s)") % {"num": self.changes})
        for g in self.alerts:
            parts.append(
                gettext("%(num)s %(severity)s alert(s)")
                % {"num": g.count, "severity": label("severity", g.severity)}
            )
        return gettext("Cobro classification: %(what)s") % {
            "what": ", ".join(parts) or gettext("nothing new")
        }

    @property
    def idempotency_key(self) -> str:
        return f"{KIND}:{self.run_at.isoformat()}"

    def text(self) -> str:
        return TEXT.render(d=self, unclassified=UNCLASSIFIED)


def build_digest(
    engine: Engine | None,
    run_at: datetime,
    ruleset_hash: str,
    dashboard_url: str,
    classes: Sequence[str] = (),
) -> Digest:
    """What the run at `run_at` wrote: first classifications (per class, in the order of
    `classes`, the run's rules — most severe first), class changes, new alerts."""
    digest = Digest(run_at, ruleset_hash, dashboard_url)
    with transaction(engine) as s:
        changes = s.execute(
            select(
                RiskAssessment.previous_class,
                RiskAssessment.risk_class,
                Customer.account,
                Customer.name,
            )
            .join(Customer, Customer.id == RiskAssessment.customer_id)
            .where(RiskAssessment.assessed_at == run_at)
            .order_by(RiskAssessment.risk_class, Customer.account)
        ).all()
        alerted = select(Alert.customer_id).where(Alert.fired_at == run_at).distinct()
        balances = (
            select(Invoice.customer_id, func.sum(Invoice.open_amount, type_=Money()).label("open"))
            .where(Invoice.open_amount > literal_column("0"), Invoice.customer_id.in_(alerted))
            .group_by(Invoice.customer_id)
            .subquery("balances")
        )
        alerts = s.execute(
            select(Alert.severity, Alert.name, Customer.account, Customer.name, Alert.message)
            .join(Customer, Customer.id == Alert.customer_id)
            .outerjoin(balances, balances.c.customer_id == Alert.customer_id)
            .where(Alert.fired_at == run_at)
            .order_by(
                func.coalesce(balances.c.open, literal_column("0")).desc(),
                Customer.account,
                Alert.name,
            )
        ).all()
    first: Counter[str] = Counter()
    groups: dict[tuple[str | None, str], list[str]] = {}
    for before, after, account, name in changes:
        if before is None:
            first[after] += 1
        else:
            groups.setdefault((before, after), []).append(f"{account} {name}")
    if first:
        order = {name: i for i, name in enumerate(classes)}
        digest.first = sorted(
            first.items(), key=lambda kv: (order.get(kv[0], len(order)), -kv[1], kv[0])
        )
    digest.transitions = [
        Transition(before, after, len(names), names[:NAMES_PER_TRANSITION])
        for (before, after), names in sorted(
            groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))
        )
    ]
    by_severity: dict[str, list[DigestAlert]] = {}
    for severity, name, account, customer, message in alerts:
        by_severity.setdefault(severity, []).append(DigestAlert(name, account, customer, message))
    digest.alerts = [
        SeverityGroup(
            sev,
            len(items),
            sorted(Counter(a.name for a in items).items(), key=lambda kv: (-kv[1], kv[0])),
            items[:TOP_ALERTS],
        )
        for sev, items in sorted(
            by_severity.items(),
            key=lambda kv: SEVERITY_ORDER.index(kv[0]) if kv[0] in SEVERITY_ORDER else 99,
        )
    ]
    return digest


@dataclass(frozen=True)
class DigestClaim:
    id: int
    key: str
    recipient: str
    subject: str
    body: str
    already_sent: bool


def claim_digest(engine: Engine | None, digest: Digest, recipient: str) -> DigestClaim:
    """Insert the notification row (the claim) or find the one a previous attempt inserted."""
    key = digest.idempotency_key
    try:
        with transaction(engine) as s:
            row = TeamNotification(
                kind=KIND,
                idempotency_key=key,
                recipient=recipient,
                subject=digest.subject,
                body=digest.text(),
            )
            s.add(row)
            s.flush()
            return DigestClaim(row.id, key, row.recipient, row.subject, row.body, False)
    except IntegrityError:
        pass
    with transaction(engine) as s:
        row = s.scalars(
            select(TeamNotification).where(TeamNotification.idempotency_key == key)
        ).one()
        return DigestClaim(row.id, key, row.recipient, row.subject, row.body, row.status == "sent")


def mark_sent(engine: Engine | None, claim: DigestClaim, provider_id: str) -> None:
    with transaction(engine) as s:
        s.execute(
            update(TeamNotification)
            .where(TeamNotification.id == claim.id)
            .values(status="sent", provider_id=provider_id, sent_at=utcnow())
        )
