"""Declarations and claims on the customer file, the "Insurer obligations" page and the API
(`GET /api/insurer/claims`, `GET /api/insurer/declarations`, `POST /api/invoices/{n}/claim`,
`POST /api/insurer/declarations/{id}/approve`), on SQLite and PostgreSQL. No Temporal here:
each action is recorded and says the workflow could not be told."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers import declarations_sql
from cobro.models import InsurerClaim, InsurerDeclaration
from cobro.settings import Settings
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app
from tests.helpers import free_port
from tests.insurers.test_claims_sql import _declared
from tests.insurers.test_declarations_sql import TODAY, _customer, _seed

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, web_secret_key="k" * 32,
                    temporal_address=f"127.0.0.1:{free_port()}")  # fmt: skip


async def _seeded(engine: Engine) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        with transaction(engine) as s:
            declarations_sql.queue_overdues(s, _customer(s, "E"), ["E1"], TODAY)


def _login(engine: Engine, db_url: str) -> TestClient:
    create_user(engine, "col", "correct horse battery", "collector")
    client = TestClient(create_app(_settings(db_url), engine))
    form = client.get("/login")
    token = client.cookies.get("cobro_login_csrf")
    assert token, form.text
    client.post("/login", data={"username": "col", "password": "correct horse battery",
                                "csrf_token": token}, follow_redirects=False)  # fmt: skip
    return client


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_pages(engine: Engine, db_url: str, use_database: str) -> None:
    await _seeded(engine)
    client = _login(engine, db_url)
    page = client.get("/customers/A").text
    assert "Insurer declarations" in page and "registered" in page
    assert 'id="claim-form"' in page and "<option>A1</option>" in page
    done = client.post("/customers/A/claim", data={"invoice": "A1", "csrf_token": _csrf(page)},
                       follow_redirects=True)  # fmt: skip
    assert "claim for A1 (800 USD) queued for the insurer" in done.text
    assert "Insurer claims" in done.text and 'id="claim-form"' not in done.text
    with engine.connect() as conn:
        assert conn.scalar(select(InsurerClaim.status)) == "queued"

    listed = client.get("/insurer/obligations").text
    assert "Declarations waiting" in listed and "E1" in listed and "<td>A1</td>" in listed
    e1 = re.search(r"/customers/E/declarations/(\d+)/approve", listed)
    assert e1
    approved = client.post(e1.group(0), data={"csrf_token": _csrf(listed)},
                           follow_redirects=True)  # fmt: skip
    assert "overdue declaration (OVD) of E1 approved" in approved.text
    with engine.connect() as conn:
        assert conn.scalar(
            select(InsurerDeclaration.approved_by).where(InsurerDeclaration.invoice_number == "E1")
        ) == "col"  # fmt: skip


async def test_api(engine: Engine, db_url: str, use_database: str) -> None:
    await _seeded(engine)
    create_user(engine, "col", "correct horse battery", "collector")
    token = create_api_token(engine, "col", "tests", scope="act")
    client = TestClient(create_app(_settings(db_url), engine),
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    pending = client.get("/api/insurer/declarations", params={"status": "pending"}).json()
    assert [(d["invoice"], d["status"]) for d in pending] == [("E1", "awaiting_approval")]
    assert client.get("/api/insurer/declarations", params={"status": "x"}).status_code == 422
    refused = client.post("/api/invoices/U1/claim")
    assert refused.status_code == 409 and "not insured" in refused.json()["detail"]
    done = client.post("/api/invoices/A1/claim")
    assert done.status_code == 200 and "queued for the insurer" in done.json()["message"]
    assert client.post("/api/invoices/A1/claim").status_code == 409  # once
    approve = client.post(f"/api/insurer/declarations/{pending[0]['id']}/approve")
    assert approve.status_code == 200, approve.text
    assert client.post("/api/insurer/declarations/999999/approve").status_code == 404
    report = client.get("/api/insurer/claims").json()
    assert [c["status"] for c in report["claims"]] == ["queued"]
    assert report["totals"]["USD"]["claimed"] == "800.00"
    file = client.get("/api/customers/A").json()
    assert [c["invoice"] for c in file["claims"]] == ["A1"]
    assert [d["invoice"] for d in file["declarations"]] == ["A1"]
