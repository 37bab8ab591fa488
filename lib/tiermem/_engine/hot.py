"""Every rule about the hot tier as a cache of the durable tier, in one place (ADR 0003).

The read path asks :meth:`HotCache.lookup` / :meth:`~HotCache.probe` / :meth:`~HotCache.lookup_many`
first and, after reading the durable tier, offers what it found with :meth:`~HotCache.fill` (create-only
promotion) or :meth:`~HotCache.remember_misses` (negative cache). The write path tells the cache
what happened: :meth:`~HotCache.before_delete`, :meth:`~HotCache.after_write` (write-through or
fence), :meth:`~HotCache.after_unknown_outcome` and :meth:`~HotCache.after_cancel`. How a hot record
is classified, what a hot failure means, fences, tombstones and dirty keys live only here, so a
different coherence protocol replaces this module and nothing else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from tiermem._codec import Codec, Record, RecordKind, fence, tombstone
from tiermem._config import Policy
from tiermem._engine.guard import Guard
from tiermem._errors import CorruptValueError, InvalidInputError, TierError, key_digest
from tiermem._protocols import HotMemory
from tiermem._telemetry import Telemetry, logger
from tiermem._types import Clock, Entry, MemoryKey, Tier, Value

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["ABSENT", "MISS", "HotCache"]


class _Verdict:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISS: Final = _Verdict("MISS")
"""Hot cannot answer (nothing there, expired, fenced, damaged or unreachable): read the durable tier."""
ABSENT: Final = _Verdict("ABSENT")
"""Hot knows the key has no value (a delete's tombstone or a cached miss): a definitive miss."""

# How a hot record classifies, by kind: the one rule every hot read applies.
_VALUE_KINDS: Final = frozenset({RecordKind.JSON, RecordKind.STR, RecordKind.BYTES})


def _classify(record: Record | None, now: float) -> _Verdict | Record:
    """MISS (read through), ABSENT (definitive miss) or the record holding a value."""
    if record is None or record.is_expired(now) or record.kind is RecordKind.FENCE:
        return MISS
    if record.kind is RecordKind.TOMBSTONE:
        return ABSENT
    return record


class HotCache:
    """Hot-tier coherence for one client: lookups, fills, write-through, fences and dirty keys.

    Args:
        guard: the hot tier, or ``None`` for a client without one (every method then does nothing).
        durable: whether a durable tier backs hot; without one, hot failures are errors, never misses.
    """

    def __init__(
        self,
        guard: Guard[HotMemory] | None,
        *,
        durable: bool,
        policy: Policy,
        codec: Codec,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self.guard = guard
        self._durable = durable
        self._policy = policy
        self._codec = codec
        self._clock = clock
        self._telemetry = telemetry
        self.dirty: OrderedDict[MemoryKey, int] = OrderedDict()  # key -> generation when marked
        self._generation = 0
        self._flushing = False
        self._bypass_until = 0.0

    # -- reads ------------------------------------------------------------------------------------

    async def lookup(self, mk: MemoryKey, now: float) -> Entry | _Verdict:
        """The hot answer for one key: an :class:`Entry`, :data:`ABSENT` or :data:`MISS`.

        Raises:
            TierError: hot failed and there is no durable tier to fall back on.
        """
        hot = await self._ready("get")
        if hot is None:
            return MISS
        try:
            found = _classify(await hot.get(mk), now)
        except TierError as exc:
            self._read_failed(exc, (mk,), "get", None)
            return MISS
        if isinstance(found, _Verdict):
            return found
        try:
            return Entry(self._codec.decode(found), Tier.HOT, None, found.expires_at)
        except CorruptValueError as exc:
            self._distrust(mk, exc)
            return MISS

    async def probe(self, mk: MemoryKey, now: float) -> _Verdict | None:
        """Like :meth:`lookup` without decoding: ``None`` when hot holds a live value."""
        hot = await self._ready("exists")
        if hot is None:
            return MISS
        try:
            found = _classify(await hot.get(mk), now)
        except TierError as exc:
            self._read_failed(exc, (mk,), "exists", None)
            return MISS
        return found if isinstance(found, _Verdict) else None

    async def lookup_many(
        self, mks: Sequence[MemoryKey], now: float, out: dict[str, Value], span: Span | None
    ) -> list[MemoryKey]:
        """One hot batch read: values go into ``out``; returns the keys to read from the durable tier."""
        hot = await self._ready("mget")
        if hot is None:
            return list(mks)
        try:
            records = await hot.mget(mks)
        except TierError as exc:
            self._read_failed(exc, mks, "mget", span)
            return list(mks)
        pending: list[MemoryKey] = []
        hits = 0
        decode = self._codec.decode
        for mk, rec in zip(mks, records, strict=True):
            found = _classify(rec, now)
            if found is MISS:
                pending.append(mk)
            elif found is ABSENT:
                hits += 1
            else:
                assert isinstance(found, Record)
                try:
                    out[mk.key] = decode(found)
                    hits += 1
                except CorruptValueError as exc:
                    self._distrust(mk, exc)
                    pending.append(mk)
        self._telemetry.count_keys(Tier.HOT, hits, len(pending))
        return pending

    def _read_failed(
        self, exc: TierError, keys: Sequence[MemoryKey], operation: str, span: Span | None
    ) -> None:
        """What a failed hot read means: hot is a cache, so read through (a hot-only client raises)."""
        if isinstance(exc, CorruptValueError):
            if len(keys) == 1:
                self._distrust(keys[0], exc)
                return
            # One undecodable value fails a whole MGET: distrust the key it names, read all through.
            self.mark_dirty(mk for mk in keys if key_digest(mk.key) == exc.key_hash)
        elif not self._durable:
            raise exc  # hot is the only tier: an outage is an error, never a miss
        self._telemetry.fell_through(Tier.HOT, operation, exc, span)

    def _distrust(self, mk: MemoryKey, exc: CorruptValueError) -> None:
        """A damaged hot copy: fence it before hot is read again (via the dirty keys) and read through."""
        logger.warning("corrupt value in hot tier, fencing it and reading through: %s", exc)
        self.mark_dirty((mk,))

    def may_fill(self, started: float) -> bool:
        """Whether a read that started at ``started`` may still promote: a read slower than the
        tombstone TTL could be promoting a value deleted meanwhile, whose tombstone has expired."""
        return self._clock() - started < self._policy.tombstone_ttl

    async def fill(self, items: Sequence[tuple[MemoryKey, Record]], started: float) -> int:
        """Promote what a read found in the durable tier, create-only (``SET NX``), so a newer value,
        fence or tombstone already in hot wins. Returns how many records were offered."""
        hot = self.guard
        if hot is None or not items or self._bypassed() or not self.may_fill(started):
            return 0
        limit = self._policy.hot_max_bytes
        todo = [(mk, self.cap(rec, started)) for mk, rec in items if rec.size <= limit]
        if not todo or not await self._put(hot, "promote", todo, if_absent=True, operation="promote"):
            return 0
        self._telemetry.promoted(Tier.HOT, len(todo))
        return len(todo)

    async def remember_misses(self, keys: Sequence[MemoryKey], now: float) -> None:
        """Negative cache: remember keys no tier holds, for ``negative_ttl`` (create-only)."""
        ttl = self._policy.negative_ttl
        hot = self.guard
        if ttl is None or hot is None or not keys:
            return
        marker = tombstone(now + ttl)
        await self._put(hot, "negative-cache", [(mk, marker) for mk in keys], if_absent=True)

    # -- writes -----------------------------------------------------------------------------------

    def cap(self, record: Record, now: float) -> Record:
        """The record as cached in hot: expiry capped by ``hot_ttl``, never past the value's own."""
        ttl = self._policy.hot_ttl
        if ttl is None:
            return record
        cap = now + ttl
        if record.expires_at is not None and record.expires_at <= cap:
            return record
        return record.with_expiry(cap)

    def pinned(self, record: Record, now: float) -> Record:
        """A value stored only in hot: capped by ``hot_ttl`` when hot is the client's only tier."""
        return record if self._durable else self.cap(record, now)

    async def before_delete(self, mk: MemoryKey, now: float) -> None:
        """A short tombstone, so a read racing the durable delete cannot promote the old value."""
        hot = self.guard
        if hot is not None:
            marker = tombstone(now + self._policy.tombstone_ttl)
            await self._put(hot, "delete", [(mk, marker)], dirty=True, single=True)

    async def after_write(
        self, operation: str, items: Sequence[tuple[MemoryKey, Record | None]], now: float
    ) -> None:
        """After durable writes landed: write each record through (capped), or fence the key (``None``)."""
        hot = self.guard
        if hot is None or not items:
            return
        marker = fence(now + self._policy.tombstone_ttl)
        todo = [(mk, marker if rec is None else self.cap(rec, now)) for mk, rec in items]
        await self._put(hot, operation, todo, dirty=True, single=True)

    async def after_unknown_outcome(self, keys: Sequence[MemoryKey]) -> None:
        """Fence hot copies whose durable write timed out or broke off: it may have landed."""
        hot = self.guard
        if hot is None or not keys:
            return
        marker = fence(self._clock() + self._policy.tombstone_ttl)
        await self._put(hot, "invalidate", [(mk, marker) for mk in keys], dirty=True)

    def after_cancel(self, keys: Iterable[MemoryKey]) -> None:
        """A write was cancelled mid-way and may still land: hot must not vouch for the old value."""
        self.mark_dirty(keys)

    # -- dirty keys and the hot write every rule above shares -------------------------------------------

    def mark_dirty(self, keys: Iterable[MemoryKey]) -> None:
        """Remember hot keys that may hold stale values; they are fenced before hot is read again."""
        self._generation += 1
        for mk in keys:
            self.dirty[mk] = self._generation
        if len(self.dirty) > self._policy.dirty_max_keys:
            # Too many to remember: every hot value expires within hot_ttl, so skipping hot reads
            # for that long guarantees nothing stale is served after recovery.
            self.dirty.clear()
            ttl = self._policy.hot_ttl
            self._bypass_until = float("inf") if ttl is None else time.monotonic() + ttl
            self._telemetry.dirty_overflow()
            logger.error(
                "dirty-key set overflowed (%d keys): bypassing hot reads for %s",
                self._policy.dirty_max_keys,
                "the life of this client (set policy hot_ttl to bound it)" if ttl is None else f"{ttl}s",
            )

    def _bypassed(self) -> bool:
        return bool(self._bypass_until) and time.monotonic() < self._bypass_until

    async def _ready(self, operation: str) -> Guard[HotMemory] | None:
        """The hot tier if it may be read now: no bypass in force and pending invalidations flushed."""
        hot = self.guard
        if hot is None or (self._bypass_until and self._bypassed()):
            return None
        if self.dirty:
            if self._flushing:
                return None  # another task is fencing the dirty keys: read through meanwhile
            pending = dict(self.dirty)
            marker = fence(self._clock() + self._policy.tombstone_ttl)
            self._flushing = True
            try:
                flushed = await self._put(hot, operation, [(mk, marker) for mk in pending])
            finally:
                self._flushing = False
            if not flushed:
                return None
            for mk, generation in pending.items():
                if self.dirty.get(mk) == generation:  # re-marked during the flush: keep it
                    del self.dirty[mk]
        return hot

    async def _put(
        self,
        hot: Guard[HotMemory],
        why: str,
        items: list[tuple[MemoryKey, Record]],
        *,
        if_absent: bool = False,
        operation: str = "mset",
        dirty: bool = False,
        single: bool = False,
    ) -> bool:
        """A best-effort hot write: a failure is logged and counted (and, with ``dirty``, the keys are
        remembered for fencing), never raised, because the durable tier already holds the truth.

        Args:
            why: the operation reported when the write fails.
            single: send one item as ``SET`` rather than a one-item batch.
        """
        try:
            if single and len(items) == 1:
                mk, record = items[0]
                await hot.set(mk, record)
            else:
                await hot.mset(items, if_absent=if_absent, operation=operation)
        except (TierError, InvalidInputError) as exc:
            if dirty:
                self.mark_dirty(mk for mk, _ in items)
            self._telemetry.fell_through(Tier.HOT, why, exc, None)
            return False
        return True
