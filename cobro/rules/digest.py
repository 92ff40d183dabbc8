"""The digest of one classification run, emailed once to the collections team: how many
customers changed class (from → to, with the first few names) and the alerts the run raised,
by severity. Every row a run writes carries the run's instant (`assessed_at` / `fired_at`),
so the digest is read back from the database: a retried activity rebuilds the same text.

Exactly once: the `team_notifications` row (unique idempotency key per run) is claimed
before the SMTP call and marked sent after; a run whose digest is marked sent never sends
again. If the worker dies between the SMTP call and the mark, the retry sends it again with
the same Message-ID (derived from the key), which mail systems use to drop duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from jinja2 import Environment, StrictUndefined
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from cobro.db import transaction
from cobro.models import Alert, Customer, RiskAssessment, TeamNotification
from cobro.types import utcnow

SEVERITY_ORDER = ("critical", "warning", "info")
NAMES_PER_TRANSITION = 10
KIND = "classification_digest"

TEXT = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True).from_string(
    """\
Classification of {{ d.run_at.strftime('%Y-%m-%d %H:%M UTC') }} (rules {{ d.ruleset_hash[:12] }})

{% if d.transitions %}
Risk class changes: {{ d.changes }} customer(s)
{% for t in d.transitions %}
  {{ t.before or "(none)" }} -> {{ t.after }}: {{ t.count }}{{ "" }}
{% for c in t.customers %}
    - {{ c }}
{% endfor %}
{% if t.count > t.customers|length %}
    ... and {{ t.count - t.customers|length }} more
{% endif %}
{% endfor %}
{% else %}
No risk class changed.
{% endif %}

{% if d.alerts %}
New alerts: {{ d.alert_total }}
{% for severity, items in d.alerts %}
  {{ severity }} ({{ items|length }})
{% for a in items %}
    - [{{ a.name }}] {{ a.account }} {{ a.customer }}: {{ a.message }}
{% endfor %}
{% endfor %}
{% else %}
No new alert.
{% endif %}

Dashboard: {{ d.dashboard_url }}
"""
)


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


@dataclass
class Digest:
    run_at: datetime
    ruleset_hash: str
    dashboard_url: str
    transitions: list[Transition] = field(default_factory=list)
    alerts: list[tuple[str, list[DigestAlert]]] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(t.count for t in self.transitions)

    @property
    def alert_total(self) -> int:
        return sum(len(items) for _, items in self.alerts)

    @property
    def empty(self) -> bool:
        return not self.transitions and not self.alerts

    @property
    def subject(self) -> str:
        parts = []
        if self.changes:
            parts.append(f"{self.changes} risk class change(s)")
        for severity, items in self.alerts:
            parts.append(f"{len(items)} {severity} alert(s)")
        return "Cobro classification: " + (", ".join(parts) or "nothing new")

    @property
    def idempotency_key(self) -> str:
        return f"{KIND}:{self.run_at.isoformat()}"

    def text(self) -> str:
        return TEXT.render(d=self)


def build_digest(
    engine: Engine | None, run_at: datetime, ruleset_hash: str, dashboard_url: str
) -> Digest:
    """What the run at `run_at` wrote: class changes and new alerts."""
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
        alerts = s.execute(
            select(Alert.severity, Alert.name, Customer.account, Customer.name, Alert.message)
            .join(Customer, Customer.id == Alert.customer_id)
            .where(Alert.fired_at == run_at)
            .order_by(Alert.name, Customer.account)
        ).all()
    groups: dict[tuple[str | None, str], list[str]] = {}
    for before, after, account, name in changes:
        groups.setdefault((before, after), []).append(f"{account} {name}")
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
        (sev, by_severity[sev])
        for sev in sorted(
            by_severity, key=lambda s: SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else 99
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
