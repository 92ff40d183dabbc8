"""What goes wrong in the simulated insurer, and how often: rates, scripted failures,
malformed records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator


class Faults(BaseModel):
    """What goes wrong, and how often. All off by default."""

    server_error_rate: float = Field(0.0, ge=0, le=1)  # 500
    rate_limit_rate: float = Field(0.0, ge=0, le=1)  # 429 + Retry-After
    unavailable_rate: float = Field(0.0, ge=0, le=1)  # 503 + Retry-After
    retry_after_seconds: float = Field(1.0, ge=0)
    slow_rate: float = Field(0.0, ge=0, le=1)
    slow_seconds: float = Field(2.0, ge=0)
    malformed_records: int = Field(0, ge=0)  # covers served corrupted (the same ones per seed)
    malformed_ids: dict[str, str] = Field(default_factory=dict)  # cover id -> corruption kind
    malformed_times: int = Field(0, ge=0)  # each served corrupted N times, then valid (0: always)
    truncated_pages: list[int] = Field(default_factory=list)  # cover-search pages served short
    truncate_times: int = Field(1, ge=0)  # how many times each of those pages is served short
    cut_json_pages: list[int] = Field(default_factory=list)  # body cut midway (still HTTP 200)
    cut_json_times: int = Field(1, ge=0)  # how many times each of those pages is cut
    repeat_in_page: list[str] = Field(default_factory=list)  # cover ids served twice in a row
    repeat_on_next_page: list[str] = Field(default_factory=list)  # ... and atop the next page
    token_max_uses: int = Field(0, ge=0)  # a token is refused after N uses (0: no limit)
    reject_all_tokens: bool = False  # every bearer token refused (a persistent 401)
    seed: int = 0  # seeds the rates above

    @field_validator("malformed_ids")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        kinds = [k for k, _ in MALFORMATIONS + OMISSIONS]
        for cover_id, kind in value.items():
            if kind not in kinds:
                raise ValueError(f"cover {cover_id}: unknown corruption {kind!r}; one of {kinds}")
        return value


@dataclass
class Injected:
    """One scripted failure: `status` 429/500/503/..., or `slow` seconds before answering."""

    status: int | None = None
    retry_after: float | None = None
    slow: float | None = None


MALFORMATIONS = (
    ("amount", "the credit limit's amount is not a number"),
    ("missing_id", "coverId missing"),
    ("grade", "grade out of 1-10"),
    ("date", "the credit limit's endDate not a date"),
    ("company", "company missing"),
)
# only by name (`Faults.malformed_ids`): a field that matters left out
OMISSIONS = (
    ("no_expiry", "the credit limit's endDate missing (invalid for a Temporary limit)"),
    ("no_identifiers", "company.companyIdentifiers empty (valid: matched by companyId only)"),
)


def _with_limit(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The record with its (first) credit limit changed; `None` removes a field."""
    limits = [dict(x) for x in record["creditLimitsAggregation"]["creditLimits"]]
    for key, value in changes.items():
        if value is None:
            limits[0].pop(key, None)
        else:
            limits[0][key] = value
    return {**record, "creditLimitsAggregation": {"creditLimits": limits}}


def corrupt(record: dict[str, Any], kind: str) -> dict[str, Any]:
    bad = dict(record)
    if kind == "amount":
        bad = _with_limit(bad, amount="abc")
    elif kind == "missing_id":
        bad.pop("coverId")
    elif kind == "grade":
        bad["grade"] = 42
    elif kind == "date":
        bad = _with_limit(bad, endDate="2025-13-45")
    elif kind == "company":
        bad.pop("company")
    elif kind == "no_expiry":
        bad = _with_limit(bad, endDate=None)
    elif kind == "no_identifiers":
        bad["company"] = {**bad["company"], "companyIdentifiers": []}
    return bad


# --- the server ----------------------------------------------------------------------------
