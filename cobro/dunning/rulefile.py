"""`rules/dunning.yaml` as a rules-engine file: positioned validation + compiled `applies_to`.

Importing this module registers the file kind with `cobro.rules` (`register_rule_file`). The
rules engine has to import it for `Ruleset.load()` to accept `dunning.yaml`, e.g. one line next
to `import cobro.rules.schemas` in `Ruleset.load`:

    import cobro.dunning.rulefile  # noqa: F401 - registers dunning.yaml

`Ruleset.load(d).built("dunning.yaml")` is then a `DunningPolicies`: `.rules` (the plain
`DunningRulesFile`) and `.select(facts)` (first policy whose compiled `applies_to` matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cobro.dunning.policy import DunningPolicy, DunningRulesFile
from cobro.rules.engine import PredicateSet
from cobro.rules.expr import Env
from cobro.rules.loader import (
    REGISTRY,
    Expression,
    FileContext,
    LoadedFile,
    RuleFileSpec,
    register_rule_file,
)

FILENAME = "dunning.yaml"


class RulesDunningPolicy(DunningPolicy):
    applies_to: Expression | None = None  # type: ignore[assignment]


class DunningFileSchema(DunningRulesFile):
    policies: list[RulesDunningPolicy]  # type: ignore[assignment]  # the loader walks lists


class DunningPolicies:
    """The built `dunning.yaml`: plain policies plus compiled `applies_to` predicates."""

    def __init__(self, rules: DunningRulesFile, conditions: dict[int, Any], env: Env) -> None:
        self.rules = rules
        checked = [conditions[i] for i in sorted(conditions)]
        self._exact = PredicateSet(checked, env, "dunning").bind().exact if checked else ()

    def select(self, facts: Mapping[str, Any]) -> DunningPolicy | None:
        exact = iter(self._exact)
        for policy in self.rules.policies:
            if policy.applies_to is None or next(exact)(facts):
                return policy
        return None


def _env(model: Any, ctx: FileContext) -> Env:
    values = {}
    if "risk_classes" in ctx.shared:
        values = {n: ctx.shared["risk_classes"] for n in ("risk_class", "previous.risk_class")}
    return Env.from_facts(values=values)


def _build(loaded: LoadedFile, ctx: FileContext) -> DunningPolicies:
    model: DunningFileSchema = loaded.model  # type: ignore[assignment]
    plain = DunningRulesFile.model_validate(model.model_dump())
    conditions = {
        i: loaded.exprs[("policies", i, "applies_to")]
        for i, p in enumerate(model.policies)
        if p.applies_to is not None
    }
    return DunningPolicies(plain, conditions, loaded.env)


if FILENAME not in REGISTRY:
    SPEC = register_rule_file(
        RuleFileSpec(
            filename=FILENAME,
            model=DunningFileSchema,
            description="dunning policies: the first policy that applies to the customer wins",
            env=_env,
            build=_build,
        )
    )
