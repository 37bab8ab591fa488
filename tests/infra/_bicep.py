"""Helpers to read the Bicep templates in ``infra/`` with pycep-parser.

pycep turns a ``.bicep`` file into nested JSON-like dicts. Two of its habits shape these helpers:

* identifiers and string literals both come back as plain ``str`` (``scope: account`` and
  ``scope: 'account'`` look the same), so a "reference" is recognised by name, and the tests pair that
  with the resource symbols declared in the same file;
* a conditional or looped declaration wraps its body (``{"condition": ..., "config": {...}}``), which
  :func:`body` unwraps.

pycep does not parse ``.bicepparam`` files (no ``using`` statement, and ``param x = v`` without a type is
not in its grammar), so :func:`parse_bicepparam` rewrites each ``param`` assignment into a ``var``
declaration, which pycep does parse, and returns the values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
MODULES_DIR = INFRA_DIR / "modules"
RUNBOOKS_DIR = REPO_ROOT / "runbooks"

# Settings tiermem reads from the environment (the Container App sets all of them).
SETTINGS_ENV_VARS = frozenset(
    {
        "TIERMEM_REDIS_URL",
        "TIERMEM_REDIS_CLUSTER",
        "TIERMEM_COSMOS_ENDPOINT",
        "TIERMEM_COSMOS_DATABASE",
        "TIERMEM_COSMOS_CONTAINER",
        "TIERMEM_BLOB_ACCOUNT_URL",
        "TIERMEM_BLOB_CONTAINER",
        "AZURE_CLIENT_ID",
        "TIERMEM_KEY_VAULT_URL",
        "TIERMEM_REDIS_PASSWORD_SECRET",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "TIERMEM_AUTH_MODE",
        "TIERMEM_AUTH_TENANT_ID",
        "TIERMEM_AUTH_AUDIENCE",
        "TIERMEM_HOT_TTL",
        "TIERMEM_SERVICE_MONITOR_ENTRA",
    }
)
# The connection string is handed to the Container App only, never returned by the deployment; Entra
# export is what the deployed service does with its identity, not something a local run inherits.
DEPLOYMENT_OUTPUTS = SETTINGS_ENV_VARS - {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "TIERMEM_SERVICE_MONITOR_ENTRA",
}

# Names the library emits (OpenTelemetry metrics and spans).
EMITTED_METRICS = frozenset(
    {
        "tiermem.operations",
        "tiermem.operation.duration",
        "tiermem.promotions",
        "tiermem.fallthroughs",
        "tiermem.compression.bytes_in",
        "tiermem.compression.bytes_out",
        "tiermem.circuit.state",
        "tiermem.dirty_keys",
        "tiermem.dirty_keys.overflows",
        "tiermem.quota.refusals",
        "tiermem.erasure.objects",
        "tiermem.retention.items",
        "tiermem.retention.bytes",
    }
)
_OPERATIONS = ("get", "set", "delete", "exists", "mget", "mset")
EMITTED_SPANS = frozenset(
    {f"tiermem.{op}" for op in _OPERATIONS}
    | {f"tiermem.{tier}.{op}" for tier in ("hot", "warm", "cold") for op in _OPERATIONS}
)
EMITTED_ATTRIBUTES = frozenset(
    {
        "tiermem.tier",
        "tiermem.operation",
        "tiermem.outcome",
        "tiermem.hit",
        "tiermem.keys",
        "tiermem.bytes",
        "tiermem.compressed",
        "tiermem.promoted",
    }
)
EMITTED_EVENTS = frozenset({"tiermem.fallthrough"})
# Audit events (tiermem.lifecycle._audit): the logger/event name and the attributes of every event.
EMITTED_AUDIT = frozenset(
    {
        "tiermem.audit",
        "tiermem.audit.time",
        "tiermem.audit.operation",
        "tiermem.audit.outcome",
        "tiermem.audit.principal",
        "tiermem.audit.keys",
        "tiermem.audit.deleted",
        "tiermem.audit.resource",
        "tiermem.audit.used",
        "tiermem.audit.limit",
        "tiermem.tenant",
        "tiermem.namespace",
        "tiermem.key",
        "tiermem.key_hash",
        "tiermem.quota.resource",
    }
)
EMITTED_NAMES = EMITTED_METRICS | EMITTED_SPANS | EMITTED_ATTRIBUTES | EMITTED_EVENTS | EMITTED_AUDIT

Json = dict[str, Any]


def bicep_files() -> list[Path]:
    """Every ``.bicep`` file under ``infra/``, sorted."""
    return sorted(INFRA_DIR.rglob("*.bicep"))


def bicepparam_files() -> list[Path]:
    """Every ``.bicepparam`` file under ``infra/``, sorted."""
    return sorted(INFRA_DIR.rglob("*.bicepparam"))


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def parse(path: Path) -> Json:
    """Parse one ``.bicep`` file (cached; callers must not mutate the result)."""
    return cast(Json, _parser().parse(file_path=path))


def module(name: str) -> Json:
    """Parsed ``infra/modules/<name>.bicep``."""
    return parse(MODULES_DIR / f"{name}.bicep")


def main() -> Json:
    """Parsed ``infra/main.bicep``."""
    return parse(INFRA_DIR / "main.bicep")


def body(declaration: Json) -> Json:
    """The object of a resource or module, unwrapping ``if (...)`` and ``for`` wrappers."""
    config = cast(Json, declaration["config"])
    while set(config) <= {"condition", "config", "loop_type"} and "config" in config:
        config = cast(Json, config["config"])
    return config


def condition(declaration: Json) -> Any:
    """The deploy condition of a resource or module, or None when it is unconditional."""
    config = cast(Json, declaration["config"])
    if set(config) <= {"condition", "config", "loop_type"} and "config" in config:
        return config.get("condition")
    return None


@dataclass(frozen=True)
class Resource:
    """One ``resource`` declaration."""

    path: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: Json


def resources(template: Json, path: Path) -> Iterator[Resource]:
    """Resource declarations of one parsed template."""
    for symbol, declaration in template.get("resources", {}).items():
        yield Resource(
            path=path,
            symbol=symbol,
            type=declaration["type"],
            api_version=declaration["api_version"],
            existing=bool(declaration.get("existing")),
            body=body(declaration),
        )


def all_resources() -> list[Resource]:
    """Resource declarations of every ``.bicep`` file."""
    return [r for path in bicep_files() for r in resources(parse(path), path)]


def resources_of_type(type_: str) -> list[Resource]:
    """Declared (not ``existing``) resources of one type, across all files."""
    return [r for r in all_resources() if r.type == type_ and not r.existing]


def one_resource(type_: str) -> Resource:
    """The single declared resource of ``type_``; fails when there are none or several."""
    found = resources_of_type(type_)
    assert len(found) == 1, f"expected exactly one {type_}, found {[r.symbol for r in found]}"
    return found[0]


def dig(value: Any, *keys: str | int) -> Any:
    """Follow keys/indexes into nested dicts and lists; KeyError/IndexError when a step is missing."""
    for key in keys:
        value = value[key]
    return value


def conditional(value: Any) -> tuple[Any, Any, Any] | None:
    """``(condition, true_value, false_value)`` when ``value`` is a ``c ? a : b`` expression."""
    if isinstance(value, dict) and dig_or_none(value, "operator", "type") == "conditional":
        operands = value["operator"]["operands"]
        return operands["condition"], operands["true_value"], operands["false_value"]
    return None


def dig_or_none(value: Any, *keys: str | int) -> Any:
    """Like :func:`dig`, but None when a step is missing."""
    try:
        return dig(value, *keys)
    except (KeyError, IndexError, TypeError):
        return None


def literal(value: Any) -> Any:
    """Fold pycep's unary minus (``-1`` parses as ``{"operator": {"type": "minus", ...}}``) into an int."""
    if dig_or_none(value, "operator", "type") == "minus":
        inner = literal(dig(value, "operator", "operands", "integer_value"))
        if isinstance(inner, int) and not isinstance(inner, bool):
            return -inner
    return value


