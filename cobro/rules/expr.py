"""The rule expression language: a small, safe, Python-like language over customer facts.

Syntax
    ``and or not``, comparisons ``== != < <= > >=`` (chains like ``0 < x <= 10`` too),
    ``+ - * /``, unary minus, ``x in [..]`` / ``x not in [..]`` (literal lists only),
    ``x is null`` / ``x is not null``, parentheses, literals: integers, decimals (exact,
    ``Decimal``), strings, ``true``/``false`` (or ``True``/``False``), ``null`` (or ``None``),
    durations ``30d`` / ``2w`` (a number of days: ``2w`` is ``14``), and the functions
    ``min max abs round days_between coalesce``. ``previous.<fact>`` is the only dotted form.
    Anything else (attribute access, subscripts, other calls, lambdas, comprehensions, ``**``,
    ``//``, ``%``, conditional expressions, walrus, f-strings...) is a load-time error.

Types
    Every name is checked at load time against the facts schema (`cobro.rules.facts`) and the
    thresholds of the file (numbers). ``number`` and ``money`` mix freely (money op number is
    money, money / money is number); ``date ± number`` is a date, ``date - date`` a number of
    days; ordering needs two numeric or two date operands; ``==`` needs compatible operands;
    ``and``/``or``/``not`` need booleans (no truthiness: ``not segment`` is an error); a
    ``when`` must be boolean. Integer division gives an exact Decimal.

Null semantics (SQL-like three-valued logic)
    * a missing fact is null;
    * arithmetic, comparisons, ``in``/``not in`` and functions with a null operand give null;
      ``x / 0`` is null; ``coalesce(a, b, ...)`` gives its first non-null argument;
    * ``not null`` is null; ``and``/``or`` use Kleene logic: ``false and null`` is false,
      ``true or null`` is true, otherwise a null operand makes the result null;
    * ``x is null`` / ``x is not null`` are never null (comparing ``== null`` is an error);
    * a ``when`` (or ``applies_to``) whose value is null counts as **not matched**; the
      explanation lists the null facts it read.

Compilation
    A checked expression is turned into Python source: null checks are emitted only where the
    checker cannot prove the value non-null; in a `when` position only truthiness matters, so
    ``and``/``or`` compile to Python's short-circuit operators there. `ModuleBuilder` assembles
    the source of a whole rule set (see `cobro.rules.engine`) and `exec`s it once in a namespace
    with empty builtins; evaluation never parses or walks a tree.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cobro.rules.errors import RuleError, RuleMessage, did_you_mean
from cobro.rules.facts import FACTS

NUMERIC = frozenset({"number", "money"})
FUNCTIONS = ("min", "max", "abs", "round", "days_between", "coalesce")
LITERAL_NAMES: dict[str, Any] = {
    "null": None,
    "None": None,
    "true": True,
    "True": True,
    "false": False,
    "False": False,
}
MAX_EXPR_CHARS = 2000
MAX_DEPTH = 60
MAX_INT = 10**15
MAX_DECIMAL_DIGITS = 30
MAX_STRING = 500
MAX_LIST = 200


def show_value(value: Any) -> str:
    """A fact's value as explanations show it, spelled like the rules: null, true, 'sme', 12."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Decimal):  # money is stored with 4 places: 151615.9400 -> 151615.94
        short = value.normalize()
        if short.as_tuple().exponent > -2:  # type: ignore[operator]
            short = value.quantize(Decimal("0.01"))
        return format(short, "f")
    return str(value)


# ---------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Var:
    """A name an expression may read."""

    name: str
    kind: str  # number | money | date | string | bool
    nullable: bool
    values: tuple[str, ...] = ()
    source: str = "fact"  # fact | threshold


