"""Collections in process memory, for clients whose only tier is hot (in-process or Redis).

Per collection: a dict of items and a sorted list of the keys' UTF-8 bytes (``bisect``), so listing
is a slice in either direction. Limits: nothing is shared between processes or survives a restart,
and nothing is evicted (collections are not bounded by the hot tier's ``max_items``/``max_bytes``);
an insert costs O(n) list shifting. Use a warm tier for anything that must last.
"""

from __future__ import annotations

import bisect
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from tiermem._codec import Record, RecordKind
from tiermem._collection._model import AttrValue, ItemQuery, Scope, StoredItem, matches
from tiermem._collection._store import PutOp
from tiermem._errors import ConflictError
from tiermem._protocols import Tier

__all__ = ["InProcessCollectionStore"]


@dataclass(slots=True)
class _Collection:
    items: dict[bytes, StoredItem] = field(default_factory=dict)
    order: list[bytes] = field(default_factory=list)


class InProcessCollectionStore:
    """Collections held in this process (see the module docstring for the limits)."""

    def __init__(self) -> None:
        self._collections: dict[Scope, _Collection] = {}
        self.items_read = 0

    @property
    def max_batch(self) -> int | None:
        return None

    def _put(self, scope: Scope, key: str, record: Record, attrs: Mapping[str, AttrValue]) -> str:
        coll = self._collections.setdefault(scope, _Collection())
        raw = key.encode("utf-8")
        etag = secrets.token_hex(8)
        if raw not in coll.items:
            bisect.insort(coll.order, raw)
        coll.items[raw] = StoredItem(key, record.with_expiry(record.expires_at), dict(attrs), etag)
        return etag

    async def get(self, scope: Scope, key: str) -> StoredItem | None:
        coll = self._collections.get(scope)
        return None if coll is None else coll.items.get(key.encode("utf-8"))

    async def get_many(self, scope: Scope, keys: Sequence[str]) -> list[StoredItem | None]:
        return [await self.get(scope, k) for k in keys]

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
        current = await self.get(scope, key)
        if if_match is not None and (current is None or current.etag != if_match):
            raise ConflictError("etag does not match", tier=Tier.HOT, operation="put", key=key)
        if if_absent and current is not None and not current.record.is_expired(now):
            raise ConflictError("item already exists", tier=Tier.HOT, operation="put", key=key)
        return self._put(scope, key, record, attrs)

    async def put_many(self, scope: Scope, ops: Sequence[PutOp]) -> None:
        for key, record, attrs in ops:  # no await in between: atomic for other tasks
            self._put(scope, key, record, attrs)

    async def delete_many(self, scope: Scope, keys: Sequence[str]) -> None:
        coll = self._collections.get(scope)
        if coll is None:
            return
        for key in keys:
            raw = key.encode("utf-8")
            if coll.items.pop(raw, None) is not None:
                del coll.order[bisect.bisect_left(coll.order, raw)]
        if not coll.items:
            del self._collections[scope]

    @staticmethod
    def _range(coll: _Collection, query: ItemQuery) -> tuple[int, int]:
        lo, hi = 0, len(coll.order)
        if query.prefix:
            prefix = query.prefix.encode("utf-8")
            lo = bisect.bisect_left(coll.order, prefix)
            hi = bisect.bisect_left(coll.order, prefix + b"\xff")
        if query.after is not None:
            lo = max(lo, bisect.bisect_right(coll.order, query.after.encode("utf-8")))
        if query.before is not None:
            hi = min(hi, bisect.bisect_left(coll.order, query.before.encode("utf-8")))
        return lo, hi

    async def list_page(
        self, scope: Scope, query: ItemQuery, cursor: str | None, size: int
    ) -> list[StoredItem]:
        coll = self._collections.get(scope)
        if coll is None:
            return []
        lo, hi = self._range(coll, query)
        if cursor is not None:
            raw = cursor.encode("utf-8")
            if query.reverse:
                hi = min(hi, bisect.bisect_left(coll.order, raw))
            else:
                lo = max(lo, bisect.bisect_right(coll.order, raw))
        out: list[StoredItem] = []
        positions = range(hi - 1, lo - 1, -1) if query.reverse else range(lo, hi)
        for i in positions:
            if len(out) >= size:
                break
            item = coll.items[coll.order[i]]
            self.items_read += 1
            if not item.record.is_expired(query.now) and matches(item.attrs, query.where):
                out.append(item)
        return out

    async def count(self, scope: Scope, query: ItemQuery) -> int:
        coll = self._collections.get(scope)
        if coll is None:
            return 0
        lo, hi = self._range(coll, query)
        return sum(
            1
            for raw in coll.order[lo:hi]
            if not coll.items[raw].record.is_expired(query.now)
            and matches(coll.items[raw].attrs, query.where)
        )

    async def keys(self, scope: Scope, after: str | None, page: int) -> AsyncIterator[tuple[str, bool]]:
        coll = self._collections.get(scope)
        if coll is None:
            return
        start = 0 if after is None else bisect.bisect_right(coll.order, after.encode("utf-8"))
        for raw in coll.order[start : start + page]:
            item = coll.items[raw]
            yield item.key, item.record.kind is RecordKind.POINTER

    async def names(self, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
        names = sorted(
            (s.name.encode("utf-8"), s.name)
            for s in self._collections
            if s.tenant == tenant and s.namespace == namespace and s.name.startswith(prefix)
        )
        for _, name in names:
            yield name
