"""Large values (ADR 0005): a versioned cold object behind a warm pointer, in one place.

Every write of a large value stores a fresh cold object (``{key}\\x00{version}``) and then points
warm at it, so a write that loses its warm precondition can never destroy the committed value;
the version a pointer no longer names is discarded afterwards (best effort: ``sweep`` and the
lifecycle rule are the backstop). Reads follow the pointer and check the object's sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import orjson

from tiermem._codec import Record, RecordKind
from tiermem._engine.guard import Guard
from tiermem._errors import (
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    TierMemError,
    TierUnavailableError,
    key_digest,
)
from tiermem._instrumentation import logger
from tiermem._pointers import cold_key, new_version, pointer, pointer_target
from tiermem._protocols import ColdMemory, TierStore, WarmMemory
from tiermem._types import MemoryKey, Tier

__all__ = ["BatchPut", "LargeValues"]

BatchPut = Callable[
    [Guard[TierStore] | None, list[tuple[MemoryKey, MemoryKey, Record]]], Awaitable[list[MemoryKey]]
]
"""One batch write of (logical key, tier key, record) entries; returns the logical keys that landed
and records the failures by logical key (see ``writes``)."""


_RESOLVE_ATTEMPTS: Final = 5


def _pointer_size(ptr: Record) -> int:
    """The size a pointer promises (for the read's deadline); 0 when it does not say."""
    try:
        size = orjson.loads(ptr.payload).get("size")
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return size if isinstance(size, int) and size > 0 else 0


class LargeValues:
    """Writes, reads and deletes of values that live in cold behind a warm pointer."""

    def __init__(self, warm: Guard[WarmMemory] | None, cold: Guard[ColdMemory] | None) -> None:
        self._warm = warm
        self._cold = cold

    @property
    def has_cold(self) -> bool:
        return self._cold is not None

    @staticmethod
    def promised_size(pointers: Sequence[tuple[MemoryKey, Record]]) -> int:
        """Bytes the warm pointers say their cold values hold (stored size: at most what they decode
        to), so a batch read can refuse them before downloading (``mget_max_bytes``)."""
        return sum(_pointer_size(ptr) for _, ptr in pointers)

    async def follow(self, pointers: Sequence[tuple[MemoryKey, Record]]) -> list[Record | None]:
        """Fetch the cold records that warm pointers refer to (bounded concurrency in the adapter)."""
        cold = self._cold
        if cold is None:
            raise ConfigurationError(
                "a warm item points to the cold tier, but no cold tier is configured", tier=Tier.WARM
            )
        targets = [pointer_target(mk, ptr) for mk, ptr in pointers]
        keys = [target for target, _ in targets]
        if len(keys) == 1:
            found = [await cold.get(keys[0], size_hint=_pointer_size(pointers[0][1]))]
        else:
            found = await cold.mget(keys, size_hint=sum(_pointer_size(ptr) for _, ptr in pointers))
        out: list[Record | None] = []
        for (mk, _), (_, digest), rec in zip(pointers, targets, found, strict=True):
            if rec is None:
                logger.debug(
                    "warm pointer without a cold object (replaced concurrently?): key#%s", key_digest(mk.key)
                )
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

    async def resolve(self, mk: MemoryKey, ptr: Record, now: float) -> tuple[Record, Record, Tier] | None:
        """Follow a warm pointer to its value: ``(warm record, value record, tier it came from)``.

        When the cold version is gone because a writer replaced it (and discarded the old version)
        after we read the pointer, read the pointer again and follow the new one, so a key that has a
        value never reads as missing (ADR 0006). ``None`` only when the key itself is gone.

        Raises:
            CorruptValueError: the committed pointer names a cold object that does not exist.
        """
        warm = self._warm
        assert warm is not None
        for _ in range(_RESOLVE_ATTEMPTS):
            target = (await self.follow([(mk, ptr)]))[0]
            if target is not None:
                return ptr, target, Tier.COLD
            again = await warm.get(mk)
            if again is None or again.is_expired(now) or again.kind is RecordKind.TOMBSTONE:
                return None
            if again.kind is not RecordKind.POINTER:
                return again, again, Tier.WARM
            if again.payload == ptr.payload:
                raise CorruptValueError(
                    "the warm pointer names a cold object that does not exist",
                    tier=Tier.COLD,
                    operation="get",
                    key=mk.key,
                )
            ptr = again
        raise TierUnavailableError(
            f"the value was replaced {_RESOLVE_ATTEMPTS} times while it was being read",
            tier=Tier.COLD,
            operation="get",
            key=mk.key,
        )

    async def discard(self, keys: Sequence[MemoryKey]) -> None:
        """Best-effort removal of cold versions nothing points to any more (sweep and lifecycle rules
        are the backstop): failures are logged, never raised, because the caller's write stands."""
        cold = self._cold
        if cold is None:
            return
        for mk in keys:
            try:
                await cold.delete(mk)
            except TierMemError as exc:
                logger.warning("could not remove an unreferenced cold version (left for sweep): %s", exc)

    async def write(
        self, mk: MemoryKey, record: Record, if_match: str | None, if_absent: bool, wid: bytes = b""
    ) -> str | None:
        """Store a new cold version, point warm at it, then discard the version it replaced."""
        warm, cold = self._warm, self._cold
        assert warm is not None
        assert cold is not None
        if if_absent and await warm.exists(mk):
            raise ConflictError("key already exists", tier=Tier.WARM, operation="set", key=mk.key)
        # The previous version (if any) is removed only after the new pointer is committed.
        previous = await warm.peek(mk)
        version = new_version()
        target = cold_key(mk, version)
        await cold.set(target, record)
        try:
            etag = await warm.set(
                mk, pointer(record, version).with_write_id(wid), if_match=if_match, if_absent=if_absent
            )
        except TierUnavailableError:
            raise  # the pointer may have landed: keep the new version it would point to
        except TierMemError:
            await self.discard([target])  # refused (conflict, too large...): nothing points to it
            raise
        if previous is not None and previous.kind is RecordKind.POINTER:
            old, _ = pointer_target(mk, previous)
            if old != target:
                await self.discard([old])
        return etag

    async def write_many(
        self, items: Sequence[tuple[MemoryKey, Record]], put: BatchPut, failed: Mapping[str, BaseException]
    ) -> list[MemoryKey]:
        """Batch form of :meth:`write`: cold versions in one batch, pointers in another.

        Returns the logical keys whose pointer landed. Versions no pointer refers to are discarded,
        except where the pointer write's outcome is unknown (it may have landed).
        """
        records = dict(items)
        versions = {mk: new_version() for mk in records}
        targets = {mk: cold_key(mk, version) for mk, version in versions.items()}
        stored = await put(self._cold, [(mk, targets[mk], rec) for mk, rec in records.items()])
        pointed = await put(self._warm, [(mk, mk, pointer(records[mk], versions[mk])) for mk in stored])
        landed = set(pointed)
        refused = [
            targets[mk]
            for mk in stored
            if mk not in landed and not isinstance(failed.get(mk.key), TierUnavailableError)
        ]
        await self.discard(refused)
        return pointed

    async def delete(self, mk: MemoryKey) -> None:
        """Delete the warm item, then the cold version its pointer named (if it was a pointer)."""
        warm, cold = self._warm, self._cold
        assert warm is not None
        assert cold is not None
        previous = await warm.peek(mk)
        await warm.delete(mk)
        if previous is not None and previous.kind is RecordKind.POINTER:
            await cold.delete(pointer_target(mk, previous)[0])
