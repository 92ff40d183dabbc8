"""Translate a checked Cobro expression into the `rule-engine` library's language, keeping
Cobro's three-valued null semantics (a comparison with a null is unknown, a rule matches only
when its condition is definitely true). rule-engine raises on `null > 1`, so every comparison
is guarded: for each sub-expression two texts are built, "definitely true" and "definitely
false" (`not x` is definitely true when x is definitely false). Only the bench uses this.
"""

from __future__ import annotations

import ast
from decimal import Decimal
from typing import Any

from cobro.rules.expr import LITERAL_NAMES, Checked

CMP = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def re_name(name: str) -> str:
    return name.replace("previous.", "previous_")


class Translator:
    def __init__(self, c: Checked, thresholds: dict[str, Any]) -> None:
        self.c = c
        self.thresholds = thresholds

    # value texts + the guards (texts that must hold for the value to be non-null)
    def value(self, n: ast.AST) -> tuple[str, list[str]]:
        if isinstance(n, ast.Constant):
            v = self.c.decimals.get(id(n), n.value)
            if isinstance(v, str):
                return '"' + v.replace('"', '\\"') + '"', []
            if isinstance(v, bool):
                return ("true" if v else "false"), []
            return str(Decimal(v)), []
        if isinstance(n, ast.Name):
            if n.id in LITERAL_NAMES:
                v = LITERAL_NAMES[n.id]
                return {None: "null", True: "true", False: "false"}[v], []
            if n.id in self.thresholds:
                return str(Decimal(str(self.thresholds[n.id]))), []
            return re_name(n.id), [f"{re_name(n.id)} != null"]
        if isinstance(n, ast.Attribute):
            name = f"previous_{n.attr}"
            return name, [f"{name} != null"]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            text, guards = self.value(n.operand)
            return f"-({text})", guards
        if isinstance(n, ast.BinOp):
            a, ga = self.value(n.left)
            b, gb = self.value(n.right)
            guards = ga + gb
            if isinstance(n.op, ast.Div):
                guards = [*guards, f"{b} != 0"]
            return f"({a} {ARITH[type(n.op)]} {b})", guards
        raise NotImplementedError(ast.dump(n))

    def truth(self, n: ast.AST) -> tuple[str, str]:
        """(definitely true, definitely false) texts."""
        if isinstance(n, ast.BoolOp):
            parts = [self.truth(v) for v in n.values]
            if isinstance(n.op, ast.And):
                return _join("and", [t for t, _ in parts]), _join("or", [f for _, f in parts])
            return _join("or", [t for t, _ in parts]), _join("and", [f for _, f in parts])
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            t, f = self.truth(n.operand)
            return f, t
        if isinstance(n, ast.Name | ast.Attribute):
            text, _ = self.value(n)
            return f"({text} == true)", f"({text} == false)"
        if isinstance(n, ast.Compare):
            left = n.left
            ts, fs = [], []
            for op, right in zip(n.ops, n.comparators, strict=True):
                t, f = self.compare(left, op, right)
                ts.append(t)
                fs.append(f)
                left = right
            return _join("and", ts), _join("or", fs)
        raise NotImplementedError(ast.dump(n))

    def compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> tuple[str, str]:
        a, ga = self.value(left)
        if isinstance(op, ast.Is | ast.IsNot):
            nonnull = f"({' and '.join(ga)})" if ga else "true"
            null = f"(not {nonnull})"
            return (null, nonnull) if isinstance(op, ast.Is) else (nonnull, null)
        if isinstance(op, ast.In | ast.NotIn):
            items = ", ".join(self.value(e)[0] for e in right.elts)  # type: ignore[attr-defined]
            guard = " and ".join(ga) or "true"
            inside = f"({a} in [{items}])"
            t, f = f"({guard} and {inside})", f"({guard} and not {inside})"
            return (t, f) if isinstance(op, ast.In) else (f, t)
        b, gb = self.value(right)
        guard = " and ".join(ga + gb) or "true"
        test = f"({a} {CMP[type(op)]} {b})"
        return f"({guard} and {test})", f"({guard} and not {test})"


def _join(op: str, parts: list[str]) -> str:
    return "(" + f" {op} ".join(parts) + ")"


def to_rule_engine(c: Checked, thresholds: dict[str, Any] | None = None) -> str:
    """The rule-engine text that matches exactly when `c` is definitely true."""
    return Translator(c, thresholds or {}).truth(c.tree)[0]
