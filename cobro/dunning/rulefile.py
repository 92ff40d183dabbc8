"""`rules/dunning.yaml` as a rules-engine file: positioned validation + compiled `applies_to`.

`DUNNING` is the file's `RuleFileSpec`, listed in `cobro.rules.ruleset.Ruleset.SPECS`.
`Ruleset.load(d).built("dunning.yaml")` is a `DunningPolicies`: `.rules` (the plain
`DunningRulesFile`) and `.select(facts)` (first policy whose compiled `applies_to` matches).

The `check` hook also verifies that every message step's `template` (and each
`payment_plans.reminder` template) exists for each of its
channels in the default language of `languages:` (`en` unless the file says otherwise:
`<templates>/email/en/<name>.{subject,txt,html}.j2`, `<templates>/sms/en/<name>.txt.j2`),
reported at the step's `template` value with a did-you-mean, and that the `languages:`
chain has no cycle and leads only to languages that have templates. The templates directory
is `get_settings().templates_path`, or the one set with `with templates_directory(path): ...`
(used by `cobro rules check --templates DIR`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from cobro.dunning.languages import LanguageRules, describe_cycle, fallback_cycle
from cobro.dunning.policy import DunningPolicy, DunningRulesFile
from cobro.rules.engine import PredicateSet
from cobro.rules.errors import did_you_mean
from cobro.rules.expr import Env
from cobro.rules.loader import Expression, FileContext, LoadedFile, RuleFileSpec
from cobro.rules.schemas import facts_env

FILENAME = "dunning.yaml"


class RulesDunningPolicy(DunningPolicy):
    applies_to: Expression | None = None  # type: ignore[assignment]


class RulesLanguageRules(LanguageRules):
    """A fallback cycle is reported by `_check`, at the key where the cycle starts."""

    @field_validator("fallback")
    @classmethod
    def _acyclic(cls, value: dict[str, str]) -> dict[str, str]:
        return value


class DunningFileSchema(DunningRulesFile):
    policies: list[RulesDunningPolicy]  # type: ignore[assignment]  # the loader walks lists
    languages: RulesLanguageRules = Field(default_factory=RulesLanguageRules)


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


def _build(loaded: LoadedFile, ctx: FileContext) -> DunningPolicies:
    model: DunningFileSchema = loaded.model  # type: ignore[assignment]
    plain = DunningRulesFile.model_validate(model.model_dump())
    conditions = {
        i: loaded.exprs[("policies", i, "applies_to")]
        for i, p in enumerate(model.policies)
        if p.applies_to is not None
    }
    return DunningPolicies(plain, conditions, loaded.env)


# ---------------------------------------------------------------------------- templates

TEMPLATE_PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "txt", "html"),
    "sms": ("txt",),
    "whatsapp": ("json",),  # an approved template and its variables (cobro.channels.whatsapp)
}

_TEMPLATES_DIR: ContextVar[Path | None] = ContextVar("cobro_dunning_templates_dir", default=None)


@contextmanager
def templates_directory(path: str | Path) -> Iterator[Path]:
    """Check `dunning.yaml` against the templates of `path` (instead of the settings')."""
    token = _TEMPLATES_DIR.set(Path(path))
    try:
        yield Path(path)
    finally:
        _TEMPLATES_DIR.reset(token)


def templates_dir() -> Path:
    """The templates directory the `template` names are checked against."""
    from cobro.settings import get_settings

    return _TEMPLATES_DIR.get() or get_settings().templates_path


def template_files(directory: Path) -> dict[str, dict[str, set[str]]]:
    """channel -> language -> file names (`due.txt.j2`...), partials (`_x.j2`) excluded."""
    out: dict[str, dict[str, set[str]]] = {}
    for channel in TEMPLATE_PARTS:
        root = directory / channel
        langs: dict[str, set[str]] = {}
        if root.is_dir():
            for f in root.glob("*/*.json" if channel == "whatsapp" else "*/*.j2"):
                if f.is_file() and not f.name.startswith("_"):
                    langs.setdefault(f.parent.name, set()).add(f.name)
        out[channel] = langs
    return out


def _template_problem(
    channel: str,
    name: str,
    files: dict[str, dict[str, set[str]]],
    directory: Path,
    language: str,
) -> str | None:
    """Why `name` cannot be sent on `channel` in `language`, the end of every fallback
    chain (None: it can)."""
    parts = TEMPLATE_PARTS[channel]
    en = files.get(channel, {}).get(language, set())
    wanted = [f"{name}.json" if part == "json" else f"{name}.{part}.j2" for part in parts]
    missing = [w for w in wanted if w not in en]
    if not missing:
        return None
    where = f"{directory}/{channel}/{language}/"
    if len(missing) < len(wanted):
        return f"{channel} template `{name}` is incomplete: missing " + ", ".join(
            f"`{where}{m}`" for m in missing
        )
    known = sorted({f.split(".")[0] for f in en})
    pattern = missing[0] if len(wanted) == 1 else f"{name}.*.j2"
    text = f"unknown {channel} template `{name}`{did_you_mean(name, known)}: no `{where}{pattern}`"
    others = [
        ch
        for ch in TEMPLATE_PARTS
        if ch != channel
        and any(f.split(".")[0] == name for f in files.get(ch, {}).get(language, ()))
    ]
    if others:
        text += f" (`{name}` exists for {', '.join(others)} only)"
    text += f"; {channel} templates: {', '.join(known) if known else '(none)'}"
    return text


def _check(loaded: LoadedFile, ctx: FileContext) -> None:
    model: DunningFileSchema = loaded.model  # type: ignore[assignment]
    directory = templates_dir()
    if not directory.is_dir():
        ctx.error(("policies",), f"templates directory `{directory}` does not exist")
        return
    files = template_files(directory)
    default = model.languages.default
    if _check_languages(model.languages, files, directory, ctx):
        return
    for i, policy in enumerate(model.policies):
        plans = policy.payment_plans
        for channel in (plans.reminder.channel or ()) if plans is not None else ():
            template = plans.reminder.template or ""
            problem = _template_problem(channel, template, files, directory, default)
            if problem:
                ctx.error(("policies", i, "payment_plans", "reminder", "template"), problem)
        for j, step in enumerate(policy.steps):
            if step.kind != "send" or not step.template:
                continue
            for channel in step.channel or ():
                problem = _template_problem(channel, step.template, files, directory, default)
                if problem:
                    ctx.error(("policies", i, "steps", j, "template"), problem)


def with_templates(files: dict[str, dict[str, set[str]]]) -> set[str]:
    """The languages that have at least one template, on any channel."""
    return {lang for langs in files.values() for lang, names in langs.items() if names}


def _check_languages(
    rules: LanguageRules,
    files: dict[str, dict[str, set[str]]],
    directory: Path,
    ctx: FileContext,
) -> bool:
    """Positioned errors for the `languages:` section; True when the default language has
    no templates at all (then every step would fail the same way: one error is enough)."""
    cycle = fallback_cycle(rules.fallback)
    if cycle:
        ctx.error(("languages", "fallback", cycle[0]), describe_cycle(cycle), key=True)
    available = with_templates(files)
    known = ", ".join(sorted(available)) or "(none)"
    for source, target in rules.fallback.items():
        if target not in available and not cycle:  # a cycle is the one thing to fix
            ctx.error(
                ("languages", "fallback", source),
                f"`{source}` falls back to `{target}`, which has no templates in "
                f"`{directory}`; languages with templates: {known}",
            )
    if rules.default not in available:
        ctx.error(
            ("languages", "default"),
            f"default language `{rules.default}` has no templates in `{directory}`: every "
            f"template must exist in it; languages with templates: {known}",
        )
        return True
    return False


DUNNING = RuleFileSpec(
    filename=FILENAME,
    model=DunningFileSchema,
    description="dunning policies: the first policy that applies to the customer wins",
    env=facts_env,
    check=_check,
    build=_build,
)
