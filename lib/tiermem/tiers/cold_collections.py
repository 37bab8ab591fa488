"""Collections on a cold tier (files or Blob), for clients without a warm tier.

Each item is one cold object, written through the cold adapter's own ``set``/``get``/``delete`` (so
ETags, ``if_match``/``if_absent`` and expiry behave as for key-value values) under the logical key
``("~" + tenant, namespace, name + "\\x1f" + key)``. A ``~`` tenant is never a valid tenant, so key-value
``scan``/``sweep`` name parsing skips these objects, and Blob/file listings of real tenants never reach
them. The stored record wraps the item: ``u32 attrs length | attrs JSON | the item's record``, with the
item's expiry (so ``tiermem sweep`` on files removes expired items too).

Limits (why a warm tier is the index): listing reads every object *name* of the namespace (a directory
walk or a Blob prefix listing) and sorts the collection's keys in memory, then fetches values only
until the page is full; ``count`` and ``where`` filters read the items they test; ``put_many`` is not
atomic (a partial failure raises ``BatchWriteError`` naming what was written).
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import orjson

from tiermem._codec import Record, RecordKind, make_record
from tiermem._collection._model import ItemQuery, Scope, StoredItem, key_in_range, matches
from tiermem._collection._store import PutOp
from tiermem._errors import CorruptValueError, InvalidKeyError
from tiermem._keys import parse_b64_name, unpercent
from tiermem._protocols import ColdMemory
from tiermem._types import MemoryKey, Tier

__all__ = ["ColdCollectionStore", "parse_blob_key", "parse_file_key"]

Lister = Callable[[str, str], AsyncIterator[str]]
"""``(stored tenant, namespace)`` -> the raw logical keys stored under them (unvalidated)."""

_LEN: Final = struct.Struct(">I")
SEPARATOR: Final = "\x1f"


def stored_tenant(tenant: str) -> str:
    return "~" + tenant


def parse_blob_key(encoded: str) -> str:
    """The logical key of a blob name's last part (percent-encoded, or ``~`` + base64url)."""
    return parse_b64_name(encoded[1:]) if encoded.startswith("~") else unpercent(encoded)


def parse_file_key(tail: Sequence[str]) -> str:
    """The logical key of a file path's parts below the namespace (see ``_keys.file_parts``)."""
    if tail[0].startswith("~"):
        if not tail[-1].endswith("~"):
            raise InvalidKeyError("not a tiermem file path")
        b32 = "".join(tail)[1:-1].upper()
        return base64.b32decode(b32 + "=" * (-len(b32) % 8)).decode("utf-8")
    if len(tail) != 1:
        raise InvalidKeyError("not a tiermem file path")
    return unpercent(tail[0])


def _wrap(record: Record, attrs: Any) -> Record:
    meta = orjson.dumps(attrs)
    body = _LEN.pack(len(meta)) + meta + record.to_bytes()
    return make_record(RecordKind.BYTES, body, expires_at=record.expires_at)


def _unwrap(key: str, outer: Record) -> StoredItem:
    try:
        data = outer.payload
        (size,) = _LEN.unpack_from(data)
        attrs = orjson.loads(data[_LEN.size : _LEN.size + size])
        inner = Record.from_bytes(data[_LEN.size + size :], etag=outer.etag)
    except (struct.error, orjson.JSONDecodeError, CorruptValueError) as exc:
        raise CorruptValueError("cold collection item is malformed", tier=Tier.COLD, operation="get") from exc
    if outer.kind is not RecordKind.BYTES or outer.compressed or not isinstance(attrs, dict):
        raise CorruptValueError("cold collection item is malformed", tier=Tier.COLD, operation="get")
    return StoredItem(key, inner, attrs, outer.etag)


class ColdCollectionStore:
    """Collection items as objects in a cold adapter (see the module docstring for the limits)."""

    def __init__(self, cold: ColdMemory, lister: Lister) -> None:
        self._cold = cold
        self._lister = lister
        self.items_read = 0

    @property
    def max_batch(self) -> int | None:
        return None

    @staticmethod
    def _mk(scope: Scope, key: str) -> MemoryKey:
        return MemoryKey(stored_tenant(scope.tenant), scope.namespace, f"{scope.name}{SEPARATOR}{key}")

    async def get(self, scope: Scope, key: str) -> StoredItem | None:
        outer = await self._cold.get(self._mk(scope, key))
        return None if outer is None else _unwrap(key, outer)

    async def get_many(self, scope: Scope, keys: Sequence[str]) -> list[StoredItem | None]:
        found = await self._cold.mget([self._mk(scope, k) for k in keys])
        return [None if rec is None else _unwrap(k, rec) for k, rec in zip(keys, found, strict=True)]

    async def put(
        self,
        scope: Scope,
        op: PutOp,
        *,
        now: float,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        key, record, attrs = op
        return await self._cold.set(
            self._mk(scope, key), _wrap(record, attrs), if_match=if_match, if_absent=if_absent
        )

    async def put_many(self, scope: Scope, ops: Sequence[PutOp]) -> None:
        await self._cold.mset([(self._mk(scope, key), _wrap(rec, attrs)) for key, rec, attrs in ops])

    async def delete_many(self, scope: Scope, keys: Sequence[str]) -> None:
        await asyncio.gather(*(self._cold.delete(self._mk(scope, k)) for k in keys))

    async def _keys(self, scope: Scope) -> list[str]:
        """The collection's keys in UTF-8 byte order (from the names of the namespace's objects)."""
        head = f"{scope.name}{SEPARATOR}"
        keys = [
            raw[len(head) :]
            async for raw in self._lister(stored_tenant(scope.tenant), scope.namespace)
            if raw.startswith(head) and "\x00" not in raw
        ]
        return sorted(keys, key=lambda k: k.encode("utf-8"))

    async def list_page(
        self, scope: Scope, query: ItemQuery, cursor: str | None, size: int
    ) -> list[StoredItem]:
        keys = [k for k in await self._keys(scope) if key_in_range(k, query)]
        if query.reverse:
            keys.reverse()
        if cursor is not None:
            raw = cursor.encode("utf-8")
            keys = [
                k for k in keys if (k.encode("utf-8") < raw if query.reverse else k.encode("utf-8") > raw)
            ]
        out: list[StoredItem] = []
        for key in keys:
            if len(out) >= size:
                break
            item = await self.get(scope, key)
            self.items_read += 1
            if (
                item is not None
                and not item.record.is_expired(query.now)
                and matches(item.attrs, query.where)
            ):
                out.append(item)
        return out

    async def count(self, scope: Scope, query: ItemQuery) -> int:
        n = 0
        for key in await self._keys(scope):
            if not key_in_range(key, query):
                continue
            item = await self.get(scope, key)
            if (
                item is not None
                and not item.record.is_expired(query.now)
                and matches(item.attrs, query.where)
            ):
                n += 1
        return n

    async def keys(self, scope: Scope, after: str | None, page: int) -> AsyncIterator[tuple[str, bool]]:
        keys = await self._keys(scope)
        if after is not None:
            keys = [k for k in keys if k.encode("utf-8") > after.encode("utf-8")]
        for key in keys[:page]:
            yield key, False

    async def names(self, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
        names = {
            raw.partition(SEPARATOR)[0]
            async for raw in self._lister(stored_tenant(tenant), namespace)
            if SEPARATOR in raw
        }
        for name in sorted((n for n in names if n.startswith(prefix)), key=lambda n: n.encode("utf-8")):
            yield name
