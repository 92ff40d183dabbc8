"""The alerts inbox and the task lists: filtered, counted and paginated in SQL, the same for
the pages, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from cobro.i18n import current_locale
from cobro.models import Alert, Customer, RiskAssessment, Task
from cobro.queues.people import Person, assignable
from cobro.queues.routing import may_take
from cobro.users import ROLES

ALERT_STATES = ("open", "acknowledged", "resolved")
NOBODY = "none"  # the assignee filter of what nobody has yet
PER_PAGE = 50


def latest_risk_classes():  # type: ignore[no-untyped-def]
    """customer_id → its latest risk class (a subquery)."""
    latest = (
        select(RiskAssessment.customer_id, func.max(RiskAssessment.id).label("id"))
        .group_by(RiskAssessment.customer_id)
        .subquery()
    )
    return (
        select(RiskAssessment.customer_id, RiskAssessment.risk_class)
        .join(latest, latest.c.id == RiskAssessment.id)
        .subquery()
    )


@dataclass(frozen=True)
class AlertFilters:
    """Empty means any. `assignee`: a username, or `none` for unassigned alerts."""

    state: str = "open"
    severity: str = ""
    name: str = ""
    risk_class: str = ""
    assignee: str = ""
    account: str = ""


def alert_text(message: str, messages: dict[str, Any] | None) -> str:
    """An alert's message in the reader's language when its rule gave one in it, else in the
    team's (as stored)."""
    return str((messages or {}).get(current_locale()) or message)


@dataclass
class InboxAlert:
    id: int
    account: str
    customer: str
    name: str
    severity: str
    message: str
    state: str
    fired_at: datetime
    assigned_to: str | None
    acknowledged_by: str | None
    risk_class: str | None = None
    owner: str | None = None


def _by_assignee(column, who: str) -> list[Any]:  # type: ignore[no-untyped-def]
    if who == NOBODY:
        return [column.is_(None)]
    return [column == who] if who else []


def _of_account(column, account: str) -> list[Any]:  # type: ignore[no-untyped-def]
    if not account:
        return []
    return [column == select(Customer.id).where(Customer.account == account).scalar_subquery()]


