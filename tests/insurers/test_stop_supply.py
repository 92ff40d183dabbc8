"""The stop-supply list: cover withdrawn, refused or suspended, or the policy's stop-supply
date passed; its page, API and CSV, and the alert when a customer enters it (SQLite and
PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from cobro.db import transaction
from cobro.insurers.obligations_sql import ObligationRules
from cobro.insurers.stop_supply_sql import iter_stop_supply
from cobro.rules.classify import classify_portfolio
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES
from tests.helpers.exposure import add_cover, add_customer, add_invoice
from tests.helpers.web import logged_in
from tests.insurers.test_obligations_sql import seed
from tests.web.test_obligations import api

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

AS_OF = date(2026, 4, 2)  # A's stop-supply date (oldest due 31 Jan + 60 days) was 1 April


def seed_more(engine: Engine) -> None:
    seed(engine)
    with transaction(engine) as s:
        w = add_customer(s, "W")
        add_cover(s, w, "CW1", "5012001", "withdrawn", "0", decision_date=date(2026, 3, 1))
        add_invoice(s, w, "W1", date(2026, 4, 30), "500", "500")
        r = add_customer(s, "R", country="US")
        add_cover(s, r, "CR1", "5012002", "refused", "0", decision_date=date(2026, 3, 2))
        u = add_customer(s, "U")
        add_cover(s, u, "CU1", "5012001", "suspended", "1000", decision_date=date(2026, 3, 3))


def test_the_list(engine: Engine) -> None:
    seed_more(engine)
    with engine.connect() as conn:
        got = {
            e.account: e
            for e in iter_stop_supply(conn, AS_OF, ObligationRules.of(Ruleset.load(RULES)))
        }
    assert sorted(got) == ["A", "B", "R", "U", "W"]
    # B: USD policy, due 10 Feb, MEP to 12 Mar, stop supplies 15 days later
    assert got["B"].reasons == ("policy stop-supply date 2026-03-27 passed",)
    assert got["A"].reasons == ("policy stop-supply date 2026-04-01 passed",)
    assert got["A"].since == date(2026, 4, 1)
    assert got["W"].reasons == ("cover withdrawn",) and got["R"].reasons == ("cover refused",)
    assert got["U"].reasons == ("cover withdrawn",)  # suspended: no cover while it lasts


def test_alert_when_a_customer_enters_the_list(engine: Engine) -> None:
    seed_more(engine)
    report = classify_portfolio(
        engine, Ruleset.load(RULES), now=datetime(2026, 4, 2, 8, tzinfo=UTC), write=False
    )
    entered = sorted(a.account for a in report.alerts if a.name == "entered_stop_supply_list")
    assert entered == ["A", "B", "R", "U", "W"]


def test_api_csv_and_page(engine: Engine, db_url: str) -> None:
    seed_more(engine)
    client = api(engine)
    data = client.get("/api/insurer/stop-supply", params={"as_of": AS_OF}).json()
    assert [e["account"] for e in data] == ["A", "B", "W", "R", "U"]
    exported = client.get("/api/insurer/stop-supply.csv", params={"as_of": AS_OF})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["account", "name", "reasons"] and rows[1][:2] == ["A", "Name A"]
    page = logged_in(engine, db_url, "viewer").get("/insurer/stop-supply", params={"as_of": AS_OF})
    assert page.status_code == 200 and "cover refused" in page.text and "Download CSV" in page.text
