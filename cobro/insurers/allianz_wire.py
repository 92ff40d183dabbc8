"""Allianz Trade's wire shapes, and only them: the paths of each environment (production, UAT),
the request bodies Cobro sends, and the translation of the records it receives into the
normalised models of `base.py`. Pure: no I/O. `CONTRACT.md` says, per field, which public page
or public integration shows it and which names are assumed.

A record is never trusted: `cover_fields` / `company_fields` only move values to where the
normalised model expects them (they never raise), so that validation in `base.py` decides
what is malformed, and `WIRE_NAMES` turns the normalised name in a reason back into the path
the insurer used.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

# --- environments and paths ------------------------------------------------------------------

PRODUCTION_BASE_URL = "https://api.allianz-trade.com"
UAT_BASE_URL = "https://api-services.uat.1placedessaisons.com"
BASE_URLS = {"production": PRODUCTION_BASE_URL, "uat": UAT_BASE_URL}

PATHS = {
    "token": "/v1/idp/oauth2/authorize",
    "covers_search": "/riskinfo/v3/covers/search",
    "cover_requests_search": "/riskinfo/v3/coverRequests/search",
    "cover_request": "/riskinfo/v3/covers",
    "cover": "/riskinfo/v3/covers/{cover_id}",
    "job": "/riskinfo/v3/jobs/{job_id}",
    "company_search": "/search/v2/companies/advancedSearch",
    "company_matching": "/search/v2/companies/matching",
    "overdues": "/payment-overdues/v1/overdues",
    "overdue": "/payment-overdues/v1/overdues/{overdue_id}",
    "claims": "/claims/v1/claims",  # assumed (CONTRACT.md, Claims)
    "claim": "/claims/v1/claims/{claim_id}",
}

_VERSIONED = re.compile(r"^/([^/]+)/v(\d+)(/.*)$")


def uat_path(path: str) -> str:
    """The UAT form of a production path. The identity provider and risk info live under
    `/uatm` (`/uatm/v1/idp/...`, `/uatm/riskinfo/v3/...`); the other products put `uatm-` in
    their version segment (`/search/uatm-v2/...`, `/company-referential/uatm-v1/...`)."""
    if path.startswith(("/v1/idp/", "/riskinfo/")):
        return "/uatm" + path
    match = _VERSIONED.match(path)
    if match:
        product, version, rest = match.groups()
        return f"/{product}/uatm-v{version}{rest}"
    return path


@dataclass(frozen=True)
class Endpoint:
    """Where the API is: a base URL and which environment's paths it serves."""

    base_url: str
    environment: str = "production"  # or "uat"

    def path(self, name: str, **params: str) -> str:
        path = PATHS[name].format(**params)
        return uat_path(path) if self.environment == "uat" else path


def resolve_endpoint(base_url: str, environment: str | None = None) -> Endpoint:
    """`production` / `uat` name Allianz Trade's own hosts; any other value is a URL (the
    loopback simulator, a proxy) whose paths are the production ones unless `environment`
    says `uat`."""
    name = base_url.strip().lower()
    if name in BASE_URLS:
        return Endpoint(BASE_URLS[name], environment or name)
    env = (environment or "production").lower()
    if env not in BASE_URLS:
        raise ValueError(f"insurer environment {environment!r}: one of production, uat")
    return Endpoint(base_url.rstrip("/"), env)


# --- policies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRef:
    """A policy as the API names it: business unit + policy id (+ extension, e.g. `DCL`, `CAP`)."""

    business_unit_code: str | None
    policy_id: str
    extension_id: str | None = None

    def wire(self) -> dict[str, str]:
        body = {"policyId": self.policy_id}
        if self.business_unit_code:
            body = {"businessUnitCode": self.business_unit_code, **body}
        if self.extension_id:
            body["extensionId"] = self.extension_id
        return body


def parse_policies(text: str) -> tuple[PolicyRef, ...]:
    """`ACI:5121840, EHSE:035748:DCL` → policy refs (business unit:policy[:extension]);
    a bare `5121840` has no business unit. One clear error per bad entry."""
    refs = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        parts = [p.strip() for p in entry.split(":")]
        if len(parts) == 1:
            refs.append(PolicyRef(None, parts[0]))
        elif len(parts) in (2, 3) and all(parts[:2]):
            refs.append(PolicyRef(parts[0], parts[1], parts[2] if len(parts) == 3 else None))
        else:
            raise ValueError(
                f"insurer policy {entry!r}: write BUSINESS_UNIT:POLICY_ID[:EXTENSION_ID]"
            )
    return tuple(refs)


