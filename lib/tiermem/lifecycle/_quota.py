"""Quota counters: per-tenant item and byte counts, reserved atomically before each write.

A write first *reserves* what it adds (``+1`` item and its encoded bytes per key) with one atomic
increment; if the new totals pass the tenant's quota the reservation is given back and the write is
refused with :class:`tiermem.QuotaExceededError`. A write that fails gives its reservation back too.
Because the check and the increment are one atomic step, concurrent writers can never push the
counters past the quota: the overshoot against the counters is zero, whatever the concurrency.

Counters are an *upper bound* of real usage: overwrites are charged like new items and deletes are
not refunded (knowing either would cost a read per write). They are brought back to real usage by
:func:`reconcile`, which scans :func:`tiermem.lifecycle.usage` under a per-tenant lock and applies the
difference as an increment, so writes that land during the scan are never lost from the count. A
refused write reconciles its tenant once (at most every ``RECONCILE_INTERVAL`` seconds) before it
gives up, and ``maintain()`` reconciles every tenant it sees. See docs/adr/0011.

Where counters live: in Redis when the hot tier is Redis (shared by every process), else in this
process (an embedded client is one process; several processes on one SQLite file each count alone).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tiermem.tiers.redis import RedisHotMemory

__all__ = ["RECONCILE_INTERVAL", "HasCounters", "LocalCounters", "QuotaCounters", "RedisCounters"]

RECONCILE_INTERVAL: Final = 60.0
_LOCK_MS: Final = 300_000  # a reconcile holding its lock longer than this lets another one start


class QuotaCounters(Protocol):
    """Per-tenant (items, bytes) counters with atomic increments."""

    async def add(self, tenant: str, items: int, nbytes: int) -> tuple[int, int]:
        """Add (possibly negative) amounts atomically; return the new (items, bytes)."""
        ...

    async def read(self, tenant: str) -> tuple[int, int]: ...

    async def reset(self, tenant: str) -> None:
        """Forget a tenant's counters (after erasing the whole tenant)."""
        ...

    def exclusive(self, tenant: str) -> AbstractAsyncContextManager[bool]:
        """An async context manager: ``True`` if this caller now holds the tenant's reconcile lock."""
        ...


@runtime_checkable
class HasCounters(Protocol):
    """A hot tier's lifecycle store that can keep quota counters shared by every process."""

    def quota_counters(self) -> QuotaCounters: ...


class LocalCounters:
    """Counters in this process (event-loop atomic: no await between read and write)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def add(self, tenant: str, items: int, nbytes: int) -> tuple[int, int]:
        old = self._counts.get(tenant, (0, 0))
        new = (old[0] + items, old[1] + nbytes)
        self._counts[tenant] = new
        return new

    async def read(self, tenant: str) -> tuple[int, int]:
        return self._counts.get(tenant, (0, 0))

    async def reset(self, tenant: str) -> None:
        self._counts.pop(tenant, None)

    @asynccontextmanager
    async def exclusive(self, tenant: str) -> AsyncIterator[bool]:
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True


class RedisCounters:
    """Counters in one Redis hash per tenant (``{prefix}q:{<tenant>}``, fields ``items``/``bytes``).

    ``HINCRBY`` of both fields in one ``MULTI``/``EXEC``: atomic, one key (cluster-safe), plain commands.
    The reconcile lock is ``SET NX PX`` on ``{prefix}q:{<tenant>}:lock``.
    """

    def __init__(self, hot: RedisHotMemory) -> None:
        self._hot = hot

    def _key(self, tenant: str) -> str:
        return f"{self._hot.prefix}q:{{{tenant}}}"

    async def add(self, tenant: str, items: int, nbytes: int) -> tuple[int, int]:
        client: Any = self._hot._client
        key = self._key(tenant)
        async with self._hot._call("quota"), client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "items", items)
            pipe.hincrby(key, "bytes", nbytes)
            new_items, new_bytes = await pipe.execute()
        return int(new_items), int(new_bytes)

    async def read(self, tenant: str) -> tuple[int, int]:
        client: Any = self._hot._client
        async with self._hot._call("quota"):
            items, nbytes = await client.hmget(self._key(tenant), ["items", "bytes"])
        return int(items or 0), int(nbytes or 0)

    async def reset(self, tenant: str) -> None:
        client: Any = self._hot._client
        async with self._hot._call("quota"):
            await client.unlink(self._key(tenant))

    @asynccontextmanager
    async def exclusive(self, tenant: str) -> AsyncIterator[bool]:
        client: Any = self._hot._client
        lock = self._key(tenant) + ":lock"
        token = secrets.token_hex(8).encode()
        async with self._hot._call("quota"):
            held = bool(await client.set(lock, token, nx=True, px=_LOCK_MS))
        try:
            yield held
        finally:
            if held:
                async with self._hot._call("quota"):
                    if await client.get(lock) == token:  # ours (not expired and taken over): release it
                        await client.unlink(lock)
