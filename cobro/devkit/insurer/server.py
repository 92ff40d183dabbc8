"""The simulated insurer's HTTP server: the contract in `cobro/insurers/CONTRACT.md` over
real HTTP, with the faults of `faults.py` injected and every request recorded."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hmac
import logging
import random
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pydantic_core
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
    SimPolicy,
    SimToken,
    iso,
)
from cobro.devkit.loopback import EmbeddedHttpServer
from cobro.insurers.allianz_wire import (
    CALLBACK_HEADER,
    OVERDUE_CATEGORIES,
    PATHS,
    parse_callback_header,
    uat_path,
)

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "dev-api-key"
MAX_PAGE_SIZE = 10_000  # a public integration asks for 10,000 per page
TOKEN_EXPIRES_IN = 3600

ENDPOINTS = (
    "token",
    "covers_search",
    "cover_request",
    "cover_requests_search",
    "cover",
    "job",
    "company_search",
    "company_matching",
    "overdues",
    "overdue",
    "claims",
    "claim",
)
CALLBACK_ATTEMPTS = 3  # public: "3 calls every 30 seconds (1 initial call then 2 retries)"


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
        callback_retry_seconds: float = 30.0,
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
        self.callback_retry_seconds = callback_retry_seconds
        self.jobs: dict[str, SimJob] = {}
        # payment overdues: every POST received (repeats included), and each declaration once
        self.declaration_posts: Counter[str] = Counter()
        self.declarations: dict[str, dict[str, Any]] = {}  # by clientReference
        self.overdues: dict[str, dict[str, Any]] = {}  # by overdueId, once processed
        # claims: every POST received (repeats included), each claim once by clientReference
        self.claim_posts = 0
        self.claims: dict[str, dict[str, Any]] = {}  # by clientReference
        self.claim_records: dict[str, dict[str, Any]] = {}  # by claimId, once acknowledged
        self.grade_covers: dict[str, dict[str, Any]] = {}  # GradeCover answers, by id
        self.callbacks: list[tuple[str, int]] = []  # (url, HTTP status or 0) per attempt
        self._callback_tasks: set[asyncio.Task[None]] = set()
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

    def _decide(self, job: SimJob) -> str:
        """Decide a cover request; returns the id of the cover that carries the decision."""
        buyer, policy = job.buyer, job.policy
        assert buyer is not None and policy is not None
        existing = next(
            (c for c in self.portfolio.covers.values() if c.buyer is buyer and c.policy is policy),
            None,
        )
        if job.request_type == "GradeCover":
            cover_id = f"G{len(self.grade_covers) + 1:09d}"
            self.grade_covers[cover_id] = {
                "coverId": cover_id,
                "coverTypeCode": "GradeCover",
                "policy": policy.to_json(),
                "company": buyer.to_json(),
                "grade": buyer.grade,
                "creationDate": job.created_at.date().isoformat(),
                "creditLimitsAggregation": {"creditLimits": []},
                "lastUpdateDate": iso(self._stamp()),
            }
            return cover_id
        amount = job.requested_amount or 0
        if (
            existing is not None
            and existing.status == "ACTIVE"
            and existing.amount == amount
            and existing.cover_type == job.cover_type
        ):
            existing.already_agreed = True  # nothing to decide: that limit is in force
            existing.updated_at = self._stamp()
            return existing.cover_id
        if buyer.grade >= 9 or buyer.capacity == 0:
            decision, granted = "REFUSED", 0
        elif amount <= buyer.capacity:
            decision, granted = "GRANTED", amount
        else:
            decision, granted = "PARTIALLY_GRANTED", buyer.capacity
        stamp = self._stamp()
        if existing is not None and decision == "REFUSED" and existing.amount > 0:
            existing.updated_at = stamp  # a refused increase leaves the current limit in place
            return existing.cover_id
        cover = existing or SimCover(
            cover_id=self.portfolio.new_cover_id(),
            policy=policy,
            buyer=buyer,
            cover_type=job.cover_type,
            status="ACTIVE",
            decision=decision,
            nominative=True,
            requested_amount=amount,
            amount=granted,
            request_date=job.created_at.date(),
            decision_date=self.today,
            effective_date=self.today,
            expiry_date=job.expiry_date,
            updated_at=stamp,
        )
        cover.cover_type, cover.expiry_date = job.cover_type, job.expiry_date
        cover.decision, cover.requested_amount, cover.amount = decision, amount, granted
        cover.status = "REFUSED" if decision == "REFUSED" else "ACTIVE"
        cover.already_agreed = False
        cover.request_date = min(job.created_at.date(), self.today)
        cover.decision_date = cover.effective_date = self.today
        cover.updated_at = stamp
        self.portfolio.covers[cover.cover_id] = cover
        return cover.cover_id

    def _register(self, job: SimJob) -> str:
        """Process a declaration: the insurer registers it; returns its overdue id."""
        declaration = self.declarations[job.client_reference or ""]
        overdue_id = f"O{len(self.overdues) + 1:08d}"
        body = declaration["request"]
        self.overdues[overdue_id] = {
            "overdueId": overdue_id,
            "overdueCategoryTypeCode": body["overdueCategoryTypeCode"],
            "clientReference": body["clientReference"],
            "policy": body.get("policy"),
            "companyId": str(body["companyId"]),
            "statusCode": "Registered",
            "amount": declaration["amount"],
            "currencyCode": body["currencyCode"],
            "receivedAt": declaration["receivedAt"],
            "invoices": body.get("invoices"),
        }
        declaration["overdueId"] = overdue_id
        return overdue_id

    def _settle_jobs(self) -> None:
        moment = time.monotonic()
        for job in self.jobs.values():
            if job.resource is None and moment >= job.ready_at:
                self._settle(job)

    def _acknowledge(self, job: SimJob) -> str:
        """Open a claim: the insurer acknowledges it; returns its claim id."""
        claim = self.claims[job.client_reference or ""]
        claim_id = f"K{len(self.claim_records) + 1:08d}"
        body = claim["request"]
        self.claim_records[claim_id] = {
            "claimId": claim_id,
            "clientReference": body["clientReference"],
            "policy": body.get("policy"),
            "companyId": str(body["companyId"]),
            "overdueId": body.get("overdueId"),
            "statusCode": "Acknowledged",
            "claimAmount": claim["amount"],
            "currencyCode": body["currencyCode"],
            "receivedAt": claim["receivedAt"],
            "invoices": body.get("invoices"),
        }
        claim["claimId"] = claim_id
        return claim_id

    def decide_claim(
        self, reference: str, *, indemnify: bool = True, amount: float | None = None,
        reason: str = "", on: date | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The insurer's decision on an acknowledged claim: indemnified (`amount`, by default
        the amount claimed) or refused (`reason`), dated `on` (the simulator's day by default).
        Returns the claim as GET shows it."""
        self._settle_jobs()
        claim_id = self.claims[reference].get("claimId")
        if claim_id is None:
            raise KeyError(f"claim {reference} not acknowledged yet")
        record = self.claim_records[claim_id]
        record["decisionDate"] = (on or self.today).isoformat()
        if indemnify:
            record["statusCode"] = "Indemnified"
            record["indemnifiedAmount"] = record["claimAmount"] if amount is None else amount
        else:
            record["statusCode"] = "Refused"
            record["refusalReason"] = reason or "refused"
        return dict(record)

    def _settle(self, job: SimJob) -> None:
        if job.kind == "cover":
            path = PATHS["cover"].format(cover_id=self._decide(job))
        elif job.kind == "claim":
            path = PATHS["claim"].format(claim_id=self._acknowledge(job))
        else:
            path = PATHS["overdue"].format(overdue_id=self._register(job))
        job.resource = uat_path(path) if job.uat else path

    def _resource_url(self, job: SimJob) -> str:
        assert job.resource is not None
        return f"{self.base_url}{job.resource}"

    # -- the job-result webhook -------------------------------------------------------------

    def _schedule_callback(self, job: SimJob) -> None:
        task = asyncio.get_running_loop().create_task(self._call_back(job))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def _call_back(self, job: SimJob) -> None:
        """When the job is processed, POST its result to the callback URL: 3 attempts, every
        `callback_retry_seconds`, until one gets a 2xx (loopback URLs only)."""
        import httpx

        assert job.callback is not None
        await asyncio.sleep(max(0.0, job.ready_at - time.monotonic()))
        if job.resource is None:
            self._settle(job)
        url = job.callback["callbackUrl"]
        body = {"jobId": job.job_id, "jobStatusCode": "PROCESSED"}
        if job.callback.get("extendedNotification"):
            body["resourceUrl"] = self._resource_url(job)
        async with httpx.AsyncClient(timeout=5) as client:
            for attempt in range(CALLBACK_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(self.callback_retry_seconds)
                try:
                    status = (await client.post(url, json=body)).status_code
                except httpx.HTTPError:
                    status = 0
                self.callbacks.append((url, status))
                if 200 <= status < 300:
                    return

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        """Every endpoint on its production path and on its UAT path."""
        handlers = {
            "token": (self._token, "POST"),
            "covers_search": (self._covers_search, "POST"),
            "cover_request": (self._cover_request, "POST"),
            "cover_requests_search": (self._cover_requests_search, "POST"),
            "cover": (self._cover, "GET"),
            "job": (self._job, "GET"),
            "company_search": (self._company_search, "POST"),
            "company_matching": (self._company_matching, "POST"),
            "overdues": (self._overdues, "POST"),
            "overdue": (self._overdue, "GET"),
            "claims": (self._claims, "POST"),
            "claim": (self._claim, "GET"),
        }
        routes = []
        for name, (handler, method) in handlers.items():
            for path in (PATHS[name], uat_path(PATHS[name])):
                routes.append(Route(path, handler, methods=[method]))
        return [
            *routes,
            Route("/_sim/declarations", self._admin_declarations, methods=["GET"]),
            Route("/_sim/claims", self._admin_claims, methods=["GET", "POST"]),
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
        if body.get("lastUpdateDateFrom"):
            text = str(body["lastUpdateDateFrom"])
            try:
                since = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return _error(400, "bad_request", "lastUpdateDateFrom is not ISO 8601"), page
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        policies = body.get("policies") or []
        if not isinstance(policies, list) or not all(
            isinstance(p, dict) and p.get("policyId") for p in policies
        ):
            return _error(
                400, "bad_request", "policies: a list of {businessUnitCode, policyId}"
            ), page
        known = {p.policy_id: p for p in self.portfolio.policies}
        wanted = []
        for ref in policies:
            policy = known.get(str(ref["policyId"]))
            unit = ref.get("businessUnitCode")
            if policy is None or (unit and unit != policy.business_unit_code):
                return _error(403, "unknown_policy", "a policy is not one of this customer's"), page
            wanted.append(policy.policy_id)
        self._settle_jobs()
        ids = self._filtered(since, wanted or None, None)
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
        if str(pagination.get("isTotalRequired", False)).lower() == "true":
            result["pagination"]["totalItems"] = total
            result["pagination"]["totalPages"] = -(-total // size) if total else 0
        response = Response(pydantic_core.to_json(result), media_type="application/json")
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
        callback = None
        if request.headers.get(CALLBACK_HEADER):
            try:
                callback = parse_callback_header(request.headers[CALLBACK_HEADER])
            except ValueError as exc:
                return _error(400, "bad_request", str(exc))
            if not _loopback(callback["callbackUrl"]):
                return _error(400, "bad_callback", "the simulator calls back loopback URLs only")
        reference = body.get("clientReference")
        if reference:
            for job in self.jobs.values():
                if job.kind == "cover" and job.client_reference == reference:
                    return JSONResponse(job.job_id, status_code=202)
        request_type = body.get("requestTypeCode")
        if request_type not in ("Primary", "GradeCover"):
            return _error(400, "bad_request", "requestTypeCode: Primary or GradeCover")
        policy, problem = self._policy_of(body.get("policy"))
        if problem is not None:
            return problem
        assert policy is not None
        buyer = self._buyer(body.get("companyId"))
        if buyer is None:
            return _error(404, "unknown_company", "companyId not found")
        amount, cover_type, expiry = None, "PERMANENT", None
        if request_type == "Primary":
            details = body.get("creditLimitDetails")
            if not isinstance(details, dict):
                return _error(400, "bad_request", "a Primary request needs creditLimitDetails")
            try:
                amount = int(float(details["requestedAmount"]))
                end = details.get("endDate")
                expiry = date.fromisoformat(end) if end else None
            except (KeyError, TypeError, ValueError):
                return _error(400, "bad_request", "requestedAmount and endDate must be valid")
            if amount <= 0:
                return _error(400, "bad_request", "requestedAmount must be positive")
            if details.get("currencyCode") != policy.currency:
                return _error(422, "bad_currency", f"this policy is in {policy.currency}")
            cover_type = "TEMPORARY" if details.get("creditLimitTypeCode") == "Temporary" else ""
            cover_type = cover_type or "PERMANENT"
            if (cover_type == "TEMPORARY") != bool(expiry):
                return _error(400, "bad_request", "a Temporary limit needs an endDate, only it")
        job = self._new_sim_job("cover", request, reference, callback)
        job.policy, job.buyer, job.request_type = policy, buyer, request_type
        job.requested_amount, job.cover_type, job.expiry_date = amount, cover_type, expiry
        return JSONResponse(job.job_id, status_code=202)

    def _new_sim_job(
        self, kind: str, request: Request, reference: Any, callback: dict[str, Any] | None
    ) -> SimJob:
        job_id = f"J{len(self.jobs) + 1:08d}-{secrets.token_hex(4)}"
        job = SimJob(
            job_id=job_id,
            kind=kind,
            created_at=self.now,
            ready_at=time.monotonic() + self.job_delay_seconds,
            client_reference=str(reference) if reference else None,
            uat=_is_uat(request),
            callback=callback,
        )
        self.jobs[job_id] = job
        if callback is not None:
            self._schedule_callback(job)
        return job

    def _policy_of(self, ref: Any) -> tuple[SimPolicy | None, Response | None]:
        if not isinstance(ref, dict) or not ref.get("policyId"):
            return None, _error(400, "bad_request", "policy: {businessUnitCode, policyId} needed")
        policy = next(
            (p for p in self.portfolio.policies if p.policy_id == str(ref["policyId"])), None
        )
        unit = ref.get("businessUnitCode")
        if policy is None or (unit and unit != policy.business_unit_code):
            return None, _error(422, "unknown_policy", "policyId is not a policy of this customer")
        return policy, None

    def _buyer(self, company_id: Any) -> SimBuyer | None:
        return next((b for b in self.portfolio.buyers if b.company_id == str(company_id)), None)

    async def _cover_requests_search(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "cover_requests_search")
        if response is None:
            response = self._cover_requests(await self._json_body(request) or {})
        self._record(request, "cover_requests_search", at, response.status_code, token_id=token_id)
        return response

    def _cover_requests(self, body: dict[str, Any]) -> Response:
        """Cover requests (Primary and GradeCover jobs) as a JSON array, oldest first."""
        self._settle_jobs()
        wanted = body.get("requestStatusCode")
        pagination = body.get("pagination") or {}
        try:
            page = max(1, int(pagination.get("page", 1)))
            size = min(MAX_PAGE_SIZE, max(1, int(pagination.get("pageSize", 100))))
        except (TypeError, ValueError):
            return _error(400, "bad_request", "pagination.page/pageSize must be integers")
        policies = {
            str(p.get("policyId")) for p in body.get("policies") or [] if isinstance(p, dict)
        }
        rows = []
        for job in self.jobs.values():
            if job.kind != "cover" or job.policy is None or job.buyer is None:
                continue
            if policies and job.policy.policy_id not in policies:
                continue
            status = "Processed" if job.resource else "InProgress"
            if wanted and wanted != status:
                continue
            row: dict[str, Any] = {
                "requestId": job.job_id,
                "requestTypeCode": job.request_type,
                "requestStatusCode": status,
                "policy": job.policy.to_json(),
                "companyId": job.buyer.company_id,
                "creationDate": job.created_at.date().isoformat(),
                "lastUpdateDate": job.created_at.date().isoformat(),
            }
            if job.requested_amount is not None:
                row["creditLimitDetails"] = {
                    "requestedAmount": job.requested_amount,
                    "currencyCode": job.policy.currency,
                }
            if job.resource:
                row["coverId"] = job.resource.rsplit("/", 1)[-1]
                row["lastUpdateDate"] = self.today.isoformat()
            rows.append(row)
        return JSONResponse(rows[(page - 1) * size : page * size])

    async def _cover(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "cover")
        if response is None:
            self._settle_jobs()
            cover_id = request.path_params["cover_id"]
            cover = self.portfolio.covers.get(cover_id)
            if cover is not None:
                response = JSONResponse(cover.to_json())
            elif cover_id in self.grade_covers:
                response = JSONResponse(self.grade_covers[cover_id])
            else:
                response = _error(404, "unknown_cover", "no such cover")
        self._record(request, "cover", at, response.status_code, token_id=token_id)
        return response

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
                    "jobStatusCode": "PROCESSED" if job.resource else "PENDING",
                }
                if job.resource:
                    data["resourceUrl"] = self._resource_url(job)
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

    async def _company_matching(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "company_matching")
        if response is None:
            response = self._match(await self._json_body(request))
        self._record(request, "company_matching", at, response.status_code, token_id=token_id)
        return response

    def _match(self, body: dict[str, Any] | None) -> Response:
        """Companies by name (and identifiers) in a country, scored 0-100, best first."""
        if not body or not isinstance(body.get("companyName"), str) or not body.get("countryCode"):
            return _error(400, "bad_request", "companyName and countryCode are required")
        try:
            size = int(body.get("requestedSize", 5))
            floor = int(body.get("minimumScore", 0))
        except (TypeError, ValueError):
            return _error(400, "bad_request", "requestedSize and minimumScore are integers")
        wanted = _name_key(body["companyName"])
        ids = {
            (str(i.get("idTypeCode", "")).upper(), "".join(str(i.get("idValue", "")).split()))
            for i in body.get("companyIdentifiers") or []
            if isinstance(i, dict)
        }
        scored = []
        for buyer in self.portfolio.buyers:
            if buyer.country != body["countryCode"]:
                continue
            if any(_matches(buyer, kind, value.upper()) for kind, value in ids if value):
                score = 100
            else:
                score = round(
                    100 * difflib.SequenceMatcher(None, wanted, _name_key(buyer.name)).ratio()
                )
            if score >= max(floor, 50):
                scored.append((score, buyer))
        scored.sort(key=lambda pair: (-pair[0], pair[1].company_id))
        results = [
            {"company": b.to_json(with_grade=True), "score": score} for score, b in scored[:size]
        ]
        return JSONResponse({"results": results})

    async def _overdues(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "overdues")
        if response is None:
            response = await self._declare(request)
        self._record(request, "overdues", at, response.status_code, token_id=token_id)
        return response

    async def _declare(self, request: Request) -> Response:
        body = await self._json_body(request)
        if body is None:
            return _error(400, "bad_request", "a JSON object body is required")
        category = body.get("overdueCategoryTypeCode")
        if category not in OVERDUE_CATEGORIES:
            return _error(400, "bad_request", "overdueCategoryTypeCode: OVD, EXP or RES")
        self.declaration_posts[category] += 1
        reference = body.get("clientReference")
        if not reference:
            return _error(400, "bad_request", "clientReference is required")
        if reference in self.declarations:
            known = self.declarations[reference]
            if known["request"]["overdueCategoryTypeCode"] != category:
                return _error(409, "reference_reused", "clientReference names another declaration")
            return JSONResponse(known["jobId"], status_code=200)
        policy, problem = self._policy_of(body.get("policy"))
        if problem is not None:
            return problem
        assert policy is not None
        if self._buyer(body.get("companyId")) is None:
            return _error(404, "unknown_company", "companyId not found")
        invalid = _declaration_problem(body, category, policy.currency)
        if invalid:
            return _error(400, "bad_request", invalid)
        amount = sum(Decimal(str(i["amount"])) for i in body["invoices"])
        job = self._new_sim_job("overdue", request, reference, None)
        self.declarations[reference] = {
            "jobId": job.job_id,
            "category": category,
            "amount": float(amount),
            "receivedAt": iso(self._stamp()),
            "request": body,
        }
        return JSONResponse(job.job_id, status_code=202)

    async def _overdue(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "overdue")
        if response is None:
            self._settle_jobs()
            found = self.overdues.get(request.path_params["overdue_id"])
            response = JSONResponse(found) if found else _error(404, "unknown", "no such overdue")
        self._record(request, "overdue", at, response.status_code, token_id=token_id)
        return response

    async def _claims(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "claims")
        if response is None:
            response = await self._file_claim(request)
        self._record(request, "claims", at, response.status_code, token_id=token_id)
        return response

    async def _file_claim(self, request: Request) -> Response:
        body = await self._json_body(request)
        if body is None:
            return _error(400, "bad_request", "a JSON object body is required")
        self.claim_posts += 1
        reference = body.get("clientReference")
        if not reference:
            return _error(400, "bad_request", "clientReference is required")
        if reference in self.claims:
            return JSONResponse(self.claims[reference]["jobId"], status_code=200)
        policy, problem = self._policy_of(body.get("policy"))
        if problem is not None:
            return problem
        assert policy is not None
        if self._buyer(body.get("companyId")) is None:
            return _error(404, "unknown_company", "companyId not found")
        if body.get("currencyCode") != policy.currency:
            return _error(400, "bad_request", f"currencyCode: this policy is in {policy.currency}")
        overdue = self.overdues.get(str(body.get("overdueId") or ""))
        if overdue is None or overdue["overdueCategoryTypeCode"] != "OVD":
            return _error(422, "not_declared", "overdueId: no overdue (OVD) declared for it")
        try:
            amount = Decimal(str(body["claimAmount"]))
            date.fromisoformat(body["lossDate"])
            invoices = body["invoices"]
            if not isinstance(invoices, list) or not invoices or amount <= 0:
                raise ValueError
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return _error(400, "bad_request", "claimAmount, lossDate and invoices are required")
        job = self._new_sim_job("claim", request, reference, None)
        self.claims[reference] = {
            "jobId": job.job_id,
            "amount": float(amount),
            "receivedAt": iso(self._stamp()),
            "request": body,
        }
        return JSONResponse(job.job_id, status_code=202)

    async def _claim(self, request: Request) -> Response:
        at = time.monotonic()
        response, token_id = await self._guard(request, "claim")
        if response is None:
            self._settle_jobs()
            found = self.claim_records.get(request.path_params["claim_id"])
            response = JSONResponse(found) if found else _error(404, "unknown", "no such claim")
        self._record(request, "claim", at, response.status_code, token_id=token_id)
        return response

    def claim_counts(self) -> dict[str, Any]:
        """What the insurer received: claim POSTs (repeats included) and claims (one per
        client reference) — "exactly once" means both agree — and each claim's status."""
        self._settle_jobs()
        return {
            "received": self.claim_posts,
            "claims": len(self.claims),
            "references": sorted(self.claims),
            "statuses": {
                r: self.claim_records[c["claimId"]]["statusCode"] if c.get("claimId") else "Pending"
                for r, c in sorted(self.claims.items())
            },
        }

    def declaration_counts(self) -> dict[str, Any]:
        """What the insurer received: POSTs per category (repeats included) and declarations
        per category (one per client reference) — "exactly once" means both agree."""
        distinct = Counter(d["category"] for d in self.declarations.values())
        return {
            "received": {c: self.declaration_posts[c] for c in OVERDUE_CATEGORIES},
            "declarations": {c: distinct[c] for c in OVERDUE_CATEGORIES},
            "references": sorted(self.declarations),
        }

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
                "claims": len(self.claims),
                "callbacks": len(self.callbacks),
                "tokensIssued": self.tokens_issued,
                "requests": dict(Counter(r.endpoint for r in self.requests)),
            }
        )

    async def _admin_declarations(self, request: Request) -> Response:
        return JSONResponse(self.declaration_counts())

    async def _admin_claims(self, request: Request) -> Response:
        """GET: `claim_counts()`; POST `{"clientReference", "indemnify": true|false,
        "amount"?, "reason"?}`: the insurer's decision on an acknowledged claim."""
        if request.method == "POST":
            body = await self._json_body(request) or {}
            try:
                return JSONResponse(
                    self.decide_claim(
                        str(body.get("clientReference")),
                        indemnify=bool(body.get("indemnify", True)),
                        amount=body.get("amount"),
                        reason=str(body.get("reason") or ""),
                    )
                )
            except KeyError as exc:
                return _error(404, "unknown", str(exc))
        return JSONResponse(self.claim_counts())

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
        for task in list(self._callback_tasks):
            task.cancel()
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


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _is_uat(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/uatm/") or "/uatm-" in path


def _name_key(name: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())


def _declaration_problem(body: dict[str, Any], category: str, currency: str) -> str | None:
    """Why a declaration body is refused, or None."""
    if body.get("currencyCode") != currency:
        return f"currencyCode: this policy is in {currency}"
    invoices = body.get("invoices")
    if not isinstance(invoices, list) or not invoices:
        return "invoices: at least one"
    try:
        for invoice in invoices:
            if not invoice.get("invoiceNumber") or Decimal(str(invoice["amount"])) <= 0:
                return "every invoice needs an invoiceNumber and a positive amount"
            date.fromisoformat(invoice["dueDate"])
        if category == "OVD":
            date.fromisoformat(body["defaultDate"])
        elif category == "EXP":
            if len(invoices) != 1:
                return "an extension (EXP) is for a single invoice"
            if date.fromisoformat(body["newDueDate"]) <= date.fromisoformat(invoices[0]["dueDate"]):
                return "newDueDate must be after the invoice's dueDate"
        else:
            plan = body["repaymentPlan"]
            total = sum(Decimal(str(i["amount"])) for i in invoices)
            if sum(Decimal(str(p["amount"])) for p in plan) != total:
                return "repaymentPlan must add up to the invoices' amount"
            for part in plan:
                date.fromisoformat(part["dueDate"])
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
        return "dates must be ISO dates and amounts numbers"
    return None


def _matches(buyer: SimBuyer, kind: str, value: str) -> bool:
    if kind == "SIREN":
        return buyer.siren == value
    if kind == "SIRET":
        return buyer.siren is not None and len(value) == 14 and value[:9] == buyer.siren
    if kind == "VAT":
        return buyer.vat == value
    return buyer.duns is not None and buyer.duns == value.replace("-", "")