@dataclass(frozen=True)
class Env:
    vars: Mapping[str, Var]

    @classmethod
    def from_facts(
        cls,
        exclude: tuple[str, ...] = (),
        thresholds: Mapping[str, Any] | None = None,
        values: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Env:
        out: dict[str, Var] = {}
        for f in FACTS.values():
            if f.name in exclude:
                continue
            vals = (values or {}).get(f.name, f.values)
            out[f.name] = Var(f.name, f.type, f.nullable, tuple(vals))
        for name in thresholds or {}:
            out[name] = Var(name, "number", False, (), "threshold")
        return cls(out)


# ---------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class TextPos:
    """Where a string (an expression, a template) sits in its file: `charmap[i]` is the file
    (line, col), both 1-based, of character i of the string's value."""

    path: str
    text: str
    charmap: tuple[tuple[int, int], ...]

    @classmethod
    def simple(cls, path: str, line: int, col: int, text: str) -> TextPos:
        """Positions for a string whose characters sit one after another from (line, col)."""
        out: list[tuple[int, int]] = []
        ln, c = line, col
        for ch in text:
            out.append((ln, c))
            ln, c = (ln + 1, 1) if ch == "\n" else (ln, c + 1)
        out.append((ln, c))
        return cls(path, text, tuple(out))

    def at(self, line: int, col: int) -> tuple[int, int]:
        """File position of line `line` (1-based), character column `col` (0-based) of the text."""
        lines = self.text.split("\n")
        line = max(1, min(line, len(lines)))
        index = sum(len(x) + 1 for x in lines[: line - 1]) + max(col, 0)
        if not self.charmap:
            return (1, 1)
        if index < len(self.charmap):
            return self.charmap[index]
        fl, fc = self.charmap[-1]
        return fl, fc + index - len(self.charmap) + 1

    def message(self, line: int, col: int, text: str) -> RuleMessage:
        fline, fcol = self.at(line, col)
        return RuleMessage(self.path, fline, fcol, text)


# ---------------------------------------------------------------------------- preprocessing

_DURATION = re.compile(r"(?<![\w.])(\d+)([dw])(?![\w.])")


def replace_durations(text: str) -> str:
    """`30d` -> `30 `, `2w` -> `14`: durations become numbers of days, outside string literals
    only, keeping every other character at the same column."""
    out: list[str] = []
    i, n = 0, len(text)
    chunk_start = 0
    while i < n:
        ch = text[i]
        if ch in "'\"":
            out.append(_replace_in_code(text[chunk_start:i]))
            quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            j = min(j + len(quote), n)
            out.append(text[i:j])
            i = chunk_start = j
            continue
        if ch == "#":  # a comment runs to the end of the line; leave it to the parser
            break
        i += 1
    out.append(_replace_in_code(text[chunk_start:]))
    return "".join(out)


def _replace_in_code(code: str) -> str:
    def sub(m: re.Match[str]) -> str:
        digits, unit = m.group(1), m.group(2)
        days = int(digits) * (7 if unit == "w" else 1)
        width = len(m.group(0))
        return str(days).ljust(width) if len(str(days)) <= width else m.group(0)

    return _DURATION.sub(sub, code)


# ---------------------------------------------------------------------------- checked result


@dataclass
class Checked:
    """A parsed, type-checked expression, ready for code generation."""

    text: str
    tree: ast.expr
    kind: str
    names: tuple[str, ...]  # variables read, in first-read order
    arith_names: frozenset[str]  # variables used in arithmetic/functions (floats converted)
    source: str  # the preprocessed text the AST positions refer to
    decimals: dict[int, Decimal] = field(default_factory=dict)
    fixed: frozenset[str] = frozenset()  # names that are never null (thresholds)


def check_expression(text: Any, env: Env, where: TextPos, expect: str | None = "bool") -> Checked:
    """Parse and type-check `text`; raise `RuleError` (positioned) on any problem."""
    if not isinstance(text, str):
        raise RuleError([where.message(1, 0, "an expression must be a string")])
    try:
        return _Checker(text, env, where, expect).run()
    except RuleError:
        raise
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise RuleError(
            [where.message(1, 0, f"expression too complex or invalid: {exc}")]
        ) from None


class _Checker:
    def __init__(self, text: str, env: Env, where: TextPos, expect: str | None) -> None:
        self.text = text
        self.env = env
        self.where = where
        self.expect = expect
        self.names: dict[str, None] = {}
        self.arith: set[str] = set()
        self.decimals: dict[int, Decimal] = {}
        self.lines: list[str] = []

    # -- helpers
    def fail_at(self, node: ast.AST | None, message: str) -> RuleError:
        if node is None or not hasattr(node, "lineno"):
            return RuleError([self.where.message(1, 0, message)])
        line = node.lineno
        col_b = node.col_offset
        src_line = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = len(src_line.encode("utf-8")[:col_b].decode("utf-8", "replace"))
        return RuleError([self.where.message(line, col, message)])

    def run(self) -> Checked:
        text = self.text
        if not text.strip():
            raise RuleError([self.where.message(1, 0, "empty expression")])
        if len(text) > MAX_EXPR_CHARS:
            raise RuleError(
                [self.where.message(1, 0, f"expression longer than {MAX_EXPR_CHARS} characters")]
            )
        if "\x00" in text:
            raise RuleError([self.where.message(1, text.index("\x00"), "NUL character")])
        src = replace_durations(text)
        self.lines = src.split("\n")
        wrapped = "\n" in src
        try:
            tree = ast.parse(f"({src}\n)" if wrapped else src, mode="eval")
        except SyntaxError as exc:
            raise self._syntax_error(exc, src, wrapped) from None
        if wrapped:  # undo the leading "(" on the first line
            for node in ast.walk(tree):
                if getattr(node, "lineno", None) == 1:
                    node.col_offset -= 1  # type: ignore[attr-defined]
        body = tree.body
        kind = self.check(body, 0)
        if self.expect is not None and kind != self.expect and kind != "null":
            raise self.fail_at(
                body, f"type error: this expression is a {kind}, a {self.expect} is needed here"
            )
        if self.expect == "bool" and kind == "null":
            raise self.fail_at(body, "type error: this expression is always null")
        fixed = frozenset(n for n in self.names if self.env.vars[n].source == "threshold")
        return Checked(
            text, body, kind, tuple(self.names), frozenset(self.arith), src, self.decimals, fixed
        )

    def _syntax_error(self, exc: SyntaxError, src: str, wrapped: bool) -> RuleError:
        line = exc.lineno or 1
        col = (exc.offset or 1) - 1
        if wrapped and line == 1:
            col -= 1
        lines = src.split("\n")
        if line > len(lines):
            line, col = len(lines), len(lines[-1])
        msg = (exc.msg or "invalid syntax").replace("'(' was never closed", "unclosed '('")
        hint = ""
        if "&&" in src or "||" in src:
            hint = " (use `and` / `or`)"
        elif re.search(r"(?<![=!<>])=(?!=)", src) and "=" not in msg:
            hint = " (use `==` to compare)"
        return RuleError([self.where.message(line, max(col, 0), f"syntax error: {msg}{hint}")])

    def use(self, name: str, arith: bool) -> None:
        self.names.setdefault(name, None)
        if arith:
            self.arith.add(name)

    # -- the checker proper: returns the kind of a node and stores it as node._k
    def check(self, node: ast.AST, depth: int, arith: bool = False) -> str:
        if depth > MAX_DEPTH:
            raise self.fail_at(node, "expression nested too deeply")
        kind = self._check(node, depth + 1, arith)
        node._k = kind  # type: ignore[attr-defined]
        return kind

    def _check(self, node: ast.AST, depth: int, arith: bool) -> str:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node, arith)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, arith)
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                k = self.check(v, depth)
                if k != "bool":
                    word = "and" if isinstance(node.op, ast.And) else "or"
                    raise self.fail_at(v, f"type error: `{word}` needs booleans, this is a {k}")
            return "bool"
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self._binop(node, depth)
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self.fail_at(node, "a list is only allowed after `in` / `not in`")
        raise self.fail_at(node, _forbidden(node))

    def _constant(self, node: ast.Constant) -> str:
        v = node.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            if abs(v) > MAX_INT:
                raise self.fail_at(node, f"number too large (limit {MAX_INT:.0e})")
            return "number"
        if isinstance(v, float):
            seg = ast.get_source_segment(self._source_for_segments(), node) or repr(v)
            try:
                d = Decimal(seg.replace("_", ""))
            except InvalidOperation:
                d = Decimal(repr(v))
            if (
                not d.is_finite()
                or len(d.as_tuple().digits) > MAX_DECIMAL_DIGITS
                or abs(d) > MAX_INT
            ):
                raise self.fail_at(node, "number too large or too precise")
            self.decimals[id(node)] = d
            return "number"
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                raise self.fail_at(node, f"string longer than {MAX_STRING} characters")
            return "string"
        raise self.fail_at(node, f"unsupported literal {type(v).__name__}")

    def _source_for_segments(self) -> str:
        return "\n".join(self.lines)

    def _lookup(self, node: ast.AST, name: str, arith: bool) -> str:
        var = self.env.vars.get(name)
        if var is None:
            pool = list(self.env.vars) + list(LITERAL_NAMES)
            extra = ""
            if name in FACTS:
                extra = " (this fact is not available in this file)"
            raise self.fail_at(node, f"unknown name `{name}`{did_you_mean(name, pool)}{extra}")
        self.use(name, arith)
        return var.kind

    def _name(self, node: ast.Name, arith: bool) -> str:
        if node.id in LITERAL_NAMES:
            value = LITERAL_NAMES[node.id]
            node._lit = value  # type: ignore[attr-defined]
            return "null" if value is None else "bool"
        if node.id in FUNCTIONS:
            raise self.fail_at(node, f"`{node.id}` is a function: call it as {node.id}(...)")
        if node.id == "previous":
            raise self.fail_at(
                node, "`previous` needs a fact: previous.<fact>, e.g. previous.grade"
            )
        return self._lookup(node, node.id, arith)

    def _attribute(self, node: ast.Attribute, arith: bool) -> str:
        if not (isinstance(node.value, ast.Name) and node.value.id == "previous"):
            raise self.fail_at(
                node, "attribute access is not allowed (only previous.<fact>, e.g. previous.grade)"
            )
        name = f"previous.{node.attr}"
        if name not in self.env.vars:
            prev = [n for n in self.env.vars if n.startswith("previous.")]
            raise self.fail_at(
                node, f"unknown name `{name}`{did_you_mean(name, prev)}; known: {', '.join(prev)}"
            )
        node._var = name  # type: ignore[attr-defined]
        return self._lookup(node, name, arith)

    def _unary(self, node: ast.UnaryOp, depth: int) -> str:
        if isinstance(node.op, ast.Not):
            k = self.check(node.operand, depth)
            if k != "bool":
                raise self.fail_at(node, f"type error: `not` needs a boolean, this is a {k}")
            return "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            k = self.check(node.operand, depth, arith=True)
            if k not in NUMERIC:
                raise self.fail_at(node, f"type error: unary minus needs a number, this is a {k}")
            return k
        raise self.fail_at(node, "`~` is not allowed")

    def _binop(self, node: ast.BinOp, depth: int) -> str:
        op = node.op
        sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}.get(type(op))
        if sym is None:
            raise self.fail_at(node, _forbidden_op(op))
        lk = self.check(node.left, depth, arith=True)
        rk = self.check(node.right, depth, arith=True)
        if "null" in (lk, rk):
            raise self.fail_at(node, f"type error: `{sym}` with null is always null")
        if lk in NUMERIC and rk in NUMERIC:
            if sym == "/":
                return "number" if lk == rk else lk
            return "money" if "money" in (lk, rk) else "number"
        if sym == "+" and {lk, rk} <= {"date", "number"} and lk != rk:
            return "date"
        if sym == "-" and lk == "date" and rk == "number":
            return "date"
        if sym == "-" and lk == rk == "date":
            return "number"
        raise self.fail_at(
            node,
            f"type error: unsupported operands for `{sym}`: {_desc(node.left)} and "
            f"{_desc(node.right)}",
        )

    def _compare(self, node: ast.Compare, depth: int) -> str:
        left = node.left
        lk = self.check(left, depth)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                if not (_is_null(right)):
                    raise self.fail_at(
                        right, "`is` only tests for null: use `x is null` or `x is not null`"
                    )
                self.check(right, depth)
                if lk == "null":
                    raise self.fail_at(left, "type error: `null is null` is always true")
            elif isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple):
                    raise self.fail_at(right, '`in` needs a literal list, e.g. x in ["a", "b"]')
                self._list(right, left, lk, depth)
                right._k = "list"  # type: ignore[attr-defined]
            else:
                rk = self.check(right, depth)
                sym = _CMP_SYMBOLS[type(op)]
                if "null" in (lk, rk):
                    raise self.fail_at(
                        node,
                        f"type error: `{sym} null` is always null; use `is null` / `is not null`",
                    )
                ordering = sym not in ("==", "!=")
                ok = (lk in NUMERIC and rk in NUMERIC) or (lk == rk)
                if ordering and lk not in NUMERIC | {"date"}:
                    ok = False
                if not ok:
                    what = (
                        "two numbers, two money amounts or two dates"
                        if ordering
                        else ("operands of the same type")
                    )
                    raise self.fail_at(
                        right if lk == left._k else node,  # type: ignore[attr-defined]
                        f"type error: {_desc(left)} is a {lk} but {_desc(right)} is a {rk}; "
                        f"`{sym}` needs {what}",
                    )
                self._check_values(left, right)
                self._check_values(right, left)
                left, lk = right, rk
                continue
            left = right
        return "bool"

    def _check_values(self, var_node: ast.AST, lit_node: ast.AST) -> None:
        name = _var_name(var_node)
        var = self.env.vars.get(name) if name else None
        if var is None or not var.values:
            return
        lits = lit_node.elts if isinstance(lit_node, ast.List | ast.Tuple) else [lit_node]
        for lit in lits:
            if (
                isinstance(lit, ast.Constant)
                and isinstance(lit.value, str)
                and lit.value not in var.values
            ):
                raise self.fail_at(
                    lit,
                    f"`{name}` is never {lit.value!r}{did_you_mean(lit.value, var.values)}; "
                    f"its values are: {', '.join(var.values)}",
                )

    def _list(self, lst: ast.List | ast.Tuple, left: ast.AST, lk: str, depth: int) -> None:
        if len(lst.elts) > MAX_LIST:
            raise self.fail_at(lst, f"list longer than {MAX_LIST} items")
        values = []
        for elt in lst.elts:
            if not (
                isinstance(elt, ast.Constant)
                or (
                    isinstance(elt, ast.UnaryOp)
                    and isinstance(elt.op, ast.USub)
                    and isinstance(elt.operand, ast.Constant)
                )
                or (isinstance(elt, ast.Name) and elt.id in LITERAL_NAMES)
            ):
                raise self.fail_at(elt, "list items must be literals (numbers, strings, booleans)")
            k = self.check(elt, depth)
            if k == "null":
                raise self.fail_at(elt, "null in a list never matches; use `x is null`")
            if not ((k in NUMERIC and lk in NUMERIC) or k == lk):
                raise self.fail_at(
                    elt, f"type error: {_desc(left)} is a {lk} but this list item is a {k}"
                )
            values.append(elt)
        self._check_values(left, lst)

    def _call(self, node: ast.Call, depth: int) -> str:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.fail_at(
                node, "only the functions " + ", ".join(FUNCTIONS) + " may be called"
            )
        name = func.id
        if name not in FUNCTIONS:
            raise self.fail_at(
                func,
                f"unknown function `{name}`{did_you_mean(name, FUNCTIONS)}; available: "
                + ", ".join(FUNCTIONS),
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail_at(node, f"`{name}` takes positional arguments only")
        args = node.args
        kinds = [self.check(a, depth, arith=name != "coalesce") for a in args]
        if any(k == "null" for k in kinds) and name != "coalesce":
            raise self.fail_at(node, f"`{name}(null)` is always null")

        def need(cond: bool, sig: str) -> None:
            if not cond:
                raise self.fail_at(node, f"type error: {sig}, got ({', '.join(kinds)})")

        if name in ("min", "max"):
            need(len(args) >= 2, f"`{name}` takes 2 or more numbers or dates")
            need(
                all(k in NUMERIC for k in kinds) or all(k == "date" for k in kinds),
                f"`{name}` takes numbers or dates",
            )
            return "money" if "money" in kinds else kinds[0]
        if name == "abs":
            need(len(args) == 1 and kinds[0] in NUMERIC, "`abs` takes one number")
            return kinds[0]
        if name == "round":
            need(1 <= len(args) <= 2 and kinds[0] in NUMERIC, "`round(x)` / `round(x, digits)`")
            if len(args) == 2:
                d = args[1]
                if not (
                    isinstance(d, ast.Constant) and type(d.value) is int and 0 <= d.value <= 10
                ):
                    raise self.fail_at(d, "`round` digits must be an integer literal 0..10")
            return kinds[0]
        if name == "days_between":
            need(len(args) == 2 and kinds == ["date", "date"], "`days_between(date, date)`")
            return "number"
        # coalesce
        need(len(args) >= 2, "`coalesce` takes 2 or more values")
        real = [k for k in kinds if k != "null"]
        need(
            bool(real) and (all(k in NUMERIC for k in real) or len(set(real)) == 1),
            "`coalesce` values must have the same type",
        )
        return "money" if "money" in real else real[0]


_CMP_SYMBOLS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


def _is_null(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in ("null", "None")
    )


def _var_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name) and node.id not in LITERAL_NAMES:
        return node.id
    return getattr(node, "_var", None)


