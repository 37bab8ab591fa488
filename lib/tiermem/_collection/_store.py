"""The tier side of collections: what a store must offer so every query runs natively on one tier.

A store holds encoded records (values, or warm pointers to large values in cold) with their attrs,
keyed by (scope, item key). It never decides policy: hot caching, large values, TTL checks and
validation live in :mod:`tiermem._collection._api`. ``items_read`` counts the items a store fetched
from its backend for listings (tests assert that a ``limit=10`` listing reads O(10) items).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from tiermem._codec import Record
from tiermem._collection._model import AttrValue, ItemQuery, Scope, StoredItem

__all__ = ["CollectionStore", "HasCollections", "PutOp"]

PutOp = tuple[str, Record, Mapping[str, AttrValue]]
"""One item of an atomic ``put_many``: (item key, record, attrs)."""


@runtime_checkable
class CollectionStore(Protocol):
    """Ordered, filterable items per collection on one tier. A miss is ``None``; a failure raises a
    :class:`tiermem.TierError`; deletes are idempotent."""

    items_read: int

    @property
    def max_batch(self) -> int | None:
        """The most items one atomic ``put_many``/``delete_many`` may hold (``None``: no limit)."""
        ...

    async def get(self, scope: Scope, key: str) -> StoredItem | None: ...

    async def get_many(self, scope: Scope, keys: Sequence[str]) -> list[StoredItem | None]:
        """Items in input order, ``None`` for misses."""
        ...

    async def put(
        self,
        scope: Scope,
        op: PutOp,
        *,
        now: float,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        """Store one item; return its new ETag. An expired item does not block ``if_absent``.

        Raises:
            ConflictError: the precondition failed.
        """
        ...

    async def put_many(self, scope: Scope, ops: Sequence[PutOp]) -> None:
        """Store every item or none (one transaction / one transactional batch)."""
        ...

    async def delete_many(self, scope: Scope, keys: Sequence[str]) -> None:
        """Delete the items (all or none where the tier has transactions); missing keys are fine."""
        ...

    async def list_page(
        self, scope: Scope, query: ItemQuery, cursor: str | None, size: int
    ) -> list[StoredItem]:
        """One page of live items in key order (descending with ``query.reverse``), filtered natively:
        at most ``size`` items strictly after ``cursor`` in that order. The client pages with the last
        key it got (keyset paging), so a listing of any length holds one page in memory."""
        ...

    async def count(self, scope: Scope, query: ItemQuery) -> int: ...

    def keys(self, scope: Scope, after: str | None, page: int) -> AsyncIterator[tuple[str, bool]]:
        """Every stored key (expired ones included) in order after ``after``, with whether the record is
        a pointer to cold; at most ``page`` of them (``drop`` walks a collection with it)."""
        ...

    def names(self, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
        """Names of the namespace's collections that hold at least one stored item."""
        ...


@runtime_checkable
class HasCollections(Protocol):
    """A tier adapter that can hold collections (the hook each adapter family adds)."""

    def collection_store(self) -> CollectionStore: ...
