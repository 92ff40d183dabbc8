"""The Allianz Trade connector against the real loopback simulator over HTTP: paging, incremental
fetch, retries and Retry-After, token expiry, quarantine, truncation, cover jobs, company
search, declarations. Delays are measured from the simulator's own request log."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from pydantic import SecretStr

from cobro.devkit.insurer.faults import Faults, corrupt
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.allianz_trade import AllianzTradeConnector, HttpRetries, parse_retry_after
from cobro.insurers.allianz_wire import cover_fields
from cobro.insurers.base import (
    CompanySearch,
    Cover,
    CoverRequest,
    CoverStatus,
    CoverType,
    Decision,
    DeclaredInvoice,
    IdType,
    InsurerAuthError,
    InsurerConnector,
    InsurerProtocolError,
    InsurerRateLimited,
    InsurerRequestError,
    InsurerUnavailable,
    JobStatus,
    JobTimeout,
    OverdueCategory,
    OverdueReport,
)

FAST = HttpRetries(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def sim() -> AsyncIterator[InsurerSimulator]:
    async with InsurerSimulator(buyers=1000, seed=42, job_delay_seconds=0.3) as server:
        yield server


@pytest.fixture
async def small() -> AsyncIterator[InsurerSimulator]:
    async with InsurerSimulator(buyers=60, seed=8, job_delay_seconds=0.2) as server:
        yield server


def connect(sim: InsurerSimulator, **kw) -> AllianzTradeConnector:
    kw.setdefault("retry", FAST)
    kw.setdefault("page_size", 100)
    return AllianzTradeConnector(sim.base_url, SecretStr(sim.api_key), **kw)


def expected(sim: InsurerSimulator) -> list[Cover]:
    return [Cover.model_validate(cover_fields(raw)) for raw in sim.expected_covers()]


# --- full and incremental fetch ----------------------------------------------------------


async def test_full_fetch_in_pages_equals_the_simulators_portfolio(sim: InsurerSimulator) -> None:
    async with connect(sim) as insurer:
        assert isinstance(insurer, InsurerConnector)
        pages = [page async for page in insurer.iter_cover_pages()]
    covers = [c for page in pages for c in page.covers]
    assert len(sim.portfolio.covers) > 950
    assert covers == expected(sim)
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert len(pages) == pages[0].total_pages == -(-len(covers) // 100)
    assert all(p.complete and not p.quarantined for p in pages)
    assert pages[-1].is_last and not pages[0].is_last
    # one token for the whole run, one request per page
    assert sim.tokens_issued == 1
    assert [r.page for r in sim.requests_to("covers_search")] == [p.number for p in pages]
    assert {c.cover_type for c in covers} == set(CoverType)
    assert {c.status for c in covers} == set(CoverStatus)
    assert all(isinstance(c.amount, Decimal) for c in covers)


async def test_incremental_fetch_returns_only_what_changed(sim: InsurerSimulator) -> None:
    async with connect(sim) as insurer:
        before = sim.now
        nothing = await insurer.fetch_covers(updated_since=before)
        assert nothing.total_items == 0 and nothing.covers == () and nothing.pages == 1
        changed = sim.advance_day()
        delta = await insurer.fetch_covers(updated_since=before)
        assert 0 < len(changed) < len(sim.portfolio.covers) // 4
        assert {c.cover_id for c in delta.covers} == changed
        assert delta.total_items == len(changed) and delta.complete
        fresh = {c.cover_id: c for c in expected(sim)}
        assert all(c == fresh[c.cover_id] for c in delta.covers)
        assert all(c.updated_at >= before for c in delta.covers)
        # the next day's delta does not repeat the first one's
        second_since = sim.now
        again = sim.advance_day()
        delta2 = await insurer.fetch_covers(updated_since=second_since)
        assert {c.cover_id for c in delta2.covers} == again
        # and the full fetch still sees everything, as it is now
        full = await insurer.fetch_covers()
        assert list(full.covers) == expected(sim)


async def test_iteration_can_resume_at_a_page(sim: InsurerSimulator) -> None:
    async with connect(sim) as insurer:
        tail = [p async for p in insurer.iter_cover_pages(start_page=8)]
    assert tail[0].number == 8 and tail[-1].is_last
    assert [c for p in tail for c in p.covers] == expected(sim)[700:]


async def test_policy_filter(sim: InsurerSimulator) -> None:
    async with connect(sim) as insurer:
        usd = await insurer.fetch_covers(policy_id="5012002")
    assert usd.covers and {c.currency for c in usd.covers} == {"USD"}
    assert len(usd.covers) == sum(1 for c in expected(sim) if c.policy_id == "5012002")


# --- retries, Retry-After, timeouts ---------------------------------------------------------


async def test_429_retry_after_is_honoured(small: InsurerSimulator) -> None:
    small.inject("covers_search", 429, retry_after=0.6)
    async with connect(small, retry=HttpRetries(max_attempts=3, base_delay=0.01)) as insurer:
        result = await insurer.fetch_covers()
        assert list(result.covers) == expected(small)
        assert insurer.stats.retries == 1
    calls = small.requests_to("covers_search")
    assert [r.status for r in calls[:2]] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.6


async def test_503_with_http_date_retry_after_then_success(small: InsurerSimulator) -> None:
    small.inject("covers_search", 503, retry_after=0.3, times=2)
    async with connect(small) as insurer:
        result = await insurer.fetch_covers()
    assert list(result.covers) == expected(small)
    calls = small.requests_to("covers_search")
    assert [r.status for r in calls[:3]] == [503, 503, 200]
    assert calls[2].at - calls[1].at >= 0.3 and calls[1].at - calls[0].at >= 0.3


def test_retry_after_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 6, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Mon, 06 Jan 2025 12:00:10 GMT", now) == 10.0
    assert parse_retry_after("Mon, 06 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_persistent_429_fails_after_the_bounded_attempts(small: InsurerSimulator) -> None:
    small.inject("covers_search", 429, retry_after=0.01, times=10)
    async with connect(small, retry=HttpRetries(max_attempts=3, base_delay=0.01)) as insurer:
        with pytest.raises(InsurerRateLimited, match="after 3 attempts"):
            await insurer.fetch_covers()
    assert len(small.requests_to("covers_search")) == 3


async def test_retry_after_beyond_the_cap_fails_instead_of_stalling(
    small: InsurerSimulator,
) -> None:
    small.inject("covers_search", 429, retry_after=3600)
    retry = HttpRetries(max_retry_after=5)
    async with connect(small, retry=retry) as insurer:
        with pytest.raises(InsurerRateLimited, match="Retry-After 3600s"):
            await insurer.fetch_covers()


async def test_500s_are_retried_with_growing_backoff_then_succeed(
    small: InsurerSimulator,
) -> None:
    small.inject("covers_search", 500, times=3)
    retry = HttpRetries(max_attempts=4, base_delay=0.1, max_delay=1.0)
    async with connect(small, retry=retry) as insurer:
        result = await insurer.fetch_covers()
        assert insurer.stats.retries == 3
    assert list(result.covers) == expected(small)
    calls = small.requests_to("covers_search")
    assert [r.status for r in calls[:4]] == [500, 500, 500, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls[:4])]
    # equal jitter: attempt n waits between base*2**(n-1)/2 and base*2**(n-1)
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2


async def test_500s_beyond_the_attempts_raise_unavailable(small: InsurerSimulator) -> None:
    small.inject("covers_search", 500, times=10)
    async with connect(small) as insurer:
        with pytest.raises(InsurerUnavailable, match=r"HTTP 500 .* after 4 attempts"):
            await insurer.fetch_covers()


async def test_a_slow_response_times_out_and_is_retried(small: InsurerSimulator) -> None:
    small.inject("covers_search", slow=1.0)
    async with connect(small, timeout=0.3) as insurer:
        result = await insurer.fetch_covers()
        assert insurer.stats.retries == 1
    assert list(result.covers) == expected(small)


async def test_an_unreachable_insurer_fails_clearly() -> None:
    async with InsurerSimulator(buyers=1) as gone:
        url = gone.base_url
    insurer = AllianzTradeConnector(url, "k", retry=HttpRetries(max_attempts=2, base_delay=0.01))
    async with insurer:
        with pytest.raises(InsurerUnavailable, match=r"ConnectError .* after 2 attempts"):
            await insurer.fetch_covers()


async def test_seeded_fault_rates_still_give_the_fault_free_result(sim: InsurerSimulator) -> None:
    sim.faults = Faults(
        server_error_rate=0.15,
        rate_limit_rate=0.1,
        unavailable_rate=0.05,
        retry_after_seconds=0.02,
        seed=3,
    )
    async with connect(sim, retry=HttpRetries(max_attempts=8, base_delay=0.01)) as insurer:
        result = await insurer.fetch_covers()
        assert insurer.stats.retries > 0
    assert list(result.covers) == expected(sim)


# --- tokens ------------------------------------------------------------------------------


async def test_token_expiry_mid_sync_reauthenticates_once_and_continues(
    sim: InsurerSimulator,
) -> None:
    covers = []
    async with connect(sim) as insurer:
        async for page in insurer.iter_cover_pages():
            covers.extend(page.covers)
            if page.number == 3:
                sim.expire_tokens()
        assert insurer.stats.reauthentications_on_401 == 1
        assert insurer.stats.authentications == 2
    assert covers == expected(sim)
    assert sim.tokens_issued == 2
    calls = sim.requests_to("covers_search")
    assert [r.status for r in calls].count(401) == 1
    failed = next(i for i, r in enumerate(calls) if r.status == 401)
    assert calls[failed].page == calls[failed + 1].page == 4
    assert calls[failed].token_id == 1 and calls[failed + 1].token_id == 2


async def test_tokens_used_up_mid_sync_are_renewed_each_time(sim: InsurerSimulator) -> None:
    sim.faults = Faults(token_max_uses=3)
    async with connect(sim) as insurer:
        result = await insurer.fetch_covers()
    assert list(result.covers) == expected(sim)
    assert sim.tokens_issued == 4  # 10 pages, 3 uses per token


async def test_token_is_renewed_before_it_expires(small: InsurerSimulator) -> None:
    small.token_ttl_seconds = 0.6
    import asyncio

    async with connect(small, token_refresh_margin=60) as insurer:
        await insurer.fetch_covers()
        await asyncio.sleep(0.35)  # past the renewal point (half the lifetime), before expiry
        await insurer.fetch_covers()
        assert insurer.stats.reauthentications_on_401 == 0
    assert small.tokens_issued == 2
    assert all(r.status == 200 for r in small.requests)


async def test_a_persistent_401_fails_with_a_clear_error(small: InsurerSimulator) -> None:
    small.faults = Faults(reject_all_tokens=True)
    async with connect(small) as insurer:
        with pytest.raises(
            InsurerAuthError, match=r"refused a fresh access token \(HTTP 401 twice"
        ):
            await insurer.fetch_covers()
    assert [r.status for r in small.requests_to("covers_search")] == [401, 401]
    assert small.tokens_issued == 2


async def test_a_wrong_api_key_fails_with_a_clear_error(small: InsurerSimulator) -> None:
    async with AllianzTradeConnector(small.base_url, "wrong", retry=FAST) as insurer:
        with pytest.raises(InsurerAuthError, match="refused the API key"):
            await insurer.authenticate()
    assert [r.status for r in small.requests_to("token")] == [401]


async def test_token_endpoint_errors_are_retried(small: InsurerSimulator) -> None:
    small.inject("token", 500)
    small.inject("token", 429, retry_after=0.05)
    async with connect(small) as insurer:
        result = await insurer.fetch_covers()
    assert list(result.covers) == expected(small)
    assert [r.status for r in small.requests_to("token")] == [500, 429, 200]


# --- quarantine and truncation ---------------------------------------------------------


async def test_malformed_records_are_quarantined_and_the_good_ones_come_through(
    sim: InsurerSimulator,
) -> None:
    sim.faults = Faults(malformed_records=12)
    bad = sim.malformed_cover_ids
    async with connect(sim) as insurer:
        result = await insurer.fetch_covers()
    good = [c for c in expected(sim) if c.cover_id not in bad]
    assert list(result.covers) == good
    assert len(result.quarantined) == 12
    reasons = {q.record_id: q.reason for q in result.quarantined}
    by_kind = {kind: cid for cid, kind in bad.items()}
    assert reasons[by_kind["amount"]].startswith(
        "creditLimits[].amount: Input should be a valid decimal"
    )
    assert reasons[by_kind["grade"]].startswith("grade: Input should be less than or equal to 10")
    assert reasons[by_kind["date"]].startswith("creditLimits[].endDate: ")
    assert reasons[by_kind["company"]] == "company: Field required"
    assert reasons[None] == "coverId: Field required"  # its id is the missing field
    ids_ok = sorted(q.record_id for q in result.quarantined if q.record_id)
    assert ids_ok == sorted(cid for cid, kind in bad.items() if kind != "missing_id")
    # the raw payload is kept verbatim: the true record with the simulator's corruption
    for q in result.quarantined:
        if q.record_id:
            true = sim.portfolio.covers[q.record_id].to_json()
            assert q.raw == corrupt(true, bad[q.record_id])
        else:
            assert "coverId" not in q.raw and q.raw["company"]
    # position: the record at (page, index) in the book is the malformed one
    order = list(sim.portfolio.covers)
    for q in result.quarantined:
        assert order[(q.page - 1) * 100 + q.index] in bad
    # a page with a bad record still delivered its good records
    page_of_bad = {order.index(cid) // 100 + 1 for cid in bad}
    assert all(
        any(c.cover_id in order[(p - 1) * 100 : p * 100] for c in result.covers)
        for p in page_of_bad
    )


async def test_a_truncated_page_is_refetched_and_reported(sim: InsurerSimulator) -> None:
    sim.faults = Faults(truncated_pages=[3], truncate_times=1)
    async with connect(sim) as insurer:
        result = await insurer.fetch_covers()
    assert list(result.covers) == expected(sim)
    assert result.complete
    (t,) = result.truncations
    assert (t.page, t.expected, t.received, t.refetches, t.recovered) == (3, 100, 100, 1, True)
    assert [r.page for r in sim.requests_to("covers_search")].count(3) == 2


async def test_a_page_that_stays_truncated_is_reported_as_incomplete(
    sim: InsurerSimulator,
) -> None:
    sim.faults = Faults(truncated_pages=[2, 10], truncate_times=5)
    async with connect(sim, truncated_page_retries=2) as insurer:
        result = await insurer.fetch_covers()
    assert not result.complete
    first, last = result.truncations
    assert (first.page, first.expected, first.received, first.refetches) == (2, 100, 75, 2)
    assert (last.page, last.expected, last.received) == (10, 100, 75)
    assert not first.recovered and not last.recovered
    missing = first.expected - first.received + last.expected - last.received
    assert len(result.covers) == len(sim.portfolio.covers) - missing


async def test_a_page_cut_midway_is_fetched_again_with_backoff(sim: InsurerSimulator) -> None:
    sim.faults = Faults(cut_json_pages=[2], cut_json_times=2)
    async with connect(sim) as insurer:
        result = await insurer.fetch_covers()
        assert insurer.stats.garbled == 2
    assert list(result.covers) == expected(sim)
    page2 = [r for r in sim.requests_to("covers_search") if r.page == 2]
    assert [r.status for r in page2] == [200, 200, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(page2)]
    assert all(gap >= FAST.base_delay / 2 for gap in gaps), gaps  # backoff between tries


async def test_a_page_cut_every_time_fails_after_the_bounded_attempts(
    small: InsurerSimulator,
) -> None:
    small.faults = Faults(cut_json_pages=[1], cut_json_times=99)
    async with connect(small) as insurer:
        with pytest.raises(
            InsurerProtocolError, match=r"covers page 1: HTTP 200 answer is not JSON"
        ):
            await insurer.get_cover_page(1)
    assert len(small.requests_to("covers_search")) == FAST.max_attempts


async def test_a_truncated_page_is_refetched_with_backoff(sim: InsurerSimulator) -> None:
    sim.faults = Faults(truncated_pages=[1], truncate_times=3)
    async with connect(sim) as insurer:  # 3 re-fetches by default
        page = await insurer.get_cover_page(1)
    assert page.complete and page.truncation is not None and page.truncation.refetches == 3
    tries = sim.requests_to("covers_search")
    assert len(tries) == 4
    assert all(b.at - a.at >= FAST.base_delay / 2 for a, b in itertools.pairwise(tries))


# --- cover requests, companies, declarations -----------------------------------------


def _buyer_for(sim: InsurerSimulator, grades: range, capacity_at_least: int = 0):
    return next(
        b for b in sim.portfolio.buyers if b.grade in grades and b.capacity >= capacity_at_least
    )


async def test_cover_requests_are_decided_through_jobs(small: InsurerSimulator) -> None:
    good = _buyer_for(small, range(1, 5), 50_000)
    bigger = _buyer_for(small, range(1, 8), 10_000)
    risky = _buyer_for(small, range(9, 11))
    async with connect(small) as insurer:
        since = small.now
        granted_job = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=good.company_id,
                requested_amount=Decimal(10_000),
                currency="EUR",
            )
        )
        partial_job = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=bigger.company_id,
                requested_amount=Decimal(bigger.capacity + 50_000),
                currency="EUR",
                cover_type=CoverType.TEMPORARY,
                expiry_date=date(2025, 6, 30),
            )
        )
        refused_job = await insurer.request_cover(
            CoverRequest(
                policy_id="5012002",
                company_id=risky.company_id,
                requested_amount=Decimal(20_000),
                currency="USD",
            )
        )
        pending = await insurer.get_job(granted_job)
        assert pending.status is JobStatus.PENDING and pending.resource_url is None
        granted = await insurer.cover_decision(granted_job, timeout=5, poll_interval=0.05)
        partial = await insurer.cover_decision(partial_job, timeout=5, poll_interval=0.05)
        refused = await insurer.cover_decision(refused_job, timeout=5, poll_interval=0.05)
        assert granted.decision is Decision.GRANTED
        assert granted.amount == Decimal(10_000)
        assert partial.decision is Decision.PARTIALLY_GRANTED
        assert partial.amount == Decimal(bigger.capacity)
        assert partial.expiry_date == date(2025, 6, 30)
        assert partial.cover_type is CoverType.TEMPORARY
        assert refused.decision is Decision.REFUSED and refused.amount == 0
        assert granted.decision_date == small.today
        # the next incremental sync picks the decisions up as covers, the same records
        delta = await insurer.fetch_covers(updated_since=since)
        by_id = {c.cover_id: c for c in delta.covers}
        for cover in (granted, partial, refused):
            assert by_id[cover.cover_id] == cover
    polls = small.requests_to("job")
    assert len(polls) >= 4 and polls[0].status == 200
    assert [r.status for r in small.requests_to("cover")] == [200, 200, 200]


async def test_waiting_for_a_job_times_out(small: InsurerSimulator) -> None:
    small.job_delay_seconds = 30
    buyer = small.portfolio.buyers[0]
    async with connect(small) as insurer:
        job = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=buyer.company_id,
                requested_amount=Decimal(5000),
                currency="EUR",
            )
        )
        with pytest.raises(JobTimeout, match="still pending"):
            await insurer.wait_for_job(job, timeout=0.2, poll_interval=0.05)


async def test_a_retried_cover_request_files_one_job(small: InsurerSimulator) -> None:
    small.inject("cover_request", 500)
    buyer = small.portfolio.buyers[1]
    async with connect(small) as insurer:
        job_id = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=buyer.company_id,
                requested_amount=Decimal(5000),
                currency="EUR",
                client_reference="req-1",
            )
        )
        again = await insurer.request_cover(
            CoverRequest(
                policy_id="5012001",
                company_id=buyer.company_id,
                requested_amount=Decimal(5000),
                currency="EUR",
                client_reference="req-1",
            )
        )
    assert job_id == again and len(small.jobs) == 1


async def test_a_bad_cover_request_is_a_request_error(small: InsurerSimulator) -> None:
    async with connect(small) as insurer:
        with pytest.raises(InsurerRequestError, match=r"HTTP 404 .*companyId not found") as info:
            await insurer.request_cover(
                CoverRequest(
                    policy_id="5012001",
                    company_id="nobody",
                    requested_amount=Decimal(5000),
                    currency="EUR",
                )
            )
    assert info.value.status_code == 404
    assert len(small.requests_to("cover_request")) == 1  # 4xx is not retried


async def test_company_search_by_siren_siret_vat_and_duns(small: InsurerSimulator) -> None:
    french = next(b for b in small.portfolio.buyers if b.country == "FR" and b.duns)
    foreign = next(b for b in small.portfolio.buyers if b.country != "FR")
    async with connect(small) as insurer:
        spaced = f"{french.siren[:3]} {french.siren[3:6]} {french.siren[6:]}"
        by_siren = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.SIREN, identifier_value=spaced)
        )
        by_siret = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.SIRET, identifier_value=french.siren + "00012")
        )
        by_vat = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.VAT, identifier_value=french.vat.lower())
        )
        by_duns = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.DUNS, identifier_value=french.duns)
        )
        foreign_vat = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.VAT, identifier_value=foreign.vat)
        )
        wrong_country = await insurer.search_companies(
            CompanySearch(
                identifier_type=IdType.VAT, identifier_value=foreign.vat, country_code="FR"
            )
        )
        unknown = await insurer.search_companies(
            CompanySearch(identifier_type=IdType.SIREN, identifier_value="000000000")
        )
    for found in (by_siren, by_siret, by_vat, by_duns):
        assert [c.company_id for c in found] == [french.company_id]
    company = by_siren[0]
    assert company.identifier(IdType.SIREN) == french.siren
    assert company.identifier(IdType.VAT) == french.vat
    assert company.grade == french.grade and company.country_code == "FR"
    assert [c.company_id for c in foreign_vat] == [foreign.company_id]
    assert foreign_vat[0].identifier(IdType.SIREN) is None
    assert wrong_country == [] and unknown == []


async def test_overdue_declaration_is_idempotent_by_reference(small: InsurerSimulator) -> None:
    small.inject("overdues", 503, retry_after=0.01)
    buyer = small.portfolio.buyers[2]
    report = OverdueReport(
        client_reference="cobro-ovd-ACME-2025-01",
        policy_id="5012001",
        company_id=buyer.company_id,
        currency="EUR",
        default_date=date(2024, 12, 1),
        invoices=(
            DeclaredInvoice(number="F-1", due_date=date(2024, 11, 1), amount=Decimal("1200.50")),
            DeclaredInvoice(number="F-2", due_date=date(2024, 11, 15), amount=Decimal("300")),
        ),
    )
    async with connect(small) as insurer:
        receipt = await insurer.report_overdue(report)
        again = await insurer.declare(report)
        outcome = await insurer.declaration_outcome(receipt.job_id, timeout=5, poll_interval=0.05)
    assert receipt == again and receipt.category is OverdueCategory.OVD
    assert outcome.status_code == "Registered" and outcome.amount == Decimal("1500.50")
    assert outcome.client_reference == report.client_reference
    assert report.amount == Decimal("1500.50")
    assert small.declaration_counts()["declarations"] == {"OVD": 1, "EXP": 0, "RES": 0}
    assert small.declaration_counts()["received"]["OVD"] == 2  # the 503 never got that far
    stored = small.declarations[report.client_reference]["request"]
    assert stored["overdueCategoryTypeCode"] == "OVD"
    assert stored["invoices"][0]["dueDate"] == "2024-11-01"
    assert stored["policy"] == {"businessUnitCode": "EHFR", "policyId": "5012001"} or stored[
        "policy"
    ] == {"policyId": "5012001"}
    assert [r.status for r in small.requests_to("overdues")] == [503, 202, 200]


# --- configuration -----------------------------------------------------------------------


async def test_configuration_comes_from_settings(
    small: InsurerSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_INSURER_BASE_URL", small.base_url)
    monkeypatch.setenv("COBRO_INSURER_API_KEY", small.api_key)
    get_settings.cache_clear()
    try:
        async with AllianzTradeConnector(retry=FAST) as insurer:
            assert insurer.base_url == small.base_url
            await insurer.authenticate()
    finally:
        get_settings.cache_clear()
    assert small.tokens_issued == 1


async def test_bad_page_arguments_are_refused_before_any_call(small: InsurerSimulator) -> None:
    from datetime import datetime

    async with connect(small) as insurer:
        with pytest.raises(ValueError, match="start at 1"):
            await insurer.get_cover_page(0)
        with pytest.raises(ValueError, match="timezone-aware"):
            await insurer.get_cover_page(1, updated_since=datetime(2025, 1, 1))
    assert small.requests == []
