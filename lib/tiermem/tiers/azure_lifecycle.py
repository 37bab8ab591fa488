"""Lifecycle stores of the Azure tiers: Redis hot, Cosmos DB warm, Blob cold (see lifecycle/_store).

Each is reached through its adapter's ``lifecycle_store()`` hook and calls the SDK only through the
adapter's own wrapper, so exceptions are translated in the adapter's one place.

- Redis: ``SCAN MATCH {prefix}:{tenant}:*`` (every primary on a cluster), ``UNLINK`` page by page.
- Cosmos: parameterized cross-partition queries on the key-value fields (``tenant``/``ns``) and the
  collection fields (``t``/``n``), paged with continuation; erasure deletes in rounds of fresh queries.
- Blob: a prefix listing of ``{tenant}/`` (or ``{tenant}/{namespace}/``), which also holds the cold
  versions of collection items that the key-value ``scan`` never reports.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

from azure.core import MatchConditions

from tiermem._codec import HEADER_SIZE, Record, RecordKind
from tiermem._errors import ConflictError, CorruptValueError
from tiermem._keys import cosmos_id, parse_blob_name, parse_cosmos_id, validate_scope
from tiermem._protocols import MemoryKey
from tiermem.lifecycle._quota import RedisCounters, RedisLike
from tiermem.lifecycle._store import LISTING_PAGE, StoredEntry
from tiermem.tiers.cold_collections import parse_blob_key


class _SdkAdapter(Protocol):
    """What the Cosmos and Blob stores use of their adapter: its SDK call wrappers (the adapter's one
    exception translation) and its open check."""

    async def _sdk(self, operation: str, key: MemoryKey | None, call: Callable[[], Awaitable[_T]]) -> _T: ...

    async def _sdk_or_none(
        self, operation: str, key: MemoryKey | None, call: Callable[[], Awaitable[_T]]
    ) -> _T | None: ...

    def _ensure_open(self, operation: str) -> None: ...


class _CosmosLike(_SdkAdapter, Protocol):
    async def _container(self, operation: str) -> Any: ...


class _BlobLike(_SdkAdapter, Protocol):
    @property
    def _container(self) -> Any: ...


__all__ = ["BlobScopeStore", "CosmosScopeStore", "RedisScopeStore"]

_T = TypeVar("_T")
_MARKERS: Final = frozenset({RecordKind.TOMBSTONE, RecordKind.FENCE, RecordKind.LEASE})
_HEAD_B64: Final = 24  # base64 characters that hold the 17-byte envelope header
_ERASE_CONCURRENCY: Final = 16
_KV_FIELDS: Final = "c.id, c.tenant, c.ns, LENGTH(c.v) AS len, SUBSTRING(c.v, 0, 24) AS head, c._ts, c._etag"
_ITEM_FIELDS: Final = "c.t, c.n, c.coll, c.k, c.p, c.exp, LENGTH(c.v) AS len, c._ts"


def _scope(tenant: str | None, namespace: str | None) -> None:
    if tenant is not None:
        validate_scope(tenant, "tenant")
    if namespace is not None:
        validate_scope(namespace, "namespace")


def _pattern(prefix: str, tenant: str | None, namespace: str | None) -> str:
    # Tenants and namespaces are [A-Za-z0-9._-]: no glob character can occur in them.
    if tenant is None:
        return f"{prefix}:*"
    return f"{prefix}:{tenant}:*" if namespace is None else f"{prefix}:{tenant}:{namespace}:*"


class RedisScopeStore:
    """The Redis hot tier: keys ``{prefix}:{tenant}:{namespace}:{key}`` found with ``SCAN``."""

    def __init__(self, hot: RedisLike) -> None:
        self._hot = hot

    async def _pages(
        self, tenant: str | None, namespace: str | None, operation: str
    ) -> AsyncIterator[list[bytes]]:
        client: Any = self._hot._client
        pattern = _pattern(self._hot.prefix, tenant, namespace)
        names = client.scan_iter(match=pattern, count=LISTING_PAGE).__aiter__()
        page: list[bytes] = []
        while True:
            try:
                async with self._hot._call(operation):
                    name = await anext(names)
            except StopAsyncIteration:
                break
            page.append(name)
            if len(page) >= LISTING_PAGE:
                yield page
                page = []
        if page:
            yield page

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        client: Any = self._hot._client
        async for page in self._pages(tenant, namespace, "entries"):
            # The header and the length only: a page of values could be hundreds of megabytes.
            async with self._hot._call("entries"), client.pipeline(transaction=False) as pipe:
                for name in page:
                    pipe.getrange(name, 0, HEADER_SIZE - 1)
                    pipe.strlen(name)
                results = await pipe.execute()
            for i, raw in enumerate(page):
                head, size = results[2 * i], int(results[2 * i + 1] or 0)
                if not size:
                    continue  # expired or deleted since the scan
                rest = raw.decode("utf-8", "replace").partition(":")[2]
                t, _, rest = rest.partition(":")
                ns, _, key = rest.partition(":")
                try:
                    rec = Record.from_bytes(bytes(head))
                except CorruptValueError:
                    rec = None
                yield StoredEntry(
                    t,
                    ns,
                    key,
                    size=size,
                    marker=rec is not None and rec.kind in _MARKERS,
                    expires_at=None if rec is None else rec.expires_at,
                )

    def quota_counters(self) -> RedisCounters:
        """Quota counters every process shares (tiermem.lifecycle._quota)."""
        return RedisCounters(self._hot)

    async def erase(self, tenant: str, namespace: str | None) -> int:
        _scope(tenant, namespace)
        client: Any = self._hot._client
        removed = 0
        async for page in self._pages(tenant, namespace, "erase"):
            async with self._hot._call("erase"):
                removed += int(await client.unlink(*page))
        return removed


class CosmosScopeStore:
    """The Cosmos DB warm tier: key-value items and collection items of the shared container."""

    def __init__(self, warm: _CosmosLike) -> None:
        self._warm = warm

    async def _query(
        self, operation: str, sql: str, params: list[dict[str, Any]]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a cross-partition query, one page in memory at a time."""
        container = await self._warm._container(operation)
        pages = container.query_items(sql, parameters=params, max_item_count=LISTING_PAGE).by_page()

        async def next_page() -> list[dict[str, Any]] | None:
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return None
            return [row async for row in page]

        while True:
            rows = await self._warm._sdk(operation, None, next_page)
            if rows is None:
                return
            yield rows

    @staticmethod
    def _where(kv: bool, tenant: str | None, namespace: str | None) -> tuple[str, list[dict[str, Any]]]:
        tfield, nfield = ("c.tenant", "c.ns") if kv else ("c.t", "c.n")
        clauses = [f"IS_STRING({tfield})"]
        params: list[dict[str, Any]] = []
        if tenant is not None:
            clauses.append(f"{tfield} = @tenant")
            params.append({"name": "@tenant", "value": tenant})
        if namespace is not None:
            clauses.append(f"{nfield} = @ns")
            params.append({"name": "@ns", "value": namespace})
        if not kv:
            clauses.append("IS_STRING(c.coll)")
        return " AND ".join(clauses), params

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        self._warm._ensure_open("entries")
        where, params = self._where(True, tenant, namespace)
        sql = f"SELECT {_KV_FIELDS} FROM c WHERE {where}"  # noqa: S608 - values are parameters
        async for rows in self._query("entries", sql, params):
            for row in rows:
                rec = _b64_header(row.get("head"))
                try:
                    key = parse_cosmos_id(row["id"]).key
                except (KeyError, TypeError, ValueError):
                    continue  # not an id tiermem writes
                yield StoredEntry(
                    str(row["tenant"]),
                    str(row["ns"]),
                    key,
                    size=int(row.get("len") or 0) * 3 // 4,
                    written_at=_float(row.get("_ts")),
                    pointer=rec is not None and rec.kind is RecordKind.POINTER,
                    expires_at=None if rec is None else rec.expires_at,
                    etag=None if row.get("_etag") is None else str(row["_etag"]),
                )
        where, params = self._where(False, tenant, namespace)
        sql = f"SELECT {_ITEM_FIELDS} FROM c WHERE {where}"  # noqa: S608 - values are parameters
        async for rows in self._query("entries", sql, params):
            for row in rows:
                yield StoredEntry(
                    str(row["t"]),
                    str(row["n"]),
                    str(row.get("k")),
                    collection=str(row["coll"]),
                    size=int(row.get("len") or 0) * 3 // 4,
                    written_at=_float(row.get("_ts")),
                    pointer=bool(row.get("p")),
                    expires_at=_float(row.get("exp")),
                )

    async def erase(self, tenant: str, namespace: str | None) -> int:
        """Rounds of "query up to a page of (id, pk), delete them" until both queries come back empty.

        Each round starts a fresh query, so deleting never shifts a continuation under our feet.
        """
        _scope(tenant, namespace)
        self._warm._ensure_open("erase")
        container = await self._warm._container("erase")
        limit = asyncio.Semaphore(_ERASE_CONCURRENCY)
        deleted = 0

        async def remove(item_id: str, pk: str) -> bool:
            async def call() -> bool:
                await container.delete_item(item_id, partition_key=pk)
                return True

            async with limit:  # a 404 means someone else deleted it: not counted
                return await self._warm._sdk_or_none("erase", None, call) is not None

        for kv in (True, False):
            where, params = self._where(kv, tenant, namespace)
            sql = f"SELECT TOP {LISTING_PAGE} c.id, c.pk FROM c WHERE {where}"  # noqa: S608
            while True:
                rows: list[dict[str, Any]] = []
                async for page in self._query("erase", sql, params):
                    rows.extend(page)
                    if len(rows) >= LISTING_PAGE:
                        break
                if not rows:
                    break
                results = await asyncio.gather(*(remove(str(r["id"]), str(r["pk"])) for r in rows))
                deleted += sum(results)
        return deleted

    async def delete_if(self, tenant: str, namespace: str, key: str, etag: str) -> bool:
        mk = MemoryKey(tenant, namespace, key)
        item_id = cosmos_id(mk)
        container = await self._warm._container("delete_if")

        async def delete() -> bool:
            await container.delete_item(
                item_id, partition_key=item_id, etag=etag, match_condition=MatchConditions.IfNotModified
            )
            return True

        try:
            return await self._warm._sdk_or_none("delete_if", mk, delete) is not None
        except ConflictError:
            return False  # rewritten since it was listed: the new value is not ours to judge


