"""``Collection``: a named, ordered set of items in one tenant and namespace (see docs/adr/0012).

The durable tier that holds the client's data is the index (warm; cold when there is no warm; process
memory for a hot-only client): every listing, count and filter runs there natively, never on hot.
Single items follow the key-value rules (ADR 0005, 0006): writes and deletes reach the durable tier
first, then invalidate hot; reads fill hot only under the lease taken on their miss; values above
``warm_max_bytes`` live in a fresh cold object behind a warm pointer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tiermem._codec import Record, RecordKind, Value
from tiermem._collection._model import (
    AttrValue,
    Item,
    ItemQuery,
    Scope,
    StoredItem,
    validate_attrs,
    validate_where,
)
from tiermem._collection._store import CollectionStore, HasCollections, PutOp
from tiermem._engine.hot import Leases
from tiermem._engine.large import LargeValues
from tiermem._errors import (
    CircuitOpenError,
    ConfigurationError,
    InvalidInputError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
)
from tiermem._keys import validate_key, validate_ttl
from tiermem._locks import StripedLocks
from tiermem._pointers import cold_version, pointer_target
from tiermem._types import MemoryKey, Tier

if TYPE_CHECKING:
    from tiermem._engine.core import Engine
    from tiermem._engine.guard import Guard
    from tiermem._protocols import TierStore

__all__ = ["Collection", "CollectionBackend", "backend_for", "check_prefix"]

_T = TypeVar("_T")

PAGE_SIZE: Final = 256  # items per store round trip while listing
DROP_PAGE: Final = 100  # keys removed per round of drop (Cosmos transactional batch limit)
SEPARATOR: Final = "\x1f"


class CollectionBackend:
    """Where a client's collections live: the store, the guard its calls go through (breaker, deadline,
    span, metrics of that tier), and the engine's hot cache and large values for single items."""

    def __init__(self, engine: Engine, guard: Guard[TierStore], store: CollectionStore) -> None:
        self.engine = engine
        self.guard = guard
        self.store = store
        hot = engine.hot
        # Hot caches items only when it is not itself the store (a hot-only client).
        self.cached = hot.guard is not None and guard.tier is not Tier.HOT
        warm, cold = engine.guard(Tier.WARM), engine.guard(Tier.COLD)
        self.large = LargeValues(warm, cold)  # type: ignore[arg-type]  # guards are generic over TierStore
        self.has_large = guard.tier is Tier.WARM and cold is not None
        self.locks = StripedLocks(256)  # collection items never share a key with key-value items

    def call(self, operation: str, coro: Coroutine[Any, Any, _T], *, nkeys: int = 1) -> Awaitable[_T]:
        """One store call through the tier's guard."""
        return self.guard.run(operation, coro, nkeys=nkeys)


_BACKENDS: weakref.WeakKeyDictionary[Engine, CollectionBackend] = weakref.WeakKeyDictionary()


def backend_for(engine: Engine) -> CollectionBackend:
    """The collection backend of a client (one per client, shared by its views): its warm tier, else
    cold, else hot (process memory).

    Raises:
        ConfigurationError: the tier that would hold collections cannot.
    """
    backend = _BACKENDS.get(engine)
    if backend is not None:
        return backend
    guard = engine.guard(Tier.WARM) or engine.guard(Tier.COLD) or engine.guard(Tier.HOT)
    assert guard is not None  # the builder refuses a client without tiers
    store = guard.store
    if not isinstance(store, HasCollections):
        raise ConfigurationError(
            f"the {guard.tier.value} tier ({type(store).__name__}) cannot hold collections",
            tier=guard.tier,
            operation="collection",
        )
    backend = _BACKENDS[engine] = CollectionBackend(engine, guard, store.collection_store())
    return backend


def hot_key(scope: Scope, key: str) -> MemoryKey:
    """The hot (and cold-version) key of an item: never equal to a key-value key (see ``SEPARATOR``)."""
    return MemoryKey(scope.tenant, scope.namespace, f"{scope.name}{SEPARATOR}{key}")


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"limit must be a non-negative int or None, got {limit!r:.40}")
    return limit


def _check_bound(bound: object, what: str) -> str | None:
    return None if bound is None else validate_key(bound)


