"""The dashboard's /readyz (the database answers) and /metrics (requests by route
template, never by account), with and without a metrics token."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine, create_engine
from starlette.testclient import TestClient

from cobro.settings import Settings
from cobro.web.app import create_app
from tests.helpers import free_port
from tests.helpers.web import logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _count(text: str, route: str, status: str = "200", method: str = "GET") -> float:
    pattern = (
        rf'^cobro_web_requests_total\{{method="{method}",route="{re.escape(route)}",'
        rf'status="{status}"\}} (\S+)$'
    )
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def test_ready_and_counted_by_route(engine: Engine, db_url: str) -> None:
    client = logged_in(engine, db_url)
    assert client.get("/readyz").json() == {"ready": True, "checks": {"database": True}}
    before = client.get("/metrics").text
    client.get("/customers")
    client.get("/customers/NOPE-1")
    client.get("/customers/NOPE-2")
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert _count(text, "/customers") == _count(before, "/customers") + 1
    file_route = "/customers/{account}"
    assert _count(text, file_route, "404") == _count(before, file_route, "404") + 2
    assert "NOPE-1" not in text  # a label per route, not per account
    assert "cobro_web_request_seconds_bucket" in text


def test_not_ready_without_its_database(db_url: str) -> None:
    dead = create_engine(f"postgresql+psycopg://cobro@127.0.0.1:{free_port()}/none")
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), dead))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["ready"] is False
    assert "OperationalError" in answer.json()["checks"]["database"]
    assert client.get("/healthz").status_code == 200  # alive all the same


def test_metrics_want_the_token_when_one_is_set(engine: Engine, db_url: str) -> None:
    settings = Settings(database_url=db_url, web_secret_key="k" * 32, metrics_token="s3cret")
    client = TestClient(create_app(settings, engine))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "cobro_web_requests_total" in ok.text