def strings(value: Any) -> Iterator[str]:
    """Every string (identifier, literal or interpolation) inside a parsed value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def function_types(value: Any) -> Iterator[str]:
    """Names of every function called inside a parsed value (pycep's snake_case names)."""
    if isinstance(value, dict):
        function = value.get("function")
        if isinstance(function, dict) and isinstance(function.get("type"), str):
            yield function["type"]
        accessor = dig_or_none(value, "operator", "type")
        if accessor == "function_accessor":
            yield str(dig_or_none(value, "operator", "operands", "func_name"))
        for item in value.values():
            yield from function_types(item)
    elif isinstance(value, list):
        for item in value:
            yield from function_types(item)


def references(value: Any, name: str) -> bool:
    """True when ``name`` appears as an identifier or inside a ``${...}`` interpolation of ``value``."""
    pattern = re.compile(r"\$\{[^}]*\b" + re.escape(name) + r"\b")
    return any(s == name or pattern.search(s) is not None for s in strings(value))


def description(declaration: Json) -> str | None:
    """The ``@description`` text of a param/output declaration, if any."""
    for decorator in declaration.get("decorators", []):
        if decorator.get("type") == "description":
            argument = decorator.get("argument")
            return argument if isinstance(argument, str) else None
    return None


def decorator(declaration: Json, kind: str) -> Any:
    """Argument of the first decorator of ``kind`` (pycep names, e.g. ``allowed``, ``min_value``)."""
    for item in declaration.get("decorators", []):
        if item.get("type") == kind:
            return item.get("argument")
    return None


def strip_comments(text: str) -> str:
    """Bicep source without ``//`` and ``/* */`` comments (string contents are kept)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return "\n".join(_strip_line_comment(line) for line in text.splitlines())


def _strip_line_comment(line: str) -> str:
    in_string = False
    for index, char in enumerate(line):
        if char == "'" and (index == 0 or line[index - 1] != "\\"):
            in_string = not in_string
        elif not in_string and line.startswith("//", index):
            return line[:index]
    return line


@dataclass(frozen=True)
class BicepParam:
    """A parsed ``.bicepparam`` file."""

    path: Path
    using: str
    values: dict[str, Any]


_USING = re.compile(r"^\s*using\s+'([^']+)'\s*$", re.MULTILINE)
_PARAM = re.compile(r"^(\s*)param(\s+[A-Za-z_][A-Za-z0-9_]*\s*=)", re.MULTILINE)


def parse_bicepparam(path: Path) -> BicepParam:
    """Parse a ``.bicepparam`` file through pycep by rewriting ``param x = v`` as ``var x = v``."""
    text = path.read_text()
    using = _USING.findall(strip_comments(text))
    assert len(using) == 1, f"{path.name}: expected exactly one `using '...'` statement, found {using}"
    rewritten = _PARAM.sub(r"\1var\2", _USING.sub("", text))
    parsed = cast(Json, _parser().parse(text=rewritten))
    values = {name: decl["value"] for name, decl in parsed.get("variables", {}).items()}
    declared = len(_PARAM.findall(text))
    assert len(values) == declared, f"{path.name}: parsed {len(values)} of {declared} param assignments"
    return BicepParam(path=path, using=using[0], values=values)


def dumps(value: Any) -> str:
    """Stable JSON text of a parsed value, for failure messages."""
    return json.dumps(value, indent=1, sort_keys=True, default=str)
