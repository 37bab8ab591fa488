"""``Collection``: a named, ordered set of items in one tenant and namespace (see docs/adr/0006).

The durable tier that holds the client's data is the index (warm; cold when there is no warm; process
memory for a hot-only client): every listing, count and filter runs there natively, never on hot.
Single items follow the key-value rules (ADR 0003, 0005): writes reach the durable tier first, then
hot is written through or fenced; deletes leave a hot tombstone first; reads promote with create-only
writes; values above ``warm_max_bytes`` live in a fresh cold object behind a warm pointer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tiermem._codec import Record, RecordKind, Value, tombstone
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
from tiermem._errors import (
    ConfigurationError,
    CorruptValueError,
    InvalidInputError,
    TierError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
)
from tiermem._keys import validate_key, validate_ttl
from tiermem._protocols import MemoryKey, Tier

if TYPE_CHECKING:
    from tiermem._client import _Core, _Slot

__all__ = ["Collection", "CollectionBackend", "backend_for"]

_T = TypeVar("_T")

PAGE_SIZE: Final = 256  # items per store round trip while listing
DROP_PAGE: Final = 100  # keys removed per round of drop (Cosmos transactional batch limit)
SEPARATOR: Final = "\x1f"


class CollectionBackend:
    """Where a client's collections live: the store and the tier slot its calls go through."""

    def __init__(self, core: _Core, slot: _Slot, store: CollectionStore) -> None:
        self.core = core
        self.slot = slot
        self.store = store
        # Hot caches items only when it is not itself the store (a hot-only client).
        self.cache = core.hot if core.hot is not None and slot is not core.hot else None
        self.large = slot is core.warm and core.cold is not None

    async def call(self, operation: str, fn: Any, *, nkeys: int = 1) -> Any:
        """One store call through the client's breaker, deadline, span and metrics for that tier."""
        return await self.core.call(self.slot, operation, fn, nkeys=nkeys)


def backend_for(core: _Core) -> CollectionBackend:
    """The collection backend of a client: its warm tier, else cold, else hot (process memory).

    Raises:
        ConfigurationError: the tier that would hold collections cannot.
    """
    slot = core.warm or core.cold or core.hot
    assert slot is not None  # the builder refuses a client without tiers
    if not isinstance(slot.store, HasCollections):
        raise ConfigurationError(
            f"the {slot.tier.value} tier ({type(slot.store).__name__}) cannot hold collections",
            tier=slot.tier,
            operation="collection",
        )
    return CollectionBackend(core, slot, slot.store.collection_store())


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


