"""`cobro/insurers/CONTRACT.md` over real HTTP against the simulator: every endpoint shape,
on the production and the UAT paths, and one test per public example found, each citing its
source. Public integrations are cited by the id of the file in the public-code index the
research used (their repositories were not named there); `CONTRACT.md` lists them.

Raw `httpx` calls send the public bodies as the sources write them; connector calls check that
Cobro's client speaks the same shapes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cobro.devkit.insurer.server import InsurerSimulator
from cobro.devkit.loopback import EmbeddedHttpServer
from cobro.insurers.allianz_trade import AllianzTradeConnector, Callback, HttpRetries
from cobro.insurers.allianz_wire import (
    PRODUCTION_BASE_URL,
    STATUS_CODES,
    UAT_BASE_URL,
    PolicyRef,
    callback_header,
    cover_fields,
    parse_callback_header,
    parse_policies,
    resolve_endpoint,
    uat_path,
)
from cobro.insurers.base import (
    ClaimRequest,
    ClaimStatus,
    CompanyMatch,
    CoverRequest,
    CoverRequestType,
    CoverStatus,
    Decision,
    DeclaredInvoice,
    ExtensionRequest,
    IdType,
    Installment,
    InsurerProtocolError,
    JobStatus,
    NationalId,
    OverdueCategory,
    OverdueReport,
    ReschedulingRequest,
)

FAST = HttpRetries(max_attempts=4, base_delay=0.01, max_delay=0.05)

GETTING_STARTED = "https://developers.allianz-trade.com/docs/getting-started"
DESIGN_GUIDELINES = "https://developers.allianz-trade.com/docs/api-design-guidelines"
PAYMENT_OVERDUES = (
    "https://developers.allianz-trade.com/welcome-trade-credit-insurance-api-world/payment-overdues"
)


@pytest.fixture
async def sim() -> AsyncIterator[InsurerSimulator]:
    async with InsurerSimulator(buyers=80, seed=16, job_delay_seconds=0.05) as server:
        yield server


def connect(sim: InsurerSimulator, **kw) -> AllianzTradeConnector:
    kw.setdefault("retry", FAST)
    kw.setdefault("policies", "EHFR:5012001,ACI:5012002")
    kw.setdefault("environment", "production")
    return AllianzTradeConnector(sim.base_url, SecretStr(sim.api_key), **kw)


async def bearer(http: httpx.AsyncClient, sim: InsurerSimulator, uat: bool = False) -> dict:
    path = "/uatm/v1/idp/oauth2/authorize" if uat else "/v1/idp/oauth2/authorize"
    token = (await http.post(path, json={"apiKey": sim.api_key})).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def processed(http: httpx.AsyncClient, path: str, auth: dict) -> dict:
    for _ in range(200):
        job = (await http.get(path, headers=auth)).json()
        if job["jobStatusCode"] == "PROCESSED":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError("job still pending")


def uncovered_buyer(sim: InsurerSimulator, min_capacity: int = 20_000):
    covered = {c.buyer.company_id for c in sim.portfolio.covers.values()}
    return next(
        b
        for b in sim.portfolio.buyers
        if b.company_id not in covered and b.grade <= 6 and b.capacity >= min_capacity
    )


# --- environments and authentication ---------------------------------------------------------


async def test_token_on_production_and_uat_paths(sim: InsurerSimulator) -> None:
    # source: GETTING_STARTED -- POST .../uatm/v1/idp/oauth2/authorize (test) and
    # https://api.allianz-trade.com/v1/idp/oauth2/authorize (production), body {"apiKey": ...},
    # answer {"access_token", "token_type": "Bearer", "expires_in": 3600}
    assert resolve_endpoint("production").base_url == PRODUCTION_BASE_URL
    uat = resolve_endpoint("uat")
    assert uat.base_url + uat.path("token") == (
        "https://api-services.uat.1placedessaisons.com/uatm/v1/idp/oauth2/authorize"
    )
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        for path in ("/v1/idp/oauth2/authorize", "/uatm/v1/idp/oauth2/authorize"):
            answer = await http.post(
                path, json={"apiKey": sim.api_key}, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 200
            token = answer.json()
            assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
            assert token["access_token"]


def test_uat_paths_of_the_public_integrations() -> None:
    # source: public integration, code-index file 54123348320 (PHP config): test and prod URLs
    # of riskinfo_cover_search and find_companies (company-referential)
    assert uat_path("/riskinfo/v3/covers/search") == "/uatm/riskinfo/v3/covers/search"
    assert uat_path("/company-referential/v1/companies/list") == (
        "/company-referential/uatm-v1/companies/list"
    )
    # source: public integration, code-index file 22612682479 (JS client): UAT paths
    assert uat_path("/search/v2/companies/advancedSearch") == (
        "/search/uatm-v2/companies/advancedSearch"
    )
    assert uat_path("/riskinfo/v3/jobs/J1") == "/uatm/riskinfo/v3/jobs/J1"
    assert uat_path("/riskinfo/v3/covers/C1") == "/uatm/riskinfo/v3/covers/C1"
    # source: public integration, code-index file 14708648734 (Python): matching on UAT
    assert uat_path("/search/v2/companies/matching") == "/search/uatm-v2/companies/matching"


def test_settings_name_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_INSURER_BASE_URL", "uat")
    monkeypatch.setenv("COBRO_INSURER_POLICIES", "ACI:5121840, EHSE:035748:DCL")
    get_settings.cache_clear()
    try:
        insurer = AllianzTradeConnector()  # nothing is called: only its configuration is read
    finally:
        get_settings.cache_clear()
    assert insurer.base_url == UAT_BASE_URL and insurer.endpoint.environment == "uat"
    assert insurer.endpoint.path("covers_search") == "/uatm/riskinfo/v3/covers/search"
    assert insurer.policies == (
        PolicyRef("ACI", "5121840"),
        PolicyRef("EHSE", "035748", "DCL"),
    )
    with pytest.raises(ValueError, match="BUSINESS_UNIT:POLICY_ID"):
        parse_policies("ACI:")
    with pytest.raises(ValueError, match="one of production, uat"):
        resolve_endpoint("http://127.0.0.1:1", "staging")


# --- covers search -------------------------------------------------------------------------


async def test_covers_search_body_of_a_public_integration(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 54380463040 (PHP AllianzGradeCover::new):
    # POST /uatm/riskinfo/v3/covers/search with policies [{businessUnitCode, policyId,
    # extensionId}] (extensionId '' for a contract without one) and pagination {page: 1,
    # pageSize: 10000, isTotalRequired: true}. The policy ids are the simulator's.
    body = {
        "policies": [
            {"businessUnitCode": "EHFR", "policyId": "5012001", "extensionId": ""},
            {"businessUnitCode": "ACI", "policyId": "5012002", "extensionId": ""},
        ],
        "pagination": {"page": 1, "pageSize": 10000, "isTotalRequired": True},
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        answer = await http.post("/uatm/riskinfo/v3/covers/search", json=body, headers=auth)
        one = await http.post(
            "/riskinfo/v3/covers/search",
            json={**body, "policies": body["policies"][1:]},
            headers=auth,
        )
        foreign = await http.post(
            "/riskinfo/v3/covers/search",
            json={**body, "policies": [{"businessUnitCode": "EHSE", "policyId": "035659"}]},
            headers=auth,
        )
    assert answer.status_code == 200
    data = answer.json()
    assert data["items"] == sim.expected_covers()
    assert data["pagination"]["totalItems"] == len(sim.portfolio.covers)
    assert {c["policy"]["policyId"] for c in one.json()["items"]} == {"5012002"}
    assert foreign.status_code == 403


async def test_a_cover_record_has_the_public_credit_limit_shape(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 14708648734 (Python): the cover answers
    # creditLimitsAggregation.creditLimits[0].{technicalDecisionStatusCode, amount, startDate}
    async with connect(sim, page_size=50) as insurer:
        fetched = await insurer.fetch_covers()
    record = sim.expected_covers()[0]
    limit = record["creditLimitsAggregation"]["creditLimits"][0]
    assert {"technicalDecisionStatusCode", "amount", "startDate"} <= set(limit)
    assert record["company"]["companyId"] and record["coverId"]
    first = fetched.covers[0]
    assert first.cover_id == record["coverId"]
    assert first.amount == Decimal(limit["amount"])
    assert first.effective_date == date.fromisoformat(limit["startDate"])
    # the connector's body is the public one
    body = sim.requests_to("covers_search")
    assert len(body) == fetched.pages


def test_the_credit_limit_in_force_is_the_latest_one() -> None:
    # the aggregation can list several limits (an older permanent, a newer temporary one)
    record = {
        "coverId": "C1",
        "creditLimitsAggregation": {
            "creditLimits": [
                {"amount": 1000, "startDate": "2024-01-01", "creditLimitTypeCode": "Permanent"},
                {"amount": 5000, "startDate": "2025-02-01", "creditLimitTypeCode": "Temporary"},
            ]
        },
        "coverStatusCode": "Agreement",
    }
    fields = cover_fields(record)
    assert fields["amount"] == 5000 and fields["coverType"] == "TEMPORARY"
    # source: public integration, code-index file 39570145579 (NetSuite): RiskInfo v2 answers
    # coverStatusCode "Agreement" for a granted cover
    assert fields["status"] == "ACTIVE" == STATUS_CODES["Agreement"]
    assert cover_fields("not a record") == "not a record"


async def test_get_one_cover_by_id_on_both_paths(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 22612682479 (JS): GET
    # /uatm/riskinfo/v3/covers/{coverID}
    cover_id = next(iter(sim.portfolio.covers))
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim)
        for path in (f"/riskinfo/v3/covers/{cover_id}", f"/uatm/riskinfo/v3/covers/{cover_id}"):
            answer = await http.get(path, headers=auth)
            assert answer.json() == sim.portfolio.covers[cover_id].to_json()
        assert (await http.get("/riskinfo/v3/covers/nope", headers=auth)).status_code == 404
    async with connect(sim) as insurer:
        assert (await insurer.get_cover(cover_id)).cover_id == cover_id
        with pytest.raises(InsurerProtocolError, match="another host"):
            await insurer.get_cover(f"https://elsewhere.example/riskinfo/v3/covers/{cover_id}")


# --- cover requests and jobs ---------------------------------------------------------------


async def test_primary_request_of_a_public_integration(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 14708648734 (Python): POST
    # /uatm/riskinfo/v3/covers {requestTypeCode: "Primary", policy {businessUnitCode,
    # policyId}, creditLimitDetails {requestedAmount (a form's string), currencyCode},
    # companyId, isRequestUrgent: true}; the answer body *is* the job id; GET
    # /uatm/riskinfo/v3/jobs/{id} has jobStatusCode, then resourceUrl; GET resourceUrl is
    # the cover; technicalDecisionStatusCode 'AlreadyAgreed' means approved
    sim.job_delay_seconds = 0.5
    buyer = uncovered_buyer(sim)
    body = {
        "requestTypeCode": "Primary",
        "policy": {"businessUnitCode": "EHFR", "policyId": "5012001"},
        "creditLimitDetails": {"requestedAmount": "20000", "currencyCode": "EUR"},
        "companyId": buyer.company_id,
        "isRequestUrgent": True,
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        created = await http.post("/uatm/riskinfo/v3/covers", json=body, headers=auth)
        assert created.status_code == 202
        job_id = created.json()
        assert isinstance(job_id, str)
        first = (await http.get(f"/uatm/riskinfo/v3/jobs/{job_id}", headers=auth)).json()
        assert first == {"jobId": job_id, "jobStatusCode": "PENDING"}
        job = await processed(http, f"/uatm/riskinfo/v3/jobs/{job_id}", auth)
        assert job["resourceUrl"].startswith(f"{sim.base_url}/uatm/riskinfo/v3/covers/")
        cover = (await http.get(job["resourceUrl"], headers=auth)).json()
        limit = cover["creditLimitsAggregation"]["creditLimits"][0]
        assert limit["technicalDecisionStatusCode"] == "Agreed" and limit["amount"] == 20000
        assert limit["startDate"] == sim.today.isoformat()
        # the same amount asked again: already agreed, nothing changes
        again = await http.post("/uatm/riskinfo/v3/covers", json=body, headers=auth)
        job2 = await processed(http, f"/uatm/riskinfo/v3/jobs/{again.json()}", auth)
        cover2 = (await http.get(job2["resourceUrl"], headers=auth)).json()
    limit2 = cover2["creditLimitsAggregation"]["creditLimits"][0]
    assert limit2["technicalDecisionStatusCode"] == "AlreadyAgreed"
    assert limit2["amount"] == 20000 and cover2["coverId"] == cover["coverId"]
    fields = cover_fields(cover2)
    assert fields["decision"] == "GRANTED"


async def test_grade_cover_request_of_a_public_integration(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 54380463040 (PHP requestGradeCover):
    # {requestTypeCode: 'GradeCover', policy {businessUnitCode, policyId, extensionId},
    # companyId, isRequestUrgent: false}, then GET /uatm/riskinfo/v3/jobs/{jobID}
    # ('PROCESSED' is the value compared)
    buyer = sim.portfolio.buyers[3]
    body = {
        "requestTypeCode": "GradeCover",
        "policy": {"businessUnitCode": "EHFR", "policyId": "5012001", "extensionId": ""},
        "companyId": buyer.company_id,
        "isRequestUrgent": False,
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        job_id = (await http.post("/uatm/riskinfo/v3/covers", json=body, headers=auth)).json()
        job = await processed(http, f"/uatm/riskinfo/v3/jobs/{job_id}", auth)
        graded = (await http.get(job["resourceUrl"], headers=auth)).json()
    assert graded["coverTypeCode"] == "GradeCover" and graded["grade"] == buyer.grade
    assert graded["creditLimitsAggregation"] == {"creditLimits": []}
    async with connect(sim) as insurer:
        job_id = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=buyer.company_id,
                request_type=CoverRequestType.GRADE_COVER,
            )
        )
        job = await insurer.wait_for_job(job_id, timeout=5, poll_interval=0.02)
    assert job.status is JobStatus.PROCESSED and job.resource_url


async def test_the_connector_sends_the_public_request_body(sim: InsurerSimulator) -> None:
    buyer = uncovered_buyer(sim, 30_000)
    async with connect(sim) as insurer:
        job_id = await insurer.request_cover(
            CoverRequest(
                policy_id="5012002",
                company_id=buyer.company_id,
                requested_amount=Decimal(30_000),
                currency="USD",
                is_request_urgent=True,
                client_reference="cobro-X1",
            )
        )
        cover = await insurer.cover_decision(job_id, timeout=5, poll_interval=0.02)
        pending = await insurer.search_cover_requests(None)
    assert cover.decision is Decision.GRANTED and cover.amount == Decimal(30_000)
    assert cover.currency == "USD" and cover.status is CoverStatus.ACTIVE
    (row,) = [r for r in pending if r.request_id == job_id]
    assert row.cover_id == cover.cover_id and row.requested_amount == Decimal(30_000)


async def test_cover_requests_search_of_a_public_integration(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 48626868102 (Business Central): POST
    # /uatm/riskinfo/v3/coverRequests/search {policies [{businessUnitCode, policyId,
    # extensionId?}], requestStatusCode: "InProgress", pagination {page, pageSize: 5000,
    # isTotalRequired: "true"}}; the answer is a JSON array of {requestId,
    # creditLimitDetails {requestedAmount, currencyCode}, creationDate, lastUpdateDate, coverId}
    sim.job_delay_seconds = 30  # stays in progress
    buyer = uncovered_buyer(sim)
    async with connect(sim) as insurer:
        job_id = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=buyer.company_id,
                requested_amount=Decimal(12_000),
                currency="EUR",
            )
        )
        in_progress = await insurer.search_cover_requests()
    body = {
        "policies": [{"businessUnitCode": "EHFR", "policyId": "5012001"}],
        "requestStatusCode": "InProgress",
        "pagination": {"page": 1, "pageSize": 5000, "isTotalRequired": "true"},
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        raw = await http.post("/uatm/riskinfo/v3/coverRequests/search", json=body, headers=auth)
    (row,) = raw.json()
    assert row["requestId"] == job_id and row["requestStatusCode"] == "InProgress"
    assert row["creditLimitDetails"] == {"requestedAmount": 12000, "currencyCode": "EUR"}
    assert {"creationDate", "lastUpdateDate"} <= set(row) and "coverId" not in row
    assert [r.request_id for r in in_progress] == [job_id]
    assert in_progress[0].creation_date == sim.today


async def test_job_result_webhook(sim: InsurerSimulator) -> None:
    # source: DESIGN_GUIDELINES -- instead of polling, a header of the POST carries
    # {"callbackUrl": "https://client_url.com/Webhook", "timeToLive": 24} stringified and
    # base64-encoded (extendedNotification: true for a functional notification); the insurer
    # schedules "3 calls every 30 seconds (1 initial call then 2 retries)". The simulator
    # calls loopback URLs only, every `callback_retry_seconds`.
    received: list[dict] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({}, status_code=500 if len(received) == 1 else 200)

    value = callback_header("https://client_url.com/Webhook", 24)
    assert json.loads(base64.b64decode(value)) == {
        "callbackUrl": "https://client_url.com/Webhook",
        "timeToLive": 24,
    }
    assert parse_callback_header(callback_header("https://x", 2, True))["extendedNotification"]
    receiver = EmbeddedHttpServer(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "127.0.0.1", 0, "hook"
    )
    port = await receiver.start()
    sim.callback_retry_seconds = 0.05
    try:
        buyer = uncovered_buyer(sim)
        async with connect(sim) as insurer:
            job_id = await insurer.request_cover(
                CoverRequest(
                    policy_id="5012001",
                    company_id=buyer.company_id,
                    requested_amount=Decimal(20_000),
                    currency="EUR",
                ),
                callback=Callback(f"http://127.0.0.1:{port}/hook", extended=True),
            )
            for _ in range(200):
                if len(received) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(received) == 2  # the first call failed: retried once
            note = received[-1]
            assert note["jobId"] == job_id and note["jobStatusCode"] == "PROCESSED"
            cover = await insurer.get_cover(note["resourceUrl"])
        assert cover.amount == Decimal(20_000)
        assert [status for _, status in sim.callbacks] == [500, 200]
        async with httpx.AsyncClient(base_url=sim.base_url) as http:
            auth = await bearer(http, sim)
            outside = await http.post(
                "/riskinfo/v3/covers",
                json={"requestTypeCode": "GradeCover", "policy": {"policyId": "5012001"}},
                headers={**auth, "callback": callback_header("https://client_url.com/Webhook")},
            )
        assert outside.status_code == 400  # never calls out of the machine
    finally:
        await receiver.stop()


# --- companies -----------------------------------------------------------------------------


async def test_company_matching_of_a_public_integration(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 14708648734 (Python): POST
    # /search/uatm-v2/companies/matching {requestedSize: 2, companyName, streetName,
    # companyIdentifierTypeCode: "EH", streetNumber, town, postalCode, countryCode};
    # results[0].company.{companyId, legalData.companyName, address}
    buyer = next(b for b in sim.portfolio.buyers if b.country == "FR")
    body = {
        "requestedSize": 2,
        "companyName": buyer.name.upper(),
        "streetName": "rue de la Paix",
        "companyIdentifierTypeCode": "EH",
        "streetNumber": "1",
        "town": "Paris",
        "postalCode": "75002",
        "countryCode": "FR",
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        answer = await http.post("/search/uatm-v2/companies/matching", json=body, headers=auth)
    results = answer.json()["results"]
    assert 1 <= len(results) <= 2
    company = results[0]["company"]
    assert company["companyId"] == buyer.company_id
    assert company["legalData"]["companyName"] == buyer.name
    assert company["address"]["countryCode"] == "FR"


async def test_company_matching_by_identifier(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 26388715318 (React): matching body with
    # companyIdentifiers [{idTypeCode, idValue}] and minimumScore
    buyer = next(b for b in sim.portfolio.buyers if b.country == "FR" and b.siren)
    async with connect(sim) as insurer:
        found = await insurer.match_companies(
            CompanyMatch(
                company_name="a name the insurer does not know",
                country_code="FR",
                identifiers=(NationalId(type=IdType.SIREN, value=buyer.siren),),
                minimum_score=90,
            )
        )
        nothing = await insurer.match_companies(
            CompanyMatch(company_name="Zzzz Qqqq", country_code="FR", minimum_score=90)
        )
    assert [(r.company.company_id, r.score) for r in found] == [(buyer.company_id, 100)]
    assert found[0].company.identifier(IdType.SIREN) == buyer.siren
    assert nothing == []


async def test_advanced_search_on_the_uat_path(sim: InsurerSimulator) -> None:
    # source: public integration, code-index file 22612682479 (JS): POST
    # /search/uatm-v2/companies/advancedSearch (its body is not shown: ours is assumed)
    buyer = next(b for b in sim.portfolio.buyers if b.duns)
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        answer = await http.post(
            "/search/uatm-v2/companies/advancedSearch",
            json={"identifierType": "DUNS", "identifierValue": buyer.duns},
            headers=auth,
        )
    (company,) = answer.json()["companies"]
    assert company["companyId"] == buyer.company_id and company["grade"] == buyer.grade


# --- payment overdues ----------------------------------------------------------------------


def _invoice(number: str, due: date, amount: str) -> DeclaredInvoice:
    return DeclaredInvoice(number=number, due_date=due, amount=Decimal(amount))


async def test_the_three_payment_overdue_declarations(sim: InsurerSimulator) -> None:
    # source: PAYMENT_OVERDUES -- overdueCategoryTypeCode OVD (report a state of default),
    # EXP (an extension period: the due date of a single invoice), RES (a rescheduling: a
    # repayment plan was agreed)
    buyer = sim.portfolio.buyers[5]
    due = date(2025, 1, 31)
    common = dict(policy_id="5012001", company_id=buyer.company_id, currency="EUR")
    declarations = [
        OverdueReport(
            client_reference="ovd-1",
            default_date=due + timedelta(days=60),
            invoices=(_invoice("F-1", due, "900.00"), _invoice("F-2", due, "100")),
            **common,
        ),
        ExtensionRequest(
            client_reference="exp-1",
            new_due_date=due + timedelta(days=45),
            invoices=(_invoice("F-3", due, "400"),),
            **common,
        ),
        ReschedulingRequest(
            client_reference="res-1",
            invoices=(_invoice("F-4", due, "1000"),),
            installments=(
                Installment(due_date=due + timedelta(days=30), amount=Decimal("600")),
                Installment(due_date=due + timedelta(days=60), amount=Decimal("400")),
            ),
            **common,
        ),
    ]
    async with connect(sim) as insurer:
        receipts = [await insurer.declare(d) for d in declarations]
        repeats = [await insurer.declare(d) for d in declarations]  # a retried activity
        outcomes = [
            await insurer.declaration_outcome(r.job_id, timeout=5, poll_interval=0.02)
            for r in receipts
        ]
    assert receipts == repeats
    assert [r.category for r in receipts] == list(OverdueCategory)
    assert [o.overdue_category_type_code for o in outcomes] == list(OverdueCategory)
    assert [o.amount for o in outcomes] == [Decimal(1000), Decimal(400), Decimal(1000)]
    counts = sim.declaration_counts()
    assert counts["received"] == {"OVD": 2, "EXP": 2, "RES": 2}
    assert counts["declarations"] == {"OVD": 1, "EXP": 1, "RES": 1}
    bodies = {d["category"]: d["request"] for d in sim.declarations.values()}
    assert bodies["OVD"]["defaultDate"] == "2025-04-01"
    assert bodies["EXP"]["newDueDate"] == "2025-03-17"
    assert bodies["RES"]["repaymentPlan"] == [
        {"dueDate": "2025-03-02", "amount": "600"},
        {"dueDate": "2025-04-01", "amount": "400"},
    ]
    assert bodies["OVD"]["policy"] == {"businessUnitCode": "EHFR", "policyId": "5012001"}
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        assert (await http.get("/_sim/declarations")).json() == counts


async def test_an_extension_is_for_a_single_later_due_date(sim: InsurerSimulator) -> None:
    # source: PAYMENT_OVERDUES -- "amend the due date of a single invoice"
    due = date(2025, 1, 31)
    with pytest.raises(ValidationError, match="single invoice"):
        ExtensionRequest(
            client_reference="exp-2",
            policy_id="5012001",
            company_id="1",
            currency="EUR",
            new_due_date=due + timedelta(days=30),
            invoices=(_invoice("A", due, "1"), _invoice("B", due, "1")),
        )
    with pytest.raises(ValidationError, match="add up"):
        ReschedulingRequest(
            client_reference="res-2",
            policy_id="5012001",
            company_id="1",
            currency="EUR",
            invoices=(_invoice("A", due, "10"),),
            installments=(Installment(due_date=due, amount=Decimal(9)),),
        )
    buyer = sim.portfolio.buyers[0]
    body = {
        "overdueCategoryTypeCode": "EXP",
        "policy": {"businessUnitCode": "EHFR", "policyId": "5012001"},
        "companyId": buyer.company_id,
        "clientReference": "raw-exp",
        "currencyCode": "EUR",
        "newDueDate": "2025-01-01",
        "invoices": [{"invoiceNumber": "A", "dueDate": "2025-01-31", "amount": "5"}],
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        early = await http.post("/payment-overdues/uatm-v1/overdues", json=body, headers=auth)
        other = await http.post(
            "/payment-overdues/v1/overdues",
            json={**body, "overdueCategoryTypeCode": "CLAIM"},
            headers=auth,
        )
    assert early.status_code == 400 and "newDueDate" in early.json()["message"]
    assert other.status_code == 400
    assert sim.declaration_counts()["declarations"] == {"OVD": 0, "EXP": 0, "RES": 0}


# --- claims (no public source: every shape assumed, CONTRACT.md "Claims") -----------------


async def test_a_claim_filed_once_acknowledged_then_decided(sim: InsurerSimulator) -> None:
    # no public source (assumed): a claim names the registered OVD, is filed through a job
    # like every write (public DESIGN_GUIDELINES: asynchronous POSTs), once per clientReference
    buyer = sim.portfolio.buyers[5]
    due = date(2025, 1, 31)
    async with connect(sim) as insurer:
        ovd = OverdueReport(
            client_reference="ovd-c",
            policy_id="5012001",
            company_id=buyer.company_id,
            currency="EUR",
            default_date=due,
            invoices=(_invoice("F-9", due, "700"),),
        )
        overdue = await insurer.declaration_outcome(
            (await insurer.declare(ovd)).job_id, timeout=5, poll_interval=0.02
        )
        claim = ClaimRequest(
            client_reference="cobro-clm-F-9",
            policy_id="5012001",
            company_id=buyer.company_id,
            currency="EUR",
            invoice=_invoice("F-9", due, "700"),
            claim_amount=Decimal(700),
            loss_date=due,
            overdue_id=overdue.overdue_id,
        )
        job = await insurer.file_claim(claim)
        assert await insurer.file_claim(claim) == job  # a retried activity: the same job
        opened = await insurer.claim_outcome(job, timeout=5, poll_interval=0.02)
        assert opened.status_code is ClaimStatus.ACKNOWLEDGED
        assert opened.claim_amount == Decimal(700) and opened.indemnified_amount is None
        sim.decide_claim("cobro-clm-F-9", amount=630.0, on=date(2025, 6, 1))
        decided = await insurer.get_claim(opened.claim_id)
    assert decided.status_code is ClaimStatus.INDEMNIFIED
    assert (decided.indemnified_amount, decided.decision_date) == (Decimal(630), date(2025, 6, 1))
    counts = sim.claim_counts()
    assert (counts["received"], counts["claims"]) == (2, 1)
    body = sim.claims["cobro-clm-F-9"]["request"]
    assert body["overdueId"] == overdue.overdue_id and body["claimAmount"] == "700"
    assert body["policy"] == {"businessUnitCode": "EHFR", "policyId": "5012001"}
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        assert (await http.get("/_sim/claims")).json()["statuses"] == {
            "cobro-clm-F-9": "Indemnified"
        }


async def test_a_claim_without_a_declared_overdue_is_refused(sim: InsurerSimulator) -> None:
    # no public source (assumed): the insurer opens a claim only for a declared overdue
    buyer = sim.portfolio.buyers[0]
    body = {
        "policy": {"businessUnitCode": "EHFR", "policyId": "5012001"},
        "companyId": buyer.company_id,
        "clientReference": "raw-claim",
        "currencyCode": "EUR",
        "claimAmount": "5",
        "lossDate": "2025-01-31",
        "invoices": [{"invoiceNumber": "A", "dueDate": "2025-01-31", "amount": "5"}],
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        auth = await bearer(http, sim, uat=True)
        answer = await http.post("/claims/uatm-v1/claims", json=body, headers=auth)
        refused = await http.post(
            "/_sim/claims", json={"clientReference": "raw-claim", "indemnify": False}
        )
    assert answer.status_code == 422 and "OVD" in answer.json()["message"]
    assert refused.status_code == 404
    assert sim.claim_counts()["claims"] == 0
