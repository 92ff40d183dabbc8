"""`rules/insurance.yaml` as a rules file: the policy terms, positioned validation, examples.

`INSURANCE` is the file's `RuleFileSpec`, listed in `cobro.rules.ruleset.Ruleset.SPECS`, so
`cobro rules check|test|apply` validate, test and version it with the other rules files: a
broken file is one `rules/insurance.yaml:LINE:COL: message` per problem and `rules apply`
keeps the last good version. `Ruleset.load(d).built("insurance.yaml")` is an
`InsuranceTerms`; without the file, `terms_of(ruleset)` gives no terms (`NO_TERMS`): no
invoice then has insurer deadlines.

Each example gives a policy and a due date (optionally `oldest_due_date` and an `amount`, the
customer's only open invoice) and the dates (and `indemnity`) it expects; `cobro rules test`
runs them (`InsuranceTerms` built here answers `example_failures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from cobro.exposure.rulefile import Amount, PolicyId
from cobro.insurers.obligations import indemnity_amount
from cobro.insurers.terms import (
    ANCHORS,
    NO_TERMS,
    Deadline,
    InsuranceTerms,
    PolicyTerms,
    deadlines,
)
from cobro.rules.loader import FileContext, LoadedFile, RuleFileSpec
from cobro.rules.schemas import StrictModel

FILENAME = "insurance.yaml"
_MAX_DAYS = 3650


def _days(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number of calendar days like 30, got {value!r}")
    if not 0 <= value <= _MAX_DAYS:
        raise ValueError(f"days must be between 0 and {_MAX_DAYS}, got {value}")
    return value


def _percent(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError(f"expected a percentage like 90 or 85.5, got {value!r}")
    pct = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not 0 < pct <= 100:
        raise ValueError(f"insured_percent must be above 0 and at most 100, got {value}")
    return pct


def _date(value: Any) -> Any:
    if not isinstance(value, date):
        raise ValueError(f"expected an ISO date like 2026-01-31, got {value!r}")
    return value


Days = Annotated[int, BeforeValidator(_days)]
Percent = Annotated[Decimal, BeforeValidator(_percent)]
Day = Annotated[date, BeforeValidator(_date)]


class DeadlineSection(StrictModel):
    days: Days
    after: Literal["due_date", "max_extension", "declaration", "claim", "oldest_due_date"]


class PolicySection(StrictModel):
    policy: PolicyId
    name: str = ""
    insured_percent: Percent
    max_extension_days: Days = 0
    declare_overdue: DeadlineSection
    claim: DeadlineSection
    waiting_period: DeadlineSection
    min_declarable: Amount = Decimal("0.0000")
    stop_supply: DeadlineSection | None = None
    declarations: Literal["automatic", "approval"] = "automatic"


class ExpectSection(StrictModel):
    may_extend_until: Day | None = None
    declare_by: Day | None = None
    claim_by: Day | None = None
    expected_indemnity_on: Day | None = None
    stop_supplies_from: Day | None = None
    indemnity: Amount | None = None


class TermsExample(StrictModel):
    name: str | None = None
    policy: PolicyId
    due_date: Day
    oldest_due_date: Day | None = None
    amount: Amount | None = None
    expect: ExpectSection


class InsuranceFile(StrictModel):
    at_risk_within_days: Days = 14
    policies: list[PolicySection] = Field(default_factory=list)
    examples: list[TermsExample] = Field(default_factory=list)


_DEADLINES = ("declare_overdue", "claim", "waiting_period", "stop_supply")


def _check(loaded: LoadedFile, ctx: FileContext) -> None:
    model: InsuranceFile = loaded.model  # type: ignore[assignment]
    seen: dict[str, int] = {}
    for i, p in enumerate(model.policies):
        if p.policy in seen:
            ctx.error(
                ("policies", i, "policy"),
                f"duplicate policy `{p.policy}` (also entry {seen[p.policy] + 1} of policies): "
                "list each policy once",
            )
        seen.setdefault(p.policy, i)
        for key in _DEADLINES:
            section = getattr(p, key)
            if section is not None and section.after not in ANCHORS[key]:
                ctx.error(
                    ("policies", i, key, "after"),
                    f"`{key}` cannot count from `{section.after}`: use one of "
                    + ", ".join(ANCHORS[key]),
                )
    for i, ex in enumerate(model.examples):
        if ex.policy not in seen:
            known = ", ".join(seen) or "none"
            ctx.error(
                ("examples", i, "policy"),
                f"unknown policy `{ex.policy}` (policies in this file: {known})",
            )


def _deadline(section: DeadlineSection | None) -> Deadline | None:
    return None if section is None else Deadline(section.days, section.after)


@dataclass(frozen=True)
class BuiltTerms(InsuranceTerms):
    """`InsuranceTerms` that also runs the file's examples (for `cobro rules test`)."""

    examples: tuple[TermsExample, ...] = ()

    def example_failures(self, index: int) -> list[str]:
        """What example `index` expected and did not get ([]: it passes)."""
        ex = self.examples[index]
        terms = self.policies[ex.policy]
        got = deadlines(terms, ex.due_date, ex.oldest_due_date)
        out: list[str] = []
        for key, want in ex.expect.model_dump().items():
            if want is None:
                continue
            if key == "indemnity":
                have: Any = indemnity_amount(
                    terms, ex.amount or Decimal(0), ex.amount or Decimal(0)
                )
            else:
                have = getattr(got, key)
            if have != want:
                out.append(f"{key}: expected {want}, got {have}")
        return out


def _build(loaded: LoadedFile, ctx: FileContext) -> InsuranceTerms:
    model: InsuranceFile = loaded.model  # type: ignore[assignment]
    policies = {
        p.policy: PolicyTerms(
            policy=p.policy,
            name=p.name,
            insured_percent=p.insured_percent,
            max_extension_days=p.max_extension_days,
            declare_overdue=_deadline(p.declare_overdue),  # type: ignore[arg-type]
            claim=_deadline(p.claim),  # type: ignore[arg-type]
            waiting_period=_deadline(p.waiting_period),  # type: ignore[arg-type]
            min_declarable=p.min_declarable,
            stop_supply=_deadline(p.stop_supply),
            declarations=p.declarations,
        )
        for p in model.policies
    }
    return BuiltTerms(
        policies=policies,
        at_risk_within_days=model.at_risk_within_days,
        examples=tuple(model.examples),
    )


def terms_of(ruleset: Any) -> InsuranceTerms:
    """The policy terms of a loaded `Ruleset` (none if it has no insurance.yaml)."""
    built = ruleset.built(FILENAME) if ruleset is not None else None
    return built if isinstance(built, InsuranceTerms) else NO_TERMS


INSURANCE = RuleFileSpec(
    filename=FILENAME,
    model=InsuranceFile,
    description="insurance policy terms: extension period, declaration, claim and "
    "stop-supply deadlines (calendar days), insured percentage",
    check=_check,
    build=_build,
)
