"""The specs of the rules engine's own files, `risk_classes.yaml` (`RISK_CLASSES`) and
`alerts.yaml` (`ALERTS`), and what other files share with them.

A spec is a plain `RuleFileSpec` value: defining it registers nothing. A file of another
package (`cobro.exposure.rulefile`, `cobro.dunning.rulefile`) declares a pydantic model whose
expression fields are typed `Expression`, defines its spec next to the code that uses it, and
is listed in `cobro.rules.ruleset.Ruleset.SPECS`. `facts_env` is the environment of a file
whose expressions read the customer facts, `risk_class` limited to the classes of
`risk_classes.yaml`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cobro.rules.engine import (
    AlertEvaluator,
    AlertRule,
    RiskClassifier,
    coerce_fact,
)
from cobro.rules.errors import did_you_mean
from cobro.rules.expr import Env
from cobro.rules.facts import FACTS, UNCLASSIFIED
from cobro.rules.loader import (
    Expression,
    FileContext,
    LoadedFile,
    MessageTemplate,
    RuleFileSpec,
    parse_duration,
)

SEVERITIES = ("info", "warning", "critical")
_NAME = r"^[a-z][a-z0-9_]*$"
_SHARED_CLASSES = "risk_classes"  # FileContext.shared: the class names, in order


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _threshold(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a threshold must be a number or a duration like 30d, not a boolean")
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[dw]\s*", value):
        return parse_duration(value).days
    raise ValueError(f"a threshold must be a number or a duration like 30d, got {value!r}")


Threshold = Annotated[Any, BeforeValidator(_threshold)]
Identifier = Annotated[str, Field(pattern=_NAME, max_length=64)]
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2}$")]  # ISO 639-1, as customers have


# ---------------------------------------------------------------------------- risk_classes.yaml


class RiskClass(StrictModel):
    name: Identifier
    when: Expression | None = None
    because: str | None = None


class ClassExample(StrictModel):
    name: str | None = None
    given: dict[str, Any] = Field(default_factory=dict)
    expect: str


class RiskClassesFile(StrictModel):
    classes: list[RiskClass] = Field(min_length=1)
    examples: list[ClassExample] = Field(default_factory=list)


def _check_given(ctx: FileContext, loc: tuple, given: dict[str, Any], env: Env) -> None:
    for key, value in given.items():
        if key == "previous" and isinstance(value, dict):
            _check_given(
                ctx, (*loc, "previous"), {f"previous.{k}": v for k, v in value.items()}, env
            )
            continue
        if key not in env.vars or env.vars[key].source != "fact":
            facts = [n for n, v in env.vars.items() if v.source == "fact"]
            ctx.error((*loc, key), f"unknown fact `{key}`{did_you_mean(key, facts)}", key=True)
            continue
        try:
            coerce_fact(key, value)
        except ValueError as exc:
            ctx.error((*loc, key), str(exc))


def _risk_env(model: Any, ctx: FileContext) -> Env:
    return Env.from_facts(exclude=("risk_class",))


def _check_risk_classes(loaded: LoadedFile, ctx: FileContext) -> None:
    model: RiskClassesFile = loaded.model  # type: ignore[assignment]
    seen: dict[str, int] = {}
    last = len(model.classes) - 1
    for i, c in enumerate(model.classes):
        if c.name in seen:
            ctx.error(
                ("classes", i, "name"),
                f"duplicate class `{c.name}` (also class {seen[c.name] + 1})",
            )
        seen.setdefault(c.name, i)
        if c.name == UNCLASSIFIED:
            ctx.error(
                ("classes", i, "name"),
                f"`{UNCLASSIFIED}` is reserved: it is the previous class of a first classification",
            )
        if i < last and c.when is None:
            ctx.error(
                ("classes", i),
                f"class `{c.name}` has no `when`: only the last class (the default) may omit it",
            )
    if model.classes[last].when is not None:
        ctx.error(
            ("classes", last, "when"),
            "missing default class: the last class is the default and must have no `when`",
        )
    names = [c.name for c in model.classes]
    for i, ex in enumerate(model.examples):
        if ex.expect not in names:
            ctx.error(
                ("examples", i, "expect"),
                f"unknown class `{ex.expect}`"
                f"{did_you_mean(ex.expect, names)}; classes: {', '.join(names)}",
            )
        _check_given(ctx, ("examples", i, "given"), ex.given, loaded.env)
    ctx.shared[_SHARED_CLASSES] = tuple(names)


def _build_risk_classes(loaded: LoadedFile, ctx: FileContext) -> RiskClassifier:
    model: RiskClassesFile = loaded.model  # type: ignore[assignment]
    n = len(model.classes)
    return RiskClassifier(
        [c.name for c in model.classes],
        [loaded.exprs[("classes", i, "when")] for i in range(n - 1)],
        [c.because for c in model.classes],
        loaded.env,
    )


RISK_CLASSES = RuleFileSpec(
    filename="risk_classes.yaml",
    model=RiskClassesFile,
    description="risk classes: first match wins, the last class is the default",
    env=_risk_env,
    check=_check_risk_classes,
    build=_build_risk_classes,
    required=True,
)


def risk_class_values(ctx: FileContext) -> dict[str, tuple[str, ...]]:
    """`risk_class` and `previous.risk_class` may only be compared with the classes of
    `risk_classes.yaml` (when it loaded before this file; else any string); the previous
    class may also be `unclassified` (a first classification)."""
    classes = ctx.shared.get(_SHARED_CLASSES)
    if classes is None:
        return {}
    return {"risk_class": classes, "previous.risk_class": (*classes, UNCLASSIFIED)}


def facts_env(model: Any, ctx: FileContext) -> Env:
    """The environment of a file whose expressions read the customer facts."""
    return Env.from_facts(values=risk_class_values(ctx))


# ---------------------------------------------------------------------------- alerts.yaml


class Alert(StrictModel):
    """`message`: one template, or one per language (`{en: ..., es: ..., fr: ...}`): the
    alert is stored in the team's language (`COBRO_TEAM_LANGUAGE`; English, else the first
    given, when the team's is missing) and shown to each user in theirs when given."""

    name: Identifier
    when: Expression
    severity: Literal["info", "warning", "critical"]
    cooldown: Duration = timedelta(0)
    message: MessageTemplate | Annotated[dict[LanguageCode, MessageTemplate], Field(min_length=1)]


