"""Every rule about the hot tier as a cache of the durable tier, in one place (ADR 0006).

Readers fill hot, writers only invalidate it. A read asks :meth:`HotCache.lookup` (or
:meth:`~HotCache.lookup_many`); on a miss the cache takes a *lease* in hot (a compare-and-swap from
"nothing" or from a stale copy to a lease record with a fresh token), the read goes to the durable
tier, and :meth:`~HotCache.settle` replaces the lease with what was found, only if the lease is still
there. A write calls :meth:`~HotCache.invalidate` after its durable write, which deletes any value and
any lease, so a reader that read the durable tier before the write can no longer fill. A write that
cannot reach hot raises the durable hot epoch (:mod:`.epoch`), and hot records filled under an
older epoch read as misses in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from tiermem._codec import (
    Codec,
    CorruptBatchError,
    Record,
    RecordKind,
    declared_size,
    lease,
    read_header,
    tombstone,
)
from tiermem._config import Policy
from tiermem._engine.budget import DecodeBudget
from tiermem._engine.epoch import HotEpoch
from tiermem._engine.guard import HotGuard
from tiermem._errors import CorruptValueError, InvalidInputError, TierError, TierMemError, key_digest
from tiermem._instrumentation import Telemetry, logger
from tiermem._protocols import EnvelopeReader
from tiermem._types import Clock, Entry, MemoryKey, Tier, Value

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["ABSENT", "LIVE", "MISS", "UNBOUNDED", "HotCache", "Leases", "Lifetimes", "classify", "judge"]


class _Verdict:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISS: Final = _Verdict("MISS")
"""Hot cannot answer (nothing there, expired, stale, leased, damaged or unreachable): read through."""
ABSENT: Final = _Verdict("ABSENT")
"""Hot knows the key has no value (a cached miss): a definitive miss."""
LIVE: Final = _Verdict("LIVE")
"""A live value record: decode it (:func:`judge` only; :func:`classify` returns the record itself)."""

_VALUE_KINDS: Final = frozenset({RecordKind.JSON, RecordKind.STR, RecordKind.BYTES})
_LEASE: Final = int(RecordKind.LEASE)
_FENCE: Final = int(RecordKind.FENCE)
_TOMBSTONE: Final = int(RecordKind.TOMBSTONE)
_TOKEN_BYTES: Final = 12
PINNED_EPOCH: Final = 0xFFFFFFFF
"""The epoch of values stored only in hot (``tier=HOT``): not a copy of anything, so never stale."""


_CLOCK_SLACK: Final = 1.0
"""Seconds a record's expiry may exceed its lifetime: clocks of the processes sharing hot differ."""


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The longest expiry a process of this configuration gives each kind of hot record (ADR 0015);
    a record claiming more (or none) was not written by one, so it reads as a miss. ``None``: no bound.

    Attributes:
        value: ``hot_ttl`` when a durable tier backs hot (values pinned to hot keep their own TTL).
        tombstone: ``negative_ttl`` (``tombstone_ttl`` when negative caching is off).
        lease: ``tombstone_ttl``.
    """

    value: float | None = None
    tombstone: float | None = None
    lease: float | None = None

    @classmethod
    def of(cls, policy: Policy, *, durable: bool) -> Lifetimes:
        return cls(
            value=policy.hot_ttl if durable else None,
            tombstone=policy.negative_ttl or policy.tombstone_ttl,
            lease=policy.tombstone_ttl,
        )


UNBOUNDED: Final = Lifetimes()


def _outlives(expires_at: float | None, now: float, lifetime: float | None) -> bool:
    if lifetime is None:
        return False
    return expires_at is None or expires_at > now + lifetime + _CLOCK_SLACK


def judge(
    kind: int, expires_at: float | None, record_epoch: int, now: float, epoch: int, lifetimes: Lifetimes
) -> _Verdict | None:
    """The one rule every hot read applies, on a stored record's fields: :data:`LIVE` (a value),
    :data:`ABSENT`, :data:`MISS` (someone's lease: read through, do not fill), or ``None`` when the
    key may be leased (expired, a stale copy: filled under an older ``epoch``, a legacy fence, or a
    record whose expiry is missing or beyond its kind's ``lifetimes``; values pinned to hot keep
    their own)."""
    if expires_at is not None and expires_at <= now:
        return None
    if kind == _LEASE:
        return None if _outlives(expires_at, now, lifetimes.lease) else MISS
    if record_epoch < epoch or kind == _FENCE:
        return None
    if kind == _TOMBSTONE:
        return None if _outlives(expires_at, now, lifetimes.tombstone) else ABSENT
    if record_epoch != PINNED_EPOCH and _outlives(expires_at, now, lifetimes.value):
        return None
    return LIVE


def classify(
    record: Record | None, now: float, epoch: int, lifetimes: Lifetimes = UNBOUNDED
) -> _Verdict | Record | None:
    """:func:`judge` on a whole record: the live record itself, :data:`ABSENT`, :data:`MISS` or
    ``None`` (also when there is no record)."""
    if record is None:
        return None
    found = judge(record.kind, record.expires_at, record.epoch, now, epoch, lifetimes)
    return record if found is LIVE else found


def _declares_too_much(limit: int) -> CorruptValueError:
    return CorruptValueError(f"hot record declares more than hot_max_bytes={limit} decoded bytes")


def hot_value(codec: Codec, record: Record, limit: int, budget: DecodeBudget | None) -> Value:
    """A hot value, inflated at most to ``limit`` (``hot_max_bytes``: nothing larger is ever cached),
    so a planted gzip bomb costs that much memory at most; its declared decoded size is checked and
    counted in ``budget`` (when given) before anything is inflated.

    Raises:
        CorruptValueError: the record is damaged or declares more than ``limit`` decoded bytes.
        ResultTooLargeError: the value does not fit in ``budget``.
    """
    size = record.decoded_size
    if size > limit:
        raise _declares_too_much(limit)
    if budget is not None:
        budget.take(size)
    return codec.decode(record, limit=limit)


@dataclass(slots=True)
class Scan:
    """What one hot batch read found, besides the values it wrote into the caller's ``out``."""

    pending: list[MemoryKey] = field(default_factory=list)
    """Keys hot could not answer: read them from the durable tier."""
    to_lease: list[tuple[MemoryKey, Record | None]] = field(default_factory=list)
    """Pending keys that may be leased, with the copy the read saw (``None``: nothing live)."""
    damaged: list[tuple[MemoryKey, CorruptValueError]] = field(default_factory=list)
    hits: int = 0


def _damaged(scan: Scan, mk: MemoryKey, exc: CorruptValueError) -> None:
    scan.damaged.append((mk, CorruptValueError(exc.message, tier=Tier.HOT, operation="mget", key=mk.key)))
    scan.pending.append(mk)


def _not_an_envelope(data: bytes) -> CorruptValueError:
    """Why ``data`` is not an envelope, in the words :meth:`Record.from_bytes` uses."""
    try:
        Record.from_bytes(data)
    except CorruptValueError as exc:
        return exc
    return CorruptValueError("stored value is not a tiermem envelope")


def scan_records(
    scan: Scan,
    mks: Sequence[MemoryKey],
    records: Sequence[Record | None],
    now: float,
    epoch: int,
    codec: Codec,
    out: dict[str, Value],
    *,
    lifetimes: Lifetimes = UNBOUNDED,
    limit: int | None = None,
    budget: DecodeBudget | None = None,
) -> None:
    """Classify and decode what a batch read returned as records (the in-process tier, the near
    cache), by :func:`judge` and :func:`hot_value` (``limit``: ``hot_max_bytes``, default
    ``codec.max_value_bytes``).

    Raises:
        ResultTooLargeError: the values pass ``budget`` (``scan`` holds what was found before).
    """
    most = codec.max_value_bytes if limit is None else limit
    for mk, rec in zip(mks, records, strict=True):
        if rec is None:
            scan.to_lease.append((mk, None))
            scan.pending.append(mk)
            continue
        found = judge(rec.kind, rec.expires_at, rec.epoch, now, epoch, lifetimes)
        if found is LIVE:
            try:
                out[mk.key] = hot_value(codec, rec, most, budget)
            except CorruptValueError as exc:
                _damaged(scan, mk, exc)
            else:
                scan.hits += 1
        elif found is ABSENT:
            scan.hits += 1
        else:
            if found is None:
                scan.to_lease.append((mk, None if rec.is_expired(now) else rec))
            scan.pending.append(mk)


def scan_envelopes(
    scan: Scan,
    mks: Sequence[MemoryKey],
    envelopes: Sequence[bytes | CorruptValueError | None],
    now: float,
    epoch: int,
    codec: Codec,
    out: dict[str, Value],
    *,
    lifetimes: Lifetimes = UNBOUNDED,
    limit: int | None = None,
    budget: DecodeBudget | None = None,
) -> None:
    """:func:`scan_records` on stored envelopes (their seals already verified and stripped by the
    tier; an error in place of an envelope is a damaged record, which costs only its own key): one
    header unpack per key, the value decoded straight from its payload; a :class:`Record` is built
    only for a stale copy a lease must replace.

    Raises:
        ResultTooLargeError: the values pass ``budget`` (``scan`` holds what was found before).
    """
    value = codec.value
    pending = scan.pending
    to_lease = scan.to_lease
    most = codec.max_value_bytes if limit is None else limit
    for mk, data in zip(mks, envelopes, strict=True):
        if data is None:
            to_lease.append((mk, None))
            pending.append(mk)
            continue
        if isinstance(data, CorruptValueError):
            _damaged(scan, mk, data)
            continue
        header = read_header(data)
        if header is None:
            _damaged(scan, mk, _not_an_envelope(data))
            continue
        kind, flags, expires_at, crc, record_epoch, start = header
        found = judge(kind, expires_at or None, record_epoch, now, epoch, lifetimes)
        if found is LIVE:
            payload = data[start:]
            compressed = bool(flags & 1)
            size = declared_size(payload) if compressed else len(payload)
            if size > most:
                _damaged(scan, mk, _declares_too_much(most))
                continue
            if budget is not None:
                budget.take(size)
            try:
                out[mk.key] = value(kind, compressed, crc, payload, limit=most)
            except CorruptValueError as exc:
                _damaged(scan, mk, exc)
            else:
                scan.hits += 1
            continue
        if found is ABSENT:
            scan.hits += 1
            continue
        if found is None:
            if expires_at and expires_at <= now:
                to_lease.append((mk, None))
            else:
                try:
                    to_lease.append((mk, Record.from_bytes(data)))
                except CorruptValueError as exc:
                    _damaged(scan, mk, exc)
                    continue
        pending.append(mk)


@dataclass(slots=True)
class Leases:
    """The leases one read took on its hot misses, and the epoch it knew before reading durable."""

    epoch: int
    held: dict[MemoryKey, Record] = field(default_factory=dict)


class HotCache:
    """Hot-tier coherence for one client: lookups, leases, fills, invalidations and dirty keys.

    Args:
        guard: the hot tier, or ``None`` for a client without one (every method then does nothing).
        epoch: the durable hot epoch (disabled without a durable tier).
        durable: whether a durable tier backs hot; without one, hot failures are errors, never misses.
    """

    def __init__(
        self,
        guard: HotGuard | None,
        epoch: HotEpoch,
        *,
        durable: bool,
        policy: Policy,
        codec: Codec,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self.guard = guard
        self._epoch = epoch
        self._durable = durable
        self._policy = policy
        self._codec = codec
        self._clock = clock
        self._telemetry = telemetry
        self.dirty: OrderedDict[MemoryKey, int] = OrderedDict()  # key -> generation when marked
        self._generation = 0
        self._flushing = False
        self._bypass_until = 0.0
        self._later: set[asyncio.Task[None]] = set()
        self._lifetimes = Lifetimes.of(policy, durable=durable)
        # Redis hands batch reads the envelopes: decoded from their header fields, no Record per key.
        self._envelopes = guard is not None and isinstance(guard.store, EnvelopeReader)

    def _classify(self, record: Record | None, now: float) -> _Verdict | Record | None:
        return classify(record, now, self._epoch.current, self._lifetimes)

    def _decode(self, record: Record, budget: DecodeBudget | None) -> Value:
        """A hot value by :func:`hot_value` (``hot_max_bytes``), counted in ``budget`` when given."""
        return hot_value(self._codec, record, self._policy.hot_max_bytes, budget)

    # -- reads ------------------------------------------------------------------------------------

    def answer_now(self, mk: MemoryKey, now: float) -> Value | _Verdict:
        """The hot answer without awaiting, when the hot tier is in-process and nothing is pending:
        the value, :data:`ABSENT`, or :data:`MISS` when :meth:`lookup` must run (a miss, a lease,
        a stale or damaged copy, dirty keys to delete, an epoch to re-read, a closed or open breaker).
        """
        hot = self.guard
        if hot is None or not hot.inline or self.dirty or self._bypass_until or not self._epoch.trusted():
            return MISS
        start = time.perf_counter()
        try:
            record = hot.peek_now(mk)
        except TierMemError:
            return MISS  # lookup calls it again, through the guard, and handles the failure
        found = self._classify(record, now)
        if isinstance(found, Record):
            try:
                value = self._decode(found, None)
            except CorruptValueError:
                return MISS  # lookup reads it again and distrusts it
        elif found is ABSENT:
            value = ABSENT
        else:
            return MISS  # not counted here: lookup reads it again and counts it
        hot.count_read(record, time.perf_counter() - start)
        return value

    async def lookup(self, mk: MemoryKey, now: float) -> Entry | _Verdict | Leases:
        """The hot answer for one key: an :class:`Entry`, :data:`ABSENT`, or the :class:`Leases` to
        fill after reading the durable tier (empty when this read may not fill).

        Raises:
            TierError: hot failed and there is no durable tier to fall back on.
        """
        hot = self._ready_now()
        if hot is None:
            hot = await self._ready("get")
        if hot is None:
            return Leases(self._epoch.current)
        epoch = self._epoch.current  # the epoch known before the read (a lease is stamped with it)
        try:
            record = await hot.get(mk)
        except TierError as exc:
            self._read_failed(exc, (mk,), "get", None)
            return Leases(epoch)
        found = self._classify(record, now)
        if isinstance(found, Record):
            try:
                return Entry(self._decode(found, None), Tier.HOT, None, found.expires_at)
            except CorruptValueError as exc:
                self._distrust(mk, exc)
                return Leases(epoch)
        if found is ABSENT:
            return ABSENT
        leases = Leases(epoch)
        if found is None and self._durable:
            await self._lease(
                hot, leases, [(mk, None if record is None or record.is_expired(now) else record)]
            )
        return leases

    async def probe(self, mk: MemoryKey, now: float) -> _Verdict | None:
        """Like :meth:`lookup` without decoding or leasing: ``None`` when hot holds a live value."""
        hot = await self._ready("exists")
        if hot is None:
            return MISS
        try:
            found = self._classify(await hot.get(mk), now)
        except TierError as exc:
            self._read_failed(exc, (mk,), "exists", None)
            return MISS
        if isinstance(found, Record):
            return None
        return ABSENT if found is ABSENT else MISS

    async def lookup_many(
        self,
        mks: Sequence[MemoryKey],
        now: float,
        out: dict[str, Value],
        span: Span | None,
        budget: DecodeBudget | None = None,
    ) -> tuple[list[MemoryKey], Leases]:
        """One hot batch read: values go into ``out`` (counted in ``budget``); returns the keys to
        read from the durable tier and the leases taken on them.

        Raises:
            ResultTooLargeError: the values pass ``budget``.
        """
        hot = await self._ready("mget")
        leases = Leases(self._epoch.current)
        if hot is None:
            return list(mks), leases
        envelopes: list[bytes | CorruptValueError | None] | None = None
        records: list[Record | None] = []
        try:
            if self._envelopes:
                envelopes = await hot.mget_envelopes(mks)
            else:
                records = await hot.mget(mks)
        except CorruptBatchError as exc:
            records = self._salvage(exc, mks)
        except TierError as exc:
            self._read_failed(exc, mks, "mget", span)
            return list(mks), leases
        scan = Scan()
        epoch, lifetimes, limit = self._epoch.current, self._lifetimes, self._policy.hot_max_bytes
        try:
            if envelopes is not None:
                scan_envelopes(
                    scan,
                    mks,
                    envelopes,
                    now,
                    epoch,
                    self._codec,
                    out,
                    lifetimes=lifetimes,
                    limit=limit,
                    budget=budget,
                )
            else:
                scan_records(
                    scan,
                    mks,
                    records,
                    now,
                    epoch,
                    self._codec,
                    out,
                    lifetimes=lifetimes,
                    limit=limit,
                    budget=budget,
                )
        finally:  # a budget error still distrusts the damaged copies seen before it
            for mk, damage in scan.damaged:
                self._distrust(mk, damage)
        self._telemetry.count_keys(Tier.HOT, scan.hits, len(scan.pending))
        if scan.to_lease and self._durable:
            await self._lease(hot, leases, scan.to_lease)
        return scan.pending, leases

    async def _lease(
        self, hot: HotGuard, leases: Leases, items: Sequence[tuple[MemoryKey, Record | None]]
    ) -> None:
        """Take leases (compare-and-swap from what the read saw); keys whose swap fails are not filled."""
        expires_at = self._clock() + self._policy.tombstone_ttl
        wanted = [(mk, lease(expires_at, secrets.token_bytes(_TOKEN_BYTES))) for mk, _ in items]
        try:
            taken = await hot.swap(
                [(mk, seen, new) for (mk, seen), (_, new) in zip(items, wanted, strict=True)],
                operation="lease",
            )
        except (TierError, InvalidInputError) as exc:
            self._telemetry.fell_through(Tier.HOT, "lease", exc, None)
            return
        for (mk, record), ok in zip(wanted, taken, strict=True):
            if ok:
                leases.held[mk] = record

    async def settle(
        self, leases: Leases, found: Sequence[tuple[MemoryKey, Record | None]], now: float
    ) -> int:
        """Replace held leases with what the durable tier returned (``None``: a miss, cached as a
        tombstone when ``negative_ttl`` is set). Returns how many values were filled."""
        hot = self.guard
        if hot is None or not leases.held or self._bypassed():
            return 0
        limit = self._policy.hot_max_bytes
        negative = self._policy.negative_ttl
        swaps: list[tuple[MemoryKey, Record | None, Record | None]] = []
        values = 0
        for mk, record in found:
            held = leases.held.get(mk)
            if held is None:
                continue
            if record is None:
                if negative is not None:
                    swaps.append((mk, held, tombstone(now + negative).for_hot(now + negative, leases.epoch)))
            elif record.largest_size <= limit:
                capped = self.cap(record, now)
                swaps.append((mk, held, capped.for_hot(capped.expires_at, leases.epoch)))
                values += 1
        if not swaps:
            return 0
        try:
            done = await hot.swap(swaps, operation="promote")
        except (TierError, InvalidInputError) as exc:
            self._telemetry.fell_through(Tier.HOT, "promote", exc, None)
            return 0
        filled = sum(
            1
            for (_, _, new), ok in zip(swaps, done, strict=True)
            if ok and new is not None and new.kind in _VALUE_KINDS
        )
        if filled:
            self._telemetry.promoted(Tier.HOT, filled)
        return filled

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

    def _salvage(self, exc: CorruptBatchError, mks: Sequence[MemoryKey]) -> list[Record | None]:
        """A batch read where only some records were damaged: distrust those, keep the others."""
        readable = exc.readable
        for mk in mks:
            if mk not in readable:
                self._distrust(mk, exc)
        return [readable.get(mk) for mk in mks]

    def _distrust(self, mk: MemoryKey, exc: CorruptValueError) -> None:
        """A damaged hot copy: delete it before hot is read again (via the dirty keys) and read through."""
        logger.warning("corrupt value in hot tier, removing it and reading through: %s", exc)
        self.mark_dirty((mk,))

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
        record = record if self._durable else self.cap(record, now)
        return record.for_hot(record.expires_at, PINNED_EPOCH)

    async def invalidate(self, keys: Sequence[MemoryKey], *, operation: str = "invalidate") -> None:
        """After durable writes or deletes (or ones whose outcome is unknown): delete the hot copies
        and any leases, so no reader can fill a value read before the write. When hot cannot be
        reached, raise the durable hot epoch instead; when that fails too, remember the keys."""
        hot = self.guard
        if hot is None or not keys:
            return
        try:
            await hot.mdelete(keys, operation=operation)
            return
        except (TierError, InvalidInputError) as exc:
            self._telemetry.fell_through(Tier.HOT, operation, exc, None)
        await self._trace(keys)

    async def _trace(self, keys: Sequence[MemoryKey]) -> None:
        """The durable trace of an invalidation that did not reach hot (ADR 0006)."""
        self.mark_dirty(keys)  # this process deletes them before it reads hot again
        try:
            await self._epoch.bump()
        except TierMemError as exc:
            logger.error(
                "could not invalidate hot nor raise the hot epoch: other processes may serve the "
                "previous value of %d key(s) for up to hot_ttl=%ss: %s",
                len(keys),
                self._policy.hot_ttl,
                exc,
            )

    def invalidate_later(self, keys: Iterable[MemoryKey], delay: float | None) -> None:
        """A write whose outcome is unknown may still land after we invalidated: invalidate now
        (in the background, safe from the caller's cancellation) and once more after ``delay``."""
        hot = self.guard
        todo = list(keys)
        if hot is None or not todo:
            return

        async def run() -> None:
            await self.invalidate(todo)
            if delay:
                await asyncio.sleep(delay)
                await self.invalidate(todo)

        task = asyncio.ensure_future(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    # -- dirty keys (this process's fallback when neither hot nor the epoch could be written) ----------

    def mark_dirty(self, keys: Iterable[MemoryKey]) -> None:
        """Remember hot keys that may hold stale values; they are deleted before hot is read again."""
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

    def _ready_now(self) -> HotGuard | None:
        """The hot tier when it may be read with nothing to do first (the common case, no await);
        ``None`` when :meth:`_ready` must decide (bypass, epoch refresh due, dirty keys, no hot)."""
        if self._bypass_until or self.dirty or not self._epoch.trusted():
            return None
        return self.guard

    async def _ready(self, operation: str) -> HotGuard | None:
        """The hot tier if it may be read now: no bypass, a fresh epoch, pending deletions flushed."""
        hot = self.guard
        if hot is None or (self._bypass_until and self._bypassed()):
            return None
        if not await self._epoch.fresh():
            return None
        if self.dirty:
            if self._flushing:
                return None  # another task is deleting the dirty keys: read through meanwhile
            pending = dict(self.dirty)
            self._flushing = True
            try:
                await hot.mdelete(list(pending), operation=operation)
            except (TierError, InvalidInputError) as exc:
                self._telemetry.fell_through(Tier.HOT, operation, exc, None)
                return None
            finally:
                self._flushing = False
            for mk, generation in pending.items():
                if self.dirty.get(mk) == generation:  # re-marked during the flush: keep it
                    del self.dirty[mk]
        return hot

    async def aclose(self) -> None:
        """Finish background invalidations (bounded by the hot deadline) and epoch reads."""
        for task in list(self._later):
            task.cancel()
        for task in list(self._later):
            with contextlib.suppress(asyncio.CancelledError, TierMemError):
                await task
        await self._epoch.aclose()