def _desc(node: ast.AST) -> str:
    name = _var_name(node)
    if name:
        return f"`{name}`"
    if isinstance(node, ast.Constant):
        return f"`{node.value!r}`" if not isinstance(node.value, str) else f'`"{node.value}"`'
    return "the expression"


def _forbidden_op(op: ast.AST) -> str:
    if isinstance(op, ast.Pow):
        return "`**` is not allowed"
    if isinstance(op, ast.FloorDiv | ast.Mod):
        return "`//` and `%` are not supported; use `/` and round()"
    return f"operator `{type(op).__name__}` is not allowed"


def _forbidden(node: ast.AST) -> str:
    names = {
        ast.Subscript: "indexing (`x[...]`) is not allowed",
        ast.Lambda: "lambda is not allowed",
        ast.IfExp: "conditional expressions (`a if c else b`) are not supported",
        ast.NamedExpr: "`:=` is not allowed",
        ast.JoinedStr: "f-strings are not allowed",
        ast.Dict: "dicts are not allowed",
        ast.Starred: "`*` unpacking is not allowed",
        ast.Await: "`await` is not allowed",
        ast.Slice: "slices are not allowed",
    }
    for cls, msg in names.items():
        if isinstance(node, cls):
            return msg
    if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return "comprehensions are not allowed"
    return f"`{type(node).__name__}` is not allowed in a rule expression"


