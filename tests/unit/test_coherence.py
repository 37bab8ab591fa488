"""ADR 0006 on the embedded tiers, forced deterministically: write ids confirm retried writes, unknown
outcomes stay unknown, pointer re-reads, failed deletes, deadlines and the hot record header."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import FakeClock, WrappedStore
from tiermem import (
    CircuitOpenError,
    ConflictError,
    FileColdMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryKey,
    Record,
    RecordKind,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
    WriteOutcomeUnknownError,
)
from tiermem._codec import HEADER_SIZE, MIN_HEADER_SIZE, lease, make_record
from tiermem._config import DEFAULT_TIER_OPTIONS, TierOptions


class LandsThenFails(WrappedStore):
    """A durable tier whose write lands and whose answer is then lost (as after an SDK retry)."""

    def __init__(self, inner: Any, error: Exception) -> None:
        super().__init__(inner, Tier.WARM)
        self.error: Exception | None = error

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        etag = await super().set(key, record, if_match=if_match, if_absent=if_absent)
        if self.error is not None:
            raise self.error
        return etag


def _client(tmp_path: Path, warm: Any, **policy: Any) -> Any:
    clock = FakeClock()
    hot = LocalHotMemory(clock=clock)
    return (
        MemoryBuilder()
        .with_clock(clock)
        .with_hot(hot)
        .with_warm(warm)
        .with_cold(FileColdMemory(tmp_path / "cold", clock=clock))
        .with_policy(coherence_interval=3600, **policy)
        .build()
    ), hot


async def test_a_retried_conditional_write_that_landed_is_a_success_not_a_conflict(tmp_path: Path) -> None:
    warm = LandsThenFails(
        SqliteWarmMemory(tmp_path / "w.db"), ConflictError("412 after retry", tier=Tier.WARM)
    )
    memory, _ = _client(tmp_path, warm)
    async with memory:
        warm.error = None
        await memory.set("head", {"turns": 1})
        entry = await memory.get_entry("head", consistent=True)
        warm.error = ConflictError("precondition failed (the SDK retried a request that had landed)")
        etag = await memory.set("head", {"turns": 2}, if_match=entry.etag)
        assert etag == (await memory.get_entry("head", consistent=True)).etag
        assert await memory.get("head") == {"turns": 2}
        # A real conflict (someone else's item) still raises.
        warm.error = None
        await memory.set("head", {"turns": 3})
        with pytest.raises(ConflictError):
            await memory.set("head", {"turns": 4}, if_match=entry.etag)


async def test_a_lost_answer_is_confirmed_by_the_write_id(tmp_path: Path) -> None:
    warm = LandsThenFails(SqliteWarmMemory(tmp_path / "w.db"), TierUnavailableError("read timeout"))
    memory, _ = _client(tmp_path, warm)
    async with memory:
        assert await memory.set("k", "v") is not None  # landed: confirmed, reported as written
        assert await memory.get("k") == "v"


async def test_an_unconfirmable_outcome_is_unknown_and_hot_is_invalidated(tmp_path: Path) -> None:
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "w.db"), Tier.WARM)
    memory, hot = _client(tmp_path, warm)
    async with memory:
        await memory.set("k", "v1")
        assert await memory.get("k") == "v1" and await memory.get("k") == "v1"  # cached in hot
        warm.down = True
        with pytest.raises(WriteOutcomeUnknownError) as info:
            await memory.set("k", "v2")
        assert isinstance(info.value, TierUnavailableError) and not isinstance(info.value, ConflictError)
        for _ in range(5):
            await asyncio.sleep(0)
        assert await hot.get(MemoryKey("default", "default", "k")) is None  # hot no longer vouches for v1


async def test_a_call_refused_by_the_breaker_is_not_unknown(tmp_path: Path) -> None:
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "w.db"), Tier.WARM)
    clock = FakeClock()
    memory = (
        MemoryBuilder()
        .with_clock(clock)
        .with_warm(warm)  # type: ignore[arg-type]
        .with_resilience(Tier.WARM, failure_threshold=1, reset_timeout=60)
        .build()
    )
    async with memory:
        warm.down = True
        with pytest.raises(WriteOutcomeUnknownError):
            await memory.set("k", "v")
        with pytest.raises(CircuitOpenError):  # never sent: the outcome is known (not written)
            await memory.set("k", "v")


async def test_a_read_racing_a_large_overwrite_never_misses(tmp_path: Path) -> None:
    clock = FakeClock()
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "w.db", clock=clock), Tier.WARM)
    memory = (
        MemoryBuilder()
        .with_clock(clock)
        .with_warm(warm)  # type: ignore[arg-type]
        .with_cold(FileColdMemory(tmp_path / "cold", clock=clock))
        .with_policy(warm_max_bytes=1024)
        .build()
    )
    async with memory:
        first, second = os.urandom(4096), os.urandom(4096)
        await memory.set("big", first)
        reached, release = warm.gate("get")
        reader = asyncio.create_task(memory.get("big"))
        await reached.wait()  # the reader holds the pointer to the first version
        await memory.set("big", second)  # commits a new pointer, then discards the first version
        release.set()
        assert await reader == second  # re-read the pointer instead of reporting a miss (V3)


async def test_a_failed_delete_leaves_the_key_as_it_was(tmp_path: Path) -> None:
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "w.db"), Tier.WARM)
    memory, _ = _client(tmp_path, warm)
    async with memory:
        await memory.set("k", "v")
        assert await memory.get("k") == "v"
        warm.fail_keys.add("k")
        with pytest.raises(TierUnavailableError):
            await memory.delete("k")
        warm.fail_keys.clear()
        assert await memory.get_entry("k", consistent=True) is not None
        assert await memory.get("k") == "v"  # no tombstone went first (V4)


def test_deadlines_scale_with_size_and_match_the_docs() -> None:
    assert DEFAULT_TIER_OPTIONS[Tier.HOT].deadline(100) == 2.0
    assert DEFAULT_TIER_OPTIONS[Tier.WARM].deadline(10**6) == 15.0
    cold = DEFAULT_TIER_OPTIONS[Tier.COLD]
    assert cold.deadline(0) == 30.0 and cold.deadline(64 * 1_048_576) == 30.0 + 128.0
    assert TierOptions(timeout=None).deadline(10**9) is None


def test_records_with_an_epoch_or_write_id_use_the_longer_header() -> None:
    plain = make_record(RecordKind.STR, b"v")
    assert len(plain.to_bytes()) == MIN_HEADER_SIZE + 1  # stored data keeps its version-1 bytes
    stamped = plain.for_hot(123.0, 7).with_write_id(b"12345678")
    data = stamped.to_bytes()
    assert len(data) == HEADER_SIZE + 1 == stamped.size
    back = Record.from_bytes(data)
    assert (back.epoch, back.wid, back.expires_at, back.payload) == (7, b"12345678", 123.0, b"v")
    token = lease(5.0, b"t" * 12)
    assert Record.from_bytes(token.to_bytes()).kind is RecordKind.LEASE


async def test_swap_is_compare_and_set_on_the_in_process_tier() -> None:
    hot = LocalHotMemory()
    mk = MemoryKey("t", "n", "k")
    a, b = make_record(RecordKind.STR, b"a"), make_record(RecordKind.STR, b"b")
    assert await hot.swap([(mk, None, a)]) == [True]
    assert await hot.swap([(mk, None, b)]) == [False]  # not absent any more
    assert await hot.swap([(mk, b, a)]) == [False]  # holds a, not b
    assert await hot.swap([(mk, a, None)]) == [True] and await hot.get(mk) is None
