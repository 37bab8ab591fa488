"""The tier Protocols every adapter implements (tier identity and the key live in ``_types``).

One small core interface (``TierStore``) over stored records; ``HotMemory``,
``WarmMemory`` and ``ColdMemory`` add only what their tier natively offers. Policy
(cascade, promotion, codec, TTL capping) lives in :class:`tiermem.MemoryClient`, never here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from tiermem._codec import Record
from tiermem._errors import CorruptValueError
from tiermem._types import MemoryKey, Tier, TierInfo

__all__ = [
    "ColdMemory",
    "EnvelopeReader",
    "HotMemory",
    "InlineRead",
    "MemoryKey",
    "Tier",
    "TierInfo",
    "TierStore",
    "WarmMemory",
]


@runtime_checkable
class TierStore(Protocol):
    """The core interface shared by every tier: records in, records out, by logical key.

    A miss is ``None``; a failure is a :class:`tiermem.TierError`. ``delete`` is idempotent.
    Adapters translate their SDK's exceptions in one place and never call each other.
    """

    @property
    def info(self) -> TierInfo: ...

    async def setup(self) -> None:
        """Create what the tier needs (database, container, table). Idempotent; never called implicitly."""
        ...

    async def ping(self) -> None:
        """Raise unless the tier answers (used by ``doctor`` and ``/readyz``)."""
        ...

    async def get(self, key: MemoryKey) -> Record | None: ...

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        """Store ``record``; return the new ETag when the tier has one.

        Raises:
            ConflictError: ``if_match`` did not match, or ``if_absent`` and the key exists.
        """
        ...

    async def delete(self, key: MemoryKey) -> None: ...

    async def exists(self, key: MemoryKey) -> bool: ...

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        """Records in input order, ``None`` for misses; one round trip where the tier supports it."""
        ...

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        """Store many records; with ``if_absent`` existing keys are skipped silently (promotion).

        Raises:
            BatchWriteError: some items failed; it lists which were written.
        """
        ...

    async def aclose(self) -> None:
        """Release what this store created. Idempotent; injected resources stay open."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class HotMemory(TierStore, Protocol):
    """The fast, volatile tier (Redis, in-process): native TTL and batch delete."""

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        """Delete many keys in one round trip; missing keys are fine."""
        ...

    async def swap(self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]]) -> list[bool]:
        """Compare-and-swap per key: where a key holds exactly ``expected`` (``None``: nothing), store
        ``new`` (``None``: delete it). Returns, per item, whether it swapped. Lease-guarded fills and
        stale-copy removal rest on it (docs/adr/0006-cross-process-coherence.md)."""
        ...


@runtime_checkable
class EnvelopeReader(Protocol):
    """A hot tier that stores records as :meth:`Record.to_bytes` envelopes (Redis) and can hand a batch
    read the envelopes themselves: the hot cache then classifies and decodes each one from its header
    fields without building a :class:`Record` per key (issue 17). Optional; ``mget`` is the default."""

    async def mget_envelopes(self, keys: Sequence[MemoryKey]) -> list[bytes | CorruptValueError | None]:
        """The stored envelopes of ``keys`` in input order (``None`` for misses), checked as the
        tier checks what ``mget`` returns (a seal verified and stripped), in one round trip (one per
        slot on a cluster); a damaged record is its error in place, so it costs only its own key."""
        ...


@runtime_checkable
class InlineRead(Protocol):
    """An in-process store that can answer a read without awaiting (``TierInfo.in_process``).

    The client's hot-hit fast path calls it synchronously, so a hit costs no coroutine switches.
    """

    def get_now(self, key: MemoryKey) -> Record | None:
        """What ``get`` returns, computed now; raises what ``get`` raises."""
        ...


@runtime_checkable
class WarmMemory(TierStore, Protocol):
    """The durable tier (Cosmos DB, SQLite): tenant-wide listing and purge."""

    def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        """Every stored key of a tenant (optionally one namespace), expired ones included."""
        ...

    async def purge(self, tenant: str, namespace: str | None = None) -> int:
        """Delete every item of a tenant (or one namespace); return how many were deleted."""
        ...


@runtime_checkable
class ColdMemory(TierStore, Protocol):
    """The large, cheap tier (Blob, files): listing and sweeping of expired objects."""

    def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]: ...

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete objects whose expiry has passed (Blob has no native TTL); return how many."""
        ...
