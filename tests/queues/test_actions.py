"""The queue actions on both databases: bulk acknowledge and assign, the user picker's
checks, owners and where tasks and alerts go, taking a task from a role queue."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.models import Alert, Customer, Task, TimelineEvent
from cobro.queues.actions import (
    ActionError,
    acknowledge_alerts,
    assign_alerts,
    complete_task,
    set_owner,
    take_task,
)
from cobro.queues.lists import AlertFilters, TaskFilters, alerts_inbox, task_counts, tasks_list
from cobro.queues.tasks import new_task, route_alert_rows
from cobro.users import create_user, deactivate

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
PW = "correct horse battery"


def _world(engine: Engine) -> dict[str, int]:
    for name, role in [
        ("maria", "collector"),
        ("luc", "collector"),
        ("ana", "credit_manager"),
        ("vic", "viewer"),
        ("boss", "admin"),
    ]:
        create_user(engine, name, PW, role, name.title())
    ids = {}
    with transaction(engine) as s:
        for account in ("A1", "A2"):
            c = Customer(
                account=account,
                name=f"{account} SA",
                country="FR",
                language="fr",
                timezone="Europe/Paris",
            )
            s.add(c)
            s.flush()
            ids[account] = c.id
        for i, (severity, name) in enumerate(
            [("critical", "became_critical"), ("warning", "grade_worsened"), ("info", "x")]
        ):
            s.add(
                Alert(
                    customer_id=ids["A1"],
                    name=name,
                    severity=severity,
                    message=f"m{i}",
                    dedup_key=f"k{i}",
                    ruleset_hash="h" * 64,
                )
            )
    return ids


def _alert_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(Alert.id).order_by(Alert.id)))


def test_bulk_acknowledge_and_assign(engine: Engine) -> None:
    _world(engine)
    a, b, c = _alert_ids(engine)
    assert acknowledge_alerts(engine, [a], "maria") == f"alert {a} acknowledged"
    said = acknowledge_alerts(engine, [a, b, c], "maria")
    assert said == f"2 alerts acknowledged ({a} not open)"
    with pytest.raises(ActionError, match="already acknowledged") as refused:
        acknowledge_alerts(engine, [a, b], "maria")
    assert refused.value.status == 409
    with pytest.raises(ActionError, match="no alert 999") as unknown:
        acknowledge_alerts(engine, [a, 999], "maria")
    assert unknown.value.status == 404
    with pytest.raises(ActionError, match="tick at least one"):
        acknowledge_alerts(engine, [], "maria")

    assert assign_alerts(engine, [a, b, c], "luc", "maria") == "3 alerts assigned to luc"
    assert (
        assign_alerts(engine, [a, b], "luc", "maria") == "0 alerts assigned to luc (2 already were)"
    )
    for who, why in [
        ("lux", "no user 'lux' (did you mean `luc`?)"),
        ("vic", "is a viewer"),
    ]:
        with pytest.raises(ActionError, match=re.escape(why)):
            assign_alerts(engine, [a], who, "maria")
    assert assign_alerts(engine, [a], None, "maria") == f"alert {a} unassigned"
    with engine.connect() as conn:
        kinds = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor).order_by(TimelineEvent.id)
        ).all()
    assert kinds.count(("alert.acknowledged", "maria")) == 3
    assert kinds.count(("alert.assigned", "maria")) == 4


def test_inbox_filters(engine: Engine) -> None:
    _world(engine)
    a, b, _c = _alert_ids(engine)
    assign_alerts(engine, [b], "luc", "boss")
    acknowledge_alerts(engine, [a], "boss")

    def names(**kw: str) -> list[str]:
        rows, total = alerts_inbox(engine, AlertFilters(**kw))
        assert total == len(rows)
        return [r.name for r in rows]

    assert names() == ["grade_worsened", "x"]
    assert names(state="") == ["became_critical", "grade_worsened", "x"]
    assert names(state="acknowledged") == ["became_critical"]
    assert names(severity="info") == ["x"]
    assert names(name="grade_worsened", assignee="luc") == ["grade_worsened"]
    assert names(assignee="none") == ["x"]
    assert names(risk_class="critical") == []
    rows, total = alerts_inbox(engine, AlertFilters(state=""), limit=2, offset=2)
    assert total == 3 and [r.name for r in rows] == ["x"]


def test_tasks_go_to_the_owner_else_wait_in_their_queue(engine: Engine) -> None:
    ids = _world(engine)
    assert "owned by maria" in set_owner(engine, "A1", "maria", "boss")
    with pytest.raises(ActionError, match="is a viewer"):
        set_owner(engine, "A1", "vic", "boss")
    with pytest.raises(ActionError, match="no customer 'NOPE'"):
        set_owner(engine, "NOPE", "maria", "boss")
    with transaction(engine) as s:
        for account, role, key in [
            ("A1", "collector", "t1"),  # maria's
            ("A1", "credit_manager", "t2"),  # not a collector's: the credit managers' queue
            ("A2", None, "t3"),  # no owner: the collectors' queue
        ]:
            s.add(new_task(s, ids[account], "call", key, role, None, key))
    with Session(engine) as s:
        tasks = {t.source_key: (t.assignee, t.assignee_role) for t in s.scalars(select(Task))}
    assert tasks == {
        "t1": ("maria", "collector"),
        "t2": (None, "credit_manager"),
        "t3": (None, "collector"),
    }

    def listed(view: str, user: str, role: str) -> list[str]:
        rows, _ = tasks_list(engine, TaskFilters(view=view, user=user, user_role=role))
        return [r.note for r in rows]

    assert listed("mine", "maria", "collector") == ["t1"]
    assert listed("queue", "luc", "collector") == ["t3"]
    assert listed("queue", "ana", "credit_manager") == ["t2", "t3"]
    assert task_counts(engine, "luc", "collector") == {"mine": 0, "queue": 1}

    t2, t3 = (_task_id(engine, k) for k in ("t2", "t3"))
    with pytest.raises(ActionError, match="credit_manager queue: a collector cannot") as no:
        take_task(engine, t2, "luc")
    assert no.value.status == 403
    assert take_task(engine, t3, "luc") == f"task {t3} is yours"
    with pytest.raises(ActionError, match="luc's") as taken:
        take_task(engine, t3, "maria")
    assert taken.value.status == 409
    with pytest.raises(ActionError, match="no active user 'cli'"):
        take_task(engine, t2, "cli")
    assert take_task(engine, t2, "ana") == f"task {t2} is yours"
    assert listed("mine", "luc", "collector") == ["t3"]
    assert complete_task(engine, t3, "luc") == f"task {t3} done"
    assert listed("done", "luc", "collector") == ["t3"]
    with engine.connect() as conn:
        taken_by = conn.scalars(
            select(TimelineEvent.actor).where(TimelineEvent.kind == "task.taken")
        ).all()
    assert sorted(taken_by) == ["ana", "luc"]


def _task_id(engine: Engine, key: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(select(Task.id).where(Task.source_key == key))
    assert found is not None
    return found


def test_work_follows_a_new_owner(engine: Engine) -> None:
    ids = _world(engine)
    with transaction(engine) as s:
        for role, key in [("collector", "q1"), ("credit_manager", "q2")]:
            s.add(new_task(s, ids["A1"], "call", key, role, None, key))
    said = set_owner(engine, "A1", "maria", "boss")
    assert said == "A1 is now owned by maria (1 open task and 3 open alerts moved)"
    assert _assignees(engine) == {"q1": "maria", "q2": None}
    said = set_owner(engine, "A1", "ana", "boss")  # a credit manager does both
    assert said == "A1 is now owned by ana (2 open tasks and 3 open alerts moved)"
    assert _assignees(engine) == {"q1": "ana", "q2": "ana"}
    assert "already owned by ana" in set_owner(engine, "A1", "ana", "boss")
    assert set_owner(engine, "A1", "", "boss").startswith("A1 has no owner now (2 open tasks")
    assert _assignees(engine) == {"q1": None, "q2": None}
    with engine.connect() as conn:
        assert set(conn.scalars(select(Alert.assigned_to))) == {None}
        summary = conn.scalars(
            select(TimelineEvent.summary).where(TimelineEvent.kind == "customer.owner_changed")
        ).all()
    assert summary[0] == "owner (none) → maria; 1 open task and 3 open alerts moved"


def _assignees(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Task.source_key, Task.assignee)).all())  # type: ignore[arg-type]


def test_new_alerts_go_to_the_active_owner(engine: Engine) -> None:
    ids = _world(engine)
    set_owner(engine, "A1", "maria", "boss")
    set_owner(engine, "A2", "luc", "boss")
    deactivate(engine, "luc")
    rows = [{"customer_id": ids["A1"]}, {"customer_id": ids["A2"]}]
    with transaction(engine) as s:
        route_alert_rows(s, rows)
        task = new_task(s, ids["A2"], "call", "n", "collector", datetime.now(UTC).date())
    assert [r["assigned_to"] for r in rows] == ["maria", None]
    assert task.assignee is None  # a deactivated owner gets no new work
