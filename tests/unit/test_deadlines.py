"""Tier-call deadlines (the guard's watchdog, ``tiermem._engine.deadline``).

A call past its deadline raises ``TierUnavailableError`` (a write's outcome is then unknown); a call
that ends in time is never cancelled later; the caller's own cancellation is never turned into a
timeout, and the watchdog's cancellation never reaches the caller's task. A real SQLite warm tier
behind a double that waits on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.doubles import WrappedStore
from tiermem import (
    MemoryBuilder,
    MemoryClient,
    MemoryKey,
    Record,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
    WriteOutcomeUnknownError,
)
from tiermem._engine.deadline import Watchdog

_TIMEOUT = 0.25


class SlowWarm(WrappedStore):
    """Waits ``delay[key]`` seconds (after the real call) before answering."""

    def __init__(self, inner: SqliteWarmMemory) -> None:
        super().__init__(inner, Tier.WARM)
        self.delay: dict[str, float] = {}
        self.finished: list[str] = []

    async def _enter(self, operation: str, keys: Sequence[MemoryKey] = ()) -> None:
        await super()._enter(operation, keys)
        for mk in keys:
            wait = self.delay.get(mk.key, 0.0)
            if wait:
                await asyncio.sleep(wait)
            self.finished.append(mk.key)

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        etag: str | None = await self.inner.set(key, record, if_match=if_match, if_absent=if_absent)
        await self._enter("set", [key])  # lands, then answers late
        return etag


def _client(tmp_path: Path) -> tuple[MemoryClient, SlowWarm]:
    warm = SlowWarm(SqliteWarmMemory(tmp_path / "w.db", durability="os"))
    memory = (
        MemoryBuilder()
        .with_warm(warm)
        .with_resilience(Tier.WARM, timeout=_TIMEOUT, failure_threshold=100)
        .build()
    )
    return memory, warm


async def test_a_call_past_its_deadline_raises_unavailable(tmp_path: Path) -> None:
    memory, warm = _client(tmp_path)
    async with memory:
        await memory.set("k", "v")
        warm.finished.clear()
        warm.delay["k"] = 10 * _TIMEOUT
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(TierUnavailableError, match="timed out"):
            await memory.get("k")
        assert task.cancelling() == 0  # the watchdog's cancellation did not leak to this task
        assert "k" not in warm.finished
        warm.delay.clear()
        assert await memory.get("k") == "v"  # the next call is not cancelled by a stale deadline


async def test_a_late_write_is_an_unknown_outcome(tmp_path: Path) -> None:
    memory, warm = _client(tmp_path)
    async with memory:
        warm.delay["k"] = 10 * _TIMEOUT
        with pytest.raises(WriteOutcomeUnknownError):
            await memory.set("k", "v")


async def test_calls_in_time_are_never_cancelled_later(tmp_path: Path) -> None:
    memory, warm = _client(tmp_path)
    async with memory:
        await memory.mset({f"k{i}": i for i in range(20)})
        for i in range(20):
            warm.delay[f"k{i}"] = _TIMEOUT / 4
        # Many overlapping calls, each well within its deadline, then idle past every deadline.
        values = await asyncio.gather(*(memory.get(f"k{i}") for i in range(20)))
        assert values == list(range(20))
        await asyncio.sleep(3 * _TIMEOUT)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0


async def test_only_the_slow_call_of_many_times_out(tmp_path: Path) -> None:
    memory, warm = _client(tmp_path)
    async with memory:
        await memory.mset({"fast": 1, "slow": 2})
        warm.delay["slow"] = 10 * _TIMEOUT
        warm.delay["fast"] = _TIMEOUT / 5
        results = await asyncio.gather(memory.get("slow"), memory.get("fast"), return_exceptions=True)
        assert isinstance(results[0], TierUnavailableError)
        assert results[1] == 1


async def test_the_callers_cancellation_is_not_a_timeout(tmp_path: Path) -> None:
    memory, warm = _client(tmp_path)
    async with memory:
        await memory.set("k", "v")
        warm.delay["k"] = 10 * _TIMEOUT
        task = asyncio.ensure_future(memory.get("k"))
        await asyncio.sleep(_TIMEOUT / 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_cancel_racing_the_deadline_stays_a_cancel() -> None:
    """The caller cancels, then the deadline passes before the task runs: still a cancellation."""
    loop = asyncio.get_running_loop()
    watch = Watchdog(loop)
    started = asyncio.Event()

    async def call() -> str:
        token = watch.arm(0.0)
        started.set()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            if watch.disarm(token):
                return "timeout"
            raise
        watch.disarm(token)
        return "done"

    task = asyncio.ensure_future(call())
    await started.wait()
    task.cancel()  # the caller's cancel, before the watchdog's sweep runs
    await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_rearms_for_an_earlier_deadline() -> None:
    """A short deadline armed after a long one still fires on time."""
    watch = Watchdog(asyncio.get_running_loop())

    async def call(seconds: float) -> str:
        token = watch.arm(seconds)
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            if watch.disarm(token):
                return "timeout"
            raise
        watch.disarm(token)
        return "done"

    long = asyncio.ensure_future(call(60.0))
    await asyncio.sleep(0)
    short = await asyncio.wait_for(call(0.01), timeout=0.3)
    assert short == "timeout"
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
