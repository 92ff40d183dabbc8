"""Allianz Trade connector (async httpx), per `cobro/insurers/CONTRACT.md`.

- The API key (a `SecretStr`) is exchanged for a bearer token at `/v1/idp/oauth2/authorize`;
  the token is renewed shortly before `expires_in` runs out, and once when a call gets a 401.
  A second 401 in a row is an `InsurerAuthError`.
- Every call has a timeout. 5xx, timeouts and transport errors are retried with exponential
  backoff and jitter; 429 and 503 wait the server's `Retry-After`. Attempts are bounded.
  Writes (cover requests, declarations) carry a `clientReference`, so retrying them is safe.
- An answer that is not JSON (a body cut off midway, an HTML error page with status 200) or,
  for a covers page, not the contract's envelope, is asked for again by the connector itself,
  with the same bounded backoff (`HttpRetries`), before any error reaches the caller.
- Covers come page by page; each record is validated on its own: a bad one becomes a
  `QuarantinedRecord` (raw + reason + page/index) and never a `Cover`. A page shorter than its
  position and the total imply is re-fetched (with backoff, `truncated_page_retries` times),
  and reported as a `Truncation` either way.
- Neither the API key nor the token appears in logs, reprs or exception messages.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from cobro.insurers.allianz_wire import (
    CALLBACK_HEADER,
    WIRE_NAMES,
    Endpoint,
    PolicyRef,
    callback_header,
    company_fields,
    cover_fields,
    cover_request_body,
    covers_search_body,
    job_id_from,
    parse_policies,
    resolve_endpoint,
)
from cobro.insurers.base import (
    ClaimRecord,
    ClaimRequest,
    Company,
    CompanyMatch,
    CompanyMatchResult,
    CompanySearch,
    Cover,
    CoverFetch,
    CoverPage,
    CoverRequest,
    CoverRequestState,
    CoverType,
    Declaration,
    DeclarationReceipt,
    ExtensionRequest,
    InsurerAuthError,
    InsurerError,
    InsurerProtocolError,
    InsurerRateLimited,
    InsurerRequestError,
    InsurerUnavailable,
    Job,
    JobStatus,
    JobTimeout,
    OverdueRecord,
    OverdueReport,
    QuarantinedRecord,
    ReschedulingRequest,
    Truncation,
    describe_validation_error,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
RETRY_AFTER_STATUS = frozenset({429, 503})


@dataclass(frozen=True)
class HttpRetries:
    """Bounded retries: `max_attempts` tries in all; backoff `base_delay * 2**n` capped at
    `max_delay`, with jitter (half fixed, half random); Retry-After is honoured up to
    `max_retry_after` seconds (beyond that the call fails rather than stall a sync)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class ConnectorStats:
    """What the connector did (for sync-run records and tests)."""

    requests: int = 0
    retries: int = 0
    authentications: int = 0
    reauthentications_on_401: int = 0
    garbled: int = 0  # answers that were not JSON (or not a covers page), asked for again
    waited_seconds: float = 0.0


