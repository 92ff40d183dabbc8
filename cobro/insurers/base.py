"""What every insurer connector speaks: the `InsurerConnector` protocol, the validated
payload models (camelCase on the wire, snake_case in Python) and the errors.

These are Cobro's normalised shapes (camelCase aliases of their own, not the insurer's wire
names): `allianz_wire.py` turns Allianz Trade's records into them, and `CONTRACT.md` says which
wire names are public and which are assumed.
Money is `Decimal`, never float. A record that fails validation is never turned into a
model: connectors return it as a `QuarantinedRecord` (raw payload + reason + position).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
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
        for i in self.identifiers:  # a loop, not a generator: a sync asks 8 times per cover
            if i.type is kind:
                return i.value
        return None


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


class CoverRequestType(StrEnum):
    PRIMARY = "Primary"  # a credit limit on a buyer
    GRADE_COVER = "GradeCover"  # the buyer's grade only, no limit


class CoverRequest(BaseModel):
    """A credit-limit (or grade) request on a buyer; answered asynchronously through a job.
    `business_unit_code`/`extension_id` complete the policy; the connector fills the business
    unit in from its configured policies when it is left out."""

    model_config = ConfigDict(frozen=True)

    policy_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    requested_amount: Money | None = Field(None, gt=0, allow_inf_nan=False, decimal_places=2)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    request_type: CoverRequestType = CoverRequestType.PRIMARY
    is_request_urgent: bool = False
    cover_type: CoverType = CoverType.PERMANENT
    expiry_date: date | None = None
    business_unit_code: str | None = None
    extension_id: str | None = None
    client_reference: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _coherent(self) -> CoverRequest:
        if self.request_type is CoverRequestType.PRIMARY and (
            self.requested_amount is None or self.currency is None
        ):
            raise ValueError("a Primary cover request needs requested_amount and currency")
        if (self.cover_type is CoverType.TEMPORARY) != (self.expiry_date is not None):
            raise ValueError("a TEMPORARY cover request needs an expiry_date, and only it")
        return self


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSED = "PROCESSED"


class Job(BaseModel):
    """An asynchronous POST's job (`GET /riskinfo/v3/jobs/{jobId}`): pending, then processed
    with the URL of the resource it produced (the cover, the overdue declaration)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    job_id: str = Field(alias="jobId", min_length=1)
    status: JobStatus = Field(alias="jobStatusCode")
    resource_url: str | None = Field(None, alias="resourceUrl")

    @field_validator("status", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:  # the guidelines write 'pending' / 'processed'
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resource_when_processed(self) -> Job:
        if self.status is JobStatus.PROCESSED and not self.resource_url:
            raise ValueError("a PROCESSED job must carry its resourceUrl")
        return self


CoverJob = Job


class CoverRequestState(BaseModel):
    """A cover request as `coverRequests/search` lists it (pending ones: `InProgress`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    request_id: str = Field(alias="requestId", min_length=1)
    status_code: str | None = Field(None, alias="requestStatusCode")
    company_id: str | None = Field(None, alias="companyId")
    requested_amount: Money | None = None
    currency: str | None = None
    creation_date: date = Field(alias="creationDate")
    last_update_date: date = Field(alias="lastUpdateDate")
    cover_id: str | None = Field(None, alias="coverId")

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        details = data.get("creditLimitDetails")
        if isinstance(details, dict):
            out.setdefault("requested_amount", details.get("requestedAmount"))
            out.setdefault("currency", details.get("currencyCode"))
        for key in ("creationDate", "lastUpdateDate"):  # a date, or an instant: its date
            if isinstance(out.get(key), str):
                out[key] = out[key][:10]
        return out


class CompanyMatch(BaseModel):
    """Find a buyer by name and address (`POST /search/v2/companies/matching`)."""

    model_config = ConfigDict(frozen=True)

    company_name: str = Field(min_length=1)
    country_code: str = Field(pattern=r"^[A-Z]{2}$")
    street_name: str | None = None
    street_number: str | None = None
    town: str | None = None
    postal_code: str | None = None
    identifiers: tuple[NationalId, ...] = ()
    requested_size: int = Field(5, ge=1, le=100)
    minimum_score: int = Field(0, ge=0, le=100)


class CompanyMatchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    company: Company
    score: int | None = None


# --- payment overdues: OVD, EXP, RES -----------------------------------------------------


class OverdueCategory(StrEnum):
    OVD = "OVD"  # report an overdue (the buyer's state of default)
    EXP = "EXP"  # request an extension period: a single invoice's due date moves
    RES = "RES"  # request a rescheduling: a repayment plan was agreed


class DeclaredInvoice(WireModel):
    number: str = Field(min_length=1)
    due_date: date
    amount: Money = Field(gt=0, allow_inf_nan=False, decimal_places=2)  # open (unpaid) amount
    issue_date: date | None = None


class Installment(WireModel):
    due_date: date
    amount: Money = Field(gt=0, allow_inf_nan=False, decimal_places=2)


class _Declaration(BaseModel):
    """What every payment-overdue declaration carries. `client_reference` makes filing it
    idempotent: the same reference is one declaration at the insurer, however often sent."""

    model_config = ConfigDict(frozen=True)

    client_reference: str = Field(min_length=1, max_length=64)
    policy_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    invoices: tuple[DeclaredInvoice, ...] = Field(min_length=1)
    business_unit_code: str | None = None
    extension_id: str | None = None
    comment: str | None = Field(None, max_length=500)

    @property
    def amount(self) -> Decimal:
        return sum((i.amount for i in self.invoices), Decimal(0))


class OverdueReport(_Declaration):
    """OVD: the buyer is in a state of default since `default_date`."""

    category: Literal[OverdueCategory.OVD] = OverdueCategory.OVD
    default_date: date


class ExtensionRequest(_Declaration):
    """EXP: one invoice's due date moves to `new_due_date`."""

    category: Literal[OverdueCategory.EXP] = OverdueCategory.EXP
    new_due_date: date

    @model_validator(mode="after")
    def _one_later_date(self) -> ExtensionRequest:
        if len(self.invoices) != 1:
            raise ValueError("an extension (EXP) is for a single invoice")
        if self.new_due_date <= self.invoices[0].due_date:
            raise ValueError("new_due_date must be after the invoice's due date")
        return self


class ReschedulingRequest(_Declaration):
    """RES: a repayment plan; its installments add up to the declared amount."""

    category: Literal[OverdueCategory.RES] = OverdueCategory.RES
    installments: tuple[Installment, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _plan_covers_the_debt(self) -> ReschedulingRequest:
        planned = sum((i.amount for i in self.installments), Decimal(0))
        if planned != self.amount:
            raise ValueError(f"the installments add up to {planned}, the invoices to {self.amount}")
        dates = [i.due_date for i in self.installments]
        if dates != sorted(dates):
            raise ValueError("installments must be in due-date order")
        return self


Declaration = OverdueReport | ExtensionRequest | ReschedulingRequest


class DeclarationReceipt(BaseModel):
    """What filing a declaration returns: the job that will answer it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    client_reference: str
    category: OverdueCategory


class OverdueRecord(WireModel):
    """A declaration as the insurer holds it (the resource its job points to)."""

    overdue_id: str
    overdue_category_type_code: OverdueCategory
    client_reference: str | None = None
    company_id: str
    status_code: str
    amount: Money = money_field()
    currency_code: str = Field(pattern=r"^[A-Z]{3}$")
    received_at: AwareDatetime


# --- claims -----------------------------------------------------------------------------


class ClaimRequest(BaseModel):
    """A claim (hand-over of a declared debt) for indemnity. `client_reference` makes
    filing it idempotent: the same reference is one claim at the insurer."""

    model_config = ConfigDict(frozen=True)

    client_reference: str = Field(min_length=1, max_length=64)
    policy_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    invoice: DeclaredInvoice
    claim_amount: Money = Field(gt=0, allow_inf_nan=False, decimal_places=2)
    loss_date: date  # the default date declared by the OVD (the due date)
    overdue_id: str | None = None  # the OVD the insurer registered
    business_unit_code: str | None = None
    extension_id: str | None = None


class ClaimStatus(StrEnum):
    ACKNOWLEDGED = "Acknowledged"  # received and opened by the insurer
    INDEMNIFIED = "Indemnified"
    REFUSED = "Refused"


class ClaimRecord(WireModel):
    """A claim as the insurer holds it (the resource its job points to)."""

    claim_id: str
    client_reference: str | None = None
    status_code: ClaimStatus
    claim_amount: Money = money_field()
    indemnified_amount: Money | None = money_field(default=None)
    currency_code: str = Field(pattern=r"^[A-Z]{3}$")
    received_at: AwareDatetime
    decision_date: date | None = None
    refusal_reason: str | None = None


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
    """A job was still pending when the caller stopped waiting."""


def describe_validation_error(
    exc: ValidationError, limit: int = 3, names: dict[str, str] | None = None
) -> str:
    """`amount: Input should be a valid decimal; grade: ...` without echoing input values;
    `names` renames a location's parts (a normalised field → where the insurer sent it)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str((names or {}).get(str(p), p)) for p in err["loc"]) or "record"
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

    async def get_job(self, job_id: str) -> Job: ...

    async def wait_for_job(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> Job: ...

    async def get_cover(self, resource: str) -> Cover: ...

    async def search_companies(self, query: CompanySearch) -> list[Company]: ...

    async def match_companies(self, query: CompanyMatch) -> list[CompanyMatchResult]: ...

    async def declare(self, declaration: Declaration) -> DeclarationReceipt: ...

    async def get_overdue(self, resource: str) -> OverdueRecord: ...

    async def declaration_outcome(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> OverdueRecord: ...

    async def file_claim(self, claim: ClaimRequest) -> str: ...

    async def get_claim(self, resource: str) -> ClaimRecord: ...

    async def claim_outcome(
        self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 1.0
    ) -> ClaimRecord: ...

    async def aclose(self) -> None: ...
