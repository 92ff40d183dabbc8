"""What every insurer connector speaks: the `InsurerConnector` protocol, the validated
payload models (camelCase on the wire, snake_case in Python) and the errors.

Field names follow `cobro/insurers/CONTRACT.md`; what is an assumption is written there.
Money is `Decimal`, never float. A record that fails validation is never turned into a
model: connectors return it as a `QuarantinedRecord` (raw payload + reason + position).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """camelCase JSON on the wire, snake_case attributes, immutable, unknown fields ignored
    (the insurer may add fields at any time)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    def wire(self) -> dict[str, Any]:
        """The JSON body for this model (aliases, ISO dates, decimals as strings)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


Money = Decimal


def money_field(**kwargs: Any) -> Any:
    return Field(ge=0, allow_inf_nan=False, max_digits=18, decimal_places=2, **kwargs)


# --- companies -------------------------------------------------------------------------


class IdType(StrEnum):
    SIREN = "SIREN"
    SIRET = "SIRET"
    VAT = "VAT"
    DUNS = "DUNS"


class NationalId(WireModel):
    type: IdType
    value: str = Field(min_length=1, max_length=32)


class Company(WireModel):
    """A buyer as the insurer knows it (`companyId` is the insurer's buyer id)."""

    company_id: str = Field(min_length=1, max_length=40)
    company_name: str = Field(min_length=1)
    country_code: str = Field(pattern=r"^[A-Z]{2}$")
    identifiers: tuple[NationalId, ...] = ()
    grade: int | None = Field(None, ge=1, le=10)

    def identifier(self, kind: IdType) -> str | None:
        return next((i.value for i in self.identifiers if i.type == kind), None)


class CompanySearch(WireModel):
    """Search by one national identifier (SIREN, SIRET, VAT or DUNS), optionally in a country."""

    identifier_type: IdType
    identifier_value: str = Field(min_length=1)
    country_code: str | None = Field(None, pattern=r"^[A-Z]{2}$")


# --- covers ----------------------------------------------------------------------------


class CoverType(StrEnum):
    PERMANENT = "PERMANENT"
    TEMPORARY = "TEMPORARY"


class CoverStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCED = "REDUCED"
    WITHDRAWN = "WITHDRAWN"
    EXPIRED = "EXPIRED"
    REFUSED = "REFUSED"


class Decision(StrEnum):
    GRANTED = "GRANTED"
    PARTIALLY_GRANTED = "PARTIALLY_GRANTED"
    REFUSED = "REFUSED"


class Cover(WireModel):
    """One credit limit (cover) on one buyer under one policy, with the buyer's grade."""

    cover_id: str = Field(min_length=1, max_length=40)
    policy_id: str = Field(min_length=1, max_length=40)
    company: Company
    cover_type: CoverType
    status: CoverStatus
    decision: Decision
    nominative: bool
    requested_amount: Money = money_field()
    amount: Money = money_field()
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    grade: int = Field(ge=1, le=10)
    request_date: date
    decision_date: date
    effective_date: date
    expiry_date: date | None = None
    updated_at: AwareDatetime

    @model_validator(mode="after")
    def _coherent(self) -> Cover:
        if self.cover_type is CoverType.TEMPORARY and self.expiry_date is None:
            raise ValueError("a TEMPORARY cover must have an expiryDate")
        if self.decision_date < self.request_date:
            raise ValueError("decisionDate is before requestDate")
        if self.status in (CoverStatus.WITHDRAWN, CoverStatus.REFUSED) and self.amount != 0:
            raise ValueError(f"a {self.status.value} cover must have amount 0")
        return self


class QuarantinedRecord(BaseModel):
    """A record the insurer sent that failed validation: kept verbatim, never applied."""

    model_config = ConfigDict(frozen=True)

    page: int
    index: int  # position in the page's `items`
    record_id: str | None  # the record's id when it could be read
    reason: str
    raw: Any


class Truncation(BaseModel):
    """A page that came back with fewer items than its position and the total imply."""

    model_config = ConfigDict(frozen=True)

    page: int
    expected: int
    received: int  # on the last attempt
    refetches: int
    recovered: bool  # True when a re-fetch returned the full page


class CoverPage(BaseModel):
    """One page of covers: the valid ones, the quarantined ones, and any truncation."""

    model_config = ConfigDict(frozen=True)

    number: int
    page_size: int
    total_items: int
    total_pages: int
    covers: tuple[Cover, ...]
    quarantined: tuple[QuarantinedRecord, ...] = ()
    truncation: Truncation | None = None

    @property
    def is_last(self) -> bool:
        return self.number >= self.total_pages

    @property
    def complete(self) -> bool:
        return self.truncation is None or self.truncation.recovered


class CoverFetch(BaseModel):
    """Every page of a fetch gathered (use the page iterator for large portfolios)."""

    model_config = ConfigDict(frozen=True)

    updated_since: datetime | None
    total_items: int
    pages: int
    covers: tuple[Cover, ...]
    quarantined: tuple[QuarantinedRecord, ...]
    truncations: tuple[Truncation, ...]

    @property
    def complete(self) -> bool:
        """No page is missing records (truncations all recovered)."""
        return all(t.recovered for t in self.truncations)


class CoverRequest(WireModel):
    """A credit-limit request on a buyer; answered asynchronously through a job."""

    policy_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    requested_amount: Money = Field(gt=0, allow_inf_nan=False, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    cover_type: CoverType = CoverType.PERMANENT
    expiry_date: date | None = None
    client_reference: str | None = Field(None, max_length=64)


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSED = "PROCESSED"


class CoverDecision(WireModel):
    decision: Decision
    cover_id: str
    requested_amount: Money = money_field()
    granted_amount: Money = money_field()
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    decision_date: date
    effective_date: date | None = None
    expiry_date: date | None = None


class CoverJob(WireModel):
    job_id: str
    status: JobStatus
    created_at: AwareDatetime
    result: CoverDecision | None = None

    @model_validator(mode="after")
    def _result_when_processed(self) -> CoverJob:
        if self.status is JobStatus.PROCESSED and self.result is None:
            raise ValueError("a PROCESSED job must carry its result")
        return self


# --- overdue / claim declarations ------------------------------------------------------


class DeclarationType(StrEnum):
    OVERDUE = "OVERDUE"
    CLAIM = "CLAIM"


class DeclaredInvoice(WireModel):
    number: str = Field(min_length=1)
    due_date: date
    amount: Money = Field(gt=0, allow_inf_nan=False, decimal_places=2)
    issue_date: date | None = None


class OverdueDeclaration(WireModel):
    """An overdue (payment default) or claim declared to the insurer for one buyer.
    `client_reference` makes the call idempotent: the same reference is one declaration."""

    client_reference: str = Field(min_length=1, max_length=64)
    type: DeclarationType = DeclarationType.OVERDUE
    policy_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    invoices: tuple[DeclaredInvoice, ...] = Field(min_length=1)

    @property
    def amount(self) -> Decimal:
        return sum((i.amount for i in self.invoices), Decimal(0))


class DeclarationReceipt(WireModel):
    declaration_id: str
    client_reference: str
    status: str
    received_at: AwareDatetime
    amount: Money = money_field()


# --- errors ----------------------------------------------------------------------------


class InsurerError(Exception):
    """Base of every connector error. Messages never contain secrets or request bodies."""


class InsurerAuthError(InsurerError):
    """The API key was refused, or an access token was refused even after re-authenticating."""


class InsurerUnavailable(InsurerError):
    """Retries exhausted on 5xx, timeouts or transport errors."""


class InsurerRateLimited(InsurerUnavailable):
    """Still 429/503 after the allowed attempts, or a Retry-After beyond the allowed wait."""


class InsurerRequestError(InsurerError):
    """The insurer refused the request itself (4xx other than 401/429)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


class InsurerProtocolError(InsurerError):
    """A response that does not have the contract's shape (not a bad record: a bad envelope)."""


class JobTimeout(InsurerError):
    """A cover job was still pending when the caller stopped waiting."""


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """`amount: Input should be a valid decimal; grade: ...` without echoing input values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


# --- the protocol ----------------------------------------------------------------------


@runtime_checkable
class InsurerConnector(Protocol):
    """What the sync needs from an insurer (Allianz Trade today; Coface, Atradius next)."""

    name: str

    async def authenticate(self) -> None: ...

    async def get_cover_page(
        self,
        page: int,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
    ) -> CoverPage: ...

    def iter_cover_pages(
        self,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
        start_page: int = 1,
    ) -> AsyncIterator[CoverPage]: ...

    async def fetch_covers(
        self,
        *,
        page_size: int | None = None,
        updated_since: datetime | None = None,
        policy_id: str | None = None,
    ) -> CoverFetch: ...

    async def request_cover(self, request: CoverRequest) -> str: ...

    async def get_cover_job(self, job_id: str) -> CoverJob: ...

    async def wait_for_cover_job(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> CoverJob: ...

    async def search_companies(self, query: CompanySearch) -> list[Company]: ...

    async def declare_overdue(self, declaration: OverdueDeclaration) -> DeclarationReceipt: ...

    async def aclose(self) -> None: ...
