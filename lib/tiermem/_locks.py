"""Striped per-key locks: serialize work on one key within a process, with bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import asynccontextmanager

__all__ = ["StripedLocks"]


class StripedLocks:
    """A fixed set of ``asyncio.Lock`` stripes; a key always maps to the same stripe.

    Memory does not grow with the number of keys; two keys may share a stripe (they then wait for
    each other, which costs latency, never correctness). Batches take their stripes in index order,
    so two batches can never deadlock.
    """

    __slots__ = ("_locks",)

    def __init__(self, stripes: int = 256) -> None:
        if stripes < 1:
            raise ValueError("stripes must be >= 1")
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    def lock(self, key: Hashable) -> asyncio.Lock:
        """The stripe guarding ``key`` (``async with locks.lock(key):``)."""
        return self._locks[hash(key) % len(self._locks)]

    @asynccontextmanager
    async def hold(self, keys: Iterable[Hashable]) -> AsyncIterator[None]:
        """Hold the stripes of every key in ``keys`` (each once, in index order)."""
        n = len(self._locks)
        taken: list[asyncio.Lock] = []
        try:
            for i in sorted({hash(key) % n for key in keys}):
                await self._locks[i].acquire()
                taken.append(self._locks[i])
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
