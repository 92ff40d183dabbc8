"""The work queues through the real app, on both databases: the alerts inbox filtered and
paginated, bulk acknowledge and bulk assign from one form (CSRF), the user picker, a
customer's owner set from its file, "my customers", taking a task from a role queue, and the
same actions through the API."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.models import Alert, Customer, Task, TimelineEvent
from cobro.queues.tasks import new_task
from cobro.settings import Settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers.web import csrf_of, logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
PW = "correct horse battery"


def _seed(engine: Engine, alerts: int = 60) -> None:
    create_user(engine, "maria", PW, "collector", "María López")
    create_user(engine, "ana", PW, "credit_manager", "Ana")
    create_user(engine, "vic", PW, "viewer")
    with transaction(engine) as s:
        for account in ("Q1", "Q2"):
            s.add(
                Customer(
                    account=account,
                    name=f"{account} <b>SA</b>",
                    country="FR",
                    language="fr",
                    timezone="Europe/Paris",
                )
            )
        s.flush()
        ids = dict(s.execute(select(Customer.account, Customer.id)).all())
        for i in range(alerts):
            s.add(
                Alert(
                    customer_id=ids["Q1" if i % 2 else "Q2"],
                    name="large_overdue" if i % 3 else "became_critical",
                    severity="warning" if i % 3 else "critical",
                    message=f"a long message number {i} " + "x" * 200,
                    dedup_key=f"k{i}",
                    ruleset_hash="h" * 64,
                )
            )
        s.add(new_task(s, ids["Q1"], "call", "call Q1", "collector", None, "t1"))
        s.add(new_task(s, ids["Q2"], "call", "formal notice", "credit_manager", None, "t2"))


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def test_alerts_inbox_filters_pages_and_bulk_actions(engine: Engine, db_url: str) -> None:
    _seed(engine)
    client = logged_in(engine, db_url, "collector")
    page = client.get("/alerts")
    assert page.status_code == 200
    assert len(_ids(page.text)) == 50 and "1–50 of 60" in page.text and 'id="next"' in page.text
    assert '<option value="maria">María López (maria)</option>' in page.text  # the picker
    assert 'value="vic"' not in page.text  # a viewer is given no work
    second = client.get("/alerts?state=open&page=2")
    assert len(_ids(second.text)) == 10
    critical = client.get("/alerts", params={"severity": "critical", "name": "became_critical"})
    picked = _ids(critical.text)
    assert len(picked) == 20 and "1–20 of 20" in critical.text

    token = csrf_of(client, "/alerts")
    done = client.post(
        "/alerts/bulk",
        data={
            "csrf_token": token,
            "action": "acknowledge",
            "ids": picked,
            "back": "state=open&severity=critical",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/alerts?state=open&severity=critical&notice=")
    assert "20 alerts acknowledged" in client.get(done.headers["location"]).text
    assert "0 of" not in client.get("/alerts?severity=critical").text
    acked = client.get("/alerts", params={"state": "acknowledged"})
    assert "1–20 of 20" in acked.text

    warn = _ids(client.get("/alerts?severity=warning").text)[:5]
    form = {"csrf_token": token, "action": "assign", "ids": warn, "assignee": "maria"}
    assert "5 alerts assigned to maria" in client.post("/alerts/bulk", data=form).text
    mine = client.get("/alerts", params={"assignee": "maria"})
    assert "1–5 of 5" in mine.text
    refused = client.post("/alerts/bulk", data={**form, "assignee": "vic"})
    assert "not done: user &#39;vic&#39; is a viewer" in refused.text
    unchosen = client.post("/alerts/bulk", data={**form, "assignee": ""})
    assert "not done: choose who the alerts go to" in unchosen.text
    nobody = client.post("/alerts/bulk", data={**form, "assignee": "none"})
    assert "5 alerts unassigned" in nobody.text
    forged = client.post("/alerts/bulk", data={"action": "acknowledge", "ids": warn})
    assert forged.status_code == 403
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(Alert.id).where(Alert.acknowledged_by.is_(None), Alert.id.in_(picked))
            )
            is None
        )
        actors = set(
            conn.scalars(select(TimelineEvent.actor).where(TimelineEvent.kind.like("alert.%")))
        )
    assert actors == {"collector1"}


def test_owner_from_the_customer_file_and_my_customers(engine: Engine, db_url: str) -> None:
    _seed(engine, alerts=2)
    client = logged_in(engine, db_url, "collector")
    file = client.get("/customers/Q1")
    assert 'id="owner-name">nobody<' in file.text and 'id="owner-select"' in file.text
    token = csrf_of(client, "/customers/Q1")
    set_ = client.post("/customers/Q1/owner", data={"csrf_token": token, "owner": "collector1"})
    assert "Q1 is now owned by collector1 (1 open task and 1 open alert moved)" in set_.text
    assert 'id="owner-name">collector1<' in set_.text
    mine = client.get("/customers?owner=collector1")
    assert ">Q1<" in mine.text and ">Q2<" not in mine.text and "(1)" in mine.text
    assert ">Q2<" in client.get("/customers?owner=none").text
    tasks = client.get("/tasks")  # my tasks by default
    assert "call Q1" in tasks.text and "My tasks (1)" in tasks.text
    cleared = client.post("/customers/Q1/owner", data={"csrf_token": token, "owner": ""})
    assert "Q1 has no owner now" in cleared.text
    bad = client.post("/customers/Q1/owner", data={"csrf_token": token, "owner": "nobody"})
    assert "not done: no user &#39;nobody&#39;" in bad.text
    viewer = logged_in(engine, db_url, "viewer")
    assert 'id="owner-select"' not in viewer.get("/customers/Q1").text
    vt = csrf_of(viewer, "/customers/Q1")
    assert (
        viewer.post("/customers/Q1/owner", data={"csrf_token": vt, "owner": "maria"}).status_code
        == 403
    )


def test_take_a_task_from_a_role_queue(engine: Engine, db_url: str) -> None:
    _seed(engine, alerts=0)
    client = logged_in(engine, db_url, "collector")
    queue = client.get("/tasks?view=queue")
    assert "To take (1)" in queue.text and "call Q1" in queue.text
    assert "formal notice" not in queue.text  # the credit managers' queue
    t1 = _task(engine, "t1")
    assert f'id="take-{t1}"' in queue.text
    token = csrf_of(client, "/tasks?view=queue")
    taken = client.post(f"/tasks/{t1}/take", data={"csrf_token": token, "back": "view=queue"})
    assert f"task {t1} is yours" in taken.text and "To take (0)" in taken.text
    assert "call Q1" in client.get("/tasks?view=mine").text
    t2 = _task(engine, "t2")
    refused = client.post(f"/tasks/{t2}/take", data={"csrf_token": token})
    assert "not done: task" in refused.text and "a collector cannot take it" in refused.text
    # ana (a credit manager) takes the other one from the customer's file
    ana = TestClient(client.app)
    ana.get("/login")
    ana.post(
        "/login",
        data={"username": "ana", "password": PW, "csrf_token": ana.cookies.get("cobro_login_csrf")},
    )
    file = ana.get("/customers/Q2")
    assert f'id="take-{t2}"' in file.text
    took = ana.post(
        f"/tasks/{t2}/take", data={"csrf_token": csrf_of(ana, "/customers/Q2"), "account": "Q2"}
    )
    assert took.url.path == "/customers/Q2" and f"task {t2} is yours" in took.text
    assert f'id="take-{t2}"' not in took.text
    every = client.get("/tasks?view=open&assignee=none")
    assert "formal notice" not in every.text  # ana's now
    done = client.post(f"/tasks/{t1}/done", data={"csrf_token": token, "back": "view=mine"})
    assert f"task {t1} done" in done.text
    assert "call Q1" in client.get("/tasks?view=done").text
    with engine.connect() as conn:
        assert conn.scalar(select(Task.assignee).where(Task.id == t1)) == "collector1"


def _task(engine: Engine, key: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(select(Task.id).where(Task.source_key == key))
    assert found is not None
    return found


def test_the_same_actions_through_the_api(engine: Engine, db_url: str) -> None:
    _seed(engine, alerts=6)
    app = create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine)
    api = TestClient(
        app,
        headers={"Authorization": f"Bearer {create_api_token(engine, 'ana', 't', scope='act')}"},
    )
    page = api.get("/api/alerts", params={"severity": "critical", "limit": 1}).json()
    assert page["total"] == 2 and len(page["alerts"]) == 1
    ids = [a["id"] for a in api.get("/api/alerts").json()["alerts"]]
    said = api.post("/api/alerts/acknowledge", json={"ids": ids[:3]})
    assert said.status_code == 200 and said.json()["message"] == "3 alerts acknowledged"
    assert api.post("/api/alerts/acknowledge", json={"ids": ids[:3]}).status_code == 409
    assert api.post("/api/alerts/acknowledge", json={"ids": []}).status_code == 422
    assigned = api.post("/api/alerts/assign", json={"ids": ids[3:], "assignee": "maria"})
    assert assigned.json()["message"] == "3 alerts assigned to maria"
    assert api.get("/api/alerts", params={"assignee": "maria"}).json()["total"] == 3
    assert api.post("/api/alerts/assign", json={"ids": ids, "assignee": "zz"}).status_code == 422

    owner = api.post("/api/customers/Q2/owner", json={"owner": "ana"})
    assert owner.status_code == 200 and "owned by ana" in owner.json()["message"]
    assert api.get("/api/customers/Q2").json()["owner"] == "ana"
    mine = api.get("/api/customers", params={"owner": "me"}).json()
    assert [c["account"] for c in mine["customers"]] == ["Q2"] and mine["customers"][0][
        "owner"
    ] == "ana"
    assert [t["note"] for t in api.get("/api/tasks", params={"view": "mine"}).json()] == [
        "formal notice"
    ]
    queue = api.get("/api/tasks", params={"view": "queue"}).json()
    assert [t["note"] for t in queue] == ["call Q1"]  # a credit manager takes collectors' too
    took = api.post(f"/api/tasks/{queue[0]['id']}/take")
    assert took.status_code == 200 and took.json()["message"].endswith("is yours")
    assert api.post(f"/api/tasks/{queue[0]['id']}/take").status_code == 409
    assert api.get("/api/tasks", params={"view": "queue"}).json() == []
