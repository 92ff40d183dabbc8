"""The "Insurer obligations" page, its API (`GET /api/insurer/obligations`), the customer
file's obligations and the portfolio KPIs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.kpis import compute_kpis
from cobro.settings import Settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers.web import logged_in
from tests.insurers.test_obligations_sql import seed

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

AS_OF = "2026-03-20"


def api(engine: Engine) -> TestClient:
    create_user(engine, "viewer", "correct horse battery", "viewer")
    token = create_api_token(engine, "viewer", "tests")
    app = create_app(Settings(database_url=str(engine.url), web_secret_key="k" * 32), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_api(engine: Engine) -> None:
    seed(engine)
    client = api(engine)
    data = client.get("/api/insurer/obligations", params={"as_of": AS_OF}).json()
    assert [o["invoice"] for o in data["obligations"]] == ["A1", "A2", "B1", "C1"]
    b1 = data["obligations"][2]
    assert (b1["declare_by"], b1["status"], b1["days_to_declaration_deadline"]) == (
        "2026-03-27",
        "at_risk",
        7,
    )
    assert data["totals"]["EUR"]["deadlines_missed"] == 0
    week = client.get("/api/insurer/obligations", params={"as_of": AS_OF, "within_days": 7})
    assert [o["invoice"] for o in week.json()["obligations"]] == ["B1"]
    one = client.get("/api/insurer/obligations", params={"as_of": AS_OF, "account": "A"})
    assert [o["invoice"] for o in one.json()["obligations"]] == ["A1", "A2"]
    assert client.get("/api/insurer/obligations", params={"account": "NOPE"}).status_code == 404
    assert client.get("/api/insurer/obligations", params={"within_days": -1}).status_code == 422
    file = client.get("/api/customers/A").json()
    assert [o["invoice"] for o in file["obligations"]] == ["A1", "A2"]


def test_kpis_deadlines_missed_and_at_risk(engine: Engine) -> None:
    seed(engine)
    eur = compute_kpis(engine, date(2026, 3, 20), obligations=True).currencies["EUR"]
    assert eur.insurer_deadlines_missed == 0 and eur.amount_at_risk_of_losing_cover == 800
    later = compute_kpis(engine, date(2026, 3, 28), obligations=True).currencies["EUR"]
    assert later.insurer_deadlines_missed == 1  # B1 was to be declared by 27 March
    assert later.insurer_deadlines_missed_amount == 800
    assert compute_kpis(engine, date(2026, 3, 28)).currencies["EUR"].insurer_deadlines_missed == 0


def test_pages(engine: Engine, db_url: str) -> None:
    seed(engine)
    client = logged_in(engine, db_url, "viewer")
    page = client.get("/insurer/obligations", params={"as_of": AS_OF})
    assert page.status_code == 200
    assert "Insurer obligations" in page.text and "2026-03-27" in page.text
    assert "declare soon" in page.text and "B2" not in page.text
    week = client.get("/insurer/obligations", params={"as_of": AS_OF, "within_days": "7"})
    assert "<td>B1</td>" in week.text and "<td>A1</td>" not in week.text
    customer = client.get("/customers/A")
    assert "Insurer obligations" in customer.text and "(approval)" in customer.text
    assert "Insurer deadlines missed" in client.get("/").text