# --- covers: search body, record translation --------------------------------------------------


def covers_search_body(
    policies: Sequence[PolicyRef],
    page: int,
    page_size: int,
    updated_since: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policies": [p.wire() for p in policies],
        "pagination": {"page": page, "pageSize": page_size, "isTotalRequired": True},
    }
    if updated_since is not None:
        body["lastUpdateDateFrom"] = updated_since  # assumed name
    return body


DECISION_CODES = {  # technicalDecisionStatusCode → normalised decision
    "Agreed": "GRANTED",
    "AlreadyAgreed": "GRANTED",  # the amount asked for was already agreed
    "PartiallyAgreed": "PARTIALLY_GRANTED",
    "Refused": "REFUSED",
}
STATUS_CODES = {  # coverStatusCode → normalised status
    "Active": "ACTIVE",
    "Agreement": "ACTIVE",  # the value RiskInfo v2 answers for a granted cover
    "Reduced": "REDUCED",
    "Withdrawn": "WITHDRAWN",
    "Expired": "EXPIRED",
    "Refused": "REFUSED",
}
LIMIT_TYPES = {"Permanent": "PERMANENT", "Temporary": "TEMPORARY"}
NAMED_COVER_TYPES = {"CreditLimit": True, "UnnamedBuyer": False}

# normalised field → where it is on the wire (for quarantine reasons)
WIRE_NAMES = {
    "policyId": "policy.policyId",
    "coverType": "creditLimits[].creditLimitTypeCode",
    "status": "coverStatusCode",
    "decision": "creditLimits[].technicalDecisionStatusCode",
    "nominative": "coverTypeCode",
    "requestedAmount": "creditLimitDetails.requestedAmount",
    "amount": "creditLimits[].amount",
    "currency": "creditLimitDetails.currencyCode",
    "requestDate": "creationDate",
    "decisionDate": "creditLimits[].decisionDate",
    "effectiveDate": "creditLimits[].startDate",
    "expiryDate": "creditLimits[].endDate",
    "updatedAt": "lastUpdateDate",
    "companyName": "legalData.companyName",
    "countryCode": "address.countryCode",
    "identifiers": "companyIdentifiers",
}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def current_credit_limit(record: dict[str, Any]) -> dict[str, Any] | None:
    """The credit limit in force: of `creditLimitsAggregation.creditLimits[]`, the one with
    the latest `startDate` (the last one listed on a tie or without dates)."""
    limits = _obj(record.get("creditLimitsAggregation")).get("creditLimits")
    if not isinstance(limits, list):
        return None
    candidates = [x for x in limits if isinstance(x, dict)]
    if not candidates:
        return None
    return max(
        reversed(list(enumerate(candidates))),
        key=lambda pair: (str(pair[1].get("startDate") or ""), pair[0]),
    )[1]


def _mapped(table: dict[str, Any], value: Any) -> Any:
    return table.get(value, value) if isinstance(value, str) else value


def cover_fields(record: Any) -> Any:
    """One covers-search (or `GET covers/{id}`) record → the normalised cover fields of
    `base.Cover`. Anything not a JSON object is returned as is (and fails validation)."""
    if not isinstance(record, dict):
        return record
    out: dict[str, Any] = {}
    for wire_key, key in (("coverId", "coverId"), ("grade", "grade")):
        if wire_key in record:
            out[key] = record[wire_key]
    policy = record.get("policy")
    if isinstance(policy, dict) and "policyId" in policy:
        out["policyId"] = policy["policyId"]
    if "company" in record:
        out["company"] = company_fields(record["company"])
    if "coverStatusCode" in record:
        out["status"] = _mapped(STATUS_CODES, record["coverStatusCode"])
    if "coverTypeCode" in record:
        out["nominative"] = NAMED_COVER_TYPES.get(record["coverTypeCode"], record["coverTypeCode"])
    details = _obj(record.get("creditLimitDetails"))
    if "requestedAmount" in details:
        out["requestedAmount"] = details["requestedAmount"]
    if "currencyCode" in details:
        out["currency"] = details["currencyCode"]
    if "creationDate" in record:
        out["requestDate"] = record["creationDate"]
    if "lastUpdateDate" in record:
        out["updatedAt"] = record["lastUpdateDate"]
    limit = current_credit_limit(record)
    if limit is not None:
        for wire_key, key in (
            ("amount", "amount"),
            ("decisionDate", "decisionDate"),
            ("startDate", "effectiveDate"),
            ("endDate", "expiryDate"),
        ):
            if wire_key in limit:
                out[key] = limit[wire_key]
        if "technicalDecisionStatusCode" in limit:
            out["decision"] = _mapped(DECISION_CODES, limit["technicalDecisionStatusCode"])
        if "creditLimitTypeCode" in limit:
            out["coverType"] = _mapped(LIMIT_TYPES, limit["creditLimitTypeCode"])
        if "currency" not in out and "currencyCode" in limit:
            out["currency"] = limit["currencyCode"]
    return out


