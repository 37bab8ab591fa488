"""The read path (docs/architecture.md, "Read path"): hot, then the durable tier, then cold via pointer.

``get``, ``exists`` and ``get_many`` run one cascade: ask the hot cache (:mod:`.hot`), read what it
could not answer from the durable tier (warm, or cold when there is no warm), follow pointers to
cold (:mod:`.large`), decode, and offer what was found back to the hot cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tiermem._codec import Codec, Record, RecordKind
from tiermem._engine.budget import DecodeBudget
from tiermem._engine.guard import Guard
from tiermem._engine.hot import ABSENT, HotCache, Leases
from tiermem._engine.large import LargeValues
from tiermem._errors import CorruptValueError
from tiermem._instrumentation import Telemetry
from tiermem._protocols import TierStore
from tiermem._types import Clock, Entry, MemoryKey, Tier, Value

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Reads"]


def _absent(record: Record, now: float) -> bool:
    """How a durable record says "no value": expired, or a tombstone."""
    return record.is_expired(now) or record.kind is RecordKind.TOMBSTONE


class Reads:
    """``get``/``exists``/``get_many`` over the hot cache, the durable tier and large values."""

    def __init__(
        self,
        hot: HotCache,
        durable: Guard[TierStore] | None,
        large: LargeValues,
        *,
        codec: Codec,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self._hot = hot
        self._durable = durable
        self._large = large
        self._codec = codec
        self._clock = clock
        self._telemetry = telemetry

    def _decode(self, record: Record, tier: Tier, mk: MemoryKey, budget: DecodeBudget | None = None) -> Value:
        try:
            if budget is not None:
                return budget.decode(self._codec, record)
            return self._codec.decode(record)
        except CorruptValueError as exc:
            raise CorruptValueError(exc.message, tier=tier, operation="get", key=mk.key) from exc

    def cached(self, mk: MemoryKey) -> Value:
        """An in-process hot hit without awaiting: the value, :data:`ABSENT`, or :data:`MISS` (then
        call :meth:`get`). The client's fast path for ``get`` when no span is recorded."""
        return self._hot.answer_now(mk, self._clock())

    async def get(self, mk: MemoryKey, *, use_hot: bool = True, promote: bool = True) -> Entry | None:
        """One key through the cascade; ``use_hot=False`` reads the durable tier only (current ETag)."""
        now = self._clock()
        hot = self._hot
        leases: Leases | None = None
        if use_hot:
            found = await hot.lookup(mk, now)
            if isinstance(found, Entry):
                return found
            if found is ABSENT:
                return None
            if isinstance(found, Leases) and promote:
                leases = found
        durable = self._durable
        if durable is None:
            return None
        rec = await durable.get(mk)
        if rec is not None and not _absent(rec, now) and rec.kind is RecordKind.POINTER:
            resolved = await self._large.resolve(mk, rec, now)
            if resolved is None:
                rec = None
            else:
                rec, value_rec, source = resolved
                value = self._decode(value_rec, source, mk)
                fill = value_rec.with_expiry(rec.expires_at)
                if leases is not None and await hot.settle(leases, [(mk, fill)], now):
                    self._telemetry.annotate("tiermem.promoted", 1)
                return Entry(value, source, rec.etag, rec.expires_at)
        if rec is None or _absent(rec, now):
            if leases is not None:
                await hot.settle(leases, [(mk, None)], now)
            return None
        value = self._decode(rec, durable.tier, mk)
        if leases is not None and await hot.settle(leases, [(mk, rec)], now):
            self._telemetry.annotate("tiermem.promoted", 1)
        return Entry(value, durable.tier, rec.etag, rec.expires_at)

    async def exists(self, mk: MemoryKey) -> bool:
        """Whether a live value exists, without downloading it from the durable tier."""
        now = self._clock()
        verdict = await self._hot.probe(mk, now)
        if verdict is None:
            return True
        if verdict is ABSENT:
            return False
        durable = self._durable
        if durable is None:
            return False
        # The tier's own exists checks expiry without downloading the value (a blob, a 1 MB item).
        return await durable.exists(mk)

    async def get_many(
        self, mks: Sequence[MemoryKey], out: dict[str, Value], span: Span | None, budget: DecodeBudget
    ) -> int:
        """Fill ``out`` (``key -> None`` on entry) in one round trip per tier; returns how many
        values were filled into hot. Hot ``MGET`` (+ leases on misses) -> durable batch read -> cold
        for pointers -> one hot batch of fills.

        Raises:
            ResultTooLargeError: the values pass ``budget`` (counted before each is inflated, and
                before cold values are downloaded, from the sizes their pointers name).
        """
        now = self._clock()
        hot = self._hot
        pending, leases = await hot.lookup_many(mks, now, out, span, budget)
        durable = self._durable
        found: list[tuple[MemoryKey, Record | None]] = []
        if pending and durable is not None:
            records = await durable.mget(pending)
            pointers: list[tuple[MemoryKey, Record]] = []
            misses = 0
            for mk, rec in zip(pending, records, strict=True):
                if rec is None or _absent(rec, now):
                    found.append((mk, None))
                    misses += 1
                elif rec.kind is RecordKind.POINTER:
                    pointers.append((mk, rec))
                else:
                    out[mk.key] = self._decode(rec, durable.tier, mk, budget)
                    found.append((mk, rec))
            if pointers:
                budget.check(self._large.promised_size(pointers))
                targets = await self._large.follow(pointers)
                for (mk, ptr), crec in zip(pointers, targets, strict=True):
                    source = Tier.COLD
                    if crec is None:  # replaced or deleted meanwhile: read that key again (ADR 0006)
                        resolved = await self._large.resolve(mk, ptr, now)
                        if resolved is None:
                            found.append((mk, None))
                            misses += 1
                            continue
                        ptr, crec, source = resolved
                    out[mk.key] = self._decode(crec, source, mk, budget)
                    found.append((mk, crec.with_expiry(ptr.expires_at)))
            self._telemetry.count_keys(durable.tier, len(pending) - misses, misses)
        return await hot.settle(leases, found, now)

    def decode(self, record: Record, tier: Tier, mk: MemoryKey) -> Value:
        """The value of ``record`` read from ``tier``; a corrupt one raises naming that tier and the key
        (for readers outside the cascade, such as collections)."""
        return self._decode(record, tier, mk)