class Override(StrictModel):
    segment: str
    thresholds: dict[str, Threshold]


class AlertExample(StrictModel):
    name: str | None = None
    given: dict[str, Any] = Field(default_factory=dict)
    expect: list[str]


class AlertsFile(StrictModel):
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    alerts: list[Alert] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    examples: list[AlertExample] = Field(default_factory=list)


def _alerts_env(model: Any, ctx: FileContext) -> Env:
    thresholds = {k: v for k, v in model.thresholds.items() if k not in FACTS}
    return Env.from_facts(thresholds=thresholds, values=risk_class_values(ctx))


def _check_alerts(loaded: LoadedFile, ctx: FileContext) -> None:
    model: AlertsFile = loaded.model  # type: ignore[assignment]
    for name in model.thresholds:
        if name in FACTS:
            ctx.error(("thresholds", name), f"threshold `{name}` has the name of a fact", key=True)
        elif not re.fullmatch(_NAME, name):
            ctx.error(("thresholds", name), f"threshold `{name}`: use lower_snake_case", key=True)
    seen: set[str] = set()
    for i, a in enumerate(model.alerts):
        if a.name in seen:
            ctx.error(("alerts", i, "name"), f"duplicate alert `{a.name}`")
        seen.add(a.name)
    segments: set[str] = set()
    for i, o in enumerate(model.overrides):
        if o.segment in segments:
            ctx.error(("overrides", i, "segment"), f"duplicate override for segment `{o.segment}`")
        segments.add(o.segment)
        for name in o.thresholds:
            if name not in model.thresholds:
                ctx.error(
                    ("overrides", i, "thresholds", name),
                    f"unknown threshold `{name}`{did_you_mean(name, model.thresholds)}",
                    key=True,
                )
    names = [a.name for a in model.alerts]
    for i, ex in enumerate(model.examples):
        for j, name in enumerate(ex.expect):
            if name not in names:
                ctx.error(
                    ("examples", i, "expect", j),
                    f"unknown alert `{name}`{did_you_mean(name, names)}",
                )
        _check_given(ctx, ("examples", i, "given"), ex.given, loaded.env)


def _build_alerts(loaded: LoadedFile, ctx: FileContext) -> AlertEvaluator:
    model: AlertsFile = loaded.model  # type: ignore[assignment]
    rules = []
    for i, a in enumerate(model.alerts):
        at = ("alerts", i, "message")
        if isinstance(a.message, str):
            template, translations = loaded.templates[at], {}
        else:
            translations = {lang: loaded.templates[(*at, lang)] for lang in a.message}
            template = translations.get("en") or next(iter(translations.values()))
        rules.append(
            AlertRule(
                a.name,
                a.severity,
                a.cooldown,
                loaded.exprs[("alerts", i, "when")],
                template,
                translations,
            )
        )
    overrides = {o.segment: dict(o.thresholds) for o in model.overrides}
    return AlertEvaluator(rules, dict(model.thresholds), overrides, loaded.env)


ALERTS = RuleFileSpec(
    filename="alerts.yaml",
    model=AlertsFile,
    description="alerts: every matching alert fires, with cooldown and segment overrides",
    env=_alerts_env,
    check=_check_alerts,
    build=_build_alerts,
)
