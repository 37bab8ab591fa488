"""No module of lib/tiermem uses another module's underscored names (read with ``ast``; nothing is imported).

A reach is ``obj._name`` where ``obj`` is not ``self``/``cls`` and ``_name`` is not defined by a class of
the same module (``def _name``, ``self._name = ...``, a class attribute or slot), or
``from tiermem.x import _name``. What one module needs from another gets a public name instead.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"

# Reaches still to remove, as (module path under lib/tiermem, name). Each must still be a reach while it
# is listed, so the list only shrinks. The tier lifecycle stores and the Redis quota counters use their
# adapters' SDK handles; ``_NO_SPAN`` is the engine's shared no-op span.
KNOWN_REACHES: frozenset[tuple[str, str]] = frozenset(
    {
        ("_client.py", "_NO_SPAN"),
        ("_engine/guard.py", "_NO_SPAN"),
        ("lifecycle/_quota.py", "_call"),
        ("lifecycle/_quota.py", "_client"),
        ("tiers/azure_lifecycle.py", "_call"),
        ("tiers/azure_lifecycle.py", "_client"),
        ("tiers/azure_lifecycle.py", "_container"),
        ("tiers/azure_lifecycle.py", "_ensure_open"),
        ("tiers/azure_lifecycle.py", "_sdk"),
        ("tiers/azure_lifecycle.py", "_sdk_or_none"),
        ("tiers/embedded_lifecycle.py", "_ensure_open"),
        ("tiers/embedded_lifecycle.py", "_entries"),
        ("tiers/embedded_lifecycle.py", "_io"),
        ("tiers/embedded_lifecycle.py", "_remove"),
    }
)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_protocol(cls: ast.ClassDef) -> bool:
    return any(ast.unparse(base).split(".")[-1].startswith("Protocol") for base in cls.bases)


def _own_names(tree: ast.Module) -> set[str]:
    """Underscored names that classes of this module define (a Protocol's members do not count: a
    Protocol that declares another class's private members is how a reach hides)."""
    names: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and not _is_protocol(n)):
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries
    return {n for n in names if _private(n)}


def _reaches(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _own_names(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tiermem"):
            found |= {alias.name for alias in node.names if _private(alias.name)}
    return found


@functools.cache
def _all_reaches() -> frozenset[tuple[str, str]]:
    root = LIB / "tiermem"
    return frozenset(
        (path.relative_to(root).as_posix(), name) for path in root.rglob("*.py") for name in _reaches(path)
    )


def test_no_module_reaches_into_another_modules_private_names() -> None:
    new = sorted(_all_reaches() - KNOWN_REACHES)
    assert not new, f"give these a public name in the module that defines them: {new}"


@pytest.mark.parametrize("reach", sorted(KNOWN_REACHES))
def test_each_known_reach_still_exists(reach: tuple[str, str]) -> None:
    assert reach in _all_reaches(), f"{reach} is gone: remove it from KNOWN_REACHES"


def test_the_scan_sees_a_reach(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from tiermem._x import _hidden\n"
        "class A:\n    def _mine(self) -> None:\n        self._other = 1\n"
        "def f(a: A, b: object) -> None:\n    a._mine(); a._other; b._theirs\n",
        encoding="utf-8",
    )
    assert _reaches(module) == {"_hidden", "_theirs"}
