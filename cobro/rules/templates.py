"""Alert message templates: Jinja2 in a `SandboxedEnvironment` with `StrictUndefined`.

Templates are checked at load time, on Jinja's AST (`cobro.rules.template_check`), so that
`cobro rules check` refuses them and `cobro rules apply` never activates them: syntax, every
variable a known fact, a threshold or `previous.<fact>`, and nothing whose cost is not
bounded by the text (loops, `range`, `|attr`, `|format`, `%`, `**`, text repeated by a
variable or a big number, statements, calls, subscripts, any filter or test outside a small
allow-list). They render in a `SandboxedEnvironment`. Cobro's own filters: `percent`
(0.42 -> "42 %"), `money` (12345.6 -> "€12,345.60", "12.345,60 €" in Spanish: in the
customer's `currency` fact and the current language, the team's when the classification
stores the message; a plain amount when the currency is unknown; `money(0)` drops the
cents), `days` (12 -> "12 days", "12 días"), `label` (a stored code in words:
`previous.risk_class | label("risk class")`). A message may be given per language (see
`cobro.rules.schemas.Alert`): each is rendered in its own language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from cobro.formatting import amount, money, percent
from cobro.i18n import ngettext
from cobro.i18n.codes import label
from cobro.rules.errors import RuleError, RuleMessage
from cobro.rules.expr import Env, TextPos
from cobro.rules.template_check import template_problems

NULL_TEXT = "n/a"


def _percent(value: Any, digits: int = 0) -> str:
    """0.42 -> "42 %", with the current language's digits."""
    if value is None:
        return NULL_TEXT
    return percent(Decimal(str(value)) * 100, digits=digits)


@jinja2.pass_context
def _money(ctx: jinja2.runtime.Context, value: Any, digits: int = 2) -> str:
    """An amount in the customer's currency (the `currency` fact) and the current language."""
    if value is None:
        return NULL_TEXT
    currency = ctx.get("currency")
    if currency:
        return money(value, str(currency), whole=digits == 0)
    return amount(value, digits=digits)


def _days(value: Any) -> str:
    if value is None:
        return NULL_TEXT
    n = int(value)
    return ngettext("%(num)s day", "%(num)s days", abs(n)) % {"num": n}


def _label(value: Any, kind: str) -> str:
    """A stored code in words of the current language: `previous.risk_class | label("risk
    class")` -> "alto" in Spanish (the codes of `cobro.i18n.codes`; others as they are)."""
    if value is None:
        return NULL_TEXT
    return label(kind, value) or str(value)


def _finalize(value: Any) -> Any:
    return NULL_TEXT if value is None else value


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize
    )
    env.filters.update({"percent": _percent, "money": _money, "days": _days, "label": _label})
    return env


ENVIRONMENT = make_environment()


def check_template(text: str, env: Env, where: TextPos) -> jinja2.Template:
    """Compile a message template, refusing unknown variables/filters and unsafe constructs."""
    try:
        tree = ENVIRONMENT.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise RuleError(
            [_msg(where, text, exc.lineno, None, f"template syntax error: {exc.message}")]
        ) from None
    errors: list[RuleMessage] = [
        _msg(where, text, p.lineno, p.needle, p.message) for p in template_problems(tree, env)
    ]
    if errors:
        raise RuleError(errors)
    try:
        return ENVIRONMENT.from_string(text)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", 1) or 1
        raise RuleError([_msg(where, text, line, None, f"template error: {exc}")]) from None


def _msg(where: TextPos, text: str, lineno: int | None, needle: str | None, message: str):
    line = max(1, lineno or 1)
    lines = text.split("\n")
    src = lines[line - 1] if line <= len(lines) else ""
    col = 0
    if needle:
        m = re.search(re.escape(needle) if not needle.isidentifier() else rf"\b{needle}\b", src)
        if m:
            col = m.start()
    return where.message(line, col, message)


def template_context(facts: Mapping[str, Any], thresholds: Mapping[str, Any], names: Env) -> dict:
    """What a message sees: every known fact (null when missing), `previous.x` as
    `previous.x`, and the thresholds in force for the customer's segment; with the
    environment's globals under them, as `Template.render` adds them (`render_with`)."""
    ctx: dict[str, Any] = dict(ENVIRONMENT.globals)
    previous: dict[str, Any] = {}
    get = facts.get
    for name in names.vars:
        if name.startswith("previous."):
            previous[name[9:]] = get(name)
        else:
            ctx[name] = get(name)
    ctx.update(thresholds)
    ctx["previous"] = previous
    return ctx


def render_with(template: jinja2.Template, context: dict[str, Any]) -> str:
    """`template.render(context)` without its two copies of `context` (a dict of the
    variables, then one with the globals under them): `context` is a `template_context`
    (the globals already in it), shared by the renders of one customer's messages and
    never modified by them (a template's own variables live in its Jinja context)."""
    environment = template.environment
    # the context `Template.new_context(context, shared=True)` makes, less the set of the
    # globals' names it builds for imports and includes (refused in a message)
    ctx = environment.context_class(environment, context, template.name, template.blocks)
    try:
        return environment.concat(template.root_render_func(ctx))  # type: ignore[attr-defined]
    except Exception:
        environment.handle_exception()
        raise  # handle_exception re-raises: never reached
