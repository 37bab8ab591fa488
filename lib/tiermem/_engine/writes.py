"""The write path (docs/architecture.md, "Write path"): a pure plan, then the durable write, then hot.

:func:`plan` decides, with no I/O, where a value goes (hot only, the durable tier, or cold behind a
warm pointer) and whether hot gets a copy or a fence; it raises before anything is written.
:class:`Writes` carries plans out: the durable tier first (a call that returns has reached it), then
the hot cache is invalidated (:mod:`.hot`, ADR 0006). Every durable write carries a write id, so a
conditional write that the SDK retried after it had landed is confirmed instead of reported as a
conflict, and an outcome that cannot be confirmed is reported as unknown.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from tiermem._codec import Codec, Record
from tiermem._config import Policy
from tiermem._engine.guard import Guard
from tiermem._engine.hot import HotCache
from tiermem._engine.large import LargeValues
from tiermem._errors import (
    BatchWriteError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    InvalidTTLError,
    TierError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
    WriteOutcomeUnknownError,
    key_digest,
)
from tiermem._instrumentation import Telemetry
from tiermem._protocols import TierStore
from tiermem._types import Clock, MemoryKey, Tier, Value

if TYPE_CHECKING:
    from tiermem.lifecycle._governance import Governance

__all__ = ["Layout", "Route", "Write", "Writes", "plan"]


class Route(enum.Enum):
    """Where a value is stored."""

    HOT_ONLY = "hot-only"  # no durable tier, or tier=HOT
    DURABLE = "durable"  # the durable tier holds the value (warm, or cold when there is no warm)
    LARGE = "large"  # cold holds the value, warm holds a pointer (ADR 0005)


class Layout(NamedTuple):
    """Which tiers a client has."""

    hot: bool
    warm: bool
    cold: bool

    @property
    def durable(self) -> bool:
        return self.warm or self.cold


@dataclass(slots=True)
class Write:
    """One planned write: the record, where it goes, and whether its value may be cached in hot."""

    mk: MemoryKey
    record: Record
    route: Route
    cache: bool


def _too_large(mk: MemoryKey, size: int, limit: int, tier: Tier, why: str) -> ValueTooLargeError:
    return ValueTooLargeError(
        f"value is {size} bytes{why}", size=size, limit=limit, tier=tier, operation="set", key=mk.key
    )


async def _invalidate(hot: HotCache, mk: MemoryKey) -> None:
    """Invalidate ``mk`` in hot after its durable write; a cancelled invalidation is queued instead
    (the durable write landed, so hot must not keep the old value)."""
    try:
        await hot.invalidate([mk])
    except asyncio.CancelledError:
        hot.invalidate_later([mk], None)
        raise


def plan(
    mk: MemoryKey,
    record: Record,
    tier: Tier | None,
    ttl: float | None,
    layout: Layout,
    policy: Policy,
    *,
    if_match: str | None = None,
    if_absent: bool = False,
) -> Write:
    """Decide where one encoded value goes. Pure: no I/O, and every refusal happens here.

    Raises:
        InvalidInputError: the tier, ttl, size or conditions cannot work for this value.
        ConfigurationError: the value is pinned to a tier the client does not have.
    """
    size = record.size
    if tier is not None and not isinstance(tier, Tier):
        raise InvalidInputError(f"tier must be a tiermem.Tier, not {type(tier).__name__}")
    if tier is Tier.HOT or (tier is None and not layout.durable):
        if not layout.hot:
            raise ConfigurationError("tier=HOT needs a hot tier", operation="set", key=mk.key)
        if tier is Tier.HOT and ttl is None:
            raise InvalidTTLError("values pinned to the hot tier must carry a ttl", key=mk.key)
        limit = policy.hot_max_bytes
        hot_size = record.largest_size  # hot reads inflate at most hot_max_bytes (ADR 0015)
        if hot_size > limit:
            raise _too_large(
                mk, hot_size, limit, Tier.HOT, f"; the hot tier takes at most hot_max_bytes={limit}"
            )
        write = Write(mk, record, Route.HOT_ONLY, cache=True)
    elif tier is Tier.WARM:
        if not layout.warm:
            raise ConfigurationError("tier=WARM needs a warm tier", operation="set", key=mk.key)
        limit = policy.warm_max_bytes
        if size > limit:
            raise _too_large(
                mk, size, limit, Tier.WARM, f"; the warm tier takes at most warm_max_bytes={limit}"
            )
        write = Write(mk, record, Route.DURABLE, cache=False)
    elif tier is Tier.COLD:
        if not layout.cold:
            raise ConfigurationError("tier=COLD needs a cold tier", operation="set", key=mk.key)
        write = Write(mk, record, Route.LARGE if layout.warm else Route.DURABLE, cache=False)
    elif layout.warm and size > policy.warm_max_bytes:
        # Default: durable tier, with large values in cold behind a warm pointer.
        if not layout.cold:
            limit = policy.warm_max_bytes
            raise _too_large(
                mk,
                size,
                limit,
                Tier.WARM,
                f", above warm_max_bytes={limit}, and no cold tier is configured to hold it",
            )
        write = Write(mk, record, Route.LARGE, cache=record.largest_size <= policy.hot_max_bytes)
    else:
        write = Write(
            mk, record, Route.DURABLE, cache=layout.hot and record.largest_size <= policy.hot_max_bytes
        )
    if if_match is not None and if_absent:
        raise InvalidInputError("use either if_match or if_absent", operation="set", key=mk.key)
    if if_match is not None and write.route is Route.HOT_ONLY:
        raise InvalidInputError("if_match needs a durable tier", operation="set", key=mk.key)
    return write


class Writes:
    """Carries out planned writes and deletes: durable tier first, then the hot cache."""

    def __init__(
        self,
        hot: HotCache,
        warm: Guard[TierStore] | None,
        durable: Guard[TierStore] | None,
        large: LargeValues,
        *,
        codec: Codec,
        telemetry: Telemetry,
    ) -> None:
        self._hot = hot
        self._warm = warm
        self._durable = durable
        self._large = large
        self._codec = codec
        self._telemetry = telemetry
        # How long a request whose outcome is unknown may still land: invalidate hot again after it.
        self._settle_delay = durable.options.timeout if durable is not None else None
        self.governance: Governance | None = None  # quotas and audit (tiermem.lifecycle), set by the engine
        self.clock: Clock = time.time

    def encode(self, value: Value, expires_at: float | None, mk: MemoryKey) -> Record:
        """Encode (and maybe gzip) one value; invalid values name their key's hash."""
        try:
            record, raw = self._codec.encode(value, expires_at=expires_at)
        except InvalidInputError as exc:
            exc.key_hash = exc.key_hash or key_digest(mk.key)
            raise
        if record.compressed:
            self._telemetry.compressed(raw, len(record.payload))
        return record

    async def write(self, w: Write, now: float, if_match: str | None, if_absent: bool) -> str | None:
        """One planned write; returns the durable ETag (``None`` for hot-only values).

        Raises:
            ConflictError: the condition did not hold (and the item is not this write's own).
            WriteOutcomeUnknownError: the durable write may or may not have landed.
            TierUnavailableError: the durable tier refused to be called (the write did not happen).
            QuotaExceededError: the tenant's quota refuses it (nothing was written).
        """
        gov = self.governance
        if gov is None or not gov.watching:
            return await self._write(w, now, if_match, if_absent)
        mk = w.mk
        async with gov.guard("set", mk.tenant, mk.namespace, ((mk.key, w.record.size),), self._existing(mk)):
            return await self._write(w, now, if_match, if_absent)

    async def _write(self, w: Write, now: float, if_match: str | None, if_absent: bool) -> str | None:
        hot = self._hot
        mk = w.mk
        if w.route is Route.HOT_ONLY:
            guard = hot.guard
            assert guard is not None
            await guard.set(mk, hot.pinned(w.record, now), if_absent=if_absent)
            return None
        wid = secrets.token_bytes(8)
        try:
            if w.route is Route.LARGE:
                etag = await self._large.write(mk, w.record, if_match, if_absent, wid)
            else:
                durable = self._durable
                assert durable is not None
                etag = await durable.set(
                    mk, w.record.with_write_id(wid), if_match=if_match, if_absent=if_absent
                )
        except ConflictError:
            if if_match is None and not if_absent:
                raise
            # The SDK may have retried a request that had landed: then the item is our own write.
            etag = await self._confirm(mk, wid)
            if etag is None:
                raise
        except CircuitOpenError:
            raise  # never sent: nothing changed
        except TierUnavailableError as exc:
            try:
                etag = await self._confirm(mk, wid)
            except TierMemError:
                etag = None
            if etag is None:
                hot.invalidate_later([mk], self._settle_delay)
                raise WriteOutcomeUnknownError(
                    f"the write may or may not have landed: {exc.message}",
                    tier=exc.tier,
                    operation="set",
                    key=mk.key,
                ) from exc
        except asyncio.CancelledError:
            hot.invalidate_later([mk], self._settle_delay)  # it may still land
            raise
        await _invalidate(hot, mk)
        return etag

    async def _confirm(self, mk: MemoryKey, wid: bytes) -> str | None:
        """The durable ETag if the key holds the record written with ``wid``, else ``None``."""
        warm = self._warm if self._warm is not None else self._durable
        assert warm is not None
        record = await warm.get(mk)
        if record is not None and record.wid == wid:
            return record.etag or ""
        return None

    async def write_many(self, writes: Sequence[Write], now: float) -> None:
        """Planned writes in one batch per tier (``mset``); not atomic across keys.

        Raises:
            BatchWriteError: some writes failed; ``written`` and ``failed`` say which.
            QuotaExceededError: the tenant's quota refuses the batch (nothing was written).
        """
        gov = self.governance
        if gov is None or not gov.watching or not writes:
            await self._write_many(writes, now)
            return
        first = writes[0].mk
        charged = [(w.mk.key, w.record.size) for w in writes]
        async with gov.guard("mset", first.tenant, first.namespace, charged, self._existing(first)):
            await self._write_many(writes, now)

    def _existing(self, scope: MemoryKey) -> Callable[[list[str]], Awaitable[AbstractSet[str]]]:
        """Which keys of ``scope``'s namespace hold a live value (asked only when a quota refuses)."""

        async def probe(keys: list[str]) -> AbstractSet[str]:
            durable = self._durable
            if durable is None:
                return frozenset()
            mks = [MemoryKey(scope.tenant, scope.namespace, k) for k in keys]
            found = await durable.mget(mks)
            now = self.clock()
            return {
                mk.key
                for mk, rec in zip(mks, found, strict=True)
                if rec is not None and not rec.is_expired(now)
            }

        return probe

    async def _write_many(self, writes: Sequence[Write], now: float) -> None:
        try:
            await self._batches(writes, now)
        except asyncio.CancelledError:
            self._hot.invalidate_later([w.mk for w in writes], self._settle_delay)  # writes may still land
            raise

    async def _batches(self, writes: Sequence[Write], now: float) -> None:
        hot = self._hot
        hot_only = [w for w in writes if w.route is Route.HOT_ONLY]
        durable = [w for w in writes if w.route is Route.DURABLE]
        large = [w for w in writes if w.route is Route.LARGE]
        failed: dict[str, BaseException] = {}

        async def put(
            guard: Guard[TierStore] | None, entries: list[tuple[MemoryKey, MemoryKey, Record]]
        ) -> list[MemoryKey]:
            """One batch write; returns the logical keys that landed and records failures by logical key."""
            if guard is None or not entries:
                return [mk for mk, _, _ in entries]
            try:
                await guard.mset([(tk, rec) for _, tk, rec in entries])
            except BatchWriteError as exc:
                for mk, tk, _ in entries:
                    if tk.key in exc.failed:
                        failed[mk.key] = exc.failed[tk.key]
                written = set(exc.written)
                return [mk for mk, tk, _ in entries if tk.key in written]
            except TierError as exc:
                for mk, _, _ in entries:
                    failed[mk.key] = exc
                return []
            return [mk for mk, _, _ in entries]

        if hot_only:
            pinned = hot.pinned
            await put(hot.guard, [(w.mk, w.mk, pinned(w.record, now)) for w in hot_only])
        ok = await put(self._durable, [(w.mk, w.mk, w.record) for w in durable]) if durable else []
        if large:
            ok += await self._large.write_many([(w.mk, w.record) for w in large], put, failed)
        unknown = [w.mk for w in writes if isinstance(failed.get(w.mk.key), TierUnavailableError)]
        await hot.invalidate([*ok, *unknown])
        hot.invalidate_later(unknown, self._settle_delay)  # their durable writes may still land
        if failed:
            written = [mk.key for mk in ok] + [w.mk.key for w in hot_only if w.mk.key not in failed]
            raise BatchWriteError("mset partially failed", written=written, failed=failed)

    async def delete(self, mk: MemoryKey, now: float) -> None:
        """The durable delete (and the cold version a pointer named), then hot is invalidated.

        A delete that fails before it reached the durable tier leaves the key as it was for everyone
        (no tombstone goes first, ADR 0006); one whose outcome is unknown invalidates hot anyway.
        """
        gov = self.governance
        if gov is None or not gov.watching:
            await self._delete(mk, now)
            return
        async with gov.guard("delete", mk.tenant, mk.namespace, ((mk.key, 0),)):
            await self._delete(mk, now)

    async def _delete(self, mk: MemoryKey, now: float) -> None:
        hot = self._hot
        guard = hot.guard
        if guard is not None and self._durable is None:
            await guard.delete(mk)  # hot is the store of record
            return
        try:
            if self._warm is not None and self._large.has_cold:
                await self._large.delete(mk)
            elif self._durable is not None:
                await self._durable.delete(mk)
        except CircuitOpenError:
            raise
        except TierUnavailableError:
            hot.invalidate_later([mk], self._settle_delay)
            raise
        except asyncio.CancelledError:
            hot.invalidate_later([mk], self._settle_delay)
            raise
        await _invalidate(hot, mk)
