"""``TierMemStore``: LangGraph's long-term memory store on one tiermem collection (ADR 0013).

Items of all LangGraph namespaces live in the collection ``lg-store`` of the memory view:

- ``i!!label1!!label2!!...!!!#key``: the item; its top-level scalar fields are indexed attributes
  (``v_<field>``), so search filters run on the tier before offset and limit are applied. Key
  order is (namespace tuple, key), so a namespace prefix is a key prefix.
- ``n!!label1!!label2!!...!!``: a namespace marker (listing namespaces reads only markers).

TTLs are minutes, as in LangGraph, and are refreshed on reads unless told otherwise. Vector search
(``query=`` / an ``index`` configuration) is not supported yet and raises ``NotImplementedError``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Final, cast

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from tiermem._client import MemoryClient
from tiermem._collection import Item as StoredItem
from tiermem._errors import ConflictError, CorruptValueError, InvalidInputError
from tiermem._ordkey import (
    ATTR_INCOMPLETE,
    SEP,
    check_filter,
    escape,
    matches,
    merge_by_key,
    scalar_attrs,
    split_filter,
    unescape,
)
from tiermem._syncloop import SyncLoop

__all__ = ["TierMemStore"]

STORE_COLLECTION: Final = "lg-store"
_KEY_MARK: Final = "!#"
_ITEM: Final = "i" + SEP
_MARKER: Final = "n" + SEP


def _ns_part(namespace: tuple[str, ...]) -> str:
    return "".join(escape(label) + SEP for label in namespace)


def _item_key(namespace: tuple[str, ...], key: str) -> str:
    return _ITEM + _ns_part(namespace) + _KEY_MARK + escape(key)


def _parse_item_key(raw: str) -> tuple[tuple[str, ...], str]:
    ns_part, _, key = raw[len(_ITEM) :].rpartition(SEP + _KEY_MARK)
    labels = tuple(unescape(label) for label in ns_part.split(SEP)) if ns_part else ()
    return labels, unescape(key)


def _parse_marker(raw: str) -> tuple[str, ...]:
    body = raw[len(_MARKER) :]
    return tuple(unescape(label) for label in body.split(SEP)[:-1])


def _validate_labels(namespace: tuple[str, ...], operation: str) -> None:
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidInputError(
                f"namespace labels must be non-empty strings without '.', got {namespace!r:.120}",
                operation=operation,
            )


def _matches_condition(cond: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = cond.path
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if cond.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(p == "*" or n == p for n, p in pairs)


class TierMemStore(BaseStore):
    """LangGraph ``BaseStore`` on tiermem: get/put/delete/search/list_namespaces with TTL in minutes.

    Args:
        memory: the memory view; its tenant and namespace scope everything stored.
        ttl: LangGraph TTL settings (``default_ttl`` minutes, ``refresh_on_read``).

    Search order is (namespace, key). Sync methods run on a private event loop.
    """

    supports_ttl: bool = True

    def __init__(self, memory: MemoryClient, *, ttl: TTLConfig | None = None) -> None:
        self.memory = memory
        self.ttl_config = ttl
        self._coll = memory.collection(STORE_COLLECTION)
        self._markers: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._sync = SyncLoop("TierMemStore")

    # -- BaseStore primitives ----------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self._sync.run(self.abatch(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run reads in order, then the puts (last put per item wins), as LangGraph's stores do."""
        ops = list(ops)
        for op in ops:
            self._validate(op)
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list_namespaces(op))
            else:
                puts[(op.namespace, op.key)] = op
                results.append(None)
        for op in puts.values():
            await self._put(op)
        return results

    def _validate(self, op: Op) -> None:
        if isinstance(op, GetOp | PutOp):
            _validate_labels(op.namespace, type(op).__name__)
            if not isinstance(op.key, str) or not op.key:
                raise InvalidInputError("store keys must be non-empty strings", operation=type(op).__name__)
        elif isinstance(op, SearchOp):
            _validate_labels(op.namespace_prefix, "search")
            check_filter(op.filter)
            if op.query is not None:
                raise NotImplementedError(
                    "TierMemStore has no vector index yet: search with filter/limit/offset, without query="
                )
        elif isinstance(op, ListNamespacesOp):
            for cond in op.match_conditions or ():
                if cond.match_type not in ("prefix", "suffix"):
                    raise InvalidInputError(
                        f"unknown match type {cond.match_type!r}", operation="list_namespaces"
                    )
        else:
            raise InvalidInputError(f"unknown store operation {type(op).__name__}", operation="batch")
        if isinstance(op, PutOp):
            if op.value is not None and not isinstance(op.value, dict):
                raise InvalidInputError("store values must be dicts", operation="put")
            if op.ttl is not None and not op.ttl > 0:
                raise InvalidInputError("ttl must be a positive number of minutes", operation="put")
            if op.namespace and op.namespace[0] == "langgraph":
                raise InvalidInputError('the root namespace label "langgraph" is reserved', operation="put")

    # -- operations --------------------------------------------------------------------------------

    def _refresh(self, requested: bool | None) -> bool:
        if requested is not None:
            return requested
        return (self.ttl_config or {}).get("refresh_on_read", True)

    async def _get(self, op: GetOp) -> Item | None:
        item = await self._coll.get_item(_item_key(op.namespace, op.key))
        if item is None:
            return None
        if self._refresh(op.refresh_ttl):
            await self._touch(item)
        return self._to_item(item, Item)

    async def _touch(self, item: StoredItem) -> None:
        """Restart an item's TTL; a concurrent write (which set its own TTL) wins the race."""
        minutes = item.value.get("t") if isinstance(item.value, dict) else None
        if minutes is None:
            return
        try:
            await self._coll.put(
                item.key, item.value, attrs=item.attrs, ttl=float(minutes) * 60, if_match=item.etag
            )
        except ConflictError:
            return  # the item was rewritten meanwhile; that write carries its own TTL

    def _to_item(self, item: StoredItem, cls: type[Item]) -> Item:
        body = item.value
        if not isinstance(body, dict) or "v" not in body:
            raise CorruptValueError("store item has no value", operation="get", key=item.key)
        namespace, key = _parse_item_key(item.key)
        created = datetime.fromisoformat(body["c"])
        updated = datetime.fromisoformat(body["u"])
        if cls is SearchItem:
            return SearchItem(namespace, key, body["v"], created, updated)
        return Item(value=body["v"], key=key, namespace=namespace, created_at=created, updated_at=updated)

    async def _put(self, op: PutOp) -> None:
        key = _item_key(op.namespace, op.key)
        if op.value is None:
            await self._coll.delete(key)
            return
        minutes = op.ttl  # BaseStore.aput already applied ttl_config's default_ttl
        if op.namespace not in self._markers:
            # Marker first (no TTL): listing namespaces never misses a namespace that has items.
            await self._coll.put(_MARKER + _ns_part(op.namespace), 1)
            self._markers[op.namespace] = None
            while len(self._markers) > 4096:
                self._markers.popitem(last=False)
        now = datetime.now(UTC).isoformat()
        body = {"v": dict(op.value), "c": now, "u": now, "t": minutes}
        attrs = scalar_attrs(cast(dict[str, object], op.value), prefix="v_")
        await self._coll.put(key, body, attrs=attrs, ttl=float(minutes) * 60 if minutes is not None else None)

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = _ITEM + _ns_part(op.namespace_prefix)
        where, exact = split_filter(op.filter, prefix="v_")
        source: AsyncIterator[StoredItem]
        if not where:
            source = self._coll.list(prefix=prefix)
        else:
            page = op.offset + op.limit if exact else None
            source = merge_by_key(
                [
                    self._coll.list(prefix=prefix, where=where, limit=page),
                    self._coll.list(prefix=prefix, where={ATTR_INCOMPLETE: True}),
                ],
                reverse=False,
            )
        skipped = 0
        out: list[SearchItem] = []
        refresh = self._refresh(op.refresh_ttl)
        async for item in source:
            if len(out) >= op.limit:
                break
            if not isinstance(item.value, dict) or not matches(item.value.get("v", {}), op.filter):
                continue
            if skipped < op.offset:
                skipped += 1
                continue
            if refresh:
                await self._touch(item)
            out.append(cast(SearchItem, self._to_item(item, SearchItem)))
        return out

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        fixed: list[str] = []
        for cond in op.match_conditions or ():
            if cond.match_type == "prefix":
                for label in cond.path:
                    if label == "*":
                        break
                    fixed.append(label)
                break
        found: set[tuple[str, ...]] = set()
        async for marker in self._coll.list(prefix=_MARKER + _ns_part(tuple(fixed))):
            namespace = _parse_marker(marker.key)
            if not all(_matches_condition(c, namespace) for c in op.match_conditions or ()):
                continue
            # A marker outlives its items (deletes, TTL): list only namespaces that hold items.
            if not [
                i async for i in self._coll.list(prefix=_ITEM + _ns_part(namespace) + _KEY_MARK, limit=1)
            ]:
                continue
            found.add(namespace[: op.max_depth] if op.max_depth is not None else namespace)
        return sorted(found)[op.offset : op.offset + op.limit]

    def close(self) -> None:
        """Stop the private loop used by the sync methods (the memory client stays open)."""
        self._sync.close()
