"""Semantics: risk classification (first match wins), alerts (every match fires, with
per-segment thresholds, episodes and cooldown) and explanations. The `Ruleset` that puts the
files together is `cobro.rules.ruleset`.

Everything here is pure: no database, no clock (callers pass `now`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cobro.rules.expr import Checked, Env, ModuleBuilder, pyvar, show_value
from cobro.rules.facts import FACTS

# ---------------------------------------------------------------------------- compiled predicates


@dataclass(frozen=True)
class BoundPredicates:
    """A compiled list of conditions with its thresholds bound.

    * `first(facts)` -> index of the first condition that is true, or `len(conditions)`;
    * `matching(facts)` -> indices of every true condition;
    * `values(facts)` -> the exact three-valued value (True/False/None) of each condition.
    """

    first: Any
    matching: Any
    exact: tuple[Any, ...]

    def values(self, facts: Mapping[str, Any]) -> list[bool | None]:
        return [fn(facts) for fn in self.exact]


class PredicateSet:
    """Compiles checked boolean expressions into ONE generated function per use (first match /
    all matches), plus one exact function per condition for explanations.

    Reads each fact once into a local, converts floats used in arithmetic to Decimal, and
    trusts the facts schema: a fast variant assumes non-nullable facts are present and falls
    back to the fully null-safe variant when one is missing. Thresholds are closure variables
    bound per segment (`bind`)."""

    def __init__(self, conditions: Sequence[Checked], env: Env, name: str = "rules") -> None:
        self.conditions = list(conditions)
        self.env = env
        self.thresholds = sorted(
            {n for c in self.conditions for n in c.names if env.vars[n].source == "threshold"}
        )
        thr = frozenset(self.thresholds)
        nonnull_facts = frozenset(
            n
            for c in self.conditions
            for n in c.names
            if env.vars[n].source == "fact" and not env.vars[n].nullable
        )
        mb = ModuleBuilder()
        params = ", ".join(pyvar(t) for t in self.thresholds)
        mb.emit(f"def _make({params}):")
        n = len(self.conditions)
        for variant, nonnull in (("slow", frozenset()), ("fast", nonnull_facts)):
            guard = (lambda v: v in nonnull_facts) if variant == "fast" else None
            # first match
            mb.emit(f"    def first_{variant}(f):")
            mb.prologue(self.conditions, "        ", guard, "first_slow", thr)
            for i, c in enumerate(self.conditions):
                mb.emit(f"        if {mb.expr(c, nonnull, truthy=True)}: return {i}")
            mb.emit(f"        return {n}")
            # all matches
            mb.emit(f"    def all_{variant}(f):")
            mb.prologue(self.conditions, "        ", guard, "all_slow", thr)
            mb.emit("        r = []")
            for i, c in enumerate(self.conditions):
                mb.emit(f"        if {mb.expr(c, nonnull, truthy=True)}: r.append({i})")
            mb.emit("        return r")
        for i, c in enumerate(self.conditions):
            mb.emit(f"    def exact_{i}(f):")
            mb.prologue([c], "        ", None, None, thr)
            mb.emit(f"        return {mb.expr(c, frozenset(), truthy=False)}")
        exacts = ", ".join(f"exact_{i}" for i in range(n))
        mb.emit(f"    return first_fast, all_fast, ({exacts}{',' if n == 1 else ''})")
        self.source = mb.source()
        self._make = mb.build(f"<{name}>")["_make"]

    def bind(self, thresholds: Mapping[str, Any] | None = None) -> BoundPredicates:
        thresholds = thresholds or {}
        first, matching, exact = self._make(*(thresholds[t] for t in self.thresholds))
        return BoundPredicates(first, matching, tuple(exact))


# ---------------------------------------------------------------------------- explanations


@dataclass(frozen=True)
class ConditionTrace:
    """The value of one condition for one facts dict, with the facts it read."""

    name: str
    when: str
    value: bool | None
    facts: dict[str, Any]

    @property
    def null_facts(self) -> list[str]:
        return [k for k, v in self.facts.items() if v is None]

    def describe(self) -> str:
        shown = ", ".join(f"{k}={show_value(v)}" for k, v in self.facts.items()) or "no facts"
        text = f"`{self.when}` is {show_value(self.value)} ({shown})"
        if self.value is None and self.null_facts:
            text += f"; null facts: {', '.join(self.null_facts)}"
        return text


def _trace(
    name: str,
    c: Checked,
    fn: Any,
    facts: Mapping[str, Any],
    thresholds: Mapping[str, Any] | None = None,
) -> ConditionTrace:
    """The condition's value and what it read: facts, and thresholds with the value in force
    (the customer's segment's)."""
    known = thresholds or {}
    read = {n: (known.get(n) if n in c.fixed else facts.get(n)) for n in c.names}
    return ConditionTrace(name, c.text, fn(facts), read)


@dataclass(frozen=True)
class Explanation:
    risk_class: str
    rule_index: int
    because: str | None
    matched: ConditionTrace | None  # None when the default (last) class applied
    rejected: tuple[ConditionTrace, ...]

    def lines(self) -> list[str]:
        head = f"risk class `{self.risk_class}` (class {self.rule_index + 1})"
        if self.matched is None:
            head += ": default class, no earlier class matched"
        else:
            head += f": {self.matched.describe()}"
        if self.because:
            head += f" -- because {self.because}"
        out = [head]
        for t in self.rejected:
            out.append(f"  not `{t.name}`: {t.describe()}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


# ---------------------------------------------------------------------------- risk classes


class Classification:
    """Result of `RiskClassifier.classify`; the explanation is computed on first access."""

    __slots__ = ("_classifier", "_explanation", "_facts", "risk_class", "rule_index")

    def __init__(self, classifier: RiskClassifier, index: int, facts: Mapping[str, Any]) -> None:
        self._classifier = classifier
        self.rule_index = index
        self.risk_class = classifier.names[index]
        self._facts = facts
        self._explanation: Explanation | None = None

    @property
    def explanation(self) -> Explanation:
        if self._explanation is None:
            self._explanation = self._classifier.explain(self._facts, self.rule_index)
        return self._explanation

    def __repr__(self) -> str:
        return f"Classification({self.risk_class!r}, rule_index={self.rule_index})"


class RiskClassifier:
    """First match wins; the last class (no `when`) is the default."""

    def __init__(
        self,
        names: Sequence[str],
        conditions: Sequence[Checked],
        because: Sequence[str | None],
        env: Env,
    ) -> None:
        self.names = list(names)
        self.because = list(because)
        self.conditions = list(conditions)
        self.predicates = PredicateSet(conditions, env, "risk_classes")
        self._bound = self.predicates.bind()
        self.index = self._bound.first  # facts -> class index, the hot path

    def classify(self, facts: Mapping[str, Any]) -> Classification:
        return Classification(self, self._bound.first(facts), facts)

    def explain(self, facts: Mapping[str, Any], index: int | None = None) -> Explanation:
        if index is None:
            index = self._bound.first(facts)
        traces = [
            _trace(self.names[i], self.conditions[i], self._bound.exact[i], facts)
            for i in range(min(index + 1, len(self.conditions)))
        ]
        matched = traces[index] if index < len(self.conditions) else None
        rejected = tuple(traces[:index])
        return Explanation(self.names[index], index, self.because[index], matched, rejected)


# ---------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    cooldown: timedelta
    condition: Checked
    template: Any  # jinja2.Template: the message (English, else the first language given)
    translations: Mapping[str, Any] = field(default_factory=dict)  # language -> template


@dataclass(frozen=True)
class FiredAlert:
    name: str
    severity: str
    cooldown: timedelta
    message: str
    segment: str | None
    thresholds: dict[str, Any] = field(default_factory=dict)


class AlertEvaluator:
    """Every alert whose condition is true fires; thresholds by name, overridden per segment."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        thresholds: Mapping[str, Any],
        overrides: Mapping[str, Mapping[str, Any]],
        env: Env,
    ) -> None:
        self.rules = list(rules)
        self.env = env
        self.default_thresholds = dict(thresholds)
        self.segment_thresholds = {
            seg: {**self.default_thresholds, **over} for seg, over in overrides.items()
        }
        self.predicates = PredicateSet([r.condition for r in self.rules], env, "alerts")
        self._default = self.predicates.bind(self.default_thresholds)
        self._by_segment = {
            seg: self.predicates.bind(t) for seg, t in self.segment_thresholds.items()
        }
        default_matching = self._default.matching
        by_segment = {seg: b.matching for seg, b in self._by_segment.items()}
        get = by_segment.get

        def matching(facts: Mapping[str, Any]) -> list[int]:
            return get(facts.get("segment"), default_matching)(facts)

        self.matching = matching  # facts -> indices of matching alerts, the hot path

    def thresholds_for(self, segment: str | None) -> dict[str, Any]:
        return self.segment_thresholds.get(segment, self.default_thresholds)  # type: ignore[arg-type]

    def _bound(self, segment: Any) -> BoundPredicates:
        return self._by_segment.get(segment, self._default)

    def evaluate(self, facts: Mapping[str, Any], render: bool = True) -> list[FiredAlert]:
        """Every alert whose condition is true for these facts (no episode/cooldown logic: see
        `decide_episode`)."""
        segment = facts.get("segment")
        indices = self.matching(facts)
        if not indices:
            return []
        thresholds = self.thresholds_for(segment)
        out = []
        for i in indices:
            rule = self.rules[i]
            message = self.render(rule, facts, thresholds) if render else ""
            used = {n: thresholds[n] for n in rule.condition.fixed}
            out.append(FiredAlert(rule.name, rule.severity, rule.cooldown, message, segment, used))
        return out

    def context(self, facts: Mapping[str, Any], thresholds: Mapping) -> dict[str, Any]:
        """What the messages of a customer see (`template_context`): build it once and pass
        it to each `render` of that customer's alerts."""
        from cobro.rules.templates import template_context

        return template_context(facts, thresholds, self.env)

    def render(
        self,
        rule: AlertRule,
        facts: Mapping[str, Any],
        thresholds: Mapping,
        language: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        """The message in `language` when the rule has one in it, else its default (render
        inside `cobro.i18n.using(language)` for that language's numbers and money).
        `context`: `self.context(facts, thresholds)` when the caller has it already."""
        from cobro.rules.templates import render_with

        template = rule.translations.get(language or "", rule.template)
        ctx = context if context is not None else self.context(facts, thresholds)
        try:
            return render_with(template, ctx)
        except Exception as exc:  # a message must never break the evaluation of alerts
            return f"{rule.name} (message could not be rendered: {type(exc).__name__}: {exc})"

    def render_each(
        self,
        rule: AlertRule,
        facts: Mapping[str, Any],
        thresholds: Mapping,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, str] | None:
        """language -> the message in it, for a rule with messages per language (else None),
        each with its language's numbers and money."""
        from cobro.i18n import using

        if not rule.translations:
            return None
        ctx = context if context is not None else self.context(facts, thresholds)
        out = {}
        for language in rule.translations:
            with using(language):
                out[language] = self.render(rule, facts, thresholds, language, ctx)
        return out

    def trace(self, facts: Mapping[str, Any]) -> list[ConditionTrace]:
        bound = self._bound(facts.get("segment"))
        thresholds = self.thresholds_for(facts.get("segment"))
        return [
            _trace(r.name, r.condition, bound.exact[i], facts, thresholds)
            for i, r in enumerate(self.rules)
        ]


# ---------------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class EpisodeState:
    """Per customer and alert: was the condition true at the last evaluation, was the current
    episode already notified, and when did the alert last fire."""

    active: bool = False
    notified: bool = False
    last_fired_at: datetime | None = None


@dataclass(frozen=True)
class EpisodeDecision:
    fire: bool
    state: EpisodeState
    reason: str


def decide_episode(
    state: EpisodeState | None, matched: bool | None, now: datetime, cooldown: timedelta
) -> EpisodeDecision:
    """Fire once per false->true episode, never within `cooldown` of the last firing.

    * not matched (false or null): the episode ends, nothing fires;
    * matched, and the current episode already notified: nothing fires;
    * matched, new (or not yet notified) episode: fires if the cooldown since the last firing
      has passed; otherwise it stays pending and fires at the first evaluation after the
      cooldown if the condition is still true.
    """
    state = state or EpisodeState()
    if matched is not True:
        return EpisodeDecision(
            False, EpisodeState(False, False, state.last_fired_at), "condition not true"
        )
    if state.active and state.notified:
        return EpisodeDecision(False, state, "already notified for this episode")
    last = state.last_fired_at
    if last is not None and now - last < cooldown:
        return EpisodeDecision(
            False,
            EpisodeState(True, False, last),
            f"within cooldown until {(last + cooldown).isoformat()}",
        )
    reason = "new episode" if not state.active else "episode pending since cooldown, now due"
    return EpisodeDecision(True, EpisodeState(True, True, now), reason)


# ---------------------------------------------------------------------------- example facts


def coerce_fact(name: str, value: Any) -> Any:
    """Validate one given fact value against the schema (used for examples); raise ValueError."""
    fact = FACTS[name]
    if value is None:
        return None
    t = fact.type
    ok = {
        "number": isinstance(value, int | Decimal | float) and not isinstance(value, bool),
        "money": isinstance(value, int | Decimal | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "date": hasattr(value, "isoformat") and not isinstance(value, datetime),
    }[t]
    if not ok:
        raise ValueError(f"`{name}` is a {t}, got {type(value).__name__} {value!r}")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value
