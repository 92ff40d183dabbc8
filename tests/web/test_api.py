"""The JSON API (what scripts use): API tokens, every read, the CSV exports, the collector
actions with who did them, CSRF for cookie sessions; and a property-based run over the
OpenAPI spec (schemathesis) that must find no server error."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from cobro.db import default_engine, transaction
from cobro.devkit.demo import load_demo
from cobro.models import Alert, Customer, Task, TimelineEvent
from cobro.settings import Settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

AS_OF = date(2026, 6, 30)


@pytest.fixture
def demo(use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The demo portfolio, one alert and one task, users of each role."""
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")  # no Temporal: still recorded
    load_demo(tmp_path / "demo", AS_OF)
    engine = default_engine()
    with transaction(engine) as s:
        customer = s.scalar(select(Customer).where(Customer.account == "C00001"))
        assert customer is not None
        s.add(
            Alert(
                customer_id=customer.id,
                name="limit_almost_used",
                severity="warning",
                message="uses 95 % of its cover",
                dedup_key="t1",
                ruleset_hash="x" * 64,
            )
        )
        s.add(Task(customer_id=customer.id, kind="call", note="call the customer"))
    for role in ("viewer", "collector", "admin"):
        create_user(engine, role, "correct horse battery", role)
    return engine


def api(engine: Engine, role: str = "collector") -> TestClient:
    token = create_api_token(engine, role, "tests", scope="act")
    app = create_app(Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_reads_and_csv(demo: Engine) -> None:
    client = api(demo, "viewer")
    assert client.get("/api/portfolio", params={"as_of": AS_OF}).json()["customers"] == 300
    kpis = client.get("/api/kpis", params={"as_of": AS_OF}).json()
    assert "EUR" in kpis["currencies"]
    page = client.get("/api/customers", params={"country": "FR", "per_page": 10}).json()
    assert page["total"] > 10 and len(page["customers"]) == 10
    assert all(c["country"] == "FR" for c in page["customers"])
    file = client.get("/api/customers/C00001").json()
    assert file["account"] == "C00001" and file["invoices"]
    assert client.get("/api/customers/NOPE").status_code == 404
    alerts = client.get("/api/alerts").json()
    assert alerts["total"] == 1 and alerts["alerts"][0]["account"] == "C00001"
    assert client.get("/api/tasks").json()[0]["kind"] == "call"
    forecast = client.get("/api/forecast", params={"as_of": AS_OF}).json()
    assert len(forecast["week_starts"]) == 8 and forecast["by_currency"]
    assert isinstance(client.get("/api/reports/limit-review").json(), list)

    exported = client.get("/api/customers.csv", params={"segment": "retail"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows and all(r["segment"] == "retail" for r in rows)
    assert list(rows[0]) == [
        "account",
        "name",
        "country",
        "segment",
        "risk_class",
        "currency",
        "outstanding",
        "total_limit",
        "over_by",
    ]
    review = client.get("/api/reports/limit-review.csv")
    header = review.content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("account,name,segment,currency,outstanding,total_limit,usage,over_by")


def test_actions_with_who_did_them(demo: Engine) -> None:
    client = api(demo, "collector")
    until = (date.today() + timedelta(days=10)).isoformat()
    paused = client.post("/api/customers/C00001/pause", json={"reason": "disputed invoice"})
    assert paused.status_code == 200 and paused.json()["message"].startswith("dunning paused")
    promised = client.post(
        "/api/customers/C00002/promise",
        json={"until": until, "amount": "1200.50", "currency": "EUR"},
    )
    assert promised.status_code == 200, promised.text
    alert_id = client.get("/api/alerts").json()["alerts"][0]["id"]
    assert client.post(f"/api/alerts/{alert_id}/acknowledge").status_code == 200
    assert client.post(f"/api/alerts/{alert_id}/acknowledge").status_code == 409
    assigned = client.post(f"/api/alerts/{alert_id}/assign", json={"assignee": "admin"})
    assert assigned.status_code == 200
    task_id = client.get("/api/tasks").json()[0]["id"]
    assert client.post(f"/api/tasks/{task_id}/done").status_code == 200
    with demo.connect() as conn:
        events = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor).where(
                TimelineEvent.kind.in_(
                    [
                        "dunning.paused",
                        "promise.recorded",
                        "alert.acknowledged",
                        "alert.assigned",
                        "task.done",
                    ]
                )
            )
        ).all()
    assert sorted(events) == sorted(
        (kind, "collector")
        for kind in (
            "dunning.paused",
            "promise.recorded",
            "alert.acknowledged",
            "alert.assigned",
            "task.done",
        )
    )
    bad = client.post("/api/customers/C00001/promise", json={"until": "2001-01-01"})
    assert bad.status_code == 422 and "past" in bad.text


def test_viewer_token_cannot_act_and_cookie_writes_need_csrf(demo: Engine) -> None:
    viewer = api(demo, "viewer")
    assert viewer.post("/api/customers/C00001/pause", json={"reason": "x"}).status_code == 403
    app = create_app(Settings(database_url=str(demo.url), web_secret_key="k" * 32), demo)
    browser = TestClient(app)
    browser.get("/login")
    browser.post(
        "/login",
        data={
            "username": "collector",
            "password": "correct horse battery",
            "csrf_token": browser.cookies.get("cobro_login_csrf"),
        },
    )
    assert browser.get("/api/alerts").status_code == 200
    forged = browser.post("/api/customers/C00001/pause", json={"reason": "forged"})
    assert forged.status_code == 403
    assert client_without_token(app).get("/api/alerts").status_code == 401


def client_without_token(app: object) -> TestClient:
    return TestClient(app)  # type: ignore[arg-type]


@pytest.fixture
def admin_token(demo: Engine) -> str:
    return create_api_token(demo, "admin", "schemathesis", scope="act")


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_no_server_error_anywhere_in_the_api(demo: Engine, admin_token: str) -> None:
    """Every operation of the OpenAPI description, fed hypothesis-generated parameters and
    bodies (valid and invalid), answers without a 5xx."""
    app = create_app(Settings(database_url=str(demo.url), web_secret_key="k" * 32), demo)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    headers = {"Authorization": f"Bearer {admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                case.query,
                case.body,
                response.text[:500],
            )

        no_server_error()

    # the edges random generation rarely reaches
    client = TestClient(app, headers=headers, raise_server_exceptions=False)
    edges = ["0001-01-01", "9999-12-31", "1899-12-31", "3000-01-01"]
    for path in ("/api/kpis", "/api/portfolio", "/api/forecast", "/api/reports/limit-review"):
        for day in edges:
            assert client.get(path, params={"as_of": day}).status_code == 422, (path, day)
    assert client.get("/api/customers", params={"country": "\x00"}).status_code == 400
    assert client.get("/api/customers/%00").status_code == 400
    nul = client.post("/api/customers/C00001/pause", json={"reason": "a\x00b"})
    assert nul.status_code == 422
    for big in (2**31, 2**63):
        assert client.post(f"/api/tasks/{big}/done").status_code == 422
    for body in ({"until": "9999-12-31", "amount": "1e30"}, {"until": "0001-01-01"}):
        assert client.post("/api/customers/C00001/promise", json=body).status_code == 422
