"""Test doubles that wrap a real tier: count calls, fail on demand, or pause at a chosen point.

They are second implementations of the Protocols (httpx's MockTransport idea), not patches.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tiermem import (
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    MemoryKey,
    Record,
    SqliteWarmMemory,
    Tier,
    TierInfo,
    TierUnavailableError,
)


class WrappedStore:
    """Delegates every tier call to ``inner``; records calls; can be taken down or gated."""

    def __init__(self, inner: Any, tier: Tier) -> None:
        self.inner = inner
        self.tier = tier
        self.calls: Counter[str] = Counter()
        self.down = False
        self.fail_keys: set[str] = set()
        # Pause points: operation -> (reached, release). The call fetches first, then waits.
        self.gates: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}

    def gate(self, operation: str) -> tuple[asyncio.Event, asyncio.Event]:
        pair = (asyncio.Event(), asyncio.Event())
        self.gates[operation] = pair
        return pair

    async def _enter(self, operation: str, keys: Sequence[MemoryKey] = ()) -> None:
        self.calls[operation] += 1
        if self.down:
            raise TierUnavailableError("injected outage", tier=self.tier, operation=operation)
        for mk in keys:
            if mk.key in self.fail_keys:
                raise TierUnavailableError(
                    "injected key failure", tier=self.tier, operation=operation, key=mk.key
                )

    async def _pause(self, operation: str) -> None:
        gate = self.gates.pop(operation, None)
        if gate is not None:
            reached, release = gate
            reached.set()
            await release.wait()

    @property
    def info(self) -> TierInfo:
        info: TierInfo = self.inner.info
        return info

    async def setup(self) -> None:
        await self._enter("setup")
        await self.inner.setup()

    async def ping(self) -> None:
        await self._enter("ping")
        await self.inner.ping()

    async def get(self, key: MemoryKey) -> Record | None:
        await self._enter("get", [key])
        result: Record | None = await self.inner.get(key)
        await self._pause("get")
        return result

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        await self._enter("set", [key])
        await self._pause("set")
        etag: str | None = await self.inner.set(key, record, if_match=if_match, if_absent=if_absent)
        return etag

    async def delete(self, key: MemoryKey) -> None:
        await self._enter("delete", [key])
        await self.inner.delete(key)

    async def exists(self, key: MemoryKey) -> bool:
        await self._enter("exists", [key])
        result: bool = await self.inner.exists(key)
        return result

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        await self._enter("mget")
        result: list[Record | None] = await self.inner.mget(keys)
        await self._pause("mget")
        return result

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        await self._enter("mset")
        if self.fail_keys & {mk.key for mk, _ in items}:
            from tiermem import BatchWriteError

            good = [(mk, r) for mk, r in items if mk.key not in self.fail_keys]
            await self.inner.mset(good, if_absent=if_absent)
            raise BatchWriteError(
                "injected partial failure",
                written=[mk.key for mk, _ in good],
                failed={
                    mk.key: TierUnavailableError("injected", tier=self.tier)
                    for mk, _ in items
                    if mk.key in self.fail_keys
                },
                tier=self.tier,
            )
        await self._pause("mset")
        await self.inner.mset(items, if_absent=if_absent)

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        await self._enter("mdelete")
        await self.inner.mdelete(keys)

    async def swap(self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]]) -> list[bool]:
        await self._enter("swap", [mk for mk, _, _ in items])
        await self._pause("swap")
        result: list[bool] = await self.inner.swap(items)
        return result

    def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        result: AsyncIterator[MemoryKey] = self.inner.scan(tenant, namespace)
        return result

    async def purge(self, tenant: str, namespace: str | None = None) -> int:
        result: int = await self.inner.purge(tenant, namespace)
        return result

    async def sweep(self, *, now: float | None = None) -> int:
        result: int = await self.inner.sweep(now=now)
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clocked_memory(directory: Path, clock: FakeClock) -> MemoryClient:
    """An embedded client (in-process hot, SQLite warm in ``directory``) whose tiers and expiry all
    judge time by ``clock``, for tests that move time forward."""
    return (
        MemoryBuilder()
        .with_clock(clock)
        .with_hot(LocalHotMemory(clock=clock))
        .with_warm(SqliteWarmMemory(directory / "w.db", clock=clock))
        .build()
    )
