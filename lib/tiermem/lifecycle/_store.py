"""The tier side of data lifecycle: raw, paged listings of what a scope stores, and scope erasure.

Each adapter family offers a :class:`ScopeStore` through one hook (``lifecycle_store()``), written
next to the adapter so it shares the adapter's connection and its one exception translation. A store
sees everything tiermem wrote under a tenant (key-value items, collection items, cold versions, hot
markers), which is what erasure and usage need and what the key-value ``scan`` deliberately hides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

__all__ = ["LISTING_PAGE", "HasLifecycle", "ScopeStore", "StoredEntry", "WarmScopeStore"]

LISTING_PAGE: Final = 500
"""Entries fetched per round trip by every listing: the memory a listing holds, whatever the size."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One stored object as a raw listing sees it.

    Attributes:
        tenant: its tenant.
        namespace: its namespace.
        key: the key-value key, the collection item key, or the cold object's key (versions included).
        collection: the collection it belongs to, or ``None`` for key-value items and cold objects.
        size: stored bytes (the envelope; a warm pointer counts its own bytes, not the cold value's).
        written_at: Unix time of the last write, when the tier records one.
        pointer: a warm item that points to a large value in cold.
        marker: a hot tombstone, fence or lease (not a value).
        expires_at: the value's expiry, when it has one.
        etag: the tier's version tag (warm key-value items), for conditional changes.
    """

    tenant: str
    namespace: str
    key: str
    collection: str | None = None
    size: int = 0
    written_at: float | None = None
    pointer: bool = False
    marker: bool = False
    expires_at: float | None = None
    etag: str | None = None


@runtime_checkable
class ScopeStore(Protocol):
    """Paged listing and erasure of a scope on one tier. A failure raises a :class:`tiermem.TierError`."""

    def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        """Every object of a tenant (or of every tenant with ``None``), optionally one namespace,
        expired ones included, streamed page by page (at most :data:`LISTING_PAGE` held at a time)."""
        ...

    async def erase(self, tenant: str, namespace: str | None) -> int:
        """Delete every object of the tenant (or one of its namespaces) on this tier; return how many.

        Idempotent: a rerun after a crash deletes what is left and counts only that.
        """
        ...


@runtime_checkable
class WarmScopeStore(ScopeStore, Protocol):
    """What retention needs from the durable tier on top of listing and erasure."""

    async def delete_if(self, tenant: str, namespace: str, key: str, etag: str) -> bool:
        """Delete one key-value item only if it still has ``etag``; return whether it was deleted."""
        ...


@runtime_checkable
class HasLifecycle(Protocol):
    """A tier adapter that offers lifecycle operations (the one hook each adapter family adds)."""

    def lifecycle_store(self) -> ScopeStore: ...