def _check_prefix(prefix: object) -> str:
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

    # -- encoding and planning (pure) ----------------------------------------------------------------

    def _encode(self, key: str, value: Value, expires_at: float | None) -> Record:
        core = self._backend.core
        try:
            record, _ = core.codec.encode(value, expires_at=expires_at)
        except InvalidInputError as exc:
            exc.operation = exc.operation or "put"
            raise
        policy = core.policy
        slot = self._backend.slot
        if slot is core.hot and record.size > policy.hot_max_bytes:
            raise ValueTooLargeError(
                f"value is {record.size} bytes; the hot tier takes at most "
                f"hot_max_bytes={policy.hot_max_bytes}",
                size=record.size,
                limit=policy.hot_max_bytes,
                tier=Tier.HOT,
                operation="put",
                key=key,
            )
        if slot is core.warm and record.size > policy.warm_max_bytes and core.cold is None:
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
        return self._backend.large and record.size > self._backend.core.policy.warm_max_bytes

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
        core = self._backend.core
        now = core.clock()
        record = self._encode(key, value, None if ttl_s is None else now + ttl_s)
        hmk = hot_key(self._scope, key)
        async with core.locks.hold((hmk,)):
            etag = await self._guarded([hmk], self._put_durable(key, record, clean, now, if_match, if_absent))
            await self._cache_write("set", [(hmk, record)], now)
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
        core = self._backend.core
        now = core.clock()
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
        store = self._backend.store
        limit = store.max_batch
        if limit is not None and len(prepared) > limit:
            raise ValueTooLargeError(
                f"put_many of {len(prepared)} items; one atomic batch holds at most {limit} on this tier",
                size=len(prepared),
                limit=limit,
                tier=self._backend.slot.tier,
                operation="put_many",
            )
        hmks = [hot_key(self._scope, k) for k in prepared]
        async with core.locks.hold(hmks):
            await self._guarded(hmks, self._put_many_durable(prepared))
            await self._cache_write(
                "mset", [(hmk, rec) for hmk, (rec, _) in zip(hmks, prepared.values(), strict=True)], now
            )

    async def _guarded(self, hmks: list[MemoryKey], write: Awaitable[_T]) -> _T:
        """Run a durable write; if its outcome is unknown, hot must never vouch for the old value."""
        core = self._backend.core
        try:
            return await write
        except TierUnavailableError:
            if self._backend.cache is not None:
                await core.invalidate_hot(hmks)  # the write may have landed
            raise
        except asyncio.CancelledError:
            if self._backend.cache is not None:
                core.mark_dirty(hmks)
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
        etag: str | None
        if not self._is_large(record):
            op: PutOp = (key, record, attrs)
            etag = await backend.call(
                "put", lambda: store.put(scope, op, now=now, if_match=if_match, if_absent=if_absent)
            )
            return etag
        # Large: a fresh cold version, then the warm pointer; the old version goes once the pointer is
        # committed, and a refused pointer removes its own version (ADR 0005).
        previous: StoredItem | None = await backend.call("get", lambda: store.get(scope, key))
        cmk, ptr = self._new_version(key, record)
        await self._cold_set(cmk, record)
        op = (key, ptr, attrs)
        try:
            etag = await backend.call(
                "put", lambda: store.put(scope, op, now=now, if_match=if_match, if_absent=if_absent)
            )
        except TierUnavailableError:
            raise  # the pointer may have landed: keep the version it would point to
        except TierMemError:
            await backend.core.discard_cold([cmk])
            raise
        if previous is not None and previous.record.kind is RecordKind.POINTER:
            old = self._pointer_target(key, previous.record)
            if old != cmk:
                await backend.core.discard_cold([old])
        return etag

    async def _put_many_durable(self, prepared: dict[str, tuple[Record, dict[str, AttrValue]]]) -> None:
        backend = self._backend
        store = backend.store
        scope = self._scope
        ops: list[PutOp] = []
        versions: list[MemoryKey] = []
        for key, (record, attrs) in prepared.items():
            if self._is_large(record):
                cmk, ptr = self._new_version(key, record)
                await self._cold_set(cmk, record)
                versions.append(cmk)
                ops.append((key, ptr, attrs))
            else:
                ops.append((key, record, attrs))
        try:
            await backend.call("put_many", lambda: store.put_many(scope, ops), nkeys=len(ops))
        except TierUnavailableError:
            raise
        except TierMemError:
            await backend.core.discard_cold(versions)  # the batch was refused: nothing points to them
            raise

    def _new_version(self, key: str, record: Record) -> tuple[MemoryKey, Record]:
        from tiermem._client import _cold_key, _pointer

        version = secrets.token_hex(8)
        cmk = _cold_key(hot_key(self._scope, key), version)
        return cmk, _pointer(record, version)

    def _pointer_target(self, key: str, pointer: Record) -> MemoryKey:
        from tiermem._client import _pointer_meta

        return _pointer_meta(hot_key(self._scope, key), pointer)[0]

    async def _cold_set(self, cmk: MemoryKey, record: Record) -> None:
        cold = self._backend.core.cold
        assert cold is not None
        cstore: Any = cold.store
        await self._backend.core.call(cold, "set", lambda: cstore.set(cmk, record), key=cmk)

    async def _cache_write(self, operation: str, items: list[tuple[MemoryKey, Record]], now: float) -> None:
        """Write-through (or fence, for values above ``hot_max_bytes``) after the durable write."""
        if self._backend.cache is None:
            return
        from tiermem._client import _Plan, _Write

        limit = self._backend.core.policy.hot_max_bytes
        writes = [_Write(hmk, rec, _Plan.DURABLE, cache=rec.size <= limit) for hmk, rec in items]
        await self._backend.core.hot_write(operation, writes, now)

    async def delete(self, key: str) -> None:
        """Remove one item (and its cold version). Idempotent."""
        await self.delete_many([key])

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove items (all or none where the tier has transactions). Idempotent.

        A short hot tombstone goes first, so a read racing the delete cannot promote the old value.
        """
        wanted = _keys_of(keys, "delete_many")
        if not wanted:
            return
        core = self._backend.core
        hmks = [hot_key(self._scope, k) for k in wanted]
        async with core.locks.hold(hmks):
            await self._remove(wanted, core.clock())

    async def _remove(self, keys: list[str], now: float) -> None:
        backend = self._backend
        core = backend.core
        store = backend.store
        scope = self._scope
        hmks = [hot_key(scope, k) for k in keys]
        if backend.cache is not None:
            hot = backend.cache
            hstore: Any = hot.store
            marker = tombstone(now + core.policy.tombstone_ttl)
            items = [(hmk, marker) for hmk in hmks]
            try:
                await core.call(hot, "mset", lambda: hstore.mset(items), nkeys=len(items))
            except (TierError, InvalidInputError) as exc:
                core.mark_dirty(hmks)
                core.telemetry.fell_through(Tier.HOT, "delete", exc, None)
        targets: list[MemoryKey] = []
        if backend.large:
            found: list[StoredItem | None] = await backend.call(
                "get_many", lambda: store.get_many(scope, keys), nkeys=len(keys)
            )
            targets = [
                self._pointer_target(item.key, item.record)
                for item in found
                if item is not None and item.record.kind is RecordKind.POINTER
            ]
        await backend.call("delete", lambda: store.delete_many(scope, keys), nkeys=len(keys))
        if targets:
            cold = core.cold
            assert cold is not None
            cstore: Any = cold.store
            for cmk in targets:
                await core.call(cold, "delete", partial(cstore.delete, cmk), key=cmk)

    async def drop(self) -> int:
        """Delete every item of the collection on every tier (large values included); return how many.

        Pages of keys are removed one after another; an item ``put`` while ``drop`` runs may survive.
        """
        backend = self._backend
        store = backend.store
        scope = self._scope
        dropped = 0
        while True:
            keys: list[tuple[str, bool]] = await backend.call(
                "drop", lambda: _collect(store.keys(scope, None, DROP_PAGE))
            )
            if not keys:
                return dropped
            names = [k for k, _ in keys]
            hmks = [hot_key(scope, k) for k in names]
            async with backend.core.locks.hold(hmks):
                await self._remove(names, backend.core.clock())
            dropped += len(names)

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, key: str, default: Value = None) -> Value:
        """The item's value, or ``default`` when it is missing or expired. May be served by hot."""
        key = validate_key(key)
        values = await self._read_values([key])
        value = values.get(key, _MISSING)
        return default if value is _MISSING else value

    async def get_many(self, keys: Sequence[str]) -> dict[str, Value]:
        """Values by key, in input order; ``None`` for missing items. Hot first, then one store batch."""
        wanted = _keys_of(keys, "get_many")
        found = await self._read_values(wanted)
        return {k: found.get(k) for k in wanted}

    async def get_item(self, key: str) -> Item | None:
        """The item with its attrs, durable ETag and expiry, read from the durable tier (never hot)."""
        key = validate_key(key)
        backend = self._backend
        store = backend.store
        scope = self._scope
        stored: StoredItem | None = await backend.call("get", lambda: store.get(scope, key))
        now = backend.core.clock()
        if stored is None or stored.record.is_expired(now):
            return None
        items = await self._materialize([stored], now, promote=False)
        return items[0] if items else None

    async def _read_values(self, keys: list[str]) -> dict[str, Value]:
        backend = self._backend
        core = backend.core
        scope = self._scope
        now = core.clock()
        out: dict[str, Value] = {}
        pending = keys
        if backend.cache is not None and keys:
            pending = await self._read_hot(keys, now, out)
        if not pending:
            return out
        store = backend.store
        todo = pending
        found: list[StoredItem | None] = await backend.call(
            "get_many", lambda: store.get_many(scope, todo), nkeys=len(todo)
        )
        live = [s for s in found if s is not None and not s.record.is_expired(now)]
        for item in await self._materialize(live, now, promote=True):
            out[item.key] = item.value
        return out

    async def _read_hot(self, keys: list[str], now: float, out: dict[str, Value]) -> list[str]:
        """Serve what hot holds (a tombstone is a definitive miss, a fence reads through); return the rest."""
        core = self._backend.core
        hot = await core.hot_ready("get")
        if hot is None:
            return keys
        hstore: Any = hot.store
        hmks = [hot_key(self._scope, k) for k in keys]
        try:
            recs: list[Record | None] = await core.call(
                hot, "mget", lambda: hstore.mget(hmks), nkeys=len(hmks)
            )
        except TierError as exc:
            # Hot is a cache: an outage or one undecodable copy means reading through.
            if isinstance(exc, CorruptValueError):
                core.mark_dirty(hmks)
            core.telemetry.fell_through(Tier.HOT, "get", exc, None)
            return keys
        pending: list[str] = []
        for key, hmk, rec in zip(keys, hmks, recs, strict=True):
            if rec is None or rec.is_expired(now) or rec.kind is RecordKind.FENCE:
                pending.append(key)
            elif rec.kind is RecordKind.TOMBSTONE:
                continue
            else:
                try:
                    out[key] = core.codec.decode(rec)
                except TierMemError as exc:
                    core.telemetry.fell_through(Tier.HOT, "get", exc, None)
                    core.mark_dirty([hmk])
                    pending.append(key)
        return pending

    async def _materialize(self, stored: list[StoredItem], now: float, *, promote: bool) -> list[Item]:
        """Decode stored items (following pointers to cold) and optionally promote them to hot."""
        core = self._backend.core
        tier = self._backend.slot.tier
        pointers = [
            (hot_key(self._scope, s.key), s.record) for s in stored if s.record.kind is RecordKind.POINTER
        ]
        targets: dict[str, Record | None] = {}
        if pointers:
            fetched = await core.follow_pointers(pointers)
            targets = {hmk.key: rec for (hmk, _), rec in zip(pointers, fetched, strict=True)}
        items: list[Item] = []
        promotions: list[tuple[MemoryKey, Record]] = []
        for s in stored:
            hmk = hot_key(self._scope, s.key)
            if s.record.kind is RecordKind.POINTER:
                value_rec = targets.get(hmk.key)
                if value_rec is None:
                    continue  # a pointer without its object: a miss (logged by follow_pointers)
                value = core.decode(value_rec, Tier.COLD, hmk)
                value_rec = value_rec.with_expiry(s.record.expires_at)
            else:
                value_rec = s.record
                value = core.decode(value_rec, tier, hmk)
            promotions.append((hmk, value_rec))
            items.append(Item(s.key, value, s.attrs, s.etag, s.record.expires_at))
        if promote and self._backend.cache is not None and core.fresh(now):
            await core.promote(promotions, now)
        return items

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

        Runs on the durable tier only (never hot), paged internally, so any size streams in bounded
        memory. Arguments are validated here, before the first item is asked for.

        Raises:
            InvalidInputError: a bad prefix, bound, limit or ``where`` (raised by this call).
        """
        query = ItemQuery(
            now=0.0,
            prefix=_check_prefix(prefix),
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
            now = backend.core.clock()
            query = ItemQuery(
                now, template.prefix, template.after, template.before, template.reverse, template.where
            )
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - served)
            page: list[StoredItem] = await backend.call(
                "list", lambda q=query, c=cursor, n=size: store.list_page(scope, q, c, n), nkeys=size
            )
            live = [s for s in page if not s.record.is_expired(now)]
            for item in await self._materialize(live, now, promote=False):
                served += 1
                yield item
            if len(page) < size:
                return
            cursor = page[-1].key

    async def count(self, *, prefix: str = "", where: Mapping[str, Any] | None = None) -> int:
        """How many live items match (counted by the durable tier)."""
        backend = self._backend
        store = backend.store
        scope = self._scope
        query = ItemQuery(backend.core.clock(), prefix=_check_prefix(prefix), where=validate_where(where))
        n: int = await backend.call("count", lambda: store.count(scope, query))
        return n


_MISSING: Final = object()


async def _collect(source: AsyncIterator[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [entry async for entry in source]