# ---------------------------------------------------------------------------- runtime helpers


def _fl(x: float) -> Decimal:
    return Decimal(repr(x))


def _div(a: Any, b: Any) -> Any:
    if a is None or b is None or not b:
        return None
    if a.__class__ is int:
        a = Decimal(a)
    return a / b


def _kand(*xs: Any) -> bool | None:
    null = False
    for x in xs:
        if x is False:
            return False
        if x is None:
            null = True
    return None if null else True


def _kor(*xs: Any) -> bool | None:
    null = False
    for x in xs:
        if x is True:
            return True
        if x is None:
            null = True
    return None if null else False


def _nmin(*xs: Any) -> Any:
    return None if any(x is None for x in xs) else min(xs)


def _nmax(*xs: Any) -> Any:
    return None if any(x is None for x in xs) else max(xs)


def _coalesce(*xs: Any) -> Any:
    for x in xs:
        if x is not None:
            return x
    return None


def _dadd(d: date, n: Any) -> date:
    return d + timedelta(days=int(n))


def _ddiff(a: date, b: date) -> int:
    return (a - b).days


RUNTIME: dict[str, Any] = {
    "_D": Decimal,
    "_float": float,
    "_KeyError": KeyError,
    "_fl": _fl,
    "_div": _div,
    "_kand": _kand,
    "_kor": _kor,
    "_nmin": _nmin,
    "_nmax": _nmax,
    "_min": min,
    "_max": max,
    "_abs": abs,
    "_round": round,
    "_coalesce": _coalesce,
    "_dadd": _dadd,
    "_ddiff": _ddiff,
}


