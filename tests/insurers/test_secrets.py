"""The insurer API key and the bearer tokens never reach logs, reprs or exception messages,
even through a run full of faults (retries, 401s, quarantine, truncation) at DEBUG level,
including httpx's and httpcore's own loggers."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import pytest
from pydantic import SecretStr

from cobro.devkit.insurer.faults import Faults
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.allianz_trade import AllianzTradeConnector, HttpRetries
from cobro.insurers.base import (
    CompanySearch,
    CoverRequest,
    DeclaredInvoice,
    IdType,
    InsurerAuthError,
    InsurerError,
    OverdueReport,
)

API_KEY = "sk-live-7f3a9c0d-TOP-SECRET-do-not-log"
FAST = HttpRetries(max_attempts=4, base_delay=0.01, max_delay=0.05)


def _chain(exc: BaseException) -> str:
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(f"{seen!s} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


async def test_secrets_never_logged_during_a_faulty_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    async with InsurerSimulator(buyers=300, seed=4, api_key=API_KEY, job_delay_seconds=0.1) as sim:
        sim.faults = Faults(malformed_records=5, truncated_pages=[2], token_max_uses=2)
        sim.inject("covers_search", 429, retry_after=0.02)
        sim.inject("covers_search", 500)
        sim.inject("token", 500)
        insurer = AllianzTradeConnector(sim.base_url, SecretStr(API_KEY), retry=FAST, page_size=50)
        async with insurer:
            result = await insurer.fetch_covers()
            assert result.quarantined and result.truncations
            buyer = next(b for b in sim.portfolio.buyers if b.country == "FR")
            await insurer.search_companies(
                CompanySearch(identifier_type=IdType.SIREN, identifier_value=buyer.siren)
            )
            job = await insurer.request_cover(
                CoverRequest(
                    policy_id="5012001",
                    company_id=buyer.company_id,
                    requested_amount=Decimal(9000),
                    currency="EUR",
                )
            )
            await insurer.cover_decision(job, timeout=5, poll_interval=0.05)
            await insurer.declare(
                OverdueReport(
                    client_reference="ref-1",
                    policy_id="5012001",
                    company_id=buyer.company_id,
                    currency="EUR",
                    default_date=date(2024, 12, 20),
                    invoices=(
                        DeclaredInvoice(number="F1", due_date=date(2024, 12, 1), amount=Decimal(1)),
                    ),
                )
            )
            sim.faults = Faults(reject_all_tokens=True)
            with pytest.raises(InsurerAuthError) as persistent:
                await insurer.fetch_covers()
            failures.append(_chain(persistent.value))
            failures.append(repr(insurer))
            failures.append(repr(insurer.stats))
        sim.faults = Faults()
        sim.inject("covers_search", 500, times=10)
        async with AllianzTradeConnector(sim.base_url, API_KEY, retry=FAST) as other:
            with pytest.raises(InsurerError) as exhausted:
                await other.fetch_covers()
            failures.append(_chain(exhausted.value))
        async with AllianzTradeConnector(sim.base_url, API_KEY + "-wrong", retry=FAST) as wrong:
            with pytest.raises(InsurerAuthError) as refused:
                await wrong.authenticate()
            failures.append(_chain(refused.value))
            failures.append(repr(wrong.__dict__))
        tokens = list(sim._tokens)
    assert len(tokens) >= 3
    assert sim.tokens_issued >= 3 and any(r.status == 401 for r in sim.requests)

    logged = "\n".join(
        [caplog.text]
        + [repr(r.__dict__) for r in caplog.records]
        + [r.getMessage() for r in caplog.records]
    )
    assert any(r.name.startswith("httpcore") for r in caplog.records), "DEBUG really captured"
    assert "quarantined" in logged and "re-authenticating" in logged
    for secret in [API_KEY, *tokens]:
        assert secret not in logged
        for text in failures:
            assert secret not in text
    assert "**********" in repr(wrong.__dict__)  # SecretStr, masked
