"""Runs the `examples:` embedded in rules files and renders alert messages with sample facts.

An example's `given` is a facts dict; a missing fact is null. `previous.x` may be written flat
(`previous.grade: 4`) or nested (`previous: {grade: 4}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cobro.rules.engine import AlertEvaluator, RiskClassifier
from cobro.rules.errors import RuleMessage
from cobro.rules.facts import sample_facts
from cobro.rules.ruleset import Ruleset
from cobro.rules.templates import template_context


@dataclass(frozen=True)
class ExampleFailure:
    message: RuleMessage  # where the example is, and what went wrong
    explanation: str

    def __str__(self) -> str:
        return f"{self.message}\n" + "\n".join(
            "    " + line for line in self.explanation.splitlines()
        )


def normalize_given(given: Mapping[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for key, value in given.items():
        if key == "previous" and isinstance(value, Mapping):
            for k, v in value.items():
                facts[f"previous.{k}"] = v
        else:
            facts[key] = value
    return {k: Decimal(repr(v)) if isinstance(v, float) else v for k, v in facts.items()}


def run_examples(ruleset: Ruleset) -> tuple[int, list[ExampleFailure]]:
    """(number of examples run, failures)."""
    count = 0
    failures: list[ExampleFailure] = []
    for loaded in ruleset.files.values():
        built = loaded.built
        examples = getattr(loaded.model, "examples", None) or []
        for i, ex in enumerate(examples):
            count += 1
            label = f"example {i + 1}" + (f" ({ex.name})" if getattr(ex, "name", None) else "")
            facts = normalize_given(getattr(ex, "given", None) or {})
            loc = ("examples", i, "expect")
            if isinstance(built, RiskClassifier):
                got = built.classify(facts)
                if got.risk_class != ex.expect:
                    msg = f"{label}: expected `{ex.expect}`, got `{got.risk_class}`"
                    failures.append(
                        ExampleFailure(loaded.located.message(loc, msg), str(got.explanation))
                    )
            elif isinstance(built, AlertEvaluator):
                fired = [a.name for a in built.evaluate(facts, render=False)]
                if sorted(fired) != sorted(ex.expect):
                    msg = f"{label}: expected alerts {sorted(ex.expect)}, got {sorted(fired)}"
                    explanation = "\n".join(
                        f"{'fires' if t.value else 'no'} `{t.name}`: {t.describe()}"
                        for t in built.trace(facts)
                    )
                    failures.append(ExampleFailure(loaded.located.message(loc, msg), explanation))
            elif hasattr(built, "example_failures"):  # a file that runs its own examples
                wrong = built.example_failures(i)
                if wrong:
                    msg = f"{label}: " + "; ".join(wrong)
                    failures.append(ExampleFailure(loaded.located.message(loc, msg), ""))
    return count, failures


def render_checks(ruleset: Ruleset) -> list[RuleMessage]:
    """Render every alert message with the sample facts, and with each example's facts for the
    alerts that example expects; report any rendering failure at the message."""
    out: list[RuleMessage] = []
    loaded = ruleset.files.get("alerts.yaml")
    if loaded is None or not isinstance(loaded.built, AlertEvaluator):
        return out
    evaluator: AlertEvaluator = loaded.built
    cases: list[tuple[str, dict[str, Any], set[str] | None]] = [
        ("sample facts", sample_facts(), None)
    ]
    for i, ex in enumerate(getattr(loaded.model, "examples", []) or []):
        cases.append((f"example {i + 1}", normalize_given(ex.given), set(ex.expect)))
    for label, facts, only in cases:
        thresholds = evaluator.thresholds_for(facts.get("segment"))
        ctx = template_context(facts, dict(thresholds), evaluator.env)
        for i, rule in enumerate(evaluator.rules):
            if only is not None and rule.name not in only:
                continue
            try:
                rule.template.render(ctx)
            except Exception as exc:
                out.append(
                    loaded.located.message(
                        ("alerts", i, "message"),
                        f"message of `{rule.name}` fails to render with {label}: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
    return out
