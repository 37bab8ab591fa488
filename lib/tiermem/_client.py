"""``MemoryClient``: one API over up to three tiers, with the policy the tiers do not own.

Reads cascade hot -> durable (warm, else cold) -> cold via pointer, and promote with
create-only writes (``SET NX``) so a promotion never overwrites a newer value. Writes go to the
durable tier first, then hot; a call that returns has reached the durable tier. Deletes leave a
short hot tombstone so a racing promotion cannot resurrect the value. Within one process, writes
to the same key are serialized (striped locks) so hot and warm agree; across processes two
concurrent writers of one key can leave hot holding the older value for at most ``hot_ttl``
(see docs/adr/0003-write-ordering.md).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import orjson

from tiermem._breaker import CircuitBreaker, CircuitState
from tiermem._codec import Codec, Record, RecordKind, Value, fence, make_record, tombstone
from tiermem._errors import (
    BatchWriteError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    InvalidScopeError,
    InvalidTTLError,
    TierError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
    key_digest,
)
from tiermem._keys import validate_key, validate_scope, validate_ttl
from tiermem._lifecycle import ClientState
from tiermem._protocols import ColdMemory, HotMemory, MemoryKey, Tier, TierStore, WarmMemory
from tiermem._telemetry import _NO_SPAN, Stats, Telemetry, logger
from tiermem.lifecycle._governance import Governance

if TYPE_CHECKING:
    from tiermem._collection import Collection
    from tiermem.lifecycle import ForgetReport, MaintainReport, RetentionPolicy, UsageReport

__all__ = ["CircuitOpenError", "Entry", "MemoryClient", "Policy", "TierOptions"]

_T = TypeVar("_T")
_LOCK_STRIPES: Final = 256


class CircuitOpenError(TierUnavailableError):
    """The tier's circuit breaker is open: the call was not attempted."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What the client does on top of the tiers. Every field has a safe default.

    Attributes:
        hot_ttl: cap (seconds) on how long any value stays in hot; bounds staleness. ``None`` = no cap.
        compress_min_bytes: gzip payloads at least this large (when it saves >= 10%).
        compress_level: gzip level (1: see docs/adr/0002-compression.md).
        hot_max_bytes: larger values are not cached in hot.
        warm_max_bytes: larger values go to cold, with a pointer in warm (Cosmos items max out at 2 MB).
        max_value_bytes: hard limit on any value (also bounds decompression).
        tombstone_ttl: how long a delete's hot tombstone lives (must outlast a racing read).
        negative_ttl: cache all-tier misses in hot for this long; ``None`` disables it.
        batch_concurrency: most tier calls in flight for one ``mset`` on tiers without batch writes.
        dirty_max_keys: bound on hot keys remembered for invalidation while hot is unreachable.
        record_keys: put raw keys in spans (off: a stable hash is recorded instead).
    """

    hot_ttl: float | None = 300.0
    compress_min_bytes: int = 4096
    compress_level: int = 1
    hot_max_bytes: int = 512 * 1024
    warm_max_bytes: int = 1024 * 1024  # base64 in Cosmos: 1 MiB -> ~1.4 MB of the 2 MB item limit
    max_value_bytes: int = 64 * 1024 * 1024
    tombstone_ttl: float = 5.0
    negative_ttl: float | None = None
    batch_concurrency: int = 16
    dirty_max_keys: int = 10_000
    record_keys: bool = False

    def __post_init__(self) -> None:
        for name in ("hot_ttl", "negative_ttl"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"policy {name} must be > 0 seconds or None, got {value!r}")
        if not self.tombstone_ttl > 0:
            raise ConfigurationError("policy tombstone_ttl must be > 0 seconds")
        if self.hot_max_bytes < 1 or self.warm_max_bytes < 1 or self.max_value_bytes < 1:
            raise ConfigurationError("policy size limits must be >= 1 byte")
        if self.batch_concurrency < 1 or self.dirty_max_keys < 1:
            raise ConfigurationError("policy batch_concurrency and dirty_max_keys must be >= 1")
        if self.compress_min_bytes < 0 or not 0 <= self.compress_level <= 9:
            raise ConfigurationError("policy compress_min_bytes must be >= 0 and compress_level 0..9")


@dataclass(frozen=True, slots=True)
class TierOptions:
    """Resilience settings for one tier.

    Attributes:
        timeout: deadline (seconds) for one tier call including the SDK's own retries; ``None`` = none.
        failure_threshold: consecutive unavailability failures that open the circuit.
        reset_timeout: seconds the circuit stays open before a half-open probe.
    """

    timeout: float | None = None
    failure_threshold: int = 5
    reset_timeout: float = 10.0


DEFAULT_TIER_OPTIONS: Final = {
    # No asyncio deadline on hot calls by default: redis-py's socket timeouts bound them, and a
    # deadline costs ~9 us per call (a timer-heap entry) on the path that must cost nothing.
    Tier.HOT: TierOptions(timeout=None),
    Tier.WARM: TierOptions(timeout=15.0),
    Tier.COLD: TierOptions(timeout=120.0),
}


@dataclass(frozen=True, slots=True)
class Entry:
    """A value with where it was served from and the durable tier's ETag (for ``if_match``)."""

    value: Value
    tier: Tier
    etag: str | None = None
    expires_at: float | None = None


class _Plan(enum.Enum):
    HOT_ONLY = "hot-only"  # no durable tier, or tier=HOT
    DURABLE = "durable"  # the durable tier holds the value (warm, or cold when there is no warm)
    LARGE = "large"  # cold holds the value, warm holds a pointer


@dataclass(slots=True)
class _Write:
    mk: MemoryKey
    record: Record
    plan: _Plan
    cache: bool  # write-through to hot (else invalidate hot)


@dataclass(slots=True)
class _Slot:
    tier: Tier
    store: TierStore
    options: TierOptions
    breaker: CircuitBreaker
    attrs: dict[str, Any] = field(default_factory=dict)


class _KeyLocks:
    """Striped per-key locks: bounded memory; batches take stripes in index order (no deadlock)."""

    def __init__(self) -> None:
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    @asynccontextmanager
    async def hold(self, keys: Iterable[MemoryKey]) -> AsyncIterator[None]:
        stripes = sorted({hash(mk) % _LOCK_STRIPES for mk in keys})
        taken: list[asyncio.Lock] = []
        try:
            for i in stripes:
                await self._locks[i].acquire()
                taken.append(self._locks[i])
            yield
        finally:
            for lock in reversed(taken):
                lock.release()


def _cold_key(mk: MemoryKey, version: str) -> MemoryKey:
    """Where one version of a large value lives in cold. The NUL separator cannot occur in a valid key,
    so versions never collide with user keys, and every write gets a fresh object: a write that
    loses its warm precondition can never destroy the committed version (ADR 0005)."""
    return MemoryKey(mk.tenant, mk.namespace, f"{mk.key}\x00{version}")


