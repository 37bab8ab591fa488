"""Collections on the Cosmos DB warm tier: one logical partition per collection (docs/adr/0012).

Items share the key-value container (partition key path ``/pk``) but never a partition with it::

    {"id": base64url(key), "pk": "~c:{tenant}:{ns}:{base64url(name)}", "t": tenant, "n": ns,
     "coll": name, "k": key, "s": hex(utf-8(key)), "a": {attrs}, "p": <pointer?>,
     "v": <base64 of Record.to_bytes()>, "exp": <expires_at or null>, "ttl": <seconds, when exp is set>}

A ``pk`` starting with ``~`` can never equal a key-value id (tenants cannot start with ``~``), and the
fields are not named ``tenant``/``ns``, so the key-value ``scan``/``purge`` never see collection items.
Every collection call is a point operation or a query in that one partition: ``ORDER BY c.s`` with
``TOP``, range filters on ``s`` (hex of the UTF-8 key: its string order is the key's byte order on any
engine) and attribute filters on ``a``. Only :meth:`CosmosCollectionStore.names` is cross-partition.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tiermem._codec import Record, RecordKind
from tiermem._collection._model import AttrValue, Condition, ItemQuery, Scope, StoredItem, order_key
from tiermem._collection._store import PutOp
from tiermem._errors import ConflictError, CorruptValueError, ValueTooLargeError
from tiermem._keys import b64_name
from tiermem._protocols import MemoryKey, Tier

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_ITEMS", "CosmosCollectionStore"]

_T = TypeVar("_T")
Sdk = Callable[[str, MemoryKey | None, Callable[[], Awaitable[Any]]], Awaitable[Any]]

BATCH_MAX_ITEMS: Final = 100  # Cosmos transactional batch: at most 100 operations...
BATCH_MAX_BYTES: Final = 2 * 1024 * 1024 - 64 * 1024  # ...and 2 MB of request; 64 KiB kept for framing
_MAX_TTL: Final = 2**31 - 1
_LIVE: Final = "(NOT IS_DEFINED(c.exp) OR IS_NULL(c.exp) OR c.exp > @now)"
_FIELDS: Final = "c.k, c.v, c.a, c._etag"
_TYPE_TEST: Final = {"num": "IS_NUMBER", "str": "IS_STRING", "bool": "IS_BOOL"}
_SQL_OPS: Final = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def partition_key(scope: Scope) -> str:
    """The collection's logical partition: one per (tenant, namespace, collection)."""
    return f"~c:{scope.tenant}:{scope.namespace}:{b64_name(scope.name)}"


