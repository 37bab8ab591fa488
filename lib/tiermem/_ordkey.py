"""Order-preserving composite item keys, collection names and attribute filters for the adapters.

The framework adapters (LangGraph, Agent Framework) store several kinds of items in one collection
and need keys whose byte order equals the order of the tuples they encode (ADR 0013). A component is
escaped so that it never contains ``SEP`` and so that ``escape(a) + SEP < escape(b) + SEP`` exactly
when ``a < b``: every character at or below ``!`` becomes ``!`` followed by a character at or above
``0``, which leaves ``!!`` (and ``!#``) free as separators that sort before any escaped text.
Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Final, Protocol, TypeVar

import orjson

from tiermem._errors import InvalidInputError

__all__ = [
    "ATTR_INCOMPLETE",
    "MAX_ATTR_STR_BYTES",
    "SEP",
    "attr_value",
    "collection_name",
    "escape",
    "join",
    "matches",
    "merge_by_key",
    "scalar_attrs",
    "split",
    "split_filter",
    "unescape",
]

SEP: Final = "!!"
_ESC: Final = "!"
_ESC_BASE: Final = 0x30
_ESCAPE_RE: Final = re.compile(r"[\x00-\x21]")
_UNESCAPE_RE: Final = re.compile(r"!([\x30-\x51])")
_NAME_SAFE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ATTR_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_ATTR_STR_BYTES: Final = 256
_ATTR_BUDGET: Final = 1536
ATTR_INCOMPLETE: Final = "_incomplete"
_RANGE_OPS: Final = frozenset({"$gt", "$gte", "$lt", "$lte"})


def escape(component: str) -> str:
    """Escape one key component; order-preserving, reversible, never contains ``SEP``."""
    return _ESCAPE_RE.sub(lambda m: _ESC + chr(_ESC_BASE + ord(m.group())), component)


def unescape(component: str) -> str:
    """Invert :func:`escape`."""
    return _UNESCAPE_RE.sub(lambda m: chr(ord(m.group(1)) - _ESC_BASE), component)


def join(*components: str) -> str:
    """Escape each component and join them with ``SEP`` (the result sorts like the tuple)."""
    return SEP.join(escape(c) for c in components)


def split(key: str) -> list[str]:
    """Invert :func:`join`."""
    return [unescape(c) for c in key.split(SEP)]


def collection_name(kind: str, ident: str) -> str:
    """A collection name for ``ident`` (a thread, session or store id) of one adapter ``kind``.

    Short identifiers made of ``[A-Za-z0-9_-]`` are used as they are (readable in the portal);
    anything else is hashed, and the adapter keeps the raw identifier inside its items.
    """
    if not ident:
        raise InvalidInputError(f"{kind}: the identifier must not be empty", operation=kind)
    if _NAME_SAFE_RE.fullmatch(ident):
        return f"{kind}.{ident}"
    return f"{kind}~{hashlib.sha256(ident.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


def attr_value(value: object) -> str | int | float | bool | None:
    """``value`` if it can be an indexed attribute (bool, int, float, str <= 256 bytes), else None."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) <= MAX_ATTR_STR_BYTES:
        return value
    return None


def scalar_attrs(
    fields: Mapping[str, object], *, prefix: str, first: Iterable[str] = ()
) -> dict[str, str | int | float | bool]:
    """Indexable attributes for the scalar fields of ``fields`` (names prefixed with ``prefix``).

    Fields named in ``first`` are taken first. A scalar field that cannot be an attribute (a name
    outside ``[A-Za-z0-9_]``, a string over 256 bytes, or past the ~1.5 KiB budget) flags the item
    ``ATTR_INCOMPLETE``, so filtered listings also read such items and check them client-side.
    """
    firsts = [k for k in first if k in fields]
    order = firsts + [k for k in fields if k not in set(firsts)]
    attrs: dict[str, str | int | float | bool] = {}
    used = 2
    incomplete = False
    for name in order:
        raw = fields[name]
        value = attr_value(raw)
        attr = prefix + name if isinstance(name, str) else ""
        if value is None or not _ATTR_NAME_RE.fullmatch(attr):
            incomplete = incomplete or raw is not None
            continue
        cost = len(orjson.dumps({attr: value}))
        if used + cost > _ATTR_BUDGET:
            incomplete = True
            continue
        used += cost
        attrs[attr] = value
    if incomplete:
        attrs[ATTR_INCOMPLETE] = True
    return attrs