def latest_class_of(customer_id) -> Any:  # type: ignore[no-untyped-def]
    """The customer's latest risk class, as a correlated subquery (an index probe per row)."""
    return (
        select(RiskAssessment.risk_class)
        .where(RiskAssessment.customer_id == customer_id)
        .order_by(RiskAssessment.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def latest_classes(conn: Connection, customer_ids: list[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    last = (
        select(func.max(RiskAssessment.id))
        .where(RiskAssessment.customer_id.in_(customer_ids))
        .group_by(RiskAssessment.customer_id)
    )
    rows = conn.execute(
        select(RiskAssessment.customer_id, RiskAssessment.risk_class).where(
            RiskAssessment.id.in_(last)
        )
    ).all()
    return dict(rows)  # type: ignore[arg-type]


SEVERITY_ORDER = case((Alert.severity == "critical", 0), (Alert.severity == "warning", 1), else_=2)


def alerts_inbox(
    engine: Engine, filters: AlertFilters = AlertFilters(), limit: int = PER_PAGE, offset: int = 0
) -> tuple[list[InboxAlert], int]:
    """`limit` alerts from `offset`, most severe and most recent first, and how many match.
    The alerts table alone is filtered, counted and paged; only the page's rows are joined
    to their customers and risk classes."""
    where = [
        *([Alert.state == filters.state] if filters.state else []),
        *([Alert.severity == filters.severity] if filters.severity else []),
        *([Alert.name == filters.name] if filters.name else []),
        *([latest_class_of(Alert.customer_id) == filters.risk_class] if filters.risk_class else []),
        *_by_assignee(Alert.assigned_to, filters.assignee),
        *_of_account(Alert.customer_id, filters.account),
    ]
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
        ids = list(
            conn.scalars(
                select(Alert.id)
                .where(*where)
                .order_by(SEVERITY_ORDER, Alert.fired_at.desc(), Alert.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        rows = conn.execute(
            select(
                Alert.id,
                Customer.account,
                Customer.name,
                Alert.name,
                Alert.severity,
                Alert.message,
                Alert.state,
                Alert.fired_at,
                Alert.assigned_to,
                Alert.acknowledged_by,
                Alert.customer_id,
                Customer.owner,
                Alert.messages,
            )
            .join(Customer, Customer.id == Alert.customer_id)
            .where(Alert.id.in_(ids))
        ).all()
        classes = latest_classes(conn, sorted({r.customer_id for r in rows}))
    by_id = {r.id: r for r in rows}
    out = []
    for alert_id in ids:
        r = by_id[alert_id]
        message = alert_text(r.message, r.messages)
        out.append(
            InboxAlert(*r[:5], message, *r[6:10], classes.get(r.customer_id), r.owner)  # type: ignore[misc]
        )
    return out, total


@dataclass(frozen=True)
class AlertChoices:
    """What the inbox's filters offer: the active rules' alerts, severities and risk
    classes, and the people work can go to."""

    severities: list[str]
    names: list[str]
    risk_classes: list[str]
    people: list[Person]


def alert_choices(engine: Engine) -> AlertChoices:
    """From the active rules (the alerts table is large; its DISTINCTs are not read
    unless the rules do not load)."""
    with engine.connect() as conn:
        people = assignable(conn)
    try:
        from cobro.rules.classify import load_active_ruleset

        ruleset = load_active_ruleset(engine)
        rules = ruleset.alerts.rules if ruleset.alerts is not None else []
        names = {r.name for r in rules}
        severities = {r.severity for r in rules}
        classes = set(ruleset.classifier.names)
    except Exception:  # the page still works: what the tables hold
        with engine.connect() as conn:
            severities = set(conn.scalars(select(Alert.severity).distinct()))
            names = set(conn.scalars(select(Alert.name).distinct()))
            classes = set(conn.scalars(select(RiskAssessment.risk_class).distinct()))
    order = {"critical": 0, "warning": 1, "info": 2}
    return AlertChoices(
        sorted(severities, key=lambda s: (order.get(s, 9), s)),
        sorted(names),
        sorted(classes),
        people,
    )


# --- tasks -----------------------------------------------------------------------------

TASK_VIEWS = ("mine", "queue", "open", "done")


@dataclass(frozen=True)
class TaskFilters:
    """`view`: `mine` (assigned to `user`), `queue` (waiting in a queue `user_role` may take),
    `open` (every open task) or `done`. `assignee` (a username or `none`) and `queue` narrow
    any view further."""

    view: str = "open"
    user: str = ""
    user_role: str = ""
    assignee: str = ""
    queue: str = ""
    account: str = ""


@dataclass
class ListedTask:
    id: int
    account: str
    customer: str
    kind: str
    note: str
    assignee: str | None
    assignee_role: str | None
    due_date: date | None
    status: str


def tasks_list(
    engine: Engine, filters: TaskFilters = TaskFilters(), limit: int = PER_PAGE, offset: int = 0
) -> tuple[list[ListedTask], int]:
    """`limit` tasks from `offset`, the most urgent first, and how many match (the tasks
    table alone is filtered, counted and paged; the page is joined to its customers)."""
    where = [Task.status == ("done" if filters.view == "done" else "open")]
    if filters.view == "mine":
        where.append(Task.assignee == filters.user)
    elif filters.view == "queue":
        where.append(Task.assignee.is_(None))
        if filters.user_role != "admin":  # admins take from every queue
            where.append(Task.assignee_role.in_(takeable_queues(filters.user_role)))
    if filters.queue:
        where.append(Task.assignee_role == filters.queue)
    where += _by_assignee(Task.assignee, filters.assignee)
    where += _of_account(Task.customer_id, filters.account)
    if filters.view == "done":
        order: tuple[Any, ...] = (Task.done_at.desc(), Task.id.desc())
    else:
        order = (Task.due_date.is_(None), Task.due_date, Task.id)
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Task).where(*where)) or 0
        ids = list(
            conn.scalars(select(Task.id).where(*where).order_by(*order).limit(limit).offset(offset))
        )
        rows = conn.execute(
            select(
                Task.id,
                Customer.account,
                Customer.name,
                Task.kind,
                Task.note,
                Task.assignee,
                Task.assignee_role,
                Task.due_date,
                Task.status,
            )
            .join(Customer, Customer.id == Task.customer_id)
            .where(Task.id.in_(ids))
        ).all()
    by_id = {r.id: r for r in rows}
    return [ListedTask(*by_id[i]) for i in ids], total


def takeable_queues(user_role: str) -> list[str]:
    """The queues named after a user role that a user of `user_role` may take from (admins
    also take from queues named after no role)."""
    return [queue for queue in ROLES if may_take(user_role, queue)]


def task_counts(engine: Engine, user: str, user_role: str) -> dict[str, int]:
    """How many open tasks are the user's, and how many wait in the queues they may take."""
    mine = select(func.count()).where(Task.status == "open", Task.assignee == user)
    waiting = select(func.count()).where(Task.status == "open", Task.assignee.is_(None))
    if user_role != "admin":
        waiting = waiting.where(Task.assignee_role.in_(takeable_queues(user_role)))
    with engine.connect() as conn:
        return {"mine": conn.scalar(mine) or 0, "queue": conn.scalar(waiting) or 0}
