"""The loopback insurer simulator on its own: deterministic portfolio, valid-looking national
ids, day-to-day changes, the token and bearer rules, the admin endpoints (raw HTTP)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.portfolio import (
    GeneratedPortfolio,
    french_vat,
    luhn_check_digit,
    luhn_valid,
)
from cobro.devkit.insurer.server import InsurerSimulator


def test_luhn_and_vat_keys_match_known_values() -> None:
    # 732 829 320 is a published SIREN (Luhn-valid); its VAT key is 44.
    assert luhn_valid("732829320")
    assert not luhn_valid("732829321")
    assert luhn_check_digit("73282932") == 0
    assert french_vat("732829320") == "FR44732829320"


def test_same_seed_same_portfolio_other_seed_other_portfolio() -> None:
    start = InsurerSimulator(buyers=300, seed=3).start_date
    a = GeneratedPortfolio.generate(300, 3, start)
    b = GeneratedPortfolio.generate(300, 3, start)
    c = GeneratedPortfolio.generate(300, 4, start)
    assert [x.to_json() for x in a.covers.values()] == [x.to_json() for x in b.covers.values()]
    assert [x.to_json() for x in a.covers.values()] != [x.to_json() for x in c.covers.values()]


def test_portfolio_has_the_variety_the_sync_needs() -> None:
    sim = InsurerSimulator(buyers=1000, seed=11)
    buyers = sim.portfolio.buyers
    covers = list(sim.portfolio.covers.values())
    french = [b for b in buyers if b.country == "FR"]
    assert len(french) > 500
    assert all(b.siren and luhn_valid(b.siren) and b.vat == french_vat(b.siren) for b in french)
    assert len({b.siren for b in french}) == len(french)
    dunses = [b.duns for b in buyers if b.duns]
    assert len(set(dunses)) == len(dunses) and all(len(d) == 9 for d in dunses)
    assert {b.grade for b in buyers} == set(range(1, 11))
    statuses = Counter(c.status for c in covers)
    assert {"ACTIVE", "REDUCED", "WITHDRAWN", "EXPIRED", "REFUSED"} <= set(statuses)
    assert {c.cover_type for c in covers} == {"PERMANENT", "TEMPORARY"}
    assert {c.nominative for c in covers} == {True, False}
    assert {c.policy.currency for c in covers} == {"EUR", "USD"}
    soon = sim.today + timedelta(days=30)
    expiring = [c for c in covers if c.expiry_date and sim.today <= c.expiry_date <= soon]
    assert expiring, "some temporary covers expire within a month"
    assert len(covers) > len({c.buyer.company_id for c in covers}), "some buyers on two policies"
    assert all(c.updated_at < sim.now for c in covers)


def test_advancing_days_is_deterministic_and_stamps_changes_after_now() -> None:
    a = InsurerSimulator(buyers=500, seed=5)
    b = InsurerSimulator(buyers=500, seed=5)
    before = a.now
    changed = a.advance_day()
    assert changed == b.advance_day()
    assert changed, "a day changes something in 500 buyers"
    assert changed == a.changed_since(before)
    assert a.day == 1 and a.today == a.start_date + timedelta(days=1)
    # temporary covers whose expiry date has passed are now EXPIRED
    for cover in a.portfolio.covers.values():
        if cover.expiry_date and cover.expiry_date < a.today and cover.status != "REFUSED":
            assert cover.status in ("EXPIRED", "WITHDRAWN")


async def test_token_endpoint_and_bearer_rules_over_http() -> None:
    async with (
        InsurerSimulator(buyers=20, seed=1, api_key="k-123") as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        bad = await http.post("/v1/idp/oauth2/authorize", json={"apiKey": "nope"})
        assert bad.status_code == 401
        ok = await http.post("/v1/idp/oauth2/authorize", json={"apiKey": "k-123"})
        assert ok.status_code == 200
        token = ok.json()
        assert token["expires_in"] == 3600 and token["access_token"]
        body = {"pagination": {"page": 1, "pageSize": 5, "isTotalRequired": True}}
        anonymous = await http.post("/riskinfo/v3/covers/search", json=body)
        assert anonymous.status_code == 401
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        page = await http.post("/riskinfo/v3/covers/search", json=body, headers=auth)
        assert page.status_code == 200
        data = page.json()
        assert len(data["items"]) == 5
        assert data["pagination"]["totalItems"] == len(sim.portfolio.covers)
        no_total = {"pagination": {"page": 1, "pageSize": 5}}
        page = await http.post("/riskinfo/v3/covers/search", json=no_total, headers=auth)
        assert "totalItems" not in page.json()["pagination"]
        too_big = {"pagination": {"page": 1, "pageSize": 10_001}}
        page = await http.post("/riskinfo/v3/covers/search", json=too_big, headers=auth)
        assert page.status_code == 400
        sim.expire_tokens()
        page = await http.post("/riskinfo/v3/covers/search", json=body, headers=auth)
        assert page.status_code == 401
        assert [r.status for r in sim.requests_to("token")] == [401, 200]


async def test_admin_endpoints_set_faults_and_advance_the_day() -> None:
    async with (
        InsurerSimulator(buyers=50, seed=2) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        state = (await http.get("/_sim/state")).json()
        assert state["day"] == 0 and state["buyers"] == 50
        answer = await http.post("/_sim/faults", json={"malformed_records": 3, "seed": 9})
        assert answer.status_code == 200
        assert sim.faults == Faults(malformed_records=3, seed=9)
        assert len(sim.malformed_cover_ids) == 3
        assert (await http.post("/_sim/faults", json={"server_error_rate": 7})).status_code == 400
        moved = (await http.post("/_sim/advance", json={"days": 2})).json()
        assert moved["day"] == 2 and sim.day == 2


def test_inject_refuses_unknown_endpoints() -> None:
    sim = InsurerSimulator(buyers=5)
    with pytest.raises(ValueError, match="unknown endpoint"):
        sim.inject("covers", 500)


async def test_sync_loss_faults_over_raw_http() -> None:
    """Named malformed records served corrupted N times then valid, a page's JSON cut midway
    (still HTTP 200), records repeated in their page and atop the next one."""
    async with (
        InsurerSimulator(buyers=30, seed=4) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        token = (await http.post("/v1/idp/oauth2/authorize", json={"apiKey": sim.api_key})).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        order = list(sim.portfolio.covers)
        bad, twice, across = order[1], order[2], order[4]

        async def page(n: int) -> httpx.Response:
            body = {"pagination": {"page": n, "pageSize": 5, "isTotalRequired": True}}
            return await http.post("/riskinfo/v3/covers/search", json=body, headers=auth)

        sim.faults = Faults(
            malformed_ids={bad: "amount"},
            malformed_times=1,
            cut_json_pages=[1],
            repeat_in_page=[twice],
            repeat_on_next_page=[across],
        )
        cut = await page(1)
        assert cut.status_code == 200 and cut.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            cut.json()
        first = [r.get("coverId") for r in (await page(1)).json()["items"]]
        assert first == [order[0], bad, twice, twice, order[3], across]
        served = (await page(1)).json()["items"]
        limit = served[1]["creditLimitsAggregation"]["creditLimits"][0]
        assert limit["amount"] == sim.portfolio.covers[bad].amount  # valid the 2nd time
        second = [r["coverId"] for r in (await page(2)).json()["items"]]
        assert second == [across, *order[5:10]]
        with pytest.raises(ValueError, match="unknown corruption"):
            Faults(malformed_ids={bad: "nonsense"})
