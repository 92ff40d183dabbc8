"""What a person does to the work queues, recorded with who did it: acknowledge or assign
alerts (one or many at once), take a task from its queue, complete a task, set or clear a
customer's owner. Written once for the pages, the API and the CLI; each action is one
transaction that also writes the customer timeline events, and refuses bad input with an
`ActionError` whose one line every front end shows as is (404 unknown record, 409 state,
422 input)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.dunning.collector import ActionError, check_actor, check_text
from cobro.models import Alert, Customer, Task, TimelineEvent, User
from cobro.notices import notice
from cobro.queues.follow import follow_owner
from cobro.queues.people import unknown_assignee
from cobro.queues.routing import may_take
from cobro.types import utcnow

MAX_BULK = 500  # alerts in one bulk action (a page is 50)

__all__ = [
    "MAX_BULK",
    "ActionError",
    "acknowledge_alert",
    "acknowledge_alerts",
    "assign_alert",
    "assign_alerts",
    "complete_task",
    "set_owner",
    "take_task",
]


def _ids(raw: Iterable[int | str], what: str) -> list[int]:
    ids: list[int] = []
    for value in raw:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ActionError(f"{what} {value!r} is not a number") from None
        if not 1 <= number < 2**31:
            raise ActionError(f"no {what} {number}", 404)
        if number not in ids:
            ids.append(number)
    if not ids:
        raise ActionError(f"tick at least one {what}")
    if len(ids) > MAX_BULK:
        raise ActionError(f"at most {MAX_BULK} {what}s at once ({len(ids)} given)")
    return ids


def _alerts(s: Session, ids: Sequence[int]) -> list[Alert]:
    found = {a.id: a for a in s.scalars(select(Alert).where(Alert.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ActionError(f"no alert {', '.join(missing)}", 404)
    return [found[i] for i in ids]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def acknowledge_alerts(engine: Engine, alert_ids: Iterable[int | str], actor: str) -> str:
    """Acknowledge the open alerts among `alert_ids`; the others are left as they are and
    named. All unknown ids refuse the whole request; so does a request where none is open."""
    ids, who = _ids(alert_ids, "alert"), check_actor(actor)
    with transaction(engine) as s:
        alerts = _alerts(s, ids)
        todo = [a for a in alerts if a.state == "open"]
        if not todo:
            states = sorted({a.state for a in alerts})
            which = f"alert {ids[0]} is" if len(ids) == 1 else f"the {len(ids)} alerts are"
            raise ActionError(f"{which} already {' or '.join(states)}", 409)
        now = utcnow()
        for alert in todo:
            alert.state = "acknowledged"
            alert.acknowledged_by = who
            alert.acknowledged_at = now
            s.add(
                TimelineEvent(
                    customer_id=alert.customer_id,
                    at=now,
                    kind="alert.acknowledged",
                    actor=who,
                    summary=f"alert {alert.name} acknowledged: {alert.message}",
                    data={"alert_id": alert.id},
                )
            )
    skipped = [str(a.id) for a in alerts if a not in todo]
    if len(ids) == 1:
        return notice("alert_acknowledged", id=ids[0])
    keys = ["alerts_acknowledged"] + (["not_open"] if skipped else [])
    return notice(*keys, num=len(todo), ids=",".join(skipped))


def acknowledge_alert(engine: Engine, alert_id: int, actor: str) -> str:
    return acknowledge_alerts(engine, [alert_id], actor)


def _assignee(s: Session, raw: str | None) -> str | None:
    """A user who may be given work, or None (nobody)."""
    name = (raw or "").strip()
    if not name:
        return None
    why = unknown_assignee(s, name)
    if why is not None:
        raise ActionError(why)
    return name


def assign_alerts(
    engine: Engine, alert_ids: Iterable[int | str], assignee: str | None, actor: str
) -> str:
    """Give the alerts to `assignee` (a user of the picker), or to nobody when empty."""
    ids, who = _ids(alert_ids, "alert"), check_actor(actor)
    with transaction(engine) as s:
        to = _assignee(s, assignee)
        changed = 0
        for alert in _alerts(s, ids):
            if alert.assigned_to == to:
                continue
            changed += 1
            before, alert.assigned_to = alert.assigned_to, to
            s.add(
                TimelineEvent(
                    customer_id=alert.customer_id,
                    kind="alert.assigned",
                    actor=who,
                    summary=f"alert {alert.name} assigned to {to}"
                    if to
                    else f"alert {alert.name} unassigned (was {before})",
                    data={"alert_id": alert.id, "assignee": to, "before": before},
                )
            )
    same = len(ids) - changed
    if len(ids) == 1:
        if to:
            return notice("alert_assigned", id=ids[0], who=to)
        return notice("alert_unassigned", id=ids[0])
    keys = ["alerts_assigned" if to else "alerts_unassigned"] + (["already_were"] if same else [])
    # "num" counts the changed alerts; "already_were" names the others, by `same`
    said = notice(*keys, num=changed, who=to or "", same=same)
    return said


def assign_alert(engine: Engine, alert_id: int, assignee: str | None, actor: str) -> str:
    return assign_alerts(engine, [alert_id], assignee, actor)


def _task(s: Session, task_id: int) -> Task:
    task = s.get(Task, task_id)
    if task is None:
        raise ActionError(f"no task {task_id}", 404)
    return task


def take_task(engine: Engine, task_id: int, username: str) -> str:
    """The user takes a task waiting in a queue they may work (their role or one below;
    admins any): it becomes theirs."""
    with transaction(engine) as s:
        user = s.scalar(select(User).where(User.username == check_actor(username)))
        if user is None or not user.active:
            raise ActionError(f"no active user {username!r}: a task is taken by a user")
        task = _task(s, task_id)
        if task.status != "open":
            raise ActionError(f"task {task_id} is already {task.status}", 409)
        if task.assignee is not None:
            mine = task.assignee == user.username
            whose = "yours already" if mine else f"{task.assignee}'s"
            raise ActionError(f"task {task_id} is {whose}", 409)
        if not may_take(user.role, task.assignee_role):
            raise ActionError(
                f"task {task_id} waits in the {task.assignee_role} queue: a {user.role} "
                "cannot take it",
                403,
            )
        task.assignee = user.username
        s.add(
            TimelineEvent(
                customer_id=task.customer_id,
                kind="task.taken",
                actor=user.username,
                summary=f"task {task.kind} taken from the {task.assignee_role} queue: {task.note}",
                data={"task_id": task.id, "queue": task.assignee_role},
            )
        )
    return notice("task_taken", id=task_id)


def complete_task(engine: Engine, task_id: int, actor: str, note: str = "") -> str:
    who, text = check_actor(actor), check_text(note, "the note")
    with transaction(engine) as s:
        task = _task(s, task_id)
        if task.status != "open":
            raise ActionError(f"task {task_id} is already {task.status}", 409)
        task.status = "done"
        task.done_at = utcnow()
        s.add(
            TimelineEvent(
                customer_id=task.customer_id,
                kind="task.done",
                actor=who,
                summary=f"task {task.kind} done" + (f": {text}" if text else ""),
                data={"task_id": task.id},
            )
        )
    return notice("task_done", id=task_id)


def set_owner(engine: Engine, account: str, owner: str | None, actor: str) -> str:
    """Set (or, with an empty `owner`, clear) the customer's owner. Its open work follows
    (`cobro.queues.follow`): tasks waiting in a queue or held by the previous owner go to
    the new owner when the new owner may do them, else back to their queue; open alerts
    that were the previous owner's or nobody's go to the new owner."""
    who = check_actor(actor)
    with transaction(engine) as s:
        customer = s.scalar(select(Customer).where(Customer.account == account))
        if customer is None:
            raise ActionError(f"no customer {account!r}", 404)
        new, before = _assignee(s, owner), customer.owner
        if new == before:
            if new:
                return notice("owner_same", account=account, who=new)
            return notice("owner_none_same", account=account)
        customer.owner = new
        s.flush()
        moved = follow_owner(s.connection(), [(customer.id, before, new)])
        follows = (
            f"{_plural(moved.tasks, 'open task')} and {_plural(moved.alerts, 'open alert')} moved"
        )
        s.add(
            TimelineEvent(
                customer_id=customer.id,
                kind="customer.owner_changed",
                actor=who,
                summary=f"owner {before or '(none)'} → {new or '(none)'}; {follows}",
                data={"before": before, "owner": new, "tasks": moved.tasks, "alerts": moved.alerts},
            )
        )
    done = "owner_set" if new else "owner_cleared"
    return notice(
        done,
        "tasks_moved",
        "alerts_moved",
        account=account,
        who=new or "",
        tasks=moved.tasks,
        alerts=moved.alerts,
    )