class _Token(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: SecretStr = Field(min_length=1)
    expires_in: float = Field(gt=0)


class _Pagination(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    page: int
    page_size: int = Field(alias="pageSize")
    total_items: int | None = Field(None, alias="totalItems", ge=0)
    total_pages: int | None = Field(None, alias="totalPages", ge=0)


class _SearchEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[Any]
    pagination: _Pagination


class _Companies(BaseModel):
    model_config = ConfigDict(extra="ignore")

    companies: list[Any]


class _Matches(BaseModel):
    model_config = ConfigDict(extra="ignore")

    results: list[dict[str, Any]]


@dataclass(frozen=True)
class Callback:
    """Ask the insurer to POST the job's result to `url` (HTTPS, domain whitelisted by the
    insurer) instead of being polled; `time_to_live_hours` bounds how long it tries."""

    url: str
    time_to_live_hours: int = 24
    extended: bool = False  # a functional notification (the decision), not only "processed"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class AllianzTradeConnector:
    """Async client for the Allianz Trade API (or the loopback simulator: same contract).

    Configuration: explicit `base_url` / `api_key`, else `cobro.settings` (`COBRO_INSURER_BASE_URL`,
    `COBRO_INSURER_API_KEY`). Use it as an async context manager, or call `aclose()`.
    """

    name = "allianz_trade"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: SecretStr | str | None = None,
        *,
        environment: str | None = None,
        policies: Sequence[PolicyRef] | str | None = None,
        timeout: float | httpx.Timeout = 15.0,
        retry: HttpRetries | None = None,
        page_size: int = 500,
        token_refresh_margin: float = 60.0,
        truncated_page_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        if base_url is None or api_key is None or environment is None or policies is None:
            from cobro.settings import get_settings

            settings = get_settings()
            base_url = base_url if base_url is not None else settings.insurer_base_url
            api_key = api_key if api_key is not None else settings.insurer_api_key
            environment = environment if environment is not None else settings.insurer_environment
            policies = policies if policies is not None else settings.insurer_policies
        self.endpoint: Endpoint = resolve_endpoint(base_url, environment)
        self.base_url = self.endpoint.base_url
        self.policies: tuple[PolicyRef, ...] = (
            parse_policies(policies) if isinstance(policies, str) else tuple(policies)
        )
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self.retry = retry or HttpRetries()
        self.page_size = page_size
        self.token_refresh_margin = token_refresh_margin
        self.truncated_page_retries = truncated_page_retries
        self.stats = ConnectorStats()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._token: SecretStr | None = None
        self._token_renew_at = 0.0
        self._auth_lock = asyncio.Lock()
        self._client_options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            "transport": transport,
            "headers": {"Accept": "application/json", "User-Agent": "cobro-insurer/1"},
            "follow_redirects": False,
        }
        self._client = httpx.AsyncClient(**self._client_options)

    def __repr__(self) -> str:
        return (
            f"AllianzTradeConnector(base_url={self.base_url!r}, "
            f"environment={self.endpoint.environment!r})"
        )

    def reopened(self) -> AllianzTradeConnector:
        """This connector with a client of its own and fresh counters, its token kept: for a
        forked process, which must not use its parent's connections (nor close them)."""
        other = copy.copy(self)
        other.stats = ConnectorStats()
        other._auth_lock = asyncio.Lock()
        other._client = httpx.AsyncClient(**self._client_options)
        return other

    async def __aenter__(self) -> AllianzTradeConnector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Exchange the API key for a bearer token now (otherwise done on first use)."""
        async with self._auth_lock:
            await self._authenticate_locked()

    async def _authenticate_locked(self) -> None:
        data = await self._send_json(
            "POST",
            self.endpoint.path("token"),
            what="authentication",
            json={"apiKey": self._api_key.get_secret_value()},
            authenticated=False,
        )
        try:
            token = _Token.model_validate(data)
        except ValidationError:
            raise InsurerProtocolError(
                "authentication: the token response has no access_token/expires_in"
            ) from None
        margin = min(self.token_refresh_margin, token.expires_in / 2)
        self._token = token.access_token
        self._token_renew_at = time.monotonic() + token.expires_in - margin
        self.stats.authentications += 1
        log.debug("insurer: authenticated, token valid for %.0fs", token.expires_in)

    async def _bearer(self) -> str:
        if self._token is None or time.monotonic() >= self._token_renew_at:
            async with self._auth_lock:
                if self._token is None or time.monotonic() >= self._token_renew_at:
                    await self._authenticate_locked()
        assert self._token is not None
        return self._token.get_secret_value()

    def _forget_token(self, used: str) -> None:
        if self._token is not None and self._token.get_secret_value() == used:
            self._token = None

    # -- the request loop -------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        authenticated: bool = True,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One logical call: retries, Retry-After, one re-authentication on 401.

        Raises InsurerAuthError, InsurerRateLimited, InsurerUnavailable, InsurerRequestError.
        """
        policy = self.retry
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            headers = dict(extra_headers or {})
            bearer = None
            if authenticated:
                bearer = await self._bearer()
                headers["Authorization"] = f"Bearer {bearer}"
            self.stats.requests += 1
            try:
                response = await self._client.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                problem = f"{type(exc).__name__}"
                if attempt >= policy.max_attempts:
                    raise InsurerUnavailable(
                        f"{what}: {problem} on {method} {path} after {attempt} attempts"
                    ) from None
                await self._wait(policy.backoff(attempt, self._rng), what, problem, attempt)
                continue
            status = response.status_code
            log.debug("insurer: %s %s -> %d (attempt %d)", method, path, status, attempt)
            if status < 400:
                return response
            if status == 401:
                if not authenticated:
                    raise InsurerAuthError(
                        f"{what}: the insurer refused the API key (HTTP 401); "
                        "check COBRO_INSURER_API_KEY"
                    )
                if reauthenticated:
                    raise InsurerAuthError(
                        f"{what}: the insurer refused a fresh access token (HTTP 401 twice on "
                        f"{method} {path}); the API key may lack access to this API"
                    )
                reauthenticated = True
                self.stats.reauthentications_on_401 += 1
                log.info("insurer: %s got 401, re-authenticating once", what)
                assert bearer is not None
                self._forget_token(bearer)
                attempt -= 1  # the re-authentication is not a failed attempt
                continue
            if status in RETRY_AFTER_STATUS:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > policy.max_retry_after:
                    raise InsurerRateLimited(
                        f"{what}: HTTP {status} with Retry-After {retry_after:.0f}s, "
                        f"more than the {policy.max_retry_after:.0f}s allowed"
                    )
                if attempt >= policy.max_attempts:
                    raise InsurerRateLimited(
                        f"{what}: HTTP {status} on {method} {path} after {attempt} attempts"
                    )
                if retry_after is None:
                    delay = policy.backoff(attempt, self._rng)
                else:  # at least what the server asked, plus a little jitter
                    delay = retry_after + self._rng.uniform(0, min(1.0, 0.1 * retry_after))
                await self._wait(delay, what, f"HTTP {status}", attempt)
                continue
            if status in RETRYABLE_STATUS or status >= 500:
                if attempt >= policy.max_attempts:
                    raise InsurerUnavailable(
                        f"{what}: HTTP {status} on {method} {path} after {attempt} attempts"
                    )
                await self._wait(
                    policy.backoff(attempt, self._rng), what, f"HTTP {status}", attempt
                )
                continue
            raise InsurerRequestError(
                f"{what}: HTTP {status} on {method} {path}: {_error_message(response)}", status
            )

    async def _wait(self, delay: float, what: str, problem: str, attempt: int) -> None:
        self.stats.retries += 1
        self.stats.waited_seconds += delay
        log.warning(
            "insurer: %s: %s (attempt %d/%d), retrying in %.2fs",
            what,
            problem,
            attempt,
            self.retry.max_attempts,
            delay,
        )
        await self._sleep(delay)

    async def _send_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        authenticated: bool = True,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        """`_send`, then the body as JSON: an answer that is not JSON (cut off midway, an
        error page) is asked for again with backoff, `max_attempts` times in all. Every call
        that may be repeated is a read or carries its idempotency reference."""
        attempt = 0
        while True:
            attempt += 1
            response = await self._send(
                method,
                path,
                what=what,
                json=json,
                authenticated=authenticated,
                extra_headers=extra_headers,
            )
            try:  # pydantic's JSON parser: the same values as `json.loads`, in a third less
                return pydantic_core.from_json(response.content)
            except ValueError:
                self.stats.garbled += 1
                problem = f"HTTP {response.status_code} answer is not JSON"
                if attempt >= self.retry.max_attempts:
                    raise InsurerProtocolError(
                        f"{what}: {problem} ({len(response.content)} bytes), {attempt} attempts"
                    ) from None
                await self._wait(self.retry.backoff(attempt, self._rng), what, problem, attempt)

    async def _post_json(
        self, path: str, body: Any, what: str, headers: dict[str, str] | None = None
    ) -> Any:
        return await self._send_json("POST", path, what=what, json=body, extra_headers=headers)

    def _policy(
        self, policy_id: str, business_unit_code: str | None = None, extension_id: str | None = None
    ) -> PolicyRef:
        """The policy as the API names it: the configured one with this id (and extension),
        unless the caller says its business unit."""
        if business_unit_code is None:
            for ref in self.policies:
                if ref.policy_id == policy_id and (
                    extension_id is None or ref.extension_id == extension_id
                ):
                    return ref
        return PolicyRef(business_unit_code, policy_id, extension_id)

    def _resource_path(self, resource: str, name: str, key: str) -> str:
        """A resource URL from a job (absolute, on this API's host), a path, or a bare id.
        A URL on another host is refused: the bearer token never leaves this API."""
        if "://" in resource:
            parts, ours = urlsplit(resource), urlsplit(self.base_url)
            if (parts.scheme, parts.netloc) != (ours.scheme, ours.netloc):
                raise InsurerProtocolError(
                    f"resource URL on another host ({parts.netloc}): not followed"
                )
            return parts.path + (f"?{parts.query}" if parts.query else "")
        if resource.startswith("/"):
            return resource
        return self.endpoint.path(name, **{key: resource})

    # -- covers -----------------------------------------------------------------------------

    async def get_cover_page(
        self,
        page: int,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
    ) -> CoverPage:
        """One page of the policy's covers (1-based), validated record by record.

        A page shorter than `min(page_size, total - (page - 1) * page_size)` is re-fetched up
        to `truncated_page_retries` times and carries a `Truncation` either way.
        """
        if page < 1:
            raise ValueError("page numbers start at 1")
        size = page_size or self.page_size
        since = None
        if updated_since is not None:
            if updated_since.tzinfo is None:
                raise ValueError("updated_since must be timezone-aware")
            since = updated_since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        policies = self.policies
        if policy_id is not None:
            policies = tuple(p for p in policies if p.policy_id == policy_id) or (
                self._policy(policy_id),
            )
        body = covers_search_body(policies, page, size, since)
        what = f"covers page {page}"
        refetches = misshapen = 0
        path = self.endpoint.path("covers_search")
        while True:
            data = await self._post_json(path, body, what)
            try:
                envelope = _SearchEnvelope.model_validate(data)
                if envelope.pagination.total_items is None:
                    raise ValueError("totalItems missing though it was required")
            except (ValidationError, ValueError) as exc:
                misshapen += 1
                self.stats.garbled += 1
                problem = (
                    describe_validation_error(exc) if isinstance(exc, ValidationError) else exc
                )
                if misshapen >= self.retry.max_attempts:
                    raise InsurerProtocolError(
                        f"{what}: not a covers page ({problem}), {misshapen} attempts"
                    ) from None
                await self._wait(
                    self.retry.backoff(misshapen, self._rng), what, "not a covers page", misshapen
                )
                continue
            total = envelope.pagination.total_items
            expected = max(0, min(size, total - (page - 1) * size))
            received = len(envelope.items)
            if received >= expected or refetches >= self.truncated_page_retries:
                break
            refetches += 1
            log.warning(
                "insurer: %s is truncated (%d of %d records), fetching it again",
                what,
                received,
                expected,
            )
            await self._wait(
                self.retry.backoff(refetches, self._rng), what, "truncated page", refetches
            )
        truncation = None
        if refetches or received < expected:
            truncation = Truncation(
                page=page,
                expected=expected,
                received=received,
                refetches=refetches,
                recovered=received >= expected,
            )
            if not truncation.recovered:
                log.error(
                    "insurer: %s still truncated after %d re-fetch(es): %d of %d records",
                    what,
                    refetches,
                    received,
                    expected,
                )
        covers, quarantined = _validate_covers(envelope.items, page)
        total_pages = -(-total // size) if total else 0
        return CoverPage(
            number=page,
            page_size=size,
            total_items=total,
            total_pages=total_pages,
            covers=tuple(covers),
            quarantined=tuple(quarantined),
            truncation=truncation,
        )

    async def iter_cover_pages(
        self,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
        start_page: int = 1,
    ) -> AsyncIterator[CoverPage]:
        """Every page from `start_page` to the last (full fetch, or incremental with
        `updated_since`). An empty result is one empty page."""
        page = start_page
        while True:
            current = await self.get_cover_page(
                page, page_size=page_size, updated_since=updated_since, policy_id=policy_id
            )
            yield current
            if current.is_last:
                return
            page += 1

    async def fetch_covers(
        self,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
    ) -> CoverFetch:
        """All pages gathered in memory (fine for thousands; page through for more)."""
        covers: list[Cover] = []
        quarantined: list[QuarantinedRecord] = []
        truncations: list[Truncation] = []
        pages = total = 0
        async for page in self.iter_cover_pages(
            page_size=page_size, updated_since=updated_since, policy_id=policy_id
        ):
            pages += 1
            total = page.total_items
            covers.extend(page.covers)
            quarantined.extend(page.quarantined)
            if page.truncation is not None:
                truncations.append(page.truncation)
        return CoverFetch(
            updated_since=updated_since,
            total_items=total,
            pages=pages,
            covers=tuple(covers),
            quarantined=tuple(quarantined),
            truncations=tuple(truncations),
        )

    # -- cover requests and jobs -----------------------------------------------------------

    async def request_cover(
        self, request: CoverRequest, *, callback: Callback | None = None
    ) -> str:
        """File a credit-limit (or grade) request; returns the job id to follow. A
        `client_reference` is added when missing, so a retried call never files the request
        twice. With `callback`, the insurer also POSTs the job's result there."""
        reference = request.client_reference or uuid.uuid4().hex
        body = cover_request_body(
            policy=self._policy(
                request.policy_id, request.business_unit_code, request.extension_id
            ),
            company_id=request.company_id,
            request_type=request.request_type.value,
            requested_amount=request.requested_amount,
            currency=request.currency,
            is_request_urgent=request.is_request_urgent,
            temporary_until=(
                request.expiry_date if request.cover_type is CoverType.TEMPORARY else None
            ),
            client_reference=reference,
        )
        headers = None
        if callback is not None:
            headers = {
                CALLBACK_HEADER: callback_header(
                    callback.url, callback.time_to_live_hours, callback.extended
                )
            }
        data = await self._post_json(
            self.endpoint.path("cover_request"), body, "cover request", headers
        )
        job_id = job_id_from(data)
        if job_id is None:
            raise InsurerProtocolError("cover request: the answer has no job id")
        return job_id

    async def search_cover_requests(
        self, status_code: str | None = "InProgress", *, page: int = 1, page_size: int = 500
    ) -> list[CoverRequestState]:
        """Cover requests of the configured policies (by default those still in progress);
        the answer is a JSON array."""
        body: dict[str, Any] = {
            "policies": [p.wire() for p in self.policies],
            "pagination": {"page": page, "pageSize": page_size, "isTotalRequired": True},
        }
        if status_code:
            body["requestStatusCode"] = status_code
        path = self.endpoint.path("cover_requests_search")
        data = await self._post_json(path, body, "cover requests search")
        if not isinstance(data, list):
            raise InsurerProtocolError("cover requests search: the answer is not a JSON array")
        try:
            return [CoverRequestState.model_validate(item) for item in data]
        except ValidationError as exc:
            reason = describe_validation_error(exc)
            raise InsurerProtocolError(f"cover requests search: {reason}") from None

    async def get_job(self, job_id: str) -> Job:
        what = f"job {job_id}"
        data = await self._send_json("GET", self.endpoint.path("job", job_id=job_id), what=what)
        try:
            return Job.model_validate(data)
        except ValidationError as exc:
            raise InsurerProtocolError(f"{what}: {describe_validation_error(exc)}") from None

    async def wait_for_job(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> Job:
        """Poll the job until it is processed; `JobTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get_job(job_id)
            if job.status is JobStatus.PROCESSED:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeout(f"job {job_id} still pending after {timeout:.0f}s")
            await self._sleep(min(poll_interval, remaining))

    async def get_cover(self, resource: str) -> Cover:
        """One cover: a job's `resourceUrl`, a path, or a cover id (`GET covers/{coverId}`)."""
        path = self._resource_path(resource, "cover", "cover_id")
        data = await self._send_json("GET", path, what="cover")
        try:
            return Cover.model_validate(cover_fields(data))
        except ValidationError as exc:
            reason = describe_validation_error(exc, names=WIRE_NAMES)
            raise InsurerProtocolError(f"cover: {reason}") from None

    async def cover_decision(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> Cover:
        """Wait for a cover request's job, then follow its resource URL: the decided cover."""
        job = await self.wait_for_job(job_id, timeout=timeout, poll_interval=poll_interval)
        assert job.resource_url is not None
        return await self.get_cover(job.resource_url)

    # -- companies ---------------------------------------------------------------------------

    async def search_companies(self, query: CompanySearch) -> list[Company]:
        """Companies known to the insurer with this national identifier (spaces ignored)."""
        body = query.model_copy(
            update={"identifier_value": "".join(query.identifier_value.split()).upper()}
        ).wire()
        path = self.endpoint.path("company_search")
        data = await self._post_json(path, body, "company search")
        try:
            found = _Companies.model_validate(data).companies
            return [Company.model_validate(company_fields(c)) for c in found]
        except ValidationError as exc:
            reason = describe_validation_error(exc, names=WIRE_NAMES)
            raise InsurerProtocolError(f"company search: {reason}") from None

    async def match_companies(self, query: CompanyMatch) -> list[CompanyMatchResult]:
        """Buyers matching a name and address, best first (the insurer's own matching)."""
        body: dict[str, Any] = {
            "requestedSize": query.requested_size,
            "companyName": query.company_name,
            "countryCode": query.country_code,
            "minimumScore": query.minimum_score,
            "companyIdentifierTypeCode": "EH",
        }
        for key, value in (
            ("streetName", query.street_name),
            ("streetNumber", query.street_number),
            ("town", query.town),
            ("postalCode", query.postal_code),
        ):
            if value:
                body[key] = value
        if query.identifiers:
            body["companyIdentifiers"] = [
                {"idTypeCode": i.type.value, "idValue": i.value} for i in query.identifiers
            ]
        data = await self._post_json(
            self.endpoint.path("company_matching"), body, "company matching"
        )
        try:
            results = _Matches.model_validate(data).results
            return [
                CompanyMatchResult(
                    company=Company.model_validate(company_fields(r.get("company"))),
                    score=r.get("score") if isinstance(r.get("score"), int) else None,
                )
                for r in results
            ]
        except ValidationError as exc:
            reason = describe_validation_error(exc, names=WIRE_NAMES)
            raise InsurerProtocolError(f"company matching: {reason}") from None

    # -- payment overdues: OVD, EXP, RES -----------------------------------------------------

    async def declare(self, declaration: Declaration) -> DeclarationReceipt:
        """File a payment-overdue declaration (OVD, EXP or RES); returns its job. The same
        `client_reference` is one declaration at the insurer however often this is called."""
        body = overdue_body(
            declaration,
            self._policy(
                declaration.policy_id, declaration.business_unit_code, declaration.extension_id
            ),
        )
        what = f"{declaration.category.value} declaration"
        data = await self._post_json(self.endpoint.path("overdues"), body, what)
        job_id = job_id_from(data)
        if job_id is None:
            raise InsurerProtocolError(f"{what}: the answer has no job id")
        return DeclarationReceipt(
            job_id=job_id,
            client_reference=declaration.client_reference,
            category=declaration.category,
        )

    async def report_overdue(self, report: OverdueReport) -> DeclarationReceipt:
        return await self.declare(report)

    async def request_extension(self, request: ExtensionRequest) -> DeclarationReceipt:
        return await self.declare(request)

    async def request_rescheduling(self, request: ReschedulingRequest) -> DeclarationReceipt:
        return await self.declare(request)

    async def get_overdue(self, resource: str) -> OverdueRecord:
        """A declaration as the insurer holds it: a job's `resourceUrl`, a path or its id."""
        path = self._resource_path(resource, "overdue", "overdue_id")
        data = await self._send_json("GET", path, what="overdue")
        try:
            return OverdueRecord.model_validate(data)
        except ValidationError as exc:
            raise InsurerProtocolError(f"overdue: {describe_validation_error(exc)}") from None

    async def declaration_outcome(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> OverdueRecord:
        """Wait for a declaration's job, then read the declaration it produced."""
        job = await self.wait_for_job(job_id, timeout=timeout, poll_interval=poll_interval)
        assert job.resource_url is not None
        return await self.get_overdue(job.resource_url)

    # -- claims (assumed shapes, CONTRACT.md) ------------------------------------------------

    async def file_claim(self, claim: ClaimRequest) -> str:
        """File a claim for indemnity; returns its job id. The same `client_reference` is one
        claim at the insurer however often this is called."""
        policy = self._policy(claim.policy_id, claim.business_unit_code, claim.extension_id)
        data = await self._post_json(
            self.endpoint.path("claims"), claim_body(claim, policy), "claim"
        )
        job_id = job_id_from(data)
        if job_id is None:
            raise InsurerProtocolError("claim: the answer has no job id")
        return job_id

    async def get_claim(self, resource: str) -> ClaimRecord:
        """A claim as the insurer holds it: a job's `resourceUrl`, a path or its id."""
        path = self._resource_path(resource, "claim", "claim_id")
        data = await self._send_json("GET", path, what="claim")
        try:
            return ClaimRecord.model_validate(data)
        except ValidationError as exc:
            raise InsurerProtocolError(f"claim: {describe_validation_error(exc)}") from None

    async def claim_outcome(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> ClaimRecord:
        """Wait for a claim's job, then read the claim it opened."""
        job = await self.wait_for_job(job_id, timeout=timeout, poll_interval=poll_interval)
        assert job.resource_url is not None
        return await self.get_claim(job.resource_url)


def claim_body(claim: ClaimRequest, policy: PolicyRef) -> dict[str, Any]:
    """The claim request body (assumed names, CONTRACT.md)."""
    invoice = claim.invoice
    body: dict[str, Any] = {
        "policy": policy.wire(),
        "companyId": claim.company_id,
        "clientReference": claim.client_reference,
        "currencyCode": claim.currency,
        "claimAmount": str(claim.claim_amount),
        "lossDate": claim.loss_date.isoformat(),
        "invoices": [
            {
                "invoiceNumber": invoice.number,
                "dueDate": invoice.due_date.isoformat(),
                "amount": str(invoice.amount),
            }
        ],
    }
    if claim.overdue_id:
        body["overdueId"] = claim.overdue_id
    return body


def overdue_body(declaration: Declaration, policy: PolicyRef) -> dict[str, Any]:
    """The Payment Overdues request body (`overdueCategoryTypeCode` is public; the other
    names are assumed, see CONTRACT.md)."""
    body: dict[str, Any] = {
        "overdueCategoryTypeCode": declaration.category.value,
        "policy": policy.wire(),
        "companyId": declaration.company_id,
        "clientReference": declaration.client_reference,
        "currencyCode": declaration.currency,
        "overdueAmount": str(declaration.amount),
        "invoices": [
            {
                "invoiceNumber": i.number,
                **({"invoiceDate": i.issue_date.isoformat()} if i.issue_date else {}),
                "dueDate": i.due_date.isoformat(),
                "amount": str(i.amount),
            }
            for i in declaration.invoices
        ],
    }
    if isinstance(declaration, OverdueReport):
        body["defaultDate"] = declaration.default_date.isoformat()
    elif isinstance(declaration, ExtensionRequest):
        body["newDueDate"] = declaration.new_due_date.isoformat()
    else:
        body["repaymentPlan"] = [
            {"dueDate": i.due_date.isoformat(), "amount": str(i.amount)}
            for i in declaration.installments
        ]
    if declaration.comment:
        body["comment"] = declaration.comment
    return body


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_description") or data.get("error")
        if message:
            return str(message)[:200]
    return response.reason_phrase or "error"


def _validate_covers(items: list[Any], page: int) -> tuple[list[Cover], list[QuarantinedRecord]]:
    covers: list[Cover] = []
    quarantined: list[QuarantinedRecord] = []
    for index, raw in enumerate(items):
        record_id = raw.get("coverId") if isinstance(raw, dict) else None
        if record_id is not None and not isinstance(record_id, str):
            record_id = str(record_id)
        try:
            covers.append(Cover.model_validate(cover_fields(raw)))
        except ValidationError as exc:
            reason = describe_validation_error(exc, names=WIRE_NAMES)
            quarantined.append(
                QuarantinedRecord(
                    page=page, index=index, record_id=record_id, reason=reason, raw=raw
                )
            )
            log.warning(
                "insurer: page %d record %d (%s) quarantined: %s",
                page,
                index,
                record_id or "no id",
                reason,
            )
    return covers, quarantined


__all__ = [
    "AllianzTradeConnector",
    "Callback",
    "ConnectorStats",
    "HttpRetries",
    "InsurerError",
    "parse_retry_after",
]