def check_prefix(prefix: object) -> str:
    """A listing prefix: ``""`` (everything) or a valid key; a non-str is ``InvalidInputError``."""
    if not isinstance(prefix, str):
        raise InvalidInputError(f"prefix must be a str, not {type(prefix).__name__}")
    return "" if prefix == "" else validate_key(prefix)


def _keys_of(keys: object, operation: str) -> list[str]:
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        raise InvalidInputError(f"{operation} takes a sequence of keys, not {type(keys).__name__}")
    return list(dict.fromkeys(validate_key(k) for k in keys))


class Collection:
    """Ordered, filterable items inside one tenant and namespace. Get one with
    :meth:`tiermem.MemoryClient.collection`; it is a light handle (no I/O until a method is awaited).

    Item keys follow the memory key rules and order by their UTF-8 bytes on every tier. ``attrs`` are a
    flat map of str/int/float/bool (at most 2 KiB as JSON) that ``list``/``count`` can filter on.
    """

    def __init__(self, backend: CollectionBackend, scope: Scope) -> None:
        self._backend = backend
        self._scope = scope

    @property
    def name(self) -> str:
        return self._scope.name

    @property
    def scope(self) -> Scope:
        return self._scope

    def __repr__(self) -> str:
        s = self._scope
        return f"Collection(tenant={s.tenant!r}, namespace={s.namespace!r}, name={s.name!r})"

    # -- encoding (pure) -----------------------------------------------------------------------------

    def _encode(self, key: str, value: Value, expires_at: float | None) -> Record:
        backend = self._backend
        hmk = hot_key(self._scope, key)
        record = backend.engine.writes.encode(value, expires_at, hmk)
        policy = backend.engine.policy
        tier = backend.guard.tier
        if tier is Tier.HOT and record.size > policy.hot_max_bytes:
            raise ValueTooLargeError(
                f"value is {record.size} bytes; the hot tier takes at most "
                f"hot_max_bytes={policy.hot_max_bytes}",
                size=record.size,
                limit=policy.hot_max_bytes,
                tier=Tier.HOT,
                operation="put",
                key=key,
            )
        if tier is Tier.WARM and record.size > policy.warm_max_bytes and not backend.has_large:
            raise ValueTooLargeError(
                f"value is {record.size} bytes, above warm_max_bytes={policy.warm_max_bytes}, "
                "and no cold tier is configured to hold it",
                size=record.size,
                limit=policy.warm_max_bytes,
                tier=Tier.WARM,
                operation="put",
                key=key,
            )
        return record

    def _is_large(self, record: Record) -> bool:
        return self._backend.has_large and record.size > self._backend.engine.policy.warm_max_bytes

    # -- writes --------------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        value: Value,
        *,
        attrs: Mapping[str, AttrValue] | None = None,
        ttl: float | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        """Store one item; return its durable ETag (``None`` on tiers without one).

        Raises:
            InvalidInputError: bad key, value, attrs or ttl (nothing was written).
            ConflictError: ``if_match`` did not match, or ``if_absent`` and a live item exists.
            TierUnavailableError: the durable tier could not be reached; nothing is reported written.
        """
        key = validate_key(key)
        clean = validate_attrs(attrs)
        ttl_s = validate_ttl(ttl)
        if if_match is not None and if_absent:
            raise InvalidInputError("use either if_match or if_absent", operation="put", key=key)
        if if_match is not None and not isinstance(if_match, str):
            raise InvalidInputError("if_match must be an ETag string", operation="put", key=key)
        backend = self._backend
        now = backend.engine.clock()
        record = self._encode(key, value, None if ttl_s is None else now + ttl_s)
        hmk = hot_key(self._scope, key)
        async with backend.locks.hold((hmk,)), self._governed("put", [(key, record.size)]):
            etag = await self._guarded([hmk], self._put_durable(key, record, clean, now, if_match, if_absent))
            await self._invalidate("set", [hmk])
        return etag

    async def put_many(
        self,
        items: Sequence[tuple[str, Value] | tuple[str, Value, Mapping[str, AttrValue] | None]],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store every item or none (one SQLite transaction; one Cosmos transactional batch).

        Raises:
            InvalidInputError: some item is invalid, or the batch is larger than the tier's atomic limit
                (``ValueTooLargeError``; Cosmos: 100 items, 2 MB); nothing was written.
            TierError: the batch failed; nothing was written (or, on ``TierUnavailableError``, the
                outcome is unknown and every item's hot copy is fenced).
        """
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise InvalidInputError("put_many takes a sequence of (key, value[, attrs]) tuples")
        ttl_s = validate_ttl(ttl)
        backend = self._backend
        now = backend.engine.clock()
        expires_at = None if ttl_s is None else now + ttl_s
        prepared: dict[str, tuple[Record, dict[str, AttrValue]]] = {}
        for entry in items:
            if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                raise InvalidInputError("put_many items are (key, value) or (key, value, attrs) tuples")
            key = validate_key(entry[0])
            attrs = validate_attrs(entry[2] if len(entry) == 3 else None)
            prepared[key] = (self._encode(key, entry[1], expires_at), attrs)
        if not prepared:
            return
        limit = backend.store.max_batch
        if limit is not None and len(prepared) > limit:
            raise ValueTooLargeError(
                f"put_many of {len(prepared)} items; one atomic batch holds at most {limit} on this tier",
                size=len(prepared),
                limit=limit,
                tier=backend.guard.tier,
                operation="put_many",
            )
        hmks = [hot_key(self._scope, k) for k in prepared]
        charged = [(k, rec.size) for k, (rec, _) in prepared.items()]
        async with backend.locks.hold(hmks), self._governed("put_many", charged):
            await self._guarded(hmks, self._put_many_durable(prepared))
            await self._invalidate("mset", hmks)

    def _governed(self, operation: str, writes: list[tuple[str, int]]) -> AbstractAsyncContextManager[None]:
        """Quota reservation and audit event of a write (tiermem.lifecycle); nothing when not configured."""
        governance = self._backend.engine.governance
        if not governance.watching:
            return nullcontext()
        return governance.guard(operation, self._scope.tenant, self._scope.namespace, writes)

    async def _guarded(self, hmks: list[MemoryKey], write: Awaitable[_T]) -> _T:
        """Run a durable write; if its outcome is unknown it may still land, so hot is invalidated now
        and once more after the tier's deadline (ADR 0006)."""
        backend = self._backend
        hot = backend.engine.hot
        try:
            return await write
        except CircuitOpenError:
            raise  # never sent: nothing changed
        except (TierUnavailableError, asyncio.CancelledError):
            if backend.cached:
                hot.invalidate_later(hmks, backend.guard.options.timeout)
            raise

    async def _invalidate(self, operation: str, hmks: list[MemoryKey]) -> None:
        """After the durable write: invalidate hot (writers never fill it; readers do, under leases)."""
        backend = self._backend
        if not backend.cached:
            return
        try:
            await backend.engine.hot.invalidate(hmks, operation=operation)
        except asyncio.CancelledError:
            backend.engine.hot.invalidate_later(hmks, None)
            raise

    async def _put_durable(
        self,
        key: str,
        record: Record,
        attrs: dict[str, AttrValue],
        now: float,
        if_match: str | None,
        if_absent: bool,
    ) -> str | None:
        backend = self._backend
        store = backend.store
        scope = self._scope
        if not self._is_large(record):
            return await backend.call(
                "put", store.put(scope, (key, record, attrs), now=now, if_match=if_match, if_absent=if_absent)
            )
        # Large (ADR 0005): a fresh cold version, then the warm pointer; the old version goes once the
        # pointer is committed, and a refused pointer removes its own version.
        previous = await backend.call("get", store.get(scope, key))
        target, ptr = await self._store_version(key, record)
        try:
            etag = await backend.call(
                "put", store.put(scope, (key, ptr, attrs), now=now, if_match=if_match, if_absent=if_absent)
            )
        except TierUnavailableError:
            raise  # the pointer may have landed: keep the version it would point to
        except TierMemError:
            await backend.large.discard([target])
            raise
        if previous is not None and previous.record.kind is RecordKind.POINTER:
            old = self._target(key, previous.record)
            if old != target:
                await backend.large.discard([old])
        return etag

    async def _put_many_durable(self, prepared: dict[str, tuple[Record, dict[str, AttrValue]]]) -> None:
        backend = self._backend
        ops: list[PutOp] = []
        versions: list[MemoryKey] = []
        for key, (record, attrs) in prepared.items():
            if self._is_large(record):
                target, ptr = await self._store_version(key, record)
                versions.append(target)
                ops.append((key, ptr, attrs))
            else:
                ops.append((key, record, attrs))
        try:
            await backend.call("put_many", backend.store.put_many(self._scope, ops), nkeys=len(ops))
        except TierUnavailableError:
            raise
        except TierMemError:
            await backend.large.discard(versions)  # the batch was refused: nothing points to them
            raise

    async def _store_version(self, key: str, record: Record) -> tuple[MemoryKey, Record]:
        """A new cold object for a large value, and the warm pointer that names it."""
        cold = self._backend.engine.guard(Tier.COLD)
        assert cold is not None
        target, ptr = cold_version(hot_key(self._scope, key), record)
        await cold.set(target, record)
        return target, ptr

    def _target(self, key: str, ptr: Record) -> MemoryKey:
        return pointer_target(hot_key(self._scope, key), ptr)[0]

    async def delete(self, key: str) -> None:
        """Remove one item (and its cold version). Idempotent."""
        await self.delete_many([key])

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove items (idempotent); hot is invalidated after the durable delete."""
        wanted = _keys_of(keys, "delete_many")
        if not wanted:
            return
        backend = self._backend
        hmks = [hot_key(self._scope, k) for k in wanted]
        async with backend.locks.hold(hmks), self._governed("delete", [(k, 0) for k in wanted]):
            await self._remove(wanted, backend.engine.clock())

    async def _remove(self, keys: list[str], now: float) -> None:
        """The durable delete (and the cold versions pointers named), then hot is invalidated (ADR 0006:
        no tombstone goes first, so a delete that never reached the durable tier changes nothing)."""
        backend = self._backend
        store = backend.store
        scope = self._scope
        hmks = [hot_key(scope, k) for k in keys]
        targets: list[MemoryKey] = []
        if backend.has_large:
            found = await backend.call("get_many", store.get_many(scope, keys), nkeys=len(keys))
            targets = [
                self._target(item.key, item.record)
                for item in found
                if item is not None and item.record.kind is RecordKind.POINTER
            ]
        await self._guarded(hmks, backend.call("delete", store.delete_many(scope, keys), nkeys=len(keys)))
        cold = backend.engine.guard(Tier.COLD)
        for target in targets:
            assert cold is not None
            await cold.delete(target)
        await self._invalidate("delete", hmks)

    async def drop(self) -> int:
        """Delete every item of the collection on every tier (large values included); return how many.

        Pages of keys are removed one after another; an item ``put`` while ``drop`` runs may survive.
        """
        backend = self._backend
        dropped = 0
        while True:
            keys = await backend.call("drop", _collect(backend.store.keys(self._scope, None, DROP_PAGE)))
            if not keys:
                return dropped
            names = [k for k, _ in keys]
            async with backend.locks.hold(hot_key(self._scope, k) for k in names):
                await self._remove(names, backend.engine.clock())
            dropped += len(names)

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, key: str, default: Value = None) -> Value:
        """The item's value, or ``default`` when it is missing or expired. May be served by hot."""
        key = validate_key(key)
        values = await self._read_values([key])
        return values.get(key, default)

    async def get_many(self, keys: Sequence[str]) -> dict[str, Value]:
        """Values by key, in input order; ``None`` for missing items. Hot first, then one store batch."""
        wanted = _keys_of(keys, "get_many")
        found = await self._read_values(wanted)
        return {k: found.get(k) for k in wanted}

    async def get_item(self, key: str) -> Item | None:
        """The item with its attrs, durable ETag and expiry, read from the durable tier (never hot)."""
        key = validate_key(key)
        backend = self._backend
        stored = await backend.call("get", backend.store.get(self._scope, key))
        now = backend.engine.clock()
        if stored is None or stored.record.is_expired(now):
            return None
        items, _ = await self._materialize([stored], now)
        return items[0] if items else None

    async def _read_values(self, keys: list[str]) -> dict[str, Value]:
        """Live values by key (missing keys are absent): hot first, then one store batch; what was read
        fills hot only under the leases the hot lookup took (ADR 0006)."""
        backend = self._backend
        now = backend.engine.clock()
        out: dict[str, Value] = {}
        pending = keys
        leases: Leases | None = None
        by_hot = {hot_key(self._scope, k): k for k in keys}
        if backend.cached and keys:
            hot_out: dict[str, Value] = {}
            misses, leases = await backend.engine.hot.lookup_many(list(by_hot), now, hot_out, None)
            # A definitive miss (tombstone) is neither in hot_out nor among the misses: it stays absent.
            for hmk, key in by_hot.items():
                if hmk.key in hot_out:
                    out[key] = hot_out[hmk.key]
            pending = [by_hot[hmk] for hmk in misses]
        if not pending:
            return out
        found = await backend.call(
            "get_many", backend.store.get_many(self._scope, pending), nkeys=len(pending)
        )
        live = [s for s in found if s is not None and not s.record.is_expired(now)]
        items, fills = await self._materialize(live, now)
        for item in items:
            out[item.key] = item.value
        if leases is not None:
            filled = dict(fills)
            settle = [(hot_key(self._scope, k), filled.get(hot_key(self._scope, k))) for k in pending]
            await backend.engine.hot.settle(leases, settle, now)
        return out

    async def _materialize(
        self, stored: list[StoredItem], now: float
    ) -> tuple[list[Item], list[tuple[MemoryKey, Record]]]:
        """Decode stored items (following pointers to cold); also the value records hot may be filled with."""
        backend = self._backend
        reads = backend.engine.reads
        tier = backend.guard.tier
        pointers = [
            (hot_key(self._scope, s.key), s.record) for s in stored if s.record.kind is RecordKind.POINTER
        ]
        targets: dict[str, Record | None] = {}
        if pointers:
            fetched = await backend.large.follow(pointers)
            targets = {hmk.key: rec for (hmk, _), rec in zip(pointers, fetched, strict=True)}
        items: list[Item] = []
        fills: list[tuple[MemoryKey, Record]] = []
        for s in stored:
            hmk = hot_key(self._scope, s.key)
            if s.record.kind is RecordKind.POINTER:
                value_rec = targets.get(hmk.key)
                if value_rec is None:
                    continue  # a pointer without its object: a miss (logged by follow)
                value = reads.decode(value_rec, Tier.COLD, hmk)
                value_rec = value_rec.with_expiry(s.record.expires_at)
            else:
                value_rec = s.record
                value = reads.decode(value_rec, tier, hmk)
            fills.append((hmk, value_rec))
            items.append(Item(s.key, value, s.attrs, s.etag, s.record.expires_at))
        return items, fills

    def list(
        self,
        *,
        prefix: str = "",
        after: str | None = None,
        before: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Item]:
        """Live items ordered by key (UTF-8 bytes), descending with ``reverse``; bounds are exclusive.

        Runs on the durable tier only (never hot), paged internally (keyset paging), so any size
        streams in bounded memory. Arguments are validated here, before the first item is asked for.

        Raises:
            InvalidInputError: a bad prefix, bound, limit or ``where`` (raised by this call).
        """
        query = ItemQuery(
            now=0.0,
            prefix=check_prefix(prefix),
            after=_check_bound(after, "after"),
            before=_check_bound(before, "before"),
            reverse=bool(reverse),
            where=validate_where(where),
        )
        return self._iterate(query, _check_limit(limit))

    async def _iterate(self, template: ItemQuery, limit: int | None) -> AsyncIterator[Item]:
        backend = self._backend
        store = backend.store
        scope = self._scope
        served = 0
        cursor: str | None = None
        while limit is None or served < limit:
            now = backend.engine.clock()
            query = ItemQuery(
                now, template.prefix, template.after, template.before, template.reverse, template.where
            )
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - served)
            page = await backend.call("list", store.list_page(scope, query, cursor, size), nkeys=size)
            live = [s for s in page if not s.record.is_expired(now)]
            items, _ = await self._materialize(live, now)
            for item in items:
                served += 1
                yield item
            if len(page) < size:
                return
            cursor = page[-1].key

    async def count(self, *, prefix: str = "", where: Mapping[str, Any] | None = None) -> int:
        """How many live items match (counted by the durable tier)."""
        backend = self._backend
        query = ItemQuery(backend.engine.clock(), prefix=check_prefix(prefix), where=validate_where(where))
        return await backend.call("count", backend.store.count(self._scope, query))


async def _collect(source: AsyncIterator[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [entry async for entry in source]
