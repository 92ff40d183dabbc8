"""The simulated insurer's HTTP server: the contract in `cobro/insurers/CONTRACT.md` over
real HTTP, with the faults of `faults.py` injected and every request recorded."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cobro.devkit.insurer.faults import MALFORMATIONS, Faults, Injected, corrupt
from cobro.devkit.insurer.portfolio import (
    GeneratedPortfolio,
    SimBuyer,
    SimCover,
    SimJob,
    SimToken,
    iso,
)
from cobro.devkit.loopback import EmbeddedHttpServer

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "dev-api-key"
MAX_PAGE_SIZE = 1000
TOKEN_EXPIRES_IN = 3600

ENDPOINTS = (
    "token",
    "covers_search",
    "cover_request",
    "job",
    "company_search",
    "declaration",
)


@dataclass(frozen=True)
class SimRequest:
    at: float  # time.monotonic() at arrival
    method: str
    path: str
    endpoint: str
    status: int
    page: int | None = None
    token_id: int | None = None


# --- deterministic portfolio ---------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class InsurerSimulator:
    """The simulated insurer: portfolio + HTTP app + fault injection.

    `async with InsurerSimulator(buyers=1000, seed=7, port=0) as sim:` then point a connector at
    `sim.base_url` with `sim.api_key`.
    """

    def __init__(
        self,
        *,
        buyers: int = 1000,
        seed: int = 0,
        api_key: str = DEFAULT_API_KEY,
        start_date: date = date(2025, 1, 6),
        host: str = "127.0.0.1",
        port: int = 0,
        job_delay_seconds: float = 0.5,
        token_ttl_seconds: float = TOKEN_EXPIRES_IN,
        faults: Faults | None = None,
    ):
        self.seed = seed
        self._api_key = api_key
        self.start_date = start_date
        self.host = host
        self.requested_port = port
        self.job_delay_seconds = job_delay_seconds
        self.token_ttl_seconds = token_ttl_seconds
        self.portfolio = GeneratedPortfolio.generate(buyers, seed, start_date)
        self.day = 0
        self._tick = 0  # seconds into the simulated day of the next change
        self.requests: list[SimRequest] = []
        self.jobs: dict[str, SimJob] = {}
        self.declarations: dict[str, dict[str, Any]] = {}
        self.tokens_issued = 0
        self._tokens: dict[str, SimToken] = {}
        self._scripted: dict[str, deque[Injected]] = {e: deque() for e in ENDPOINTS}
        self._truncations_served: Counter[int] = Counter()
        self._cuts_served: Counter[int] = Counter()
        self._malformed_served: Counter[str] = Counter()
        self._filtered_cache: dict[tuple[Any, ...], list[str]] = {}
        self._version = 0
        self.faults = faults or Faults()
        self.app = Starlette(routes=self._routes())
        self._http = EmbeddedHttpServer(self.app, host, port, "insurer simulator")
        self.port: int | None = None

    def __repr__(self) -> str:
        buyers = len(self.portfolio.buyers)
        return f"InsurerSimulator(buyers={buyers}, seed={self.seed}, day={self.day})"

    # -- configuration ----------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._fault_rng = random.Random(f"cobro-insurer-faults:{faults.seed}")
        self._truncations_served.clear()
        self._cuts_served.clear()
        self._malformed_served.clear()
        self._malformed = self._pick_malformed(faults.malformed_records) | faults.malformed_ids

    def _pick_malformed(self, count: int) -> dict[str, str]:
        if not count:
            return {}
        rng = random.Random(f"cobro-insurer-malformed:{self.seed}")
        ids = sorted(
            rng.sample(sorted(self.portfolio.covers), min(count, len(self.portfolio.covers)))
        )
        return {cid: MALFORMATIONS[i % len(MALFORMATIONS)][0] for i, cid in enumerate(ids)}

    @property
    def malformed_cover_ids(self) -> dict[str, str]:
        """cover id → the corruption served in its place (`amount`, `missing_id`, ...)."""
        return dict(self._malformed)

    def inject(
        self,
        endpoint: str,
        status: int | None = None,
        *,
        times: int = 1,
        retry_after: float | None = None,
        slow: float | None = None,
    ) -> None:
        """The next `times` requests to `endpoint` answer `status` (with Retry-After for
        429/503 when given), or answer normally after `slow` seconds."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        for _ in range(times):
            self._scripted[endpoint].append(Injected(status, retry_after, slow))

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (expiry mid-sync)."""
        for token in self._tokens.values():
            token.expires_at = 0.0

    # -- simulated time ---------------------------------------------------------------------

    @property
    def today(self) -> date:
        return self.start_date + timedelta(days=self.day)

    @property
    def now(self) -> datetime:
        """The simulated instant: every change made from now on has `updatedAt >= now`, every
        change made before has `updatedAt < now`."""
        start = datetime(self.today.year, self.today.month, self.today.day, tzinfo=UTC)
        return start + timedelta(seconds=self._tick)

    def _stamp(self) -> datetime:
        moment = self.now
        self._tick += 1
        self._version += 1
        return moment

    def advance_day(self, days: int = 1) -> set[str]:
        """Move the book forward day by day; returns the ids of the covers that changed.

        Each day (deterministic per seed and day): temporary covers past their expiry date
        expire; about 2% of active covers are reduced, 0.5% withdrawn, 2% of buyers change grade.
        """
        changed: set[str] = set()
        for _ in range(days):
            self.day += 1
            self._tick = 0
            self._version += 1
            rng = random.Random(f"cobro-insurer-day:{self.seed}:{self.day}")
            by_buyer: dict[str, list[SimCover]] = {}
            for cover in self.portfolio.covers.values():
                by_buyer.setdefault(cover.buyer.company_id, []).append(cover)
            for cover in self.portfolio.covers.values():
                if (
                    cover.expiry_date is not None
                    and cover.expiry_date < self.today
                    and cover.status in ("ACTIVE", "REDUCED")
                ):
                    cover.status = "EXPIRED"
                    cover.updated_at = self._stamp()
                    changed.add(cover.cover_id)
                elif cover.status == "ACTIVE" and cover.amount > 0:
                    roll = rng.random()
                    if roll < 0.02:
                        cover.status = "REDUCED"
                        cover.amount = max(
                            1000, cover.amount * rng.choice((25, 50, 75)) // 100000 * 1000
                        )
                        cover.updated_at = self._stamp()
                        changed.add(cover.cover_id)
                    elif roll < 0.025:
                        cover.status, cover.amount = "WITHDRAWN", 0
                        cover.updated_at = self._stamp()
                        changed.add(cover.cover_id)
            for buyer in self.portfolio.buyers:
                if rng.random() < 0.02:
                    step = rng.choice((-2, -1, 1, 1, 2, 3))
                    grade = min(10, max(1, buyer.grade + step))
                    if grade == buyer.grade:
                        continue
                    buyer.grade = grade
                    for cover in by_buyer.get(buyer.company_id, []):
                        cover.updated_at = self._stamp()
                        changed.add(cover.cover_id)
        return changed

    def changed_since(self, since: datetime) -> set[str]:
        self._settle_jobs()
        return {c.cover_id for c in self.portfolio.covers.values() if c.updated_at >= since}

    def expected_covers(self) -> list[dict[str, Any]]:
        """The whole book as the API serves it without faults (for comparisons in tests)."""
        self._settle_jobs()
        return [c.to_json() for c in self.portfolio.covers.values()]

    def buyer(self, company_id: str) -> SimBuyer:
        return next(b for b in self.portfolio.buyers if b.company_id == company_id)

    def requests_to(self, endpoint: str) -> list[SimRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    # -- jobs -------------------------------------------------------------------------------

    def _decide(self, job: SimJob) -> dict[str, Any]:
        buyer = job.buyer
        if buyer.grade >= 9 or buyer.capacity == 0:
            decision, granted = "REFUSED", 0
        elif job.requested_amount <= buyer.capacity:
            decision, granted = "GRANTED", job.requested_amount
        else:
            decision, granted = "PARTIALLY_GRANTED", buyer.capacity
        existing = next(
            (
                c
                for c in self.portfolio.covers.values()
                if c.buyer is buyer and c.policy is job.policy
            ),
            None,
        )
        stamp = self._stamp()
        if existing is not None and decision == "REFUSED" and existing.amount > 0:
            cover = existing  # a refused increase leaves the current limit in place
            cover.updated_at = stamp
        else:
            cover = existing or SimCover(
                cover_id=self.portfolio.new_cover_id(),
                policy=job.policy,
                buyer=buyer,
                cover_type=job.cover_type,
                status="ACTIVE",
                decision=decision,
                nominative=True,
                requested_amount=job.requested_amount,
                amount=granted,
                request_date=job.created_at.date(),
                decision_date=self.today,
                effective_date=self.today,
                expiry_date=job.expiry_date,
                updated_at=stamp,
            )
            cover.cover_type, cover.expiry_date = job.cover_type, job.expiry_date
            cover.decision, cover.requested_amount, cover.amount = (
                decision,
                job.requested_amount,
                granted,
            )
            cover.status = "REFUSED" if decision == "REFUSED" else "ACTIVE"
            cover.request_date = min(job.created_at.date(), self.today)
            cover.decision_date = cover.effective_date = self.today
            cover.updated_at = stamp
            self.portfolio.covers[cover.cover_id] = cover
        return {
            "decision": decision,
            "coverId": cover.cover_id,
            "requestedAmount": job.requested_amount,
            "grantedAmount": granted,
            "currency": job.policy.currency,
            "decisionDate": self.today.isoformat(),
            "effectiveDate": self.today.isoformat() if granted else None,
            "expiryDate": job.expiry_date.isoformat() if job.expiry_date else None,
        }

    def _settle_jobs(self) -> None:
        moment = time.monotonic()
        for job in self.jobs.values():
            if job.result is None and moment >= job.ready_at:
                job.result = self._decide(job)

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/idp/oauth2/authorize", self._token, methods=["POST"]),
            Route("/riskinfo/v3/covers/search", self._covers_search, methods=["POST"]),
            Route("/riskinfo/v3/covers", self._cover_request, methods=["POST"]),
            Route("/riskinfo/v3/jobs/{job_id}", self._job, methods=["GET"]),
            Route("/search/v2/companies/advancedSearch", self._company_search, methods=["POST"]),
            Route("/claims/v1/declarations", self._declaration, methods=["POST"]),
            Route("/_sim/state", self._admin_state, methods=["GET"]),
            Route("/_sim/faults", self._admin_faults, methods=["GET", "POST"]),
            Route("/_sim/advance", self._admin_advance, methods=["POST"]),
        ]

    def _record(self, request: Request, endpoint: str, at: float, status: int, **kw: Any) -> None:
        self.requests.append(
            SimRequest(at, request.method, request.url.path, endpoint, status, **kw)
        )

    async def _fault(self, endpoint: str) -> Response | None:
        """A scripted or random failure for this request, or None to answer normally."""
        queue = self._scripted[endpoint]
        injected = queue.popleft() if queue else None
        f = self._faults
        rng = self._fault_rng
        if injected is None:
            if f.slow_rate and rng.random() < f.slow_rate:
                injected = Injected(slow=f.slow_seconds)
            elif f.rate_limit_rate and rng.random() < f.rate_limit_rate:
                injected = Injected(429, f.retry_after_seconds)
            elif f.unavailable_rate and rng.random() < f.unavailable_rate:
                injected = Injected(503, f.retry_after_seconds)
            elif f.server_error_rate and rng.random() < f.server_error_rate:
                injected = Injected(500)
        if injected is None:
            return None
        if injected.slow:
            await asyncio.sleep(injected.slow)
        if injected.status is None:
            return None
        headers = {}
        if injected.retry_after is not None:
            headers["Retry-After"] = _retry_after_header(injected.retry_after)
        codes = {429: "too_many_requests", 503: "service_unavailable"}
        code = codes.get(injected.status, "server_error")
        return _error(injected.status, code, f"simulated {injected.status}", headers)

    def _check_token(self, request: Request) -> tuple[Response | None, int | None]:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = self._tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            return _error(401, "invalid_token", "missing or unknown bearer token"), None
        token.uses += 1
        f = self._faults
        if f.reject_all_tokens or token.revoked:
            return _error(401, "invalid_token", "token refused"), token.token_id
        if time.monotonic() >= token.expires_at:
            return _error(401, "invalid_token", "token expired"), token.token_id
        if f.token_max_uses and token.uses > f.token_max_uses:
            return _error(401, "invalid_token", "token expired"), token.token_id
        return None, token.token_id

    async def _guard(self, request: Request, endpoint: str) -> tuple[Response | None, int | None]:
        failure = await self._fault(endpoint)
        if failure is not None:
            return failure, None
        return self._check_token(request)

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- endpoints --------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        at = time.monotonic()
        response = await self._fault("token")
        if response is None:
            body = await self._json_body(request)
            key = body.get("apiKey") if body else None
            if not isinstance(key, str) or not hmac.compare_digest(
                key.encode(), self._api_key.encode()
            ):
                response = _error(401, "invalid_api_key", "API key not recognised")
            else:
                self.tokens_issued += 1
                value = secrets.token_urlsafe(32)
                self._tokens[value] = SimToken(self.tokens_issued, at + self.token_ttl_seconds)
                expires_in = self.token_ttl_seconds
                response = JSONResponse(
                    {
                        "access_token": value,
                        "token_type": "Bearer",
                        "expires_in": int(expires_in) if expires_in >= 1 else expires_in,
                    }
                )
        self._record(request, "token", at, response.status_code)
        return response

    async def _covers_search(self, request: Request) -> Response:
        at = time.monotonic()
        await request.body()  # read on arrival: a request cut later is still served + counted
        response, token_id = await self._guard(request, "covers_search")
        page = None
        if response is None:
            response, page = await self._covers_page(request)
        else:  # still say which page a refused request was for
            body = await self._json_body(request) or {}
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                page = int((body.get("pagination") or {}).get("page", 1))
        self._record(
            request, "covers_search", at, response.status_code, page=page, token_id=token_id
        )
        return response

    async def _covers_page(self, request: Request) -> tuple[Response, int | None]:
        body = await self._json_body(request)
        if body is None:
            return _error(400, "bad_request", "a JSON object body is required"), None
        pagination = body.get("pagination") or {}
        filters = body.get("filters") or {}
        try:
            page = int(pagination.get("page", 1))
            size = int(pagination.get("pageSize", 100))
        except (TypeError, ValueError):
            return _error(400, "bad_request", "pagination.page/pageSize must be integers"), None
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            return _error(
                400, "bad_request", f"page >= 1 and 1 <= pageSize <= {MAX_PAGE_SIZE}"
            ), page
        since = None
        if filters.get("updatedSince"):
            try:
                since = datetime.fromisoformat(str(filters["updatedSince"]).replace("Z", "+00:00"))
            except ValueError:
                return _error(400, "bad_request", "filters.updatedSince is not ISO 8601"), page
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        policy_ids = filters.get("policyIds") or None
        company_ids = filters.get("companyIds") or None
        self._settle_jobs()
        ids = self._filtered(since, policy_ids, company_ids)
        total = len(ids)
        window = ids[(page - 1) * size : page * size]
        covers = self.portfolio.covers
        f = self._faults
        if f.repeat_on_next_page and page > 1:  # what an offset shifted by an insert repeats
            before = set(ids[(page - 2) * size : (page - 1) * size])
            window = [c for c in f.repeat_on_next_page if c in before] + window
        cut = page in f.cut_json_pages and self._cuts_served[page] < f.cut_json_times
        items = []
        for cid in window:
            record = covers[cid].to_json()
            kind = self._malformed.get(cid)
            if kind and (not f.malformed_times or self._malformed_served[cid] < f.malformed_times):
                self._malformed_served[cid] += not cut  # counted when served whole
                record = corrupt(record, kind)
            items.append(record)
            if cid in f.repeat_in_page:
                items.append(record)
        if page in f.truncated_pages and self._truncations_served[page] < f.truncate_times:
            self._truncations_served[page] += 1
            items = items[: max(0, len(items) - max(1, len(items) // 4))]
        result: dict[str, Any] = {
            "items": items,
            "pagination": {"page": page, "pageSize": size, "itemCount": len(items)},
        }
        if pagination.get("isTotalRequired", False):
            result["pagination"]["totalItems"] = total
            result["pagination"]["totalPages"] = -(-total // size) if total else 0
        response = JSONResponse(result)
        if cut:
            self._cuts_served[page] += 1  # a body cut midway, Content-Length matching the cut
            return Response(
                response.body[: len(response.body) // 2], 200, None, "application/json"
            ), page
        return response, page

    def _filtered(self, since: datetime | None, policy_ids: Any, company_ids: Any) -> list[str]:
        key = (
            self._version,
            since,
            tuple(policy_ids or ()),
            tuple(company_ids or ()),
        )
        cached = self._filtered_cache.get(key)
        if cached is not None:
            return cached
        pols = set(map(str, policy_ids)) if policy_ids else None
        comps = set(map(str, company_ids)) if company_ids else None
        ids = [
            c.cover_id
            for c in self.portfolio.covers.values()
            if (since is None or c.updated_at >= since)
            and (pols is None or c.policy.policy_id in pols)
            and (comps is None or c.buyer.company_id in comps)
        ]
        self._filtered_cache = {key: ids}  # one live query at a time is the common case
        return ids

    async def _cover_request(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "cover_request")
        if response is None:
            response = await self._new_job(request)
        self._record(request, "cover_request", at, response.status_code, token_id=token_id)
        return response

    async def _new_job(self, request: Request) -> Response:
        body = await self._json_body(request)
        if body is None:
            return _error(400, "bad_request", "a JSON object body is required")
        reference = body.get("clientReference")
        if reference:
            for job in self.jobs.values():
                if job.client_reference == reference:
                    return JSONResponse({"jobId": job.job_id}, status_code=202)
        policy = next(
            (p for p in self.portfolio.policies if p.policy_id == str(body.get("policyId"))), None
        )
        if policy is None:
            return _error(422, "unknown_policy", "policyId is not a policy of this customer")
        company_id = str(body.get("companyId"))
        buyer = next((b for b in self.portfolio.buyers if b.company_id == company_id), None)
        if buyer is None:
            return _error(404, "unknown_company", "companyId not found")
        try:
            amount = int(float(body["requestedAmount"]))
            cover_type = str(body.get("coverType", "PERMANENT"))
            expiry = date.fromisoformat(body["expiryDate"]) if body.get("expiryDate") else None
        except (KeyError, TypeError, ValueError):
            return _error(400, "bad_request", "requestedAmount and dates must be valid")
        if body.get("currency") != policy.currency:
            return _error(422, "bad_currency", f"this policy is in {policy.currency}")
        if cover_type not in ("PERMANENT", "TEMPORARY") or (cover_type == "TEMPORARY") != bool(
            expiry
        ):
            return _error(400, "bad_request", "a TEMPORARY cover needs an expiryDate, only it")
        job_id = f"J{len(self.jobs) + 1:08d}-{secrets.token_hex(4)}"
        self.jobs[job_id] = SimJob(
            job_id=job_id,
            created_at=self.now,
            ready_at=time.monotonic() + self.job_delay_seconds,
            policy=policy,
            buyer=buyer,
            requested_amount=amount,
            cover_type=cover_type,
            expiry_date=expiry,
            client_reference=reference,
        )
        return JSONResponse({"jobId": job_id}, status_code=202)

    async def _job(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "job")
        if response is None:
            self._settle_jobs()
            job = self.jobs.get(request.path_params["job_id"])
            if job is None:
                response = _error(404, "unknown_job", "no such job")
            else:
                data: dict[str, Any] = {
                    "jobId": job.job_id,
                    "status": "PROCESSED" if job.result else "PENDING",
                    "createdAt": iso(job.created_at),
                }
                if job.result:
                    data["result"] = job.result
                response = JSONResponse(data)
        self._record(request, "job", at, response.status_code, token_id=token_id)
        return response

    async def _company_search(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "company_search")
        if response is None:
            body = await self._json_body(request) or {}
            kind = str(body.get("identifierType", "")).upper()
            value = "".join(str(body.get("identifierValue", "")).split()).upper()
            country = body.get("countryCode")
            if kind not in ("SIREN", "SIRET", "VAT", "DUNS") or not value:
                response = _error(400, "bad_request", "identifierType and identifierValue needed")
            else:
                found = [
                    b.to_json(with_grade=True)
                    for b in self.portfolio.buyers
                    if _matches(b, kind, value) and (not country or b.country == country)
                ]
                response = JSONResponse({"companies": found, "totalItems": len(found)})
        self._record(request, "company_search", at, response.status_code, token_id=token_id)
        return response

    async def _declaration(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "declaration")
        if response is None:
            response = await self._declare(request)
        self._record(request, "declaration", at, response.status_code, token_id=token_id)
        return response

    async def _declare(self, request: Request) -> Response:
        body = await self._json_body(request)
        if body is None:
            return _error(400, "bad_request", "a JSON object body is required")
        reference = body.get("clientReference")
        if not reference:
            return _error(400, "bad_request", "clientReference is required")
        if reference in self.declarations:
            return JSONResponse(self.declarations[reference], status_code=200)
        if str(body.get("policyId")) not in {p.policy_id for p in self.portfolio.policies}:
            return _error(422, "unknown_policy", "policyId is not a policy of this customer")
        if not any(b.company_id == str(body.get("companyId")) for b in self.portfolio.buyers):
            return _error(404, "unknown_company", "companyId not found")
        invoices = body.get("invoices") or []
        try:
            amount = sum(float(i["amount"]) for i in invoices)
        except (KeyError, TypeError, ValueError):
            return _error(400, "bad_request", "every invoice needs a numeric amount")
        if not invoices:
            return _error(400, "bad_request", "at least one invoice")
        receipt = {
            "declarationId": f"D{len(self.declarations) + 1:08d}",
            "clientReference": reference,
            "type": body.get("type", "OVERDUE"),
            "status": "RECEIVED",
            "receivedAt": iso(self._stamp()),
            "amount": round(amount, 2),
        }
        self.declarations[reference] = {**receipt, "request": body}
        return JSONResponse(receipt, status_code=201)

    # -- admin (for `cobro dev` and manual testing; no auth, loopback only) ------------------

    async def _admin_state(self, request: Request) -> Response:
        self._settle_jobs()
        return JSONResponse(
            {
                "seed": self.seed,
                "day": self.day,
                "today": self.today.isoformat(),
                "now": iso(self.now),
                "buyers": len(self.portfolio.buyers),
                "covers": len(self.portfolio.covers),
                "jobs": len(self.jobs),
                "declarations": len(self.declarations),
                "tokensIssued": self.tokens_issued,
                "requests": dict(Counter(r.endpoint for r in self.requests)),
            }
        )

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._json_body(request)
            try:
                self.faults = Faults.model_validate(body or {})
            except ValueError as exc:
                return _error(400, "bad_request", str(exc))
        return JSONResponse(self.faults.model_dump())

    async def _admin_advance(self, request: Request) -> Response:
        body = await self._json_body(request) or {}
        changed = self.advance_day(int(body.get("days", 1)))
        return JSONResponse(
            {"day": self.day, "today": self.today.isoformat(), "changed": len(changed)}
        )

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._http.running:
            return
        self.port = await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def __aenter__(self) -> InsurerSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _retry_after_header(seconds: float) -> str:
    # RFC 9110 says delay-seconds is an integer; fractions keep tests fast and are accepted
    # by the connector. Whole numbers are sent as integers.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _matches(buyer: SimBuyer, kind: str, value: str) -> bool:
    if kind == "SIREN":
        return buyer.siren == value
    if kind == "SIRET":
        return buyer.siren is not None and len(value) == 14 and value[:9] == buyer.siren
    if kind == "VAT":
        return buyer.vat == value
    return buyer.duns is not None and buyer.duns == value.replace("-", "")
