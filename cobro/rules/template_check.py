"""What an alert message template may contain, decided on Jinja's own AST
(`Environment.parse` + `jinja2.nodes`) before a rules version can be applied: a message is a
short sentence over the customer's facts, so its cost must be bounded by its text.

Allowed: text, `{{ ... }}` over known facts, thresholds and `previous.<fact>`, constants,
`if`/`else` (blocks and inline), `and or not`, comparisons and `in`, `+ - / //`, `~`,
unary `-`, a small allow-list of filters (`ALLOWED_FILTERS`) and tests (`ALLOWED_TESTS`), and
`*` between numbers or by a small constant (at most `MAX_REPEAT`). Refused, each with a
one-line reason: loops, `range` and the other globals, `|attr` (attribute access),
`|format` and `%` (string formatting), `**`, `*` by a non-constant or a big constant when a
side may be a string or a list, any other filter, test or statement (`set`, macros, blocks,
includes...), attribute access but `previous.x`, subscripts and calls. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jinja2 import nodes
from jinja2.filters import FILTERS
from jinja2.tests import TESTS

from cobro.rules.errors import did_you_mean
from cobro.rules.expr import Env

ALLOWED_FILTERS = frozenset(
    {
        "percent",
        "money",
        "days",
        "label",
        "round",
        "abs",
        "int",
        "float",
        "upper",
        "lower",
        "capitalize",
        "title",
        "trim",
        "default",
        "d",
        "length",
    }
)
ALLOWED_TESTS = frozenset(
    {
        "none",
        "defined",
        "undefined",
        "number",
        "string",
        "boolean",
        "true",
        "false",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "in",
        "odd",
        "even",
        "divisibleby",
    }
)
MAX_REPEAT = 100  # `"-" * 40` is fine; `name * 100000` or `name * n` is not
MAX_LITERAL_ITEMS = 100  # a list or tuple written in the template (for `in`)

# nodes that carry no cost of their own; their children are checked
_PLAIN = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.CondExpr,
    nodes.If,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Compare,
    nodes.Operand,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Keyword,
)
_GLOBALS = ("range", "lipsum", "dict", "cycler", "joiner", "namespace")
_WHY = {
    "attr": "`|attr` is not allowed in messages (it reads attributes)",
    "format": "`|format` is not allowed in messages (string formatting)",
}
_REFUSED = {
    nodes.For: "loops are not allowed in messages",
    nodes.Macro: "macros are not allowed in messages",
    nodes.CallBlock: "call blocks are not allowed in messages",
    nodes.FilterBlock: "filter blocks are not allowed in messages",
    nodes.Assign: "`set` is not allowed in messages",
    nodes.AssignBlock: "`set` is not allowed in messages",
    nodes.With: "`with` is not allowed in messages",
    nodes.Block: "blocks are not allowed in messages",
    nodes.Extends: "includes/imports are not allowed in messages",
    nodes.Include: "includes/imports are not allowed in messages",
    nodes.Import: "includes/imports are not allowed in messages",
    nodes.FromImport: "includes/imports are not allowed in messages",
    nodes.Getitem: "indexing is not allowed in messages",
    nodes.Slice: "indexing is not allowed in messages",
    nodes.Pow: "`**` is not allowed in messages",
    nodes.Mod: "`%` is not allowed in messages (string formatting; use `| percent` for a share)",
    nodes.Dict: "dict literals are not allowed in messages",
}


@dataclass(frozen=True)
class Problem:
    """One refusal: the template line, the text to point at on it, and the reason."""

    lineno: int
    needle: str | None
    message: str


def template_problems(tree: nodes.Template, env: Env) -> list[Problem]:
    """Everything wrong with a parsed message template, in source order; [] when it is fine."""
    return list(_walk(tree, env))


def _walk(node: nodes.Node, env: Env) -> Iterator[Problem]:
    line = node.lineno
    if isinstance(node, nodes.Call):
        callee = node.node
        if isinstance(callee, nodes.Name) and callee.name in _GLOBALS:
            yield Problem(line, callee.name, _global(callee.name))
        else:
            yield Problem(line, "(", "calls are not allowed in messages")
        return
    for kind, why in _REFUSED.items():
        if isinstance(node, kind):
            yield Problem(line, _needle(node), why)
            return
    if isinstance(node, nodes.Name):
        yield from _name(node, env)
        return
    if isinstance(node, nodes.Getattr):
        yield from _getattr(node, env)
        return
    if isinstance(node, nodes.Filter):
        if node.name in _WHY:
            yield Problem(line, node.name, _WHY[node.name])
            return
        if node.name not in ALLOWED_FILTERS:
            hint = did_you_mean(node.name, sorted(ALLOWED_FILTERS))
            if node.name in FILTERS:
                message = f"filter `{node.name}` is not allowed in messages{hint}"
            else:
                message = f"unknown filter `{node.name}`{hint}"
            yield Problem(line, node.name, message)
            return
    elif isinstance(node, nodes.Test):
        if node.name not in ALLOWED_TESTS:
            hint = did_you_mean(node.name, sorted(ALLOWED_TESTS))
            if node.name in TESTS:
                message = f"test `{node.name}` is not allowed in messages{hint}"
            else:
                message = f"unknown test `{node.name}`{hint}"
            yield Problem(line, node.name, message)
            return
    elif isinstance(node, nodes.List | nodes.Tuple):
        if len(node.items) > MAX_LITERAL_ITEMS:
            yield Problem(line, "[", f"a list in a message has at most {MAX_LITERAL_ITEMS} items")
            return
    elif isinstance(node, nodes.Mul):
        problem = _mul(node, env)
        if problem is not None:
            yield problem
            return
    elif not isinstance(node, _PLAIN):
        yield Problem(line, None, f"`{type(node).__name__}` is not allowed in messages")
        return
    for child in node.iter_child_nodes():
        yield from _walk(child, env)


def _global(name: str) -> str:
    if name == "range":
        return "`range` is not allowed in messages (no loops: a message is one sentence)"
    return f"`{name}` is not allowed in messages"


def _name(node: nodes.Name, env: Env) -> Iterator[Problem]:
    if node.ctx != "load" or node.name == "previous" or node.name in env.vars:
        return
    if node.name in _GLOBALS:
        yield Problem(node.lineno, node.name, _global(node.name))
        return
    plain = sorted(n for n in env.vars if "." not in n)
    yield Problem(
        node.lineno,
        node.name,
        f"unknown variable `{node.name}` in message{did_you_mean(node.name, [*plain, 'previous'])}",
    )


def _getattr(node: nodes.Getattr, env: Env) -> Iterator[Problem]:
    if isinstance(node.node, nodes.Name) and node.node.name == "previous":
        previous = sorted(n.split(".", 1)[1] for n in env.vars if n.startswith("previous."))
        if node.attr not in previous:
            yield Problem(
                node.lineno,
                node.attr,
                f"unknown variable `previous.{node.attr}`{did_you_mean(node.attr, previous)}",
            )
        return
    yield Problem(node.lineno, node.attr, "attribute access is not allowed in messages")


def _mul(node: nodes.Mul, env: Env) -> Problem | None:
    """`*` is arithmetic between numbers; a string or list repeated only by a small constant."""
    left, right = _kind(node.left, env), _kind(node.right, env)
    if left == "number" and right == "number":
        return None
    for factor in (node.left, node.right):
        if isinstance(factor, nodes.Const) and type(factor.value) is int:
            if abs(factor.value) <= MAX_REPEAT:
                return None
            return Problem(
                node.lineno,
                str(factor.value),
                f"repeating text or a list {factor.value} times is not allowed in messages "
                f"(at most {MAX_REPEAT})",
            )
    return Problem(
        node.lineno,
        "*",
        "`*` of text or a list by a non-constant is not allowed in messages "
        "(multiply numbers only, or repeat by a small constant)",
    )


_NUMERIC = ("number", "money")


def _kind(node: nodes.Node, env: Env) -> str | None:
    """'number' when the expression is surely a number, else None (may be text or a list)."""
    if isinstance(node, nodes.Const):
        value = node.value
        return "number" if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(node, nodes.Name):
        var = env.vars.get(node.name)
        return "number" if var is not None and var.kind in _NUMERIC else None
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        var = env.vars.get(f"{node.node.name}.{node.attr}")
        return "number" if var is not None and var.kind in _NUMERIC else None
    if isinstance(node, nodes.Neg | nodes.Pos):
        return _kind(node.node, env)
    if isinstance(node, nodes.Add | nodes.Sub | nodes.Mul | nodes.Div | nodes.FloorDiv):
        both = _kind(node.left, env) == "number" and _kind(node.right, env) == "number"
        return "number" if both else None
    if isinstance(node, nodes.Filter) and node.name in ("int", "float", "round", "abs", "length"):
        return "number"
    return None


def _needle(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.For):
        return "for"
    if isinstance(node, nodes.Assign | nodes.AssignBlock):
        return "set"
    if isinstance(node, nodes.Getitem | nodes.Slice):
        return "["
    if isinstance(node, nodes.Pow):
        return "**"
    if isinstance(node, nodes.Mod):
        return "%"
    return None
