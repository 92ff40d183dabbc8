"""The ruleset is composed explicitly: `Ruleset.SPECS` lists the files in the documented order,
the rules core knows no file of another package, and nothing depends on import order."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cobro.dunning.rulefile import DUNNING
from cobro.exposure.rulefile import EXPOSURE
from cobro.insurers.terms_rulefile import INSURANCE
from cobro.rules import ALERTS, RISK_CLASSES, RuleError
from cobro.rules.loader import load_directory
from cobro.rules.ruleset import Ruleset
from tests.helpers import ROOT, RULES

DOCUMENTED = (
    "risk_classes.yaml",
    "alerts.yaml",
    "exposure.yaml",
    "dunning.yaml",
    "insurance.yaml",
)
CORE = ("errors", "expr", "facts", "loader", "engine", "schemas", "templates")
PACKAGES = ("cobro.rules", "cobro.dunning", "cobro.exposure", "cobro.insurers")


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (nothing imported yet); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_specs_are_listed_once_in_the_documented_order() -> None:
    assert tuple(s.filename for s in Ruleset.SPECS) == DOCUMENTED
    assert Ruleset.SPECS == (RISK_CLASSES, ALERTS, EXPOSURE, DUNNING, INSURANCE)
    assert Ruleset.spec("exposure.yaml") is EXPOSURE and Ruleset.spec("x.yaml") is None


def test_the_rules_core_imports_neither_its_plugins_nor_the_database() -> None:
    core = "; ".join(f"import cobro.rules.{m}" for m in CORE)
    code = (
        f"import json, sys; import cobro.rules; {core}; "
        "before = sorted(m for m in sys.modules if m.startswith('cobro.')); "
        "import cobro.rules.ruleset; "
        "after = sorted(m for m in sys.modules if m.startswith('cobro.')); "
        "print(json.dumps([before, after]))"
    )
    before, after = json.loads(_python(code))
    outside = (
        "cobro.dunning",
        "cobro.exposure",
        "cobro.insurers",
        "cobro.models",
        "cobro.db",
        "cobro.rules.ruleset",
    )
    assert [m for m in before if m.startswith(outside)] == []
    assert {"cobro.dunning.rulefile", "cobro.exposure.rulefile"} <= set(after)


@pytest.mark.parametrize(
    "first", ["cobro.dunning.rulefile", "cobro.exposure.rulefile", "cobro.rules.ruleset"]
)
def test_loading_does_not_depend_on_what_was_imported_first(tmp_path: Path, first: str) -> None:
    """The old registry filled itself in import order: `known:` changed with the caller."""
    for f in RULES.glob("*.yaml"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "dunnig.yaml").write_text("x: 1\n")
    code = (
        f"import {first}\n"
        "from cobro.rules import RuleError\n"
        "from cobro.rules.ruleset import Ruleset\n"
        "try:\n"
        f"    Ruleset.load({str(tmp_path)!r})\n"
        "except RuleError as exc:\n"
        "    print('\\n'.join(str(m) for m in exc.messages))\n"
    )
    assert _python(code).splitlines() == [
        f"{tmp_path}/dunnig.yaml:1:1: unknown rules file `dunnig.yaml` (did you mean "
        f"`dunning.yaml`?); known: {', '.join(DOCUMENTED)}"
    ]


def test_the_loader_loads_only_the_specs_it_is_handed(tmp_path: Path) -> None:
    for name in ("risk_classes.yaml", "exposure.yaml"):
        (tmp_path / name).write_bytes((RULES / name).read_bytes())
    with pytest.raises(RuleError) as info:
        load_directory(tmp_path, (RISK_CLASSES,))
    assert [m.message for m in info.value.messages] == [
        "unknown rules file `exposure.yaml`; known: risk_classes.yaml"
    ]
    assert list(load_directory(tmp_path, (RISK_CLASSES, EXPOSURE))) == [
        "risk_classes.yaml",
        "exposure.yaml",
    ]


def _imports(path: Path, module: str) -> set[str]:
    """Every `cobro` module `path` imports, at any level (function bodies included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith("cobro.")}


def _graph() -> dict[str, set[str]]:
    """Import graph of the three packages; importing `a.b.c` also imports `a.b` (its
    `__init__`), except from inside that package."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        directory = ROOT.joinpath(*package.split("."))
        for path in directory.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for target in _imports(path, module):
            pieces = target.split(".")
            for i in range(2, len(pieces) + 1):
                ancestor = ".".join(pieces[:i])
                inside = module == ancestor or module.startswith(ancestor + ".")
                if ancestor in modules and not (inside and ancestor != target):
                    edges.add(ancestor)
        edges.discard(module)
        graph[module] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_the_rules_and_their_files() -> None:
    graph = _graph()
    assert graph["cobro.rules.ruleset"] >= {"cobro.dunning.rulefile", "cobro.exposure.rulefile"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    plugin_users = sorted(
        m
        for m, edges in graph.items()
        if m.startswith("cobro.rules") and any(e.startswith(PACKAGES[1:]) for e in edges)
    )
    assert plugin_users == ["cobro.rules.ruleset"]
