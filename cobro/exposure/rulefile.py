"""`rules/exposure.yaml` as a rules-engine file: positioned validation + compiled conditions.

`EXPOSURE` is the file's `RuleFileSpec`, listed in `cobro.rules.ruleset.Ruleset.SPECS`, so
`cobro rules check|apply` validate it like the other rules files: a broken file is one
`rules/exposure.yaml:LINE:COL: message` per problem and `rules apply` keeps the last good
version. `Ruleset.load(d).built("exposure.yaml")` is an `ExposureRules`; without the file,
`rules_of(ruleset)` gives the defaults (`DEFAULT_RULES`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from cobro.exposure.compute import (
    DEFAULT_RULES,
    LIMIT_FACTS,
    Condition,
    DiscretionaryRules,
    ExposureRules,
    UnnamedPolicy,
    UsedRules,
)
from cobro.rules.engine import PredicateSet
from cobro.rules.loader import Expression, FileContext, LoadedFile, RuleFileSpec
from cobro.rules.schemas import StrictModel, facts_env

FILENAME = "exposure.yaml"
_MAX_AMOUNT = Decimal("1e14")
_CENTS = Decimal("0.0001")  # money is stored with 4 decimals


def _amount(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError(f"an amount must be a number like 10000 or 2500.50, got {value!r}")
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if amount < 0:
        raise ValueError(f"an amount cannot be negative, got {value}")
    if amount >= _MAX_AMOUNT or amount != amount.quantize(_CENTS):
        raise ValueError(f"amount {value} out of range (at most 4 decimals, below 10^14)")
    return amount.quantize(_CENTS)


def _policy_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # `policy: 5012001` means the policy "5012001"
    return value


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


Amount = Annotated[Decimal, BeforeValidator(_amount)]
Flag = Annotated[bool, BeforeValidator(_flag)]
PolicyId = Annotated[str, BeforeValidator(_policy_id), Field(min_length=1, max_length=64)]


class UsedSection(StrictModel):
    not_yet_due: Flag = True
    disputed: Flag = True
    credit_notes: Flag = True
    unbilled_orders: Flag = False


class DiscretionarySection(StrictModel):
    default: Amount = Decimal("0.0000")
    segments: dict[str, Amount] = Field(default_factory=dict)
    customer_override: Flag = True


class UnnamedBuyerPolicy(StrictModel):
    policy: PolicyId
    ceiling: Amount
    applies_to: Expression | None = None
    when: Expression | None = None


class ExposureFile(StrictModel):
    used: UsedSection = UsedSection()
    discretionary: DiscretionarySection = DiscretionarySection()
    unnamed_buyers: list[UnnamedBuyerPolicy] = Field(default_factory=list)


def _check(loaded: LoadedFile, ctx: FileContext) -> None:
    model: ExposureFile = loaded.model  # type: ignore[assignment]
    seen: dict[str, int] = {}
    for i, p in enumerate(model.unnamed_buyers):
        if p.policy in seen:
            ctx.error(
                ("unnamed_buyers", i, "policy"),
                f"duplicate policy `{p.policy}` (also entry {seen[p.policy] + 1} of "
                "unnamed_buyers): list each policy once",
            )
        seen.setdefault(p.policy, i)
    for i in range(len(model.unnamed_buyers)):
        for key in ("applies_to", "when"):
            checked = loaded.exprs.get(("unnamed_buyers", i, key))
            read = [
                n for n in (checked.names if checked else ()) if n.split(".")[-1] in LIMIT_FACTS
            ]
            if read:
                ctx.error(
                    ("unnamed_buyers", i, key),
                    f"`{read[0]}` is computed from the exposure itself: an unnamed-buyer "
                    "condition cannot read it",
                )
    for segment in model.discretionary.segments:
        if not segment.strip():
            ctx.error(("discretionary", "segments", segment), "empty segment name", key=True)


def _build(loaded: LoadedFile, ctx: FileContext) -> ExposureRules:
    model: ExposureFile = loaded.model  # type: ignore[assignment]
    locs = [
        ("unnamed_buyers", i, key)
        for i, p in enumerate(model.unnamed_buyers)
        for key in ("applies_to", "when")
        if getattr(p, key) is not None
    ]
    checked = [loaded.exprs[loc] for loc in locs]
    exact = PredicateSet(checked, loaded.env, "exposure").bind().exact if checked else ()
    conditions = {
        loc: Condition(c.text, fn, c.names) for loc, c, fn in zip(locs, checked, exact, strict=True)
    }
    policies = tuple(
        UnnamedPolicy(
            policy=p.policy,
            ceiling=p.ceiling,
            applies_to=conditions.get(("unnamed_buyers", i, "applies_to")),
            when=conditions.get(("unnamed_buyers", i, "when")),
        )
        for i, p in enumerate(model.unnamed_buyers)
    )
    return ExposureRules(
        used=UsedRules(**model.used.model_dump()),
        discretionary=DiscretionaryRules(
            default=model.discretionary.default,
            segments=dict(model.discretionary.segments),
            customer_override=model.discretionary.customer_override,
        ),
        unnamed_buyers=policies,
    )


def rules_of(ruleset: Any) -> ExposureRules:
    """The exposure rules of a loaded `Ruleset` (the defaults if it has no exposure.yaml)."""
    built = ruleset.built(FILENAME) if ruleset is not None else None
    return built if isinstance(built, ExposureRules) else DEFAULT_RULES


EXPOSURE = RuleFileSpec(
    filename=FILENAME,
    model=ExposureFile,
    description="exposure and limits: what counts as used, discretionary limits, "
    "unnamed-buyer ceilings",
    env=facts_env,
    check=_check,
    build=_build,
)