def _pointer(record: Record, version: str) -> Record:
    digest = hashlib.sha256(record.payload).hexdigest()
    body = orjson.dumps({"size": len(record.payload), "sha256": digest, "crc": record.checksum, "v": version})
    return make_record(RecordKind.POINTER, body, expires_at=record.expires_at)


def _pointer_meta(mk: MemoryKey, ptr: Record) -> tuple[MemoryKey, str | None]:
    """The cold key a warm pointer refers to, and the sha256 it promises."""
    try:
        meta = orjson.loads(ptr.payload)
        version = meta.get("v")
        digest = meta.get("sha256")
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise CorruptValueError(
            "warm pointer does not parse", tier=Tier.WARM, operation="get", key=mk.key
        ) from exc
    target = _cold_key(mk, version) if isinstance(version, str) else mk
    return target, digest if isinstance(digest, str) else None


class _Core:
    """State shared by a client and every scoped view of it: tiers, codec, policy, telemetry."""

    def __init__(
        self,
        *,
        hot: HotMemory | None,
        warm: WarmMemory | None,
        cold: ColdMemory | None,
        policy: Policy,
        tier_options: Mapping[Tier, TierOptions],
        owned: Sequence[Any],
        clock: Callable[[], float],
        telemetry: Telemetry,
        governance: Governance | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.telemetry = telemetry
        self.codec = Codec(
            compress_min_bytes=policy.compress_min_bytes,
            compress_level=policy.compress_level,
            max_value_bytes=policy.max_value_bytes,
        )
        self.hot = self._slot(Tier.HOT, hot, tier_options)
        self.warm = self._slot(Tier.WARM, warm, tier_options)
        self.cold = self._slot(Tier.COLD, cold, tier_options)
        self.durable = self.warm or self.cold
        self.slots = [s for s in (self.hot, self.warm, self.cold) if s is not None]
        self.owned = list(owned)
        self.state = ClientState.OPEN
        self.locks = _KeyLocks()
        self.dirty: OrderedDict[MemoryKey, int] = OrderedDict()  # key -> generation when marked
        self.dirty_generation = 0
        self.flushing = False
        self.hot_bypass_until = 0.0
        self.governance = (governance or Governance(record_keys=policy.record_keys)).bind(self)
        self.governance.reconciler = self._reconcile
        telemetry.register_gauges(self)

    @staticmethod
    def _slot(tier: Tier, store: TierStore | None, options: Mapping[Tier, TierOptions]) -> _Slot | None:
        if store is None:
            return None
        opts = options.get(tier, DEFAULT_TIER_OPTIONS[tier])
        info = store.info
        attrs: dict[str, Any] = {"tiermem.tier": tier.value, "db.system": info.db_system}
        if info.server_address:
            attrs["server.address"] = info.server_address
        breaker = CircuitBreaker(failure_threshold=opts.failure_threshold, reset_timeout=opts.reset_timeout)
        return _Slot(tier, store, opts, breaker, attrs)

    async def _reconcile(self, tenant: str) -> None:
        from tiermem.lifecycle._usage import reconcile

        await reconcile(self, tenant)

    # -- observability callbacks -------------------------------------------------------------------

    def gauge_circuits(self) -> dict[str, int]:
        """Breaker states for the ``tiermem.circuit.state`` gauge (nothing once closed)."""
        if self.state is ClientState.CLOSED:
            return {}
        return {s.tier.value: int(s.breaker.state) for s in self.slots}

    def gauge_dirty(self) -> int:
        return 0 if self.state is ClientState.CLOSED else len(self.dirty)

    def circuits(self) -> dict[str, str]:
        return {s.tier.value: s.breaker.state.name.lower().replace("_", "-") for s in self.slots}

    # -- the one place every tier call goes through -----------------------------------------------

    async def call(
        self,
        slot: _Slot,
        operation: str,
        fn: Callable[[], Awaitable[_T]],
        *,
        key: MemoryKey | None = None,
        nkeys: int = 1,
        outcome: Callable[[_T], str] | None = None,
    ) -> _T:
        """Run one tier call with breaker, timeout, span and metrics; translate timeouts."""
        if self.state is ClientState.CLOSED:
            raise ClientClosedError("MemoryClient is closed", operation=operation)
        breaker = slot.breaker
        tier = slot.tier
        if not breaker.allow():
            self.telemetry.record(tier, operation, "error", 0.0)
            raise CircuitOpenError(
                "circuit breaker open", tier=tier, operation=operation, key=key.key if key else None
            )
        telemetry = self.telemetry
        start = time.perf_counter()
        if telemetry.tracing:
            attrs = slot.attrs if nkeys == 1 else {**slot.attrs, "tiermem.keys": nkeys}
            context = telemetry.span(f"tiermem.{tier.value}.{operation}", attrs, client=True)
        else:
            context = _NO_SPAN
        with context as span:
            try:
                timeout = slot.options.timeout
                if timeout is None:
                    result = await fn()
                else:
                    async with asyncio.timeout(timeout):
                        result = await fn()
            except TimeoutError as exc:
                self._breaker_failure(slot, operation, exc)
                telemetry.record(tier, operation, "error", time.perf_counter() - start)
                raise TierUnavailableError(
                    f"timed out after {slot.options.timeout}s",
                    tier=tier,
                    operation=operation,
                    key=key.key if key else None,
                ) from exc
            except TierUnavailableError as exc:
                self._breaker_failure(slot, operation, exc)
                telemetry.record(tier, operation, "error", time.perf_counter() - start)
                raise
            except BatchWriteError as exc:
                if exc.failed and all(isinstance(e, TierUnavailableError) for e in exc.failed.values()):
                    self._breaker_failure(slot, operation, exc)  # nothing got through: an outage
                else:
                    breaker.success()
                telemetry.record(tier, operation, "error", time.perf_counter() - start)
                raise
            except TierMemError:
                breaker.success()  # the tier answered; the answer was a failure (conflict, corrupt...)
                telemetry.record(tier, operation, "error", time.perf_counter() - start)
                raise
            except BaseException:
                breaker.release()
                raise
            breaker.success()
            kind = outcome(result) if outcome is not None else "ok"
            telemetry.record(tier, operation, kind, time.perf_counter() - start)
            if span is not None and outcome is not None and nkeys == 1:
                span.set_attribute("tiermem.hit", kind == "hit")
            return result

    def _breaker_failure(self, slot: _Slot, operation: str, exc: BaseException) -> None:
        if slot.breaker.failure():
            logger.warning(
                "circuit breaker opened for the %s tier after %s: %s; calls skip it for %ss",
                slot.tier.value,
                operation,
                exc,
                slot.options.reset_timeout,
            )

    # -- hot-tier health: dirty keys and bypass ----------------------------------------------------

    def mark_dirty(self, keys: Iterable[MemoryKey]) -> None:
        """Remember hot keys that may hold stale values; they are fenced before hot is read again."""
        self.dirty_generation += 1
        for mk in keys:
            self.dirty[mk] = self.dirty_generation
        if len(self.dirty) > self.policy.dirty_max_keys:
            # Too many to remember: every hot value expires within hot_ttl, so skipping hot reads
            # for that long guarantees nothing stale is served after recovery.
            self.dirty.clear()
            ttl = self.policy.hot_ttl
            self.hot_bypass_until = float("inf") if ttl is None else time.monotonic() + ttl
            self.telemetry.dirty_overflow()
            logger.error(
                "dirty-key set overflowed (%d keys): bypassing hot reads for %s",
                self.policy.dirty_max_keys,
                "the life of this client (set policy hot_ttl to bound it)" if ttl is None else f"{ttl}s",
            )

    async def hot_ready(self, operation: str) -> _Slot | None:
        """The hot slot if it may be read now: no bypass in force and pending invalidations flushed."""
        hot = self.hot
        if hot is None or (self.hot_bypass_until and time.monotonic() < self.hot_bypass_until):
            return None
        if self.dirty:
            if self.flushing:
                return None  # another task is fencing the dirty keys: read through meanwhile
            pending = dict(self.dirty)
            marker = fence(self.clock() + self.policy.tombstone_ttl)
            items = [(mk, marker) for mk in pending]
            store: Any = hot.store
            self.flushing = True
            try:
                await self.call(hot, "mset", lambda: store.mset(items), nkeys=len(items))
            except (TierError, InvalidInputError) as exc:
                self.telemetry.fell_through(Tier.HOT, operation, exc, None)
                return None
            finally:
                self.flushing = False
            for mk, generation in pending.items():
                if self.dirty.get(mk) == generation:  # re-marked during the flush: keep it
                    del self.dirty[mk]
        return hot

    async def hot_write(self, operation: str, writes: Sequence[_Write], now: float) -> None:
        """Write-through (or invalidate) hot after the durable write; failures become dirty keys."""
        hot = self.hot
        if hot is None or not writes:
            return
        store: Any = hot.store
        marker = fence(now + self.policy.tombstone_ttl)
        items = [(w.mk, self.hot_record(w.record, now) if w.cache else marker) for w in writes]
        try:
            if len(items) == 1:
                mk, rec = items[0]
                await self.call(hot, "set", lambda: store.set(mk, rec), key=mk)
            else:
                await self.call(hot, "mset", lambda: store.mset(items), nkeys=len(items))
        except (TierError, InvalidInputError) as exc:
            # The durable write stands; hot may now be stale for these keys until we can delete them.
            self.mark_dirty([w.mk for w in writes])
            self.telemetry.fell_through(Tier.HOT, operation, exc, None)

    async def invalidate_hot(self, keys: Sequence[MemoryKey]) -> None:
        """Fence hot copies whose durable write has an unknown outcome (it timed out, it may have landed)."""
        hot = self.hot
        if hot is None or not keys:
            return
        store: Any = hot.store
        marker = fence(self.clock() + self.policy.tombstone_ttl)
        items = [(mk, marker) for mk in keys]
        try:
            await self.call(hot, "mset", lambda: store.mset(items), nkeys=len(items))
        except (TierError, InvalidInputError) as exc:
            self.mark_dirty(keys)
            self.telemetry.fell_through(Tier.HOT, "invalidate", exc, None)

    def hot_record(self, record: Record, now: float) -> Record:
        """The record as cached in hot: expiry capped by ``hot_ttl``, never past the value's own."""
        ttl = self.policy.hot_ttl
        if ttl is None:
            return record
        cap = now + ttl
        if record.expires_at is not None and record.expires_at <= cap:
            return record
        return record.with_expiry(cap)

    async def promote(self, items: Sequence[tuple[MemoryKey, Record]], now: float) -> int:
        """Create-only copies into hot; a newer value or tombstone already there wins."""
        hot = self.hot
        if hot is None or not items or (self.hot_bypass_until and time.monotonic() < self.hot_bypass_until):
            return 0
        limit = self.policy.hot_max_bytes
        todo = [(mk, self.hot_record(rec, now)) for mk, rec in items if rec.size <= limit]
        if not todo:
            return 0
        store: Any = hot.store
        try:
            await self.call(hot, "promote", lambda: store.mset(todo, if_absent=True), nkeys=len(todo))
        except (TierError, InvalidInputError) as exc:
            self.telemetry.fell_through(Tier.HOT, "promote", exc, None)
            return 0
        self.telemetry.promoted(Tier.HOT, len(todo))
        return len(todo)

    async def negative_cache(self, keys: Sequence[MemoryKey], now: float) -> None:
        ttl = self.policy.negative_ttl
        hot = self.hot
        if ttl is None or hot is None or not keys:
            return
        marker = tombstone(now + ttl)
        store: Any = hot.store
        items = [(mk, marker) for mk in keys]
        try:
            await self.call(hot, "mset", lambda: store.mset(items, if_absent=True), nkeys=len(items))
        except (TierError, InvalidInputError) as exc:
            self.telemetry.fell_through(Tier.HOT, "negative-cache", exc, None)

    # -- reading -----------------------------------------------------------------------------------

    def decode(self, record: Record, tier: Tier, mk: MemoryKey) -> Value:
        try:
            return self.codec.decode(record)
        except CorruptValueError as exc:
            raise CorruptValueError(exc.message, tier=tier, operation="get", key=mk.key) from exc

    async def read(self, mk: MemoryKey, *, use_hot: bool = True, promote: bool = True) -> Entry | None:
        now = self.clock()
        hot = await self.hot_ready("get") if use_hot else None
        if hot is not None:
            store: Any = hot.store
            try:
                rec: Record | None = await self.call(
                    hot, "get", lambda: store.get(mk), key=mk, outcome=_hit_outcome
                )
            except CorruptValueError as exc:
                await self._drop_corrupt_hot(mk, exc)
            except TierError as exc:
                if self.durable is None:
                    raise  # hot is the only tier: an outage is an error, never a miss
                self.telemetry.fell_through(Tier.HOT, "get", exc, None)
            else:
                if rec is not None and not rec.is_expired(now) and rec.kind is not RecordKind.FENCE:
                    if rec.kind is RecordKind.TOMBSTONE:
                        return None
                    try:
                        value = self.codec.decode(rec)
                    except CorruptValueError as exc:
                        await self._drop_corrupt_hot(mk, exc)
                    else:
                        return Entry(value, Tier.HOT, None, rec.expires_at)
        durable = self.durable
        if durable is None:
            return None
        dstore: Any = durable.store
        rec = await self.call(durable, "get", lambda: dstore.get(mk), key=mk, outcome=_hit_outcome)
        if rec is None or rec.is_expired(now) or rec.kind is RecordKind.TOMBSTONE:
            await self.negative_cache([mk], now)
            return None
        etag = rec.etag
        source = durable.tier
        if rec.kind is RecordKind.POINTER:
            target = await self.follow_pointers([(mk, rec)])
            value_rec = target[0]
            if value_rec is None:
                return None
            source = Tier.COLD
            expires_at = rec.expires_at
        else:
            value_rec, expires_at = rec, rec.expires_at
        value = self.decode(value_rec, source, mk)
        if promote and self.fresh(now) and await self.promote([(mk, value_rec.with_expiry(expires_at))], now):
            self.telemetry.annotate("tiermem.promoted", 1)
        return Entry(value, source, etag, expires_at)

    def fresh(self, started: float) -> bool:
        """Whether a read that started at ``started`` may still promote: a read slower than the
        tombstone TTL could be promoting a value deleted meanwhile, whose tombstone has expired."""
        return self.clock() - started < self.policy.tombstone_ttl

    async def _drop_corrupt_hot(self, mk: MemoryKey, exc: CorruptValueError) -> None:
        # Hot is a cache of the durable tier: a damaged copy is removed and the durable copy read.
        logger.warning("corrupt value in hot tier, deleting it and reading through: %s", exc)
        self.mark_dirty([mk])

    async def follow_pointers(self, pointers: Sequence[tuple[MemoryKey, Record]]) -> list[Record | None]:
        """Fetch the cold records that warm pointers refer to (bounded concurrency in the adapter)."""
        cold = self.cold
        if cold is None:
            raise ConfigurationError(
                "a warm item points to the cold tier, but no cold tier is configured", tier=Tier.WARM
            )
        store: Any = cold.store
        targets = [_pointer_meta(mk, ptr) for mk, ptr in pointers]
        keys = [target for target, _ in targets]
        if len(keys) == 1:
            mk0 = keys[0]
            found: list[Record | None] = [
                await self.call(cold, "get", lambda: store.get(mk0), key=mk0, outcome=_hit_outcome)
            ]
        else:
            found = await self.call(cold, "mget", lambda: store.mget(keys), nkeys=len(keys))
        out: list[Record | None] = []
        for (mk, _), (_, digest), rec in zip(pointers, targets, found, strict=True):
            if rec is None:
                logger.warning("warm pointer without a cold object (deleted concurrently?): key#%s", _h(mk))
                out.append(None)
                continue
            if digest is not None and hashlib.sha256(rec.payload).hexdigest() != digest:
                # Every version has its own object, so a mismatch is damage, not a concurrent write.
                raise CorruptValueError(
                    "cold object does not match its warm pointer's sha256",
                    tier=Tier.COLD,
                    operation="get",
                    key=mk.key,
                )
            out.append(rec)
        return out

    async def discard_cold(self, keys: Sequence[MemoryKey]) -> None:
        """Best-effort removal of cold versions nothing points to any more (sweep and lifecycle rules
        are the backstop): failures are logged, never raised, because the caller's write stands."""
        cold = self.cold
        if cold is None or not keys:
            return
        store: Any = cold.store

        async def discard(mk: MemoryKey) -> None:
            try:
                await self.call(cold, "delete", lambda: store.delete(mk), key=mk)
            except TierMemError as exc:
                logger.warning("could not remove an unreferenced cold version (left for sweep): %s", exc)

        for mk in keys:
            await discard(mk)


def _hit_outcome(record: Record | None) -> str:
    return "miss" if record is None or record.kind in _MARKERS else "hit"


_MARKERS: Final = frozenset({RecordKind.TOMBSTONE, RecordKind.FENCE})


def _h(mk: MemoryKey) -> str:
    return key_digest(mk.key)


class MemoryClient:
    """Three-tier memory behind one small async API. Build it with :class:`tiermem.MemoryBuilder`.

    Keys are scoped by tenant and namespace; :meth:`scoped` returns a view with the same API
    that can only reach its own scope. The client owns the tiers given to the builder and
    closes them in :meth:`aclose`; credentials injected into adapters stay open.
    """

    def __init__(
        self, core: _Core, *, tenant: str, namespace: str, root: bool = True, tenant_locked: bool = False
    ) -> None:
        self._core = core
        self._tenant = validate_scope(tenant, "tenant")
        self._namespace = validate_scope(namespace, "namespace")
        self._root = root
        self._tenant_locked = tenant_locked

    # -- scope --------------------------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def policy(self) -> Policy:
        return self._core.policy

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The configured tiers, fastest first."""
        return tuple(s.tier for s in self._core.slots)

    @property
    def tenant_locked(self) -> bool:
        """Whether views of this client may only change namespace, never tenant."""
        return self._tenant_locked

    def scoped(
        self, *, tenant: str | None = None, namespace: str | None = None, lock_tenant: bool = False
    ) -> MemoryClient:
        """A view limited to one tenant/namespace. Closing a view does not close the client.

        Args:
            lock_tenant: the view (and every view made from it) can never switch tenant; hand such a
                view to agents and request handlers so they cannot reach other tenants.

        Raises:
            InvalidScopeError: bad tenant/namespace, or a tenant change on a tenant-locked view.
        """
        if self._tenant_locked and tenant is not None and tenant != self._tenant:
            raise InvalidScopeError("this memory view is locked to its tenant", operation="scoped")
        return MemoryClient(
            self._core,
            tenant=self._tenant if tenant is None else tenant,
            namespace=self._namespace if namespace is None else namespace,
            root=False,
            tenant_locked=self._tenant_locked or lock_tenant,
        )

    def _key(self, key: str) -> MemoryKey:
        # Tenant and namespace were validated when this view was made; only the key is new.
        return MemoryKey(self._tenant, self._namespace, validate_key(key))

    def _span(self, name: str, nkeys: int, key: str | None = None) -> Any:
        telemetry = self._core.telemetry
        if not telemetry.tracing:
            return _NO_SPAN
        attrs: dict[str, Any] = {"tiermem.tenant": self._tenant, "tiermem.namespace": self._namespace}
        if nkeys != 1:
            attrs["tiermem.keys"] = nkeys
        if key is not None:
            attrs["tiermem.key"] = telemetry.key_attr(key)
        return telemetry.span(name, attrs)

    # -- reads --------------------------------------------------------------------------------------

    async def get(self, key: str, default: Value = None) -> Value:
        """The value, or ``default`` on a miss. Cascades hot -> warm -> cold and promotes.

        Raises:
            InvalidInputError: the key is invalid (nothing was read).
            TierUnavailableError: the durable tier could not be reached.
            CorruptValueError: the stored value failed its integrity check.
        """
        mk = self._key(key)
        with self._span("tiermem.get", 1, key) as span:
            entry = await self._core.read(mk)
            if span is not None:
                span.set_attribute("tiermem.hit", entry is not None)
                if entry is not None:
                    span.set_attribute("tiermem.tier", entry.tier.value)
        return default if entry is None else entry.value

    async def get_entry(self, key: str, *, consistent: bool = False) -> Entry | None:
        """Value plus the tier it came from and the durable ETag.

        Args:
            consistent: skip hot and read the durable tier, so the ETag is current (for ``if_match``).
        """
        mk = self._key(key)
        with self._span("tiermem.get", 1, key):
            return await self._core.read(mk, use_hot=not consistent, promote=not consistent)

    async def exists(self, key: str) -> bool:
        """Whether a live value exists (tombstones and expired values count as absent)."""
        mk = self._key(key)
        core = self._core
        with self._span("tiermem.exists", 1, key):
            now = core.clock()
            hot = await core.hot_ready("exists")
            if hot is not None:
                hstore: Any = hot.store
                try:
                    rec = await core.call(hot, "get", lambda: hstore.get(mk), key=mk, outcome=_hit_outcome)
                except CorruptValueError as exc:
                    await core._drop_corrupt_hot(mk, exc)
                except TierError as exc:
                    if core.durable is None:
                        raise  # hot is the only tier: an outage is an error, never "absent"
                    core.telemetry.fell_through(Tier.HOT, "exists", exc, None)
                else:
                    if rec is not None and not rec.is_expired(now) and rec.kind is not RecordKind.FENCE:
                        return rec.kind is not RecordKind.TOMBSTONE
            durable = core.durable
            if durable is None:
                return False
            dstore: Any = durable.store
            # The tier's own exists checks expiry without downloading the value (a blob, a 1 MB item).
            found: bool = await core.call(durable, "exists", lambda: dstore.exists(mk), key=mk)
            return found

    async def mget(self, keys: Sequence[str]) -> dict[str, Value]:
        """Many values in one round trip per tier; misses map to ``None``; keys keep input order.

        Hot ``MGET`` -> durable batch read (Cosmos ReadMany) for the misses -> cold for pointers,
        then every promotion in one hot batch.
        """
        if isinstance(keys, str):
            raise InvalidInputError("mget takes a sequence of keys, not one string")
        mks = list(dict.fromkeys(self._key(k) for k in keys))
        core = self._core
        out: dict[str, Value] = {mk.key: None for mk in mks}
        if not mks:
            return out
        with self._span("tiermem.mget", len(mks)) as span:
            now = core.clock()
            pending = mks
            hot = await core.hot_ready("mget")
            if hot is not None:
                hstore: Any = hot.store
                try:
                    recs: list[Record | None] = await core.call(
                        hot, "mget", lambda: hstore.mget(mks), nkeys=len(mks)
                    )
                except CorruptValueError as exc:
                    # One undecodable hot value fails the whole MGET; hot is a cache: drop it, read through.
                    core.mark_dirty(mk for mk in mks if key_digest(mk.key) == exc.key_hash)
                    core.telemetry.fell_through(Tier.HOT, "mget", exc, span)
                except TierError as exc:
                    if core.durable is None:
                        raise  # hot is the only tier: an outage is an error, never a miss
                    core.telemetry.fell_through(Tier.HOT, "mget", exc, span)
                else:
                    pending = []
                    hits = 0
                    for mk, rec in zip(mks, recs, strict=True):
                        if rec is None or rec.is_expired(now) or rec.kind is RecordKind.FENCE:
                            pending.append(mk)
                        elif rec.kind is RecordKind.TOMBSTONE:
                            hits += 1
                        else:
                            try:
                                out[mk.key] = core.codec.decode(rec)
                                hits += 1
                            except CorruptValueError as exc:
                                await core._drop_corrupt_hot(mk, exc)
                                pending.append(mk)
                    core.telemetry.count_keys(Tier.HOT, hits, len(pending))
            durable = core.durable
            promotions: list[tuple[MemoryKey, Record]] = []
            if pending and durable is not None:
                dstore: Any = durable.store
                todo = pending
                drecs: list[Record | None] = await core.call(
                    durable, "mget", lambda: dstore.mget(todo), nkeys=len(todo)
                )
                pointers: list[tuple[MemoryKey, Record]] = []
                misses: list[MemoryKey] = []
                for mk, rec in zip(pending, drecs, strict=True):
                    if rec is None or rec.is_expired(now) or rec.kind is RecordKind.TOMBSTONE:
                        misses.append(mk)
                    elif rec.kind is RecordKind.POINTER:
                        pointers.append((mk, rec))
                    else:
                        out[mk.key] = core.decode(rec, durable.tier, mk)
                        promotions.append((mk, rec))
                if pointers:
                    found = await core.follow_pointers(pointers)
                    for (mk, ptr), crec in zip(pointers, found, strict=True):
                        if crec is not None:
                            out[mk.key] = core.decode(crec, Tier.COLD, mk)
                            promotions.append((mk, crec.with_expiry(ptr.expires_at)))
                core.telemetry.count_keys(durable.tier, len(pending) - len(misses), len(misses))
                await core.negative_cache(misses, now)
            promoted = await core.promote(promotions, now) if core.fresh(now) else 0
            if span is not None:
                span.set_attribute("tiermem.promoted", promoted)
        return out

    # -- writes -------------------------------------------------------------------------------------

    def _plan(self, mk: MemoryKey, record: Record, tier: Tier | None, ttl: float | None) -> _Write:
        core = self._core
        policy = core.policy
        size = record.size
        if tier is not None and not isinstance(tier, Tier):
            raise InvalidInputError(f"tier must be a tiermem.Tier, not {type(tier).__name__}")
        if tier is Tier.HOT or (tier is None and core.durable is None):
            if core.hot is None:
                raise ConfigurationError("tier=HOT needs a hot tier", operation="set", key=mk.key)
            if tier is Tier.HOT and ttl is None:
                raise InvalidTTLError("values pinned to the hot tier must carry a ttl", key=mk.key)
            if size > policy.hot_max_bytes:
                raise ValueTooLargeError(
                    f"value is {size} bytes; the hot tier takes at most hot_max_bytes={policy.hot_max_bytes}",
                    size=size,
                    limit=policy.hot_max_bytes,
                    tier=Tier.HOT,
                    operation="set",
                    key=mk.key,
                )
            return _Write(mk, record, _Plan.HOT_ONLY, cache=True)
        if tier is Tier.WARM:
            if core.warm is None:
                raise ConfigurationError("tier=WARM needs a warm tier", operation="set", key=mk.key)
            if size > policy.warm_max_bytes:
                raise ValueTooLargeError(
                    f"value is {size} bytes; the warm tier takes at most "
                    f"warm_max_bytes={policy.warm_max_bytes}",
                    size=size,
                    limit=policy.warm_max_bytes,
                    tier=Tier.WARM,
                    operation="set",
                    key=mk.key,
                )
            return _Write(mk, record, _Plan.DURABLE, cache=False)
        if tier is Tier.COLD:
            if core.cold is None:
                raise ConfigurationError("tier=COLD needs a cold tier", operation="set", key=mk.key)
            plan = _Plan.LARGE if core.warm is not None else _Plan.DURABLE
            return _Write(mk, record, plan, cache=False)
        # Default: durable tier, with large values in cold behind a warm pointer.
        if core.warm is not None and size > policy.warm_max_bytes:
            if core.cold is None:
                raise ValueTooLargeError(
                    f"value is {size} bytes, above warm_max_bytes={policy.warm_max_bytes}, "
                    "and no cold tier is configured to hold it",
                    size=size,
                    limit=policy.warm_max_bytes,
                    tier=Tier.WARM,
                    operation="set",
                    key=mk.key,
                )
            return _Write(mk, record, _Plan.LARGE, cache=size <= policy.hot_max_bytes)
        return _Write(mk, record, _Plan.DURABLE, cache=core.hot is not None and size <= policy.hot_max_bytes)

    def _encode(self, value: Value, expires_at: float | None, mk: MemoryKey) -> Record:
        core = self._core
        try:
            record, raw = core.codec.encode(value, expires_at=expires_at)
        except InvalidInputError as exc:
            exc.key_hash = exc.key_hash or _h(mk)
            raise
        if record.compressed:
            core.telemetry.compressed(raw, len(record.payload))
        return record

    async def set(
        self,
        key: str,
        value: Value,
        *,
        ttl: float | None = None,
        tier: Tier | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        """Store a value. Returns once the durable tier has it; returns the durable ETag if any.

        Args:
            ttl: seconds until the value expires on every tier; ``None`` keeps it until deleted.
            tier: pin to one tier with no write-through (``HOT`` needs a ttl; ``COLD`` for archives).
            if_match: only write if the durable item still has this ETag (see :meth:`get_entry`).
            if_absent: only write if no live value exists (create-only; an expired value does not count).

        Raises:
            InvalidInputError: bad key, value or ttl; ``ValueTooLargeError`` when no tier can hold it.
            ConflictError: ``if_match`` did not match, or ``if_absent`` and the key exists.
            TierUnavailableError: the durable tier could not be reached; nothing is reported written.
        """
        mk = self._key(key)
        ttl_s = validate_ttl(ttl)
        core = self._core
        with self._span("tiermem.set", 1, key) as span:
            now = core.clock()
            record = self._encode(value, None if ttl_s is None else now + ttl_s, mk)
            write = self._plan(mk, record, tier, ttl_s)
            if if_match is not None and if_absent:
                raise InvalidInputError("use either if_match or if_absent", operation="set", key=key)
            if if_match is not None and write.plan is _Plan.HOT_ONLY:
                raise InvalidInputError("if_match needs a durable tier", operation="set", key=key)
            if span is not None:
                span.set_attribute("tiermem.bytes", record.size)
                span.set_attribute("tiermem.compressed", record.compressed)
            async with core.locks.hold((mk,)):
                gov = core.governance
                if not gov.watching:
                    return await self._write_one(write, now, if_match, if_absent)
                writes = ((mk.key, record.size),)
                async with gov.guard("set", mk.tenant, mk.namespace, writes, self._existing):
                    return await self._write_one(write, now, if_match, if_absent)

    async def _write_one(self, w: _Write, now: float, if_match: str | None, if_absent: bool) -> str | None:
        core = self._core
        mk = w.mk
        if w.plan is _Plan.HOT_ONLY:
            hot = core.hot
            assert hot is not None
            hstore: Any = hot.store
            rec = w.record if core.durable is not None else core.hot_record(w.record, now)
            await core.call(hot, "set", lambda: hstore.set(mk, rec, if_absent=if_absent), key=mk)
            return None
        try:
            etag = await self._write_durable(w, if_match, if_absent)
        except TierUnavailableError:
            await core.invalidate_hot([mk])  # the write may have landed: never leave the old value in hot
            raise
        except asyncio.CancelledError:
            core.mark_dirty(
                [mk]
            )  # cancelled mid-write: it may still land, so hot must not vouch for the old value
            raise
        try:
            await core.hot_write("set", [w], now)
        except asyncio.CancelledError:
            core.mark_dirty([mk])
            raise
        return etag

    async def _write_durable(self, w: _Write, if_match: str | None, if_absent: bool) -> str | None:
        core = self._core
        mk = w.mk
        etag: str | None
        if w.plan is _Plan.LARGE:
            cold, warm = core.cold, core.warm
            assert cold is not None
            assert warm is not None
            cstore: Any = cold.store
            wstore: Any = warm.store
            if if_absent and await core.call(warm, "exists", lambda: wstore.exists(mk), key=mk):
                raise ConflictError("key already exists", tier=Tier.WARM, operation="set", key=mk.key)
            # The previous version (if any) is removed only after the new pointer is committed.
            previous: Record | None = await core.call(warm, "get", lambda: wstore.get(mk), key=mk)
            version = secrets.token_hex(8)
            cmk = _cold_key(mk, version)
            await core.call(cold, "set", lambda: cstore.set(cmk, w.record), key=cmk)
            ptr = _pointer(w.record, version)
            try:
                etag = await core.call(
                    warm, "set", lambda: wstore.set(mk, ptr, if_match=if_match, if_absent=if_absent), key=mk
                )
            except TierUnavailableError:
                raise  # the pointer may have landed: keep the new version it would point to
            except TierMemError:
                await core.discard_cold([cmk])  # refused (conflict, too large...): nothing points to it
                raise
            if previous is not None and previous.kind is RecordKind.POINTER:
                old_key, _ = _pointer_meta(mk, previous)
                if old_key != cmk:
                    await core.discard_cold([old_key])
        else:
            durable = core.durable
            assert durable is not None
            dstore: Any = durable.store
            etag = await core.call(
                durable,
                "set",
                lambda: dstore.set(mk, w.record, if_match=if_match, if_absent=if_absent),
                key=mk,
            )
        return etag

    async def mset(
        self,
        items: Mapping[str, Value] | Sequence[tuple[str, Value]],
        *,
        ttl: float | None = None,
        tier: Tier | None = None,
    ) -> None:
        """Store many values. Every item is validated before anything is written.

        Not atomic across keys (Cosmos has no cross-partition transaction).

        Raises:
            InvalidInputError: some item is invalid; nothing was written.
            BatchWriteError: some durable writes failed; ``written`` and ``failed`` say which.
        """
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        ttl_s = validate_ttl(ttl)
        core = self._core
        with self._span("tiermem.mset", len(pairs)) as span:
            now = core.clock()
            expires_at = None if ttl_s is None else now + ttl_s
            writes: dict[MemoryKey, _Write] = {}
            for key, value in pairs:
                mk = self._key(key)
                writes[mk] = self._plan(mk, self._encode(value, expires_at, mk), tier, ttl_s)
            if not writes:
                return
            if span is not None:
                span.set_attribute("tiermem.bytes", sum(w.record.size for w in writes.values()))
            async with core.locks.hold(writes):
                gov = core.governance
                if not gov.watching:
                    await self._write_many(list(writes.values()), now)
                    return
                charged = [(w.mk.key, w.record.size) for w in writes.values()]
                async with gov.guard("mset", self._tenant, self._namespace, charged, self._existing):
                    await self._write_many(list(writes.values()), now)

    async def _write_many(self, writes: list[_Write], now: float) -> None:
        try:
            await self._write_batches(writes, now)
        except asyncio.CancelledError:
            self._core.mark_dirty([w.mk for w in writes])  # cancelled mid-batch: writes may still land
            raise

    async def _write_batches(self, writes: list[_Write], now: float) -> None:
        core = self._core
        hot_only = [w for w in writes if w.plan is _Plan.HOT_ONLY]
        durable = [w for w in writes if w.plan is _Plan.DURABLE]
        large = [w for w in writes if w.plan is _Plan.LARGE]
        failed: dict[str, BaseException] = {}
        ok: list[_Write] = []

        async def batch(slot: _Slot | None, entries: list[tuple[_Write, MemoryKey, Record]]) -> list[_Write]:
            """One batch write; returns the writes that landed and records the failures by logical key."""
            if slot is None or not entries:
                return [w for w, _, _ in entries]
            store: Any = slot.store
            items = [(tk, r) for _, tk, r in entries]
            try:
                await core.call(slot, "mset", lambda: store.mset(items), nkeys=len(items))
            except BatchWriteError as exc:
                written = set(exc.written)
                for w, tk, _ in entries:
                    if tk.key in exc.failed:
                        failed[w.mk.key] = exc.failed[tk.key]
                return [w for w, tk, _ in entries if tk.key in written]
            except TierError as exc:
                for w, _, _ in entries:
                    failed[w.mk.key] = exc
                return []
            return [w for w, _, _ in entries]

        if hot_only:
            await batch(
                core.hot,
                [
                    (w, w.mk, w.record if core.durable is not None else core.hot_record(w.record, now))
                    for w in hot_only
                ],
            )
        if durable:
            ok += await batch(core.durable, [(w, w.mk, w.record) for w in durable])
        if large:
            versions = {w.mk: _cold_key(w.mk, secrets.token_hex(8)) for w in large}
            stored = await batch(core.cold, [(w, versions[w.mk], w.record) for w in large])
            pointed = await batch(
                core.warm,
                [(w, w.mk, _pointer(w.record, versions[w.mk].key.rpartition("\x00")[2])) for w in stored],
            )
            ok += pointed
            refused = [
                versions[w.mk]
                for w in stored
                if w not in pointed and not isinstance(failed.get(w.mk.key), TierUnavailableError)
            ]
            await core.discard_cold(refused)  # versions no pointer refers to
        await core.hot_write("mset", ok, now)
        unknown = [w.mk for w in writes if isinstance(failed.get(w.mk.key), TierUnavailableError)]
        await core.invalidate_hot(unknown)  # their durable writes may have landed
        if failed:
            written = [w.mk.key for w in ok] + [w.mk.key for w in hot_only if w.mk.key not in failed]
            raise BatchWriteError("mset partially failed", written=written, failed=failed)

    async def delete(self, key: str) -> None:
        """Remove the key from every tier. Idempotent: deleting a missing key succeeds.

        A short hot tombstone goes first, so a read racing this delete cannot promote the old value.
        """
        mk = self._key(key)
        core = self._core
        with self._span("tiermem.delete", 1, key):
            gov = core.governance
            if not gov.watching:
                await self._delete(mk)
                return
            async with gov.guard("delete", mk.tenant, mk.namespace, ((mk.key, 0),)):
                await self._delete(mk)

    async def _existing(self, keys: list[str]) -> frozenset[str]:
        """Which keys hold a stored value (the durable tier's batch read; asked by a refused quota)."""
        durable = self._core.durable
        if durable is None:
            return frozenset()
        store: Any = durable.store
        mks = [self._key(k) for k in keys]
        found: list[Record | None] = await self._core.call(
            durable, "mget", lambda: store.mget(mks), nkeys=len(mks)
        )
        now = self._core.clock()
        live = [
            mk.key for mk, rec in zip(mks, found, strict=True) if rec is not None and not rec.is_expired(now)
        ]
        return frozenset(live)

    async def _delete(self, mk: MemoryKey) -> None:
        core = self._core
        now = core.clock()
        async with core.locks.hold((mk,)):
            hot = core.hot
            if hot is not None:
                hstore: Any = hot.store
                if core.durable is None:
                    await core.call(hot, "delete", lambda: hstore.delete(mk), key=mk)
                    return
                marker = tombstone(now + core.policy.tombstone_ttl)
                try:
                    await core.call(hot, "set", lambda: hstore.set(mk, marker), key=mk)
                except TierError as exc:
                    core.mark_dirty([mk])
                    core.telemetry.fell_through(Tier.HOT, "delete", exc, None)
            warm, cold = core.warm, core.cold
            if warm is not None and cold is not None:
                # A large value lives in a versioned cold object named by its warm pointer.
                wstore: Any = warm.store
                previous: Record | None = await core.call(warm, "get", lambda: wstore.get(mk), key=mk)
                await self._delete_in(warm, mk)
                if previous is not None and previous.kind is RecordKind.POINTER:
                    await self._delete_in(cold, _pointer_meta(mk, previous)[0])
            elif warm is not None or cold is not None:
                durable = core.durable
                assert durable is not None
                await self._delete_in(durable, mk)

    async def _delete_in(self, slot: _Slot, mk: MemoryKey) -> None:
        store: Any = slot.store
        await self._core.call(slot, "delete", lambda: store.delete(mk), key=mk)

    # -- lifecycle and operations ---------------------------------------------------------------------

    async def setup(self) -> None:
        """Create what every tier needs (database, container, table). Idempotent."""
        for slot in self._core.slots:
            await self._core.call(slot, "setup", slot.store.setup)

    async def ping(self) -> dict[Tier, BaseException | None]:
        """Ask every tier to answer; map each tier to ``None`` (fine) or the error it raised."""
        results: dict[Tier, BaseException | None] = {}
        for slot in self._core.slots:
            try:
                await self._core.call(slot, "ping", slot.store.ping)
                results[slot.tier] = None
            except TierMemError as exc:
                results[slot.tier] = exc
        return results

    def stats(self) -> Stats:
        """A snapshot: hit rate and latency percentiles per tier, promotions, errors, breaker states."""
        core = self._core
        return core.telemetry.snapshot(circuits=core.circuits(), dirty_keys=len(core.dirty))

    def tier_store(self, tier: Tier) -> TierStore | None:
        """The adapter behind a tier (for operations such as ``sweep`` and ``purge``).

        Raises:
            InvalidScopeError: this view is tenant-locked: a tier store reaches every tenant's data.
        """
        if self._tenant_locked:
            raise InvalidScopeError(
                "a tenant-locked view cannot hand out tier stores: they reach every tenant",
                tier=tier,
                operation="tier_store",
            )
        for slot in self._core.slots:
            if slot.tier is tier:
                return slot.store
        return None

    def circuit_state(self, tier: Tier) -> CircuitState | None:
        for slot in self._core.slots:
            if slot.tier is tier:
                return slot.breaker.state
        return None

    @property
    def closed(self) -> bool:
        return self._core.state is ClientState.CLOSED

    async def aclose(self) -> None:
        """Close the tiers this client owns. Idempotent; closing a scoped view does nothing."""
        core = self._core
        if not self._root or core.state is ClientState.CLOSED:
            return
        core.state = ClientState.CLOSED
        errors: list[BaseException] = []
        for resource in reversed(core.owned):  # tiers first, then the credentials they used
            try:
                await resource.aclose()
            except Exception as exc:  # noqa: BLE001 - close everything we own, then re-raise the first
                errors.append(exc)
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        if self.closed:
            raise ClientClosedError("MemoryClient is closed", operation="__aenter__")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- collections and listing (tiermem._collection; docs/adr/0007) ---------------------------------

    def collection(self, name: str) -> Collection:
        """A named, ordered set of items in this view's tenant and namespace (no I/O).

        Raises:
            InvalidKeyError: the name is empty, longer than 128 UTF-8 bytes or holds control characters.
            ConfigurationError: the durable tier cannot hold collections.
        """
        from tiermem._collection import Collection, Scope, backend_for, validate_name

        scope = Scope(self._tenant, self._namespace, validate_name(name))
        return Collection(backend_for(self._core), scope)

    def collections(self, *, prefix: str = "") -> AsyncIterator[str]:
        """Names of this namespace's collections that hold items (a cross-partition query on Cosmos)."""
        from tiermem._collection._listing import collection_names

        return collection_names(self._core, self._tenant, self._namespace, prefix)

    def keys(self, *, prefix: str = "") -> AsyncIterator[str]:
        """Every stored key-value key of this namespace starting with ``prefix``, in no promised order
        (an admin call: cross-partition on Cosmos; expired keys not yet swept are included)."""
        from tiermem._collection._listing import kv_keys

        return kv_keys(self._core, self._tenant, self._namespace, prefix)

    # -- data lifecycle and governance (tiermem.lifecycle; docs/adr/0011) -----------------------------

    async def forget(
        self, *, tenant: str | None = None, namespace: str | None = None, dry_run: bool = False
    ) -> ForgetReport:
        """Erase a scope from every tier: key-value items, collection items, sessions, large values and
        their old versions, hot copies, tombstones and fences. Idempotent and resumable (rerun after a
        crash to finish). With no arguments, erases this view's namespace; ``tenant=`` alone erases a
        whole tenant; ``dry_run`` only counts.

        Raises:
            InvalidScopeError: a bad tenant/namespace, or another tenant on a tenant-locked view.
        """
        from tiermem.lifecycle._erasure import forget_scope

        scope_tenant: str = self._tenant if tenant is None else validate_scope(tenant, "tenant")
        scope_ns = namespace if tenant is not None or namespace is not None else self._namespace
        if self._tenant_locked and scope_tenant != self._tenant:
            raise InvalidScopeError("this memory view is locked to its tenant", operation="forget")
        return await forget_scope(self._core, scope_tenant, scope_ns, dry_run=dry_run)

    async def usage(self, *, tenant: str | None = None, namespace: str | None = None) -> UsageReport:
        """Items and bytes per tier, collections and oldest/newest write, per tenant and namespace, read
        from paged raw listings of every tier (an admin call: cross-partition on Cosmos). ``tenant=None``
        on a root client reports every tenant; a tenant-locked view reports its own tenant only."""
        from tiermem.lifecycle._usage import compute_usage

        if self._tenant_locked and tenant not in (None, self._tenant):
            raise InvalidScopeError("this memory view is locked to its tenant", operation="usage")
        scope = self._tenant if self._tenant_locked or (not self._root and tenant is None) else tenant
        return await compute_usage(self._core, scope, namespace)

    async def maintain(
        self,
        *,
        retention: RetentionPolicy | None = None,
        now: float | None = None,
        dry_run: bool = False,
        sweep: bool = True,
        orphan_grace: float = 3600.0,
    ) -> MaintainReport:
        """Apply retention (``archive_after``: warm -> cold behind a pointer; ``expire_after``: delete),
        sweep expired cold objects and reconcile quota counters. Safe beside live writers: every change
        is conditional on the ETag it listed. A tenant-locked view maintains its own tenant only.

        Args:
            retention: the rules (default: the client's, from the builder or settings).
            now: the time to judge ages and expiry by (default: the client's clock).
            sweep: also delete cold objects whose expiry has passed (``tiermem sweep``).
            orphan_grace: delete cold versions no warm pointer names once they are this old (real clock).
        """
        from tiermem.lifecycle._maintain import run_maintenance

        core = self._core
        return await run_maintenance(
            core,
            retention=retention if retention is not None else core.governance.retention,
            tenant=self._tenant if self._tenant_locked else None,
            now=core.clock() if now is None else now,
            dry_run=dry_run,
            sweep=sweep and not self._tenant_locked,
            orphan_grace=orphan_grace,
        )

    async def reconcile_quotas(self, *, tenant: str | None = None) -> bool:
        """Recount a tenant's usage into its quota counters (default: this view's tenant); ``False`` if
        another reconcile of that tenant is running."""
        from tiermem.lifecycle._usage import reconcile

        if self._tenant_locked and tenant not in (None, self._tenant):
            raise InvalidScopeError("this memory view is locked to its tenant", operation="reconcile_quotas")
        name = self._tenant if tenant is None else validate_scope(tenant, "tenant")
        return await reconcile(self._core, name)