def company_fields(company: Any) -> Any:
    """A company (cover record, search or matching result) → the fields of `base.Company`."""
    if not isinstance(company, dict):
        return company
    out: dict[str, Any] = {}
    if "companyId" in company:
        out["companyId"] = company["companyId"]
    legal = _obj(company.get("legalData"))
    if "companyName" in legal:
        out["companyName"] = legal["companyName"]
    address = _obj(company.get("address"))
    if "countryCode" in address:
        out["countryCode"] = address["countryCode"]
    ids = company.get("companyIdentifiers")
    if isinstance(ids, list):
        out["identifiers"] = [
            {"type": i.get("idTypeCode"), "value": i.get("idValue")} if isinstance(i, dict) else i
            for i in ids
        ]
    if "grade" in company:
        out["grade"] = company["grade"]
    return out


def record_updated_at(record: Any) -> Any:
    """The record's own last-update instant as sent (or None)."""
    return record.get("lastUpdateDate") if isinstance(record, dict) else None


# --- cover requests, jobs, the job webhook ----------------------------------------------------


def cover_request_body(
    *,
    policy: PolicyRef,
    company_id: str,
    request_type: str,
    requested_amount: Decimal | None,
    currency: str | None,
    is_request_urgent: bool,
    temporary_until: date | None,
    client_reference: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestTypeCode": request_type,
        "policy": policy.wire(),
        "companyId": company_id,
    }
    if requested_amount is not None:
        details: dict[str, Any] = {
            "requestedAmount": str(requested_amount),
            "currencyCode": currency,
        }
        if temporary_until is not None:  # assumed names
            details["creditLimitTypeCode"] = "Temporary"
            details["endDate"] = temporary_until.isoformat()
        body["creditLimitDetails"] = details
    body["isRequestUrgent"] = is_request_urgent
    if client_reference:
        body["clientReference"] = client_reference  # assumed
    return body


CALLBACK_HEADER = "callback"  # assumed name; the header's value is public: base64 of a JSON object


def callback_header(url: str, time_to_live_hours: int = 24, extended: bool = False) -> str:
    """The value of the header that asks for a job-result webhook: the JSON object
    `{"callbackUrl", "timeToLive"[, "extendedNotification"]}`, stringified and base64-encoded."""
    body: dict[str, Any] = {"callbackUrl": url, "timeToLive": time_to_live_hours}
    if extended:
        body["extendedNotification"] = True
    return base64.b64encode(json.dumps(body).encode()).decode("ascii")


def parse_callback_header(value: str) -> dict[str, Any]:
    """The webhook request a header carries; ValueError when it is not base64 JSON."""
    try:
        data = json.loads(base64.b64decode(value.encode("ascii"), validate=True))
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"the {CALLBACK_HEADER} header is not base64-encoded JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("callbackUrl"), str):
        raise ValueError(f"the {CALLBACK_HEADER} header has no callbackUrl")
    return data


def job_id_from(data: Any) -> str | None:
    """A POST's job id: public integrations read the whole JSON body as the id (a JSON
    string); an object with `jobId` is read too."""
    if isinstance(data, str) and data.strip():
        return data.strip()
    if isinstance(data, dict) and isinstance(data.get("jobId"), str) and data["jobId"]:
        return data["jobId"]
    return None


# --- payment overdues -------------------------------------------------------------------------

OVERDUE_CATEGORIES = ("OVD", "EXP", "RES")  # overdueCategoryTypeCode (public)