class BlobScopeStore:
    """The Blob cold tier: every blob under ``{tenant}/`` (or ``{tenant}/{namespace}/``)."""

    def __init__(self, cold: _BlobLike) -> None:
        self._cold = cold

    @staticmethod
    def _prefixes(tenant: str | None, namespace: str | None) -> list[str | None]:
        """The name prefixes of a scope: its key-value objects and, under ``~tenant/``, the items of its
        collections when the client has no warm tier (tiers/cold_collections.py)."""
        if tenant is None:
            return [None]
        scope = f"{tenant}/" if namespace is None else f"{tenant}/{namespace}/"
        return [scope, f"~{scope}"]

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        self._cold._ensure_open("entries")
        for prefix in self._prefixes(tenant, namespace):
            listing = self._cold._container.list_blobs(
                name_starts_with=prefix, include=["metadata"], results_per_page=LISTING_PAGE
            ).__aiter__()
            while True:
                try:
                    props = await self._cold._sdk("entries", None, listing.__anext__)
                except StopAsyncIteration:
                    break
                entry = _blob_entry(props)
                if entry is not None:
                    yield entry

    async def erase(self, tenant: str, namespace: str | None) -> int:
        _scope(tenant, namespace)
        removed = 0
        for prefix in self._prefixes(tenant, namespace):
            removed += await self._erase(prefix)
        return removed

    async def _erase(self, prefix: str | None) -> int:
        self._cold._ensure_open("erase")
        container = self._cold._container
        removed = 0
        while True:
            listing = container.list_blob_names(name_starts_with=prefix, results_per_page=LISTING_PAGE)
            names = listing.__aiter__()
            page: list[str] = []
            while len(page) < LISTING_PAGE:
                try:
                    page.append(str(await self._cold._sdk("erase", None, names.__anext__)))
                except StopAsyncIteration:
                    break
            if not page:
                return removed
            removed += sum(await asyncio.gather(*(self._delete(name) for name in page)))

    async def _delete(self, name: str) -> int:
        blob = self._cold._container.get_blob_client(name)

        async def call() -> bool:
            await blob.delete_blob(delete_snapshots="include")
            return True

        return 0 if await self._cold._sdk_or_none("erase", None, call) is None else 1


