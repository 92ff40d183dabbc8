"""The house rules of the layout, read from the source: no import cycle inside `cobro/`, and
nothing under `cobro/` but `cobro/cli/` and `cobro/devkit/` imports the top-level `worker`,
`workflows`, `activities`, or `cobro.devkit` itself (DESIGN.md, "Layout").

Imports are read with `ast` (module level and inside functions alike), so a lazy import
inside a function counts: it is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

COBRO = ROOT / "cobro"
TOP_LEVEL = ("worker", "workflows", "activities")
MAY_IMPORT_TOP_LEVEL = ("cobro.cli", "cobro.devkit")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted(COBRO.rglob("*.py"))
        if "migrations" not in p.relative_to(COBRO).parts[:1]
    }


def imports_of(path: Path, name: str, known: frozenset[str] = frozenset()) -> set[str]:
    """Every module `name` imports (absolute names; relative imports resolved). `from pkg
    import sub`, where `pkg.sub` is one of the `known` modules, depends on `pkg.sub` only
    (not on `pkg`'s own code: Python runs `pkg/__init__.py` for any submodule anyway)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names}
            found.update(subs)
            if not subs <= known:
                found.add(base)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {
            dep for dep in imports_of(path, name, frozenset(known)) if dep in known and dep != name
        }
        for name, path in known.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path `a -> b -> ... -> a`, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges[nxt])))
    return None


def test_find_cycle_reports_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = "from . import sibling\n\ndef f():\n    from cobro.db import make_engine\n"
    path = tmp_path / "mod.py"
    path.write_text(source)
    found = imports_of(path, "cobro.pkg.mod")
    assert {"cobro.pkg.sibling", "cobro.db", "cobro.db.make_engine"} <= found


def test_no_import_cycle_in_cobro() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("forbidden", [*TOP_LEVEL, "cobro.devkit"])
def test_only_the_cli_and_the_devkit_import_the_outer_layers(forbidden: str) -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith(MAY_IMPORT_TOP_LEVEL):
            continue
        for dep in imports_of(path, name):
            if dep == forbidden or dep.startswith(forbidden + "."):
                offenders.append(f"{path.relative_to(ROOT)} imports {dep}")
    assert not offenders, "\n".join(offenders)