def _kind(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "num"


def _condition_sql(cond: Condition, param: str) -> str:
    """One ``where`` condition with the semantics of :func:`tiermem._collection._model.matches`."""
    field = f'c.a["{cond.name}"]'  # names are [A-Za-z_][A-Za-z0-9_]*: safe inside the quotes
    test = f"{_TYPE_TEST[_kind(cond.value)]}({field})"
    if cond.op == "$ne":
        return f"(IS_DEFINED({field}) AND NOT ({test} AND {field} = {param}))"
    return f"({test} AND {field} {_SQL_OPS[cond.op]} {param})"


def _filter(query: ItemQuery) -> tuple[str, list[dict[str, Any]]]:
    sql = _LIVE
    params: list[dict[str, Any]] = [{"name": "@now", "value": query.now}]
    if query.prefix:
        low = order_key(query.prefix)
        sql += " AND c.s >= @plo AND c.s < @phi"
        params += [{"name": "@plo", "value": low}, {"name": "@phi", "value": low + "g"}]  # g > any hex digit
    if query.after is not None:
        sql += " AND c.s > @after"
        params.append({"name": "@after", "value": order_key(query.after)})
    if query.before is not None:
        sql += " AND c.s < @before"
        params.append({"name": "@before", "value": order_key(query.before)})
    for i, cond in enumerate(query.where):
        name = f"@w{i}"
        sql += " AND " + _condition_sql(cond, name)
        params.append({"name": name, "value": cond.value})
    return sql, params


class CosmosCollectionStore:
    """Collection items in the warm Cosmos container (see the module docstring).

    Args:
        container: the adapter's container accessor (opens the client on first use).
        sdk: the adapter's SDK call wrapper (its one exception translation).
        sdk_or_none: the same, with an item 404 as ``None``.
        clock: the adapter's wall clock (for the native ``ttl``).
        max_concurrency: most point requests in flight for one call.
    """

    def __init__(
        self,
        container: Callable[[str], Awaitable[ContainerProxy]],
        sdk: Sdk,
        sdk_or_none: Sdk,
        clock: Callable[[], float],
        max_concurrency: int,
    ) -> None:
        self._container = container
        self._sdk = sdk
        self._sdk_or_none = sdk_or_none
        self._clock = clock
        self._limit = asyncio.Semaphore(max_concurrency)
        self.items_read = 0

    @property
    def max_batch(self) -> int | None:
        return BATCH_MAX_ITEMS

    # -- items ---------------------------------------------------------------------------------------

    @staticmethod
    def _mk(scope: Scope, key: str) -> MemoryKey:
        return MemoryKey(scope.tenant, scope.namespace, f"{scope.name}\x1f{key}")  # for error key hashes

    def _item(self, scope: Scope, op: PutOp, pk: str) -> dict[str, Any]:
        key, record, attrs = op
        item: dict[str, Any] = {
            "id": b64_name(key),
            "pk": pk,
            "t": scope.tenant,
            "n": scope.namespace,
            "coll": scope.name,
            "k": key,
            "s": order_key(key),
            "a": dict(attrs),
            "p": record.kind is RecordKind.POINTER,
            "v": base64.b64encode(record.to_bytes()).decode("ascii"),
            "exp": record.expires_at,
        }
        if record.expires_at is not None:
            item["ttl"] = max(1, min(_MAX_TTL, int(record.expires_at - self._clock()) + 1))
        return item

    @staticmethod
    def _stored(scope: Scope, row: Mapping[str, Any]) -> StoredItem:
        key, attrs, etag = row.get("k"), row.get("a") or {}, row.get("_etag")
        try:
            record = Record.from_bytes(base64.b64decode(row["v"], validate=True), etag=etag)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise CorruptValueError(
                f"collection item value is malformed ({type(exc).__name__})", tier=Tier.WARM, operation="get"
            ) from exc
        if not isinstance(key, str) or not isinstance(attrs, dict):
            raise CorruptValueError("collection item has no key or attrs", tier=Tier.WARM, operation="get")
        return StoredItem(key, record, attrs, None if etag is None else str(etag))

    async def get(self, scope: Scope, key: str) -> StoredItem | None:
        container = await self._container("get")
        pk = partition_key(scope)
        item_id = b64_name(key)
        row = await self._sdk_or_none(
            "get", self._mk(scope, key), lambda: container.read_item(item_id, partition_key=pk)
        )
        return None if row is None else self._stored(scope, row)

    async def get_many(self, scope: Scope, keys: Sequence[str]) -> list[StoredItem | None]:
        if not keys:
            return []
        if len(keys) == 1:
            return [await self.get(scope, keys[0])]
        container = await self._container("get_many")
        pk = partition_key(scope)
        found: dict[str, StoredItem] = {}
        for start in range(0, len(keys), 256):
            pairs = [(b64_name(k), pk) for k in keys[start : start + 256]]
            rows = await self._sdk("get_many", None, partial(container.read_items, pairs))
            for row in rows:
                stored = self._stored(scope, row)
                found[stored.key] = stored
        return [found.get(k) for k in keys]

    async def put(
        self,
        scope: Scope,
        op: PutOp,
        *,
        now: float,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        from azure.core import MatchConditions

        container = await self._container("put")
        pk = partition_key(scope)
        item = self._item(scope, op, pk)
        mk = self._mk(scope, op[0])
        item_id = item["id"]

        async def replace(etag: str) -> Any:
            return await self._sdk_or_none(
                "put",
                mk,
                lambda: container.replace_item(
                    item_id, item, etag=etag, match_condition=MatchConditions.IfNotModified, no_response=True
                ),
            )

        if if_match is not None:
            replaced = await replace(if_match)
            if replaced is None:
                raise ConflictError(
                    "etag does not match (no such item)", tier=Tier.WARM, operation="put", key=op[0]
                )
            return _etag_of(replaced)
        if not if_absent:
            upserted = await self._sdk("put", mk, lambda: container.upsert_item(item, no_response=True))
            return _etag_of(upserted)
        for _ in range(2):  # create-only; an expired item is replaced on its ETag
            try:
                created = await self._sdk("put", mk, lambda: container.create_item(item, no_response=True))
                return _etag_of(created)
            except ConflictError:
                existing = await self._sdk_or_none(
                    "put", mk, lambda: container.read_item(item_id, partition_key=pk)
                )
            if existing is None:
                continue
            exp = existing.get("exp")
            if not (isinstance(exp, int | float) and not isinstance(exp, bool) and exp <= now):
                raise ConflictError("item already exists", tier=Tier.WARM, operation="put", key=op[0])
            replaced = await replace(str(existing.get("_etag")))
            if replaced is not None:
                return _etag_of(replaced)
        raise ConflictError("item was written concurrently", tier=Tier.WARM, operation="put", key=op[0])

    async def put_many(self, scope: Scope, ops: Sequence[PutOp]) -> None:
        """One transactional batch in the collection's partition: every item or none.

        Raises:
            ValueTooLargeError: more than 100 items or about 2 MB in one batch (nothing is written).
        """
        if not ops:
            return
        pk = partition_key(scope)
        items = [self._item(scope, op, pk) for op in ops]
        size = sum(len(json.dumps(item, separators=(",", ":"))) for item in items)
        if len(items) > BATCH_MAX_ITEMS or size > BATCH_MAX_BYTES:
            raise ValueTooLargeError(
                f"put_many of {len(items)} items / {size} bytes; one Cosmos transactional batch holds "
                f"at most {BATCH_MAX_ITEMS} items and {BATCH_MAX_BYTES} bytes",
                size=size,
                limit=BATCH_MAX_BYTES,
                tier=Tier.WARM,
                operation="put_many",
            )
        container = await self._container("put_many")
        operations: list[Any] = [("upsert", (item,)) for item in items]
        await self._sdk("put_many", None, lambda: container.execute_item_batch(operations, partition_key=pk))

    async def delete_many(self, scope: Scope, keys: Sequence[str]) -> None:
        """Point deletes in the partition (a 404 is fine), ``max_concurrency`` at a time. Not atomic:
        a transactional batch would fail as a whole on an item that is already gone."""
        if not keys:
            return
        container = await self._container("delete")
        pk = partition_key(scope)

        async def one(key: str) -> None:
            item_id = b64_name(key)
            async with self._limit:
                await self._sdk_or_none(
                    "delete", self._mk(scope, key), lambda: container.delete_item(item_id, partition_key=pk)
                )

        await asyncio.gather(*(one(k) for k in keys))

    # -- queries in the collection's partition --------------------------------------------------------

    async def _query(self, operation: str, scope: Scope, sql: str, params: list[dict[str, Any]]) -> list[Any]:
        container = await self._container(operation)
        pk = partition_key(scope)

        async def run() -> list[Any]:
            rows = container.query_items(sql, parameters=params, partition_key=pk)
            return [row async for row in rows]

        result: list[Any] = await self._sdk(operation, None, run)
        return result

    async def list_page(
        self, scope: Scope, query: ItemQuery, cursor: str | None, size: int
    ) -> list[StoredItem]:
        where, params = _filter(query)
        if cursor is not None:
            where += " AND c.s < @cursor" if query.reverse else " AND c.s > @cursor"
            params.append({"name": "@cursor", "value": order_key(cursor)})
        params.append({"name": "@top", "value": size})
        order = "DESC" if query.reverse else "ASC"
        sql = f"SELECT TOP @top {_FIELDS} FROM c WHERE {where} ORDER BY c.s {order}"  # noqa: S608
        rows = await self._query("list", scope, sql, params)
        self.items_read += len(rows)
        return [self._stored(scope, row) for row in rows]

    async def count(self, scope: Scope, query: ItemQuery) -> int:
        where, params = _filter(query)
        rows = await self._query("count", scope, f"SELECT VALUE COUNT(1) FROM c WHERE {where}", params)  # noqa: S608
        return int(rows[0]) if rows else 0

    async def keys(self, scope: Scope, after: str | None, page: int) -> AsyncIterator[tuple[str, bool]]:
        sql = "SELECT TOP @top c.k, c.p FROM c"
        params: list[dict[str, Any]] = [{"name": "@top", "value": page}]
        if after is not None:
            sql += " WHERE c.s > @after"
            params.append({"name": "@after", "value": order_key(after)})
        rows = await self._query("keys", scope, sql + " ORDER BY c.s", params)
        for row in rows:
            yield str(row["k"]), bool(row.get("p"))

    async def names(self, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
        """A cross-partition ``DISTINCT`` query (an admin call); names sorted by UTF-8 bytes."""
        container = await self._container("collections")
        sql = "SELECT DISTINCT VALUE c.coll FROM c WHERE c.t = @t AND c.n = @n AND IS_STRING(c.coll)"
        params: list[dict[str, Any]] = [{"name": "@t", "value": tenant}, {"name": "@n", "value": namespace}]
        if prefix:
            sql += " AND STARTSWITH(c.coll, @prefix)"
            params.append({"name": "@prefix", "value": prefix})

        async def run() -> list[str]:
            rows = container.query_items(sql, parameters=params)
            return [str(row) async for row in rows]

        names: list[str] = await self._sdk("collections", None, run)
        for name in sorted(set(names), key=lambda n: n.encode("utf-8")):
            yield name


def _etag_of(result: Any) -> str | None:
    headers = result.get_response_headers()
    etag = headers.get("etag") or result.get("_etag")
    return str(etag) if etag is not None else None