def _blob_entry(props: Any) -> StoredEntry | None:
    name = str(props.name)
    collection = None
    try:
        t, ns, key = parse_blob_name(name.removeprefix("~"))
    except ValueError:  # a version of a large collection item (its key holds a separator), or foreign
        t, _, rest = name.removeprefix("~").partition("/")
        ns, _, key = rest.partition("/")
        if not key:
            return None  # not a name tiermem writes
    if name.startswith("~"):  # an item of a collection kept in cold (no warm tier)
        try:
            key = parse_blob_key(key)
        except (ValueError, UnicodeDecodeError):
            return None
        collection, _, key = key.partition("\x1f")
    modified = props.last_modified
    return StoredEntry(
        t,
        ns,
        key,
        collection=collection,
        size=int(props.size or 0),
        written_at=None if modified is None else modified.timestamp(),
        expires_at=_meta_expiry(props.metadata),
    )


def _b64_header(text: object) -> Record | None:
    if not isinstance(text, str):
        return None
    try:
        return Record.from_bytes(base64.b64decode(text[:_HEAD_B64]))
    except (ValueError, binascii.Error, CorruptValueError):
        return None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _meta_expiry(metadata: Mapping[str, str] | None) -> float | None:
    text = (metadata or {}).get("tm_exp", "")
    try:
        return float(text) if text else None
    except ValueError:
        return None