# ---------------------------------------------------------------------------- code generation


def pyvar(name: str) -> str:
    return "v_" + re.sub(r"\W", "__", name)


class ModuleBuilder:
    """Accumulates generated Python source and constants for one rule set."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[tuple[type, Any], str] = {}
        self._tmp = 0

    def const(self, value: Any) -> str:
        key = (type(value), value)
        try:
            hit = self._const_ids.get(key)
        except TypeError:
            hit = None
        if hit:
            return hit
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        with contextlib.suppress(TypeError):
            self._const_ids[key] = name
        return name

    def tmp(self) -> str:
        self._tmp += 1
        return f"_t{self._tmp}"

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def build(self, filename: str = "<rules>") -> dict[str, Any]:
        namespace: dict[str, Any] = {"__builtins__": {}}
        namespace.update(RUNTIME)
        namespace.update(self.consts)
        code = compile(self.source(), filename, "exec")
        exec(code, namespace)  # generated from a checked AST; empty builtins
        return namespace

    # -- prologue: read every variable once into a local
    def prologue(
        self,
        checked: list[Checked],
        indent: str,
        nonnull_guard: Callable[[str], bool] | None,
        fallback: str | None,
        thresholds: frozenset[str] = frozenset(),
    ) -> None:
        names: dict[str, None] = {}
        arith: set[str] = set()
        for c in checked:
            names.update(dict.fromkeys(c.names))
            arith |= c.arith_names
        facts = [n for n in names if n not in thresholds]
        if facts and nonnull_guard is not None and fallback:
            # fast variant: facts dicts built by `facts_sql` hold every key; subscripts are
            # cheaper than .get, and a missing key means the null-safe variant's job
            self.emit(f"{indent}try:")
            for n in facts:
                self.emit(f"{indent}    {pyvar(n)} = f[{n!r}]")
            self.emit(f"{indent}except _KeyError:")
            self.emit(f"{indent}    return {fallback}(f)")
        elif facts:
            self.emit(f"{indent}g = f.get")
            for n in facts:
                self.emit(f"{indent}{pyvar(n)} = g({n!r})")
        for n in facts:
            if n in arith:
                v = pyvar(n)
                self.emit(f"{indent}if {v}.__class__ is _float: {v} = _fl({v})")
        if nonnull_guard is not None and fallback:
            guarded = [pyvar(n) for n in facts if nonnull_guard(n)]
            if guarded:
                cond = " or ".join(f"{v} is None" for v in guarded)
                self.emit(f"{indent}if {cond}: return {fallback}(f)")

    # -- expressions
    def expr(self, c: Checked, nonnull: frozenset[str], truthy: bool) -> str:
        return _Gen(self, c, nonnull).gen(c.tree, truthy)


class _Gen:
    def __init__(self, mb: ModuleBuilder, c: Checked, nonnull: frozenset[str]) -> None:
        self.mb = mb
        self.c = c
        self.nonnull = nonnull
        self._nullable: dict[int, bool] = {}

    def nullable(self, node: ast.AST) -> bool:
        key = id(node)
        if key not in self._nullable:
            self._nullable[key] = self._compute_nullable(node)
        return self._nullable[key]

    def _compute_nullable(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value is None
        if isinstance(node, ast.Name | ast.Attribute):
            name = _var_name(node)
            if name is None:  # literal name
                return getattr(node, "_lit", None) is None
            return name not in self.nonnull and name not in self.c.fixed
        if isinstance(node, ast.BinOp):
            return (
                isinstance(node.op, ast.Div)
                or self.nullable(node.left)
                or self.nullable(node.right)
            )
        if isinstance(node, ast.UnaryOp):
            return self.nullable(node.operand)
        if isinstance(node, ast.BoolOp):
            return any(self.nullable(v) for v in node.values)
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            nulls = False
            for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                if isinstance(op, ast.Is | ast.IsNot):
                    continue
                if isinstance(op, ast.In | ast.NotIn):
                    nulls = nulls or self.nullable(left)
                else:
                    nulls = nulls or self.nullable(left) or self.nullable(right)
            return nulls
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            if name == "coalesce":
                return all(self.nullable(a) for a in node.args)
            return any(self.nullable(a) for a in node.args)
        return True

    def gen(self, node: ast.AST, truthy: bool = False) -> str:
        """Python source for `node`. In truthy mode only the truthiness of the result must match
        the three-valued semantics (null and false are both falsy)."""
        if isinstance(node, ast.Constant):
            return self.literal(node)
        if isinstance(node, ast.Name | ast.Attribute):
            name = _var_name(node)
            if name is None:
                return repr(getattr(node, "_lit", None))
            return pyvar(name)
        if isinstance(node, ast.BoolOp):
            word = "and" if isinstance(node.op, ast.And) else "or"
            if truthy or not self.nullable(node):
                return "(" + f" {word} ".join(self.gen(v, truthy) for v in node.values) + ")"
            helper = "_kand" if word == "and" else "_kor"
            return f"{helper}(" + ", ".join(self.gen(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                if not self.nullable(node.operand):
                    return f"(not {self.gen(node.operand)})"
                inner = self.gen(node.operand)
                if truthy:
                    return f"({inner} is False)"
                t = self.mb.tmp()
                return f"(None if ({t} := {inner}) is None else not {t})"
            sym = "-" if isinstance(node.op, ast.USub) else "+"
            return self.null_wrap([node.operand], lambda a: f"({sym}{a[0]})", truthy=False)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node, truthy)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise AssertionError(f"unchecked node {type(node).__name__}")

    def literal(self, node: ast.Constant) -> str:
        if id(node) in self.c.decimals:
            return self.mb.const(self.c.decimals[id(node)])
        if getattr(node, "_as_decimal", False):
            # compared with money (a Decimal at run time): Decimal vs Decimal is ~2x faster
            # than Decimal vs int, and exactly equal in value
            return self.mb.const(Decimal(node.value))
        return repr(node.value)

    def null_wrap(
        self, operands: list[ast.AST], build: Callable[[list[str]], str], truthy: bool
    ) -> str:
        """`build(operand sources)`, or null when any nullable operand is null."""
        conds: list[str] = []
        srcs: list[str] = []
        for o in operands:
            src = self.gen(o)
            if self.nullable(o):
                if isinstance(o, ast.Name | ast.Attribute):
                    conds.append(src)
                    srcs.append(src)
                else:
                    t = self.mb.tmp()
                    conds.append(f"({t} := {src})")
                    srcs.append(t)
            else:
                srcs.append(src)
        body = build(srcs)
        if not conds:
            return body
        if truthy:
            return "(" + " and ".join(f"{c} is not None" for c in conds) + f" and {body})"
        return "(None if " + " or ".join(f"{c} is None" for c in conds) + f" else {body})"

    def binop(self, node: ast.BinOp) -> str:
        lk, rk = node.left._k, node.right._k  # type: ignore[attr-defined]
        if isinstance(node.op, ast.Div):
            return f"_div({self.gen(node.left)}, {self.gen(node.right)})"
        sym = "+" if isinstance(node.op, ast.Add) else "-" if isinstance(node.op, ast.Sub) else "*"
        if lk == "date" and rk == "date":
            return self.null_wrap(
                [node.left, node.right], lambda a: f"_ddiff({a[0]}, {a[1]})", False
            )
        if lk == "date" or rk == "date":
            if lk == "date":

                def build(a: list[str]) -> str:
                    return f"_dadd({a[0]}, {'-' if sym == '-' else ''}{a[1]})"
            else:

                def build(a: list[str]) -> str:
                    return f"_dadd({a[1]}, {a[0]})"

            return self.null_wrap([node.left, node.right], build, False)
        return self.null_wrap([node.left, node.right], lambda a: f"({a[0]} {sym} {a[1]})", False)

    def compare(self, node: ast.Compare, truthy: bool) -> str:
        operands = [node.left, *node.comparators]
        pairs = list(zip(node.ops, operands, operands[1:], strict=False))
        for _op, left, right in pairs:
            for lit, other in ((left, right), (right, left)):
                if (
                    isinstance(lit, ast.Constant)
                    and lit.value.__class__ is int
                    and getattr(other, "_k", None) == "money"
                ):
                    lit._as_decimal = True  # type: ignore[attr-defined]
        if not self.nullable(node):
            parts = [self.gen(operands[0])]
            for op, _left, right in pairs:
                parts.append(self.cmp_op(op, right))
            if all(not isinstance(op, ast.In | ast.NotIn) for op, _, _ in pairs):
                return "(" + " ".join(parts) + ")"
            # membership uses constant sets: generate pair by pair
        pieces = [self.pair(op, left, right, truthy) for op, left, right in pairs]
        if len(pieces) == 1:
            return pieces[0]
        if truthy or not self.nullable(node):
            return "(" + " and ".join(pieces) + ")"
        return "_kand(" + ", ".join(pieces) + ")"

    def cmp_op(self, op: ast.cmpop, right: ast.AST) -> str:
        if isinstance(op, ast.In | ast.NotIn):
            word = "in" if isinstance(op, ast.In) else "not in"
            return f"{word} {self.const_set(right)}"
        if isinstance(op, ast.Is | ast.IsNot):
            return "is None" if isinstance(op, ast.Is) else "is not None"
        return f"{_CMP_SYMBOLS[type(op)]} {self.gen(right)}"

    def const_set(self, lst: ast.AST) -> str:
        values = []
        for elt in lst.elts:  # type: ignore[attr-defined]
            if isinstance(elt, ast.UnaryOp):
                v = self.c.decimals.get(id(elt.operand), elt.operand.value)  # type: ignore
                values.append(-v)
            elif isinstance(elt, ast.Name):
                values.append(LITERAL_NAMES[elt.id])
            else:
                values.append(self.c.decimals.get(id(elt), elt.value))  # type: ignore
        return self.mb.const(frozenset(values))

    def pair(self, op: ast.cmpop, left: ast.AST, right: ast.AST, truthy: bool) -> str:
        if isinstance(op, ast.Is | ast.IsNot):
            return f"({self.gen(left)} {self.cmp_op(op, right)})"
        if isinstance(op, ast.In | ast.NotIn):
            if isinstance(op, ast.In) and truthy:  # None is in no set: falsy, as required
                return f"({self.gen(left)} {self.cmp_op(op, right)})"
            return self.null_wrap([left], lambda a: f"({a[0]} {self.cmp_op(op, right)})", truthy)
        sym = _CMP_SYMBOLS[type(op)]
        return self.null_wrap([left, right], lambda a: f"({a[0]} {sym} {a[1]})", truthy)

    def call(self, node: ast.Call) -> str:
        name = node.func.id  # type: ignore[attr-defined]
        args = node.args
        if name == "coalesce":
            if not self.nullable(args[0]):
                return self.gen(args[0])
            return "_coalesce(" + ", ".join(self.gen(a) for a in args) + ")"
        if name in ("min", "max"):
            if any(self.nullable(a) for a in args):
                return f"_n{name}(" + ", ".join(self.gen(a) for a in args) + ")"
            return f"_{name}(" + ", ".join(self.gen(a) for a in args) + ")"
        if name == "abs":
            return self.null_wrap(args, lambda a: f"_abs({a[0]})", False)
        if name == "round":
            return self.null_wrap(args, lambda a: "_round(" + ", ".join(a) + ")", False)
        # days_between(a, b) = b - a in days
        return self.null_wrap(args, lambda a: f"_ddiff({a[1]}, {a[0]})", False)