def split_filter(flt: Mapping[str, object] | None, *, prefix: str) -> tuple[dict[str, object], bool]:
    """Split a framework filter into the ``where`` a tier evaluates and whether that is exact.

    Returns ``(where, exact)``. ``where`` holds equality on indexable scalars and range operators
    on numbers; everything else (``$ne``, nested values, long strings) is left to :func:`matches`.
    ``exact`` is False when something was left out, so callers re-check every item client-side;
    items flagged ``ATTR_INCOMPLETE`` must be read separately whenever ``where`` is not empty.
    """
    where: dict[str, object] = {}
    exact = True
    for name, cond in (flt or {}).items():
        if not isinstance(name, str) or not _ATTR_NAME_RE.fullmatch(prefix + name):
            exact = False
            continue
        if isinstance(cond, Mapping) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
            pushed: dict[str, object] = {}
            for op, operand in cond.items():
                if _pushable(op, operand):
                    pushed[op] = operand
                else:
                    exact = False
            if pushed:
                # Range bounds are numbers, compared with numbers only: a field holding a numeric
                # string does not match them (LangGraph's in-memory store would convert it).
                where[prefix + name] = pushed
        elif not isinstance(cond, bool) and attr_value(cond) is not None:
            where[prefix + name] = cond
        else:
            exact = False
    return where, exact


def _pushable(op: object, operand: object) -> bool:
    if op == "$eq":
        return attr_value(operand) is not None
    return op in _RANGE_OPS and isinstance(operand, int | float) and not isinstance(operand, bool)


def _compare(actual: object, expected: object) -> bool:
    if isinstance(expected, Mapping):
        if expected and all(isinstance(k, str) and k.startswith("$") for k in expected):
            return all(_operator(actual, op, operand) for op, operand in expected.items())
        if not isinstance(actual, Mapping):
            return False
        return all(_compare(actual.get(k), v) for k, v in expected.items())
    if isinstance(expected, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(expected)
            and all(_compare(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected


def _as_float(value: object) -> float | None:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool):
        return float(value)
    return None


def _operator(actual: object, op: str, operand: object) -> bool:
    if op == "$eq":
        return actual == operand
    if op == "$ne":
        return actual != operand
    left, right = _as_float(actual), _as_float(operand)
    if left is None or right is None:
        return False
    if op == "$gt":
        return left > right
    if op == "$gte":
        return left >= right
    if op == "$lt":
        return left < right
    if op == "$lte":
        return left <= right
    raise InvalidInputError(f"unsupported filter operator {op!r}", operation="filter")


def matches(fields: Mapping[str, object], flt: Mapping[str, object] | None) -> bool:
    """Whether ``fields`` satisfies a framework filter (exact match, nested maps, ``$`` operators)."""
    return all(_compare(fields.get(name), cond) for name, cond in (flt or {}).items())


def check_filter(flt: Mapping[str, object] | None) -> None:
    """Raise a typed error for an operator no adapter understands, before any I/O."""
    for cond in (flt or {}).values():
        if isinstance(cond, Mapping):
            for op in cond:
                if isinstance(op, str) and op.startswith("$") and op not in _RANGE_OPS | {"$eq", "$ne"}:
                    raise InvalidInputError(f"unsupported filter operator {op!r}", operation="filter")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


async def merge_by_key(streams: Sequence[AsyncIterator[K]], *, reverse: bool) -> AsyncIterator[K]:
    """Merge item streams that are each sorted by key (UTF-8 byte order), dropping duplicate keys."""
    heads: list[K | None] = [await anext(s, None) for s in streams]
    last: str | None = None
    while True:
        live = [(h.key.encode("utf-8"), j) for j, h in enumerate(heads) if h is not None]
        if not live:
            return
        _, j = max(live) if reverse else min(live)
        item = heads[j]
        assert item is not None
        heads[j] = await anext(streams[j], None)
        if item.key != last:
            last = item.key
            yield item
