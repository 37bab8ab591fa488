"""Collection values and their validation: names, attrs, ``where`` filters, list queries.

Everything here is pure (no I/O), so every argument is checked before a tier is touched. Item
order is the UTF-8 byte order of the item key on every tier; :func:`order_key` gives the
order-preserving ASCII form that tiers without a byte-ordered string comparison store and sort on.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import orjson

from tiermem._codec import Record, Value
from tiermem._errors import InvalidInputError, InvalidKeyError
from tiermem._keys import validate_key

__all__ = [
    "ATTRS_MAX_BYTES",
    "MAX_NAME_BYTES",
    "SEPARATOR",
    "AttrValue",
    "Condition",
    "Item",
    "ItemQuery",
    "Scope",
    "StoredItem",
    "key_in_range",
    "matches",
    "order_key",
    "validate_attrs",
    "validate_name",
    "validate_where",
]

AttrValue = str | int | float | bool
"""An attribute value: flat scalars only, so every tier can index and compare it."""

Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]

MAX_NAME_BYTES: Final = 128
ATTRS_MAX_BYTES: Final = 2048
SEPARATOR: Final = "\x1f"
"""Joins a collection name and an item key into one hot/cold key. Validated keys and names never hold
control characters, so such a key can never equal a key-value key or another collection's item."""

_ATTR_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_OPERATORS: Final = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
_INT64: Final = 2**63


class Scope(NamedTuple):
    """One collection: (tenant, namespace, name), all validated."""

    tenant: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a collection as the caller sees it.

    Attributes:
        key: the item key (items are ordered by its UTF-8 bytes).
        value: the stored value.
        attrs: the item's attributes (filterable with ``where``).
        etag: the durable tier's version tag (for ``if_match``), ``None`` on tiers without one.
        expires_at: absolute expiry (Unix seconds) or ``None``.
    """

    key: str
    value: Value
    attrs: Mapping[str, AttrValue]
    etag: str | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One item as a collection store hands it over: the encoded record (a pointer for large values)."""

    key: str
    record: Record
    attrs: Mapping[str, AttrValue]
    etag: str | None


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``where`` test: ``attrs[name] <op> value`` (comparisons only between values of one kind)."""

    name: str
    op: Operator
    value: AttrValue


@dataclass(frozen=True, slots=True)
class ItemQuery:
    """What ``list``/``count`` ask a store for. Bounds are exclusive.

    Stores skip items whose expiry is at or before ``now`` (the client checks again).
    """

    now: float
    prefix: str = ""
    after: str | None = None
    before: str | None = None
    reverse: bool = False
    where: tuple[Condition, ...] = ()


def validate_name(name: object) -> str:
    """A collection name: 1..128 UTF-8 bytes without control characters."""
    try:
        checked = validate_key(name)
    except InvalidKeyError as exc:
        raise InvalidKeyError(f"collection name: {exc.message}") from exc
    if len(checked.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidKeyError(f"collection name is longer than {MAX_NAME_BYTES} UTF-8 bytes")
    return checked


def _check_scalar(value: object, what: str) -> AttrValue:
    if isinstance(value, bool | str):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(f"{what} is not valid Unicode (lone surrogate)") from exc
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidInputError(f"{what} is outside the 64-bit integer range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{what} must be finite (no NaN or Infinity)")
        return value
    raise InvalidInputError(f"{what} must be a str, int, float or bool, not {type(value).__name__}")


def _check_attr_name(name: object) -> str:
    if not isinstance(name, str) or not _ATTR_NAME_RE.fullmatch(name):
        raise InvalidInputError(f"attribute names must match [A-Za-z_][A-Za-z0-9_]{{0,63}}, got {name!r:.80}")
    return name


def validate_attrs(attrs: object) -> dict[str, AttrValue]:
    """A flat map of attribute name -> str/int/float/bool, at most 2 KiB as JSON."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise InvalidInputError(f"attrs must be a mapping, not {type(attrs).__name__}")
    out = {_check_attr_name(k): _check_scalar(v, f"attrs[{k!r}]") for k, v in attrs.items()}
    size = len(orjson.dumps(out))
    if size > ATTRS_MAX_BYTES:
        raise InvalidInputError(f"attrs are {size} bytes as JSON; the limit is {ATTRS_MAX_BYTES}")
    return out


def validate_where(where: object) -> tuple[Condition, ...]:
    """``{"name": value}`` (equality) or ``{"name": {"$gte": 3, "$lt": 9}}``; all conditions must hold."""
    if where is None:
        return ()
    if not isinstance(where, Mapping):
        raise InvalidInputError(f"where must be a mapping, not {type(where).__name__}")
    conditions: list[Condition] = []
    for name, test in where.items():
        _check_attr_name(name)
        if isinstance(test, Mapping):
            if not test:
                raise InvalidInputError(f"where[{name!r}] has no operator")
            for op, value in test.items():
                if op not in _OPERATORS:
                    raise InvalidInputError(f"unknown operator {op!r:.20}; use one of {sorted(_OPERATORS)}")
                scalar = _check_scalar(value, f"where[{name!r}][{op!r}]")
                if op not in ("$eq", "$ne") and isinstance(scalar, bool):
                    raise InvalidInputError(f"{op} compares numbers or strings, not booleans")
                conditions.append(Condition(name, op, scalar))
        else:
            conditions.append(Condition(name, "$eq", _check_scalar(test, f"where[{name!r}]")))
    return tuple(conditions)


def _kind(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "num"


def matches(attrs: Mapping[str, AttrValue], conditions: tuple[Condition, ...]) -> bool:
    """Whether ``attrs`` pass every condition: the reference the tiers' native filters are tested against.

    A missing attribute fails every operator. Values of different kinds (number, string, bool) are
    never equal (``$ne`` holds) and never ordered (range operators fail). Strings compare by UTF-8 bytes.
    """
    for cond in conditions:
        actual = attrs.get(cond.name)
        if actual is None:
            return False
        if _kind(actual) != _kind(cond.value):
            if cond.op != "$ne":
                return False
            continue
        a: Any = actual.encode("utf-8") if isinstance(actual, str) else actual
        b: Any = cond.value.encode("utf-8") if isinstance(cond.value, str) else cond.value
        if not _COMPARE[cond.op](a, b):
            return False
    return True


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def order_key(key: str) -> str:
    """Lower-case hex of the key's UTF-8 bytes: ASCII whose string order is the byte order of the key
    (prefix ranges become ``[hex(prefix), hex(prefix) + "g")``)."""
    return key.encode("utf-8").hex()


def key_in_range(key: str, query: ItemQuery) -> bool:
    """Whether a key falls in the query's prefix and exclusive bounds (byte order)."""
    raw = key.encode("utf-8")
    if not raw.startswith(query.prefix.encode("utf-8")):
        return False
    if query.after is not None and raw <= query.after.encode("utf-8"):
        return False
    return not (query.before is not None and raw >= query.before.encode("utf-8"))
