"""The import graph of lib/tiermem has no cycles: module-level, function-level and importlib loads.

Read with ``ast`` (nothing is imported): every ``import``/``from ... import`` anywhere in a module
(inside functions and ``TYPE_CHECKING`` blocks too), and every string constant that names a tiermem
module (``"tiermem.service.cli:serve"``, the targets of ``importlib.import_module``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"
_MODULE_STRING = re.compile(r"tiermem(?:\.\w+)+(?::\w+)?")

# Cycles still to remove; each entry must still be a cycle while it is listed, so the list shrinks as
# they are fixed. (The settings <-> builder and cli <-> service.cli circles are gone: settings resolve
# into plain values the builder applies, and ``serve`` lives in cli/.)
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in (LIB / "tiermem").rglob("*.py"):
        parts = list(path.relative_to(LIB).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a tiermem module."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    loggers = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and node.args
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "getLogger"
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _target(alias.name, modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield from _target(submodule if submodule in modules else base, modules)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value.partition(":")[0]
            # Not "tiermem.get" (a span name) nor getLogger("tiermem.service") (a logger name).
            if _MODULE_STRING.fullmatch(node.value) and named in modules and id(node) not in loggers:
                yield from _target(named, modules)


def _target(name: str, modules: dict[str, Path]) -> Iterator[str]:
    """The module an import names, and the packages Python runs first (``tiermem.cli`` for
    ``tiermem.cli._common``); the root package counts only when it is named itself."""
    if name == "tiermem" or name.startswith("tiermem."):
        resolved = _resolve(name, modules)
        while resolved is not None and resolved != "tiermem":
            yield resolved
            resolved = resolved.rpartition(".")[0]
        if name == "tiermem":
            yield name


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    # A module's own ancestor packages are initialized before it runs, so naming them adds no edge.
    return {
        module: {
            t for t in _imports(module, path, modules) if not (module == t or module.startswith(t + "."))
        }
        for module, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "tiermem._engine.reads" in graph["tiermem._client"] or any(
        "tiermem._engine" in t for t in graph["tiermem._client"]
    )
    assert "tiermem.service._auth" in graph["tiermem.service"]  # an importlib target, named by a string
    assert "tiermem._types" in graph["tiermem._errors"]  # an import under TYPE_CHECKING


def test_no_import_cycles() -> None:
    found = set(cycles(import_graph()))
    assert found - KNOWN_CYCLES == set()
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_no_module_imports_the_package_root() -> None:
    graph = import_graph()
    assert sorted(module for module, targets in graph.items() if "tiermem" in targets) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [frozenset({"a", "b"})]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [frozenset({"a", "b", "c"})]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[frozenset[str]]) -> None:
    assert cycles(graph) == expected
