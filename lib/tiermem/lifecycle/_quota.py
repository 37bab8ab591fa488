"""Quota counters: per-tenant item and byte counts, reserved atomically before each write.

A write first *reserves* what it adds (``+1`` item and its encoded bytes per key) with one atomic
increment, which also counts it as *in flight*; if the new totals pass the tenant's quota the
reservation is taken back whole and the write is refused with :class:`tiermem.QuotaExceededError`.
When the write ends it *settles*: it leaves the in-flight count, and a write that certainly failed
takes its reservation back (one whose outcome is unknown keeps it). The check and the increment are
one atomic step, so concurrent writers can never push the counters past the quota.

Counters are an *upper bound* of real usage: overwrites are charged like new items and deletes are
not refunded (knowing either would cost a read per write; a key-value write the quota refuses asks
which of its keys exist and is charged only for new ones). ``reconcile`` (lifecycle/_usage.py)
brings them back to real usage under a per-tenant lock: it reads the counters, scans the tiers, and
adds ``usage - counted + in_flight`` as one increment. Writes in flight when it read the counters
may be missing from the scan, so they are counted again (upper bound kept); writes reserved during
the scan keep their own increments. So the counters never drop below the stored usage and the
overshoot of stored usage past a quota is zero (tests/lifecycle/test_quotas.py measures it). A
refused write reconciles its tenant once (at most every ``QuotaPolicy.reconcile_interval``) before
it gives up, and ``maintain()`` reconciles every tenant it sees. See docs/adr/0014.

Where counters live: in Redis when the hot tier is Redis (shared by every process), else in this
process (an embedded client is one process; several processes on one SQLite file each count alone).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

from tiermem._types import MemoryKey


class RedisLike(Protocol):
    """What counters (and the Redis lifecycle store) use of the Redis adapter: its client, key prefix
    and its call wrapper (admission and the adapter's one exception translation)."""

    @property
    def _client(self) -> Any: ...

    @property
    def prefix(self) -> str: ...

    @property
    def cluster(self) -> bool: ...

    def _call(self, operation: str, key: MemoryKey | None = None) -> AbstractAsyncContextManager[None]: ...

    def _ensure_open(self, operation: str) -> None: ...


__all__ = ["Counts", "HasCounters", "LocalCounters", "QuotaCounters", "RedisCounters", "RedisLike"]

_LOCK_MS: Final = 300_000  # a reconcile holding its lock longer than this lets another one start


class Counts(NamedTuple):
    """A tenant's counters: counted items and bytes (in-flight writes included), and the in-flight part."""

    items: int
    bytes: int
    inflight_items: int
    inflight_bytes: int


class QuotaCounters(Protocol):
    """Per-tenant counters with atomic increments of several fields at once."""

    async def add(
        self, tenant: str, items: int, nbytes: int, inflight_items: int, inflight_bytes: int
    ) -> Counts:
        """Add (possibly negative) amounts to every field atomically; return the new counts."""
        ...

    async def read(self, tenant: str) -> Counts: ...

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


_ZERO: Final = Counts(0, 0, 0, 0)


class LocalCounters:
    """Counters in this process (event-loop atomic: no await between read and write)."""

    def __init__(self) -> None:
        self._counts: dict[str, Counts] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def add(
        self, tenant: str, items: int, nbytes: int, inflight_items: int, inflight_bytes: int
    ) -> Counts:
        old = self._counts.get(tenant, _ZERO)
        new = Counts(
            old.items + items,
            old.bytes + nbytes,
            old.inflight_items + inflight_items,
            old.inflight_bytes + inflight_bytes,
        )
        self._counts[tenant] = new
        return new

    async def read(self, tenant: str) -> Counts:
        return self._counts.get(tenant, _ZERO)

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


_FIELDS: Final = ("items", "bytes", "fi", "fb")


class RedisCounters:
    """Counters in one Redis hash per tenant (``{prefix}q:{<tenant>}``; fields items, bytes, fi, fb).

    ``HINCRBY`` of every field in one ``MULTI``/``EXEC``: atomic, one key (cluster-safe), plain commands.
    The reconcile lock is ``SET NX PX`` on ``{prefix}q:{<tenant>}:lock``.
    """

    def __init__(self, hot: RedisLike) -> None:
        self._hot = hot

    def _key(self, tenant: str) -> str:
        return f"{self._hot.prefix}q:{{{tenant}}}"

    async def add(
        self, tenant: str, items: int, nbytes: int, inflight_items: int, inflight_bytes: int
    ) -> Counts:
        client: Any = self._hot._client
        key = self._key(tenant)
        async with self._hot._call("quota"), client.pipeline(transaction=True) as pipe:
            for name, amount in zip(_FIELDS, (items, nbytes, inflight_items, inflight_bytes), strict=True):
                pipe.hincrby(key, name, amount)
            values = await pipe.execute()
        return Counts(*(int(v) for v in values))

    async def read(self, tenant: str) -> Counts:
        client: Any = self._hot._client
        async with self._hot._call("quota"):
            values = await client.hmget(self._key(tenant), list(_FIELDS))
        return Counts(*(int(v or 0) for v in values))

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
                    if await client.get(lock) == token:  # still ours (it did not time out): release it
                        await client.unlink(lock)
