"""In-process hot tier: an LRU/LFU/FIFO map with TTL, bounded by item count and bytes."""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tiermem._codec import Record
from tiermem._errors import ConflictError, TierError, ValueTooLargeError
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers._base import BatchOutcome, Clock, TierAdapter

if TYPE_CHECKING:
    from tiermem.tiers.embedded_lifecycle import InProcessScopeStore
    from tiermem.tiers.memory_collections import InProcessCollectionStore

__all__ = ["EvictionPolicy", "LocalHotMemory"]


class EvictionPolicy(enum.Enum):
    """Which entry ``LocalHotMemory`` drops first when it is full."""

    LRU = "lru"  # least recently used
    LFU = "lfu"  # least frequently used (ties: least recently used)
    FIFO = "fifo"  # oldest insertion


@dataclass(slots=True)
class _HotEntry:
    record: Record
    size: int
    freq: int = 1


_ENTRY_OVERHEAD: Final = 64  # rough per-entry bookkeeping, so max_bytes bounds real memory use


class LocalHotMemory(TierAdapter):
    """In-process hot tier with LRU, LFU or FIFO eviction, ``max_items``/``max_bytes`` bounds and TTL.

    All operations are synchronous under the hood and never await, so they are atomic with
    respect to other tasks on the same event loop. Not shared between processes.

    Args:
        max_items: most entries kept.
        max_bytes: most bytes kept (records plus keys plus a per-entry overhead).
        eviction: the policy that picks the victim when a bound is exceeded.
        clock: time source (Unix seconds), injectable for tests.
    """

    tier = Tier.HOT

    def __init__(
        self,
        *,
        max_items: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        eviction: EvictionPolicy = EvictionPolicy.LRU,
        clock: Clock = time.time,
    ) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be >= 1")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.eviction = eviction
        self._clock = clock
        self._entries: dict[MemoryKey, _HotEntry] = {}
        self._order: OrderedDict[MemoryKey, None] = OrderedDict()  # LRU / FIFO order, oldest first
        self._freq: dict[int, OrderedDict[MemoryKey, None]] = {}  # LFU buckets
        self._min_freq = 0
        self._bytes = 0
        self.evictions = 0
        self._info = TierInfo(db_system="tiermem_local", native_ttl=True, in_process=True)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def setup(self) -> None:
        self._ensure_open("setup")

    async def ping(self) -> None:
        self._ensure_open("ping")

    # -- bookkeeping ---------------------------------------------------------------------------

    def _touch(self, mk: MemoryKey, entry: _HotEntry) -> None:
        if self.eviction is EvictionPolicy.LRU:
            self._order.move_to_end(mk)
        elif self.eviction is EvictionPolicy.LFU:
            bucket = self._freq[entry.freq]
            del bucket[mk]
            if not bucket:
                del self._freq[entry.freq]
                if self._min_freq == entry.freq:
                    self._min_freq = entry.freq + 1
            entry.freq += 1
            self._freq.setdefault(entry.freq, OrderedDict())[mk] = None

    def _remove(self, mk: MemoryKey) -> None:
        entry = self._entries.pop(mk, None)
        if entry is None:
            return
        self._bytes -= entry.size
        if self.eviction is EvictionPolicy.LFU:
            bucket = self._freq[entry.freq]
            del bucket[mk]
            if not bucket:
                del self._freq[entry.freq]
        else:
            del self._order[mk]

    def _victim(self) -> MemoryKey:
        if self.eviction is EvictionPolicy.LFU:
            if self._min_freq not in self._freq:
                self._min_freq = min(self._freq)
            return next(iter(self._freq[self._min_freq]))
        return next(iter(self._order))

    def _live(self, mk: MemoryKey) -> _HotEntry | None:
        entry = self._entries.get(mk)
        if entry is not None and entry.record.is_expired(self._clock()):
            self._remove(mk)
            return None
        return entry

    def _put(self, mk: MemoryKey, record: Record) -> None:
        size = record.size + len(mk.key) + len(mk.tenant) + len(mk.namespace) + _ENTRY_OVERHEAD
        self._remove(mk)  # even when the new record is refused, the old one must not stay cached
        if size > self.max_bytes:
            raise ValueTooLargeError(
                f"record of {size} bytes exceeds the hot tier's max_bytes={self.max_bytes}",
                size=size,
                limit=self.max_bytes,
                tier=Tier.HOT,
                operation="set",
                key=mk.key,
            )
        # Make room first, so the entry being admitted is never its own victim (LFU: it has freq 1).
        while self._entries and (len(self._entries) >= self.max_items or self._bytes + size > self.max_bytes):
            self._remove(self._victim())
            self.evictions += 1
        self._entries[mk] = _HotEntry(record, size)
        self._bytes += size
        if self.eviction is EvictionPolicy.LFU:
            self._freq.setdefault(1, OrderedDict())[mk] = None
            self._min_freq = 1
        else:
            self._order[mk] = None

    # -- TierStore -----------------------------------------------------------------------------

    async def get(self, key: MemoryKey) -> Record | None:
        return self.get_now(key)

    def get_now(self, key: MemoryKey) -> Record | None:
        """``get`` without awaiting (``InlineRead``): the client's hot-hit fast path calls it."""
        self._ensure_open("get")
        entry = self._live(key)
        if entry is None:
            return None
        self._touch(key, entry)
        return entry.record

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        self._ensure_open("set")
        if if_match is not None:
            raise TierError("the hot tier has no ETags; if_match applies to the durable tier", tier=Tier.HOT)
        if if_absent and self._live(key) is not None:
            raise ConflictError("key already exists", tier=Tier.HOT, operation="set", key=key.key)
        self._put(key, record)
        return None

    async def delete(self, key: MemoryKey) -> None:
        self._ensure_open("delete")
        self._remove(key)

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        self._ensure_open("mdelete")
        for mk in keys:
            self._remove(mk)

    async def exists(self, key: MemoryKey) -> bool:
        self._ensure_open("exists")
        return self._live(key) is not None

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        self._ensure_open("mget")
        out: list[Record | None] = []
        for mk in keys:
            entry = self._live(mk)
            if entry is not None:
                self._touch(mk, entry)
                out.append(entry.record)
            else:
                out.append(None)
        return out

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        self._ensure_open("mset")
        outcome = BatchOutcome()
        for mk, record in items:
            if if_absent and self._live(mk) is not None:
                continue
            try:
                self._put(mk, record)
                outcome.ok(mk)
            except ValueTooLargeError as exc:
                outcome.fail(mk, exc)
        outcome.raise_failures(Tier.HOT, "hot")

    async def swap(self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]]) -> list[bool]:
        """Compare-and-swap per key (ADR 0006): where the key's live record equals ``expected``
        (``None``: nothing live), store ``new`` (``None``: delete). Atomic: nothing awaits."""
        self._ensure_open("swap")
        done: list[bool] = []
        now = self._clock()
        for mk, expected, new in items:
            entry = self._live(mk)
            current = None if entry is None else entry.record
            if current != expected or (new is not None and new.is_expired(now)):
                done.append(False)
                continue
            if new is None:
                if entry is not None:
                    self._remove(mk)
            else:
                self._put(mk, new)
            done.append(True)
        return done

    async def _close(self) -> None:
        self._entries.clear()
        self._order.clear()
        self._freq.clear()
        self._bytes = 0

    # -- collections (tiermem._collection): a hot-only client keeps them in this process ----------

    _collections: InProcessCollectionStore | None = None

    def collection_store(self) -> InProcessCollectionStore:
        """Collections for a client whose only tier is this one: held in process memory (not shared)."""
        if self._collections is None:
            from tiermem.tiers.memory_collections import InProcessCollectionStore

            self._collections = InProcessCollectionStore()
        return self._collections

    def lifecycle_store(self) -> InProcessScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.embedded_lifecycle import InProcessScopeStore

        return InProcessScopeStore(self)
