"""Rules-test fixtures: small risk-class and alert files, a seeded portfolio, counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, func, select

from cobro.db import transaction
from cobro.models import Alert, Customer, GradeHistory, Invoice, RiskAssessment, TimelineEvent

RISK_CLASSES = """\
classes:
  - name: critical
    when: grade >= 8 or max_days_overdue > 90
    because: insurer grade 8+ or 90 days late
  - name: high
    when: over_limit
    because: over the limit
  - name: low
    because: nothing worrying
"""


ALERTS = """\
alerts:
  - name: overdue
    when: overdue_amount > 0
    severity: warning
    cooldown: 3d
    message: "{{ name }} has {{ overdue_amount | money }} overdue"
  - name: became_critical
    when: risk_class == "critical" and previous.risk_class != "critical"
    severity: critical
    cooldown: 1d
    message: "{{ name }} is now critical (was {{ previous.risk_class }})"
"""


DAY1 = datetime(2026, 3, 2, 6, tzinfo=UTC)


def write_rules(directory: Path, classes: str = RISK_CLASSES, alerts: str = ALERTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "risk_classes.yaml").write_text(classes)
    (directory / "alerts.yaml").write_text(alerts)
    return directory


def seed(engine: Engine, today: date = DAY1.date()) -> dict[str, int]:
    with transaction(engine) as s:
        ids = {}
        for account in ("A", "B", "C"):
            c = Customer(
                account=account,
                name=f"Name {account}",
                country="FR",
                language="fr",
                timezone="Europe/Paris",
                # a limit of their own: what they owe here stays within it (without any
                # cover or limit, anything owed is over limit)
                discretionary_limit=Decimal(10000),
                discretionary_limit_currency="EUR",
            )
            s.add(c)
            s.flush()
            ids[account] = c.id
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=5, graded_on=date(2026, 1, 1)))
        add_invoice(s, ids["B"], "B1", today - timedelta(days=5), "100")
        return ids


def add_invoice(s, customer_id: int, number: str, due: date, open_amount: str) -> None:  # type: ignore[no-untyped-def]
    s.add(
        Invoice(
            number=number,
            customer_id=customer_id,
            issue_date=due - timedelta(days=30),
            due_date=due,
            currency="EUR",
            amount=Decimal(open_amount),
            open_amount=Decimal(open_amount),
        )
    )


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.scalar(select(func.count()).select_from(RiskAssessment)),
            conn.scalar(select(func.count()).select_from(Alert)),
            conn.scalar(select(func.count()).select_from(TimelineEvent)),
        )
