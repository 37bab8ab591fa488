"""The in-process hot-hit shortcut (``HotCache.answer_now``): same answers as the full lookup.

A plain ``LocalHotMemory`` (it offers ``get_now``) in front of a real SQLite warm tier. Each test
puts a different value in the durable tier behind hot's back, so serving the hot copy where the
rules say "read through" would return the wrong value. Stats count every read once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tiermem import LocalHotMemory, MemoryBuilder, MemoryClient, SqliteWarmMemory, Tier
from tiermem._codec import Codec, Record
from tiermem._engine.hot import MISS
from tiermem._types import MemoryKey


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[MemoryClient]:
    client = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(tmp_path / "w.db", durability="os"))
        .with_policy(coherence_interval=3600, negative_ttl=60)
        .build()
    )
    async with client:
        yield client


async def _behind_hots_back(memory: MemoryClient, key: str, value: object) -> MemoryKey:
    """Write ``value`` to the durable tier only (hot keeps what it had)."""
    mk = memory._key(key)
    record, _ = Codec().encode(value)
    warm = memory.tier_store(Tier.WARM)
    assert warm is not None
    await warm.set(mk, record)
    return mk


def _hot_counts(memory: MemoryClient) -> tuple[int, int]:
    hot = memory.stats().tiers["hot"]
    return hot["hits"], hot["misses"]


async def test_a_hit_is_served_without_the_async_lookup_and_counted_once(memory: MemoryClient) -> None:
    await memory.set("k", "v1")
    assert await memory.get("k") == "v1"  # fills hot
    mk = memory._key("k")
    assert memory._core.reads.cached(mk) == "v1"  # the shortcut answers
    before = _hot_counts(memory)
    assert await memory.get("k") == "v1"
    hits, misses = _hot_counts(memory)
    assert (hits, misses) == (before[0] + 1, before[1])


async def test_a_miss_is_counted_once(memory: MemoryClient) -> None:
    before = _hot_counts(memory)
    assert await memory.get("nothing", "dflt") == "dflt"
    hits, misses = _hot_counts(memory)
    assert (hits, misses) == (before[0], before[1] + 1)


async def test_a_copy_from_an_older_epoch_is_not_served(memory: MemoryClient) -> None:
    await memory.set("k", "v1")
    assert await memory.get("k") == "v1"
    await _behind_hots_back(memory, "k", "v2")
    memory._core.epoch.current += 1  # another process raised the hot epoch (ADR 0006)
    assert memory._core.reads.cached(memory._key("k")) is MISS
    assert await memory.get("k") == "v2"


async def test_dirty_keys_are_not_served(memory: MemoryClient) -> None:
    await memory.set("k", "v1")
    assert await memory.get("k") == "v1"
    mk = await _behind_hots_back(memory, "k", "v2")
    memory._core.hot.mark_dirty([mk])  # an invalidation that could not reach hot
    assert memory._core.reads.cached(mk) is MISS
    assert await memory.get("k") == "v2"


async def test_an_epoch_due_for_a_refresh_goes_through_the_lookup(tmp_path: Path) -> None:
    client = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(tmp_path / "w.db", durability="os"))
        .with_policy(coherence_interval=0.001)  # every read is past half the interval
        .build()
    )
    async with client:
        await client.set("k", "v")
        assert await client.get("k") == "v"
        await asyncio.sleep(0.01)  # the last epoch reading is now older than half the interval
        assert client._core.reads.cached(client._key("k")) is MISS
        assert await client.get("k") == "v"


async def test_a_damaged_copy_is_read_through_and_distrusted(memory: MemoryClient) -> None:
    await memory.set("k", "v1")
    assert await memory.get("k") == "v1"
    mk = memory._key("k")
    hot = memory.tier_store(Tier.HOT)
    assert isinstance(hot, LocalHotMemory)
    good = hot.get_now(mk)
    assert good is not None
    damaged = Record(good.kind, b"\x00" + good.payload, good.compressed, good.expires_at, good.checksum)
    await hot.set(mk, damaged.for_hot(good.expires_at, good.epoch))
    assert memory._core.reads.cached(mk) is MISS
    assert await memory.get("k") == "v1"
    assert mk in memory._core.hot.dirty  # distrusted: deleted before hot is read again


async def test_a_cached_miss_answers_none_and_counts_a_miss(memory: MemoryClient) -> None:
    assert await memory.get("gone") is None  # negative_ttl: the miss is cached in hot
    await _behind_hots_back(memory, "gone", "now here")  # a cached miss is definitive until it expires
    before = _hot_counts(memory)
    assert await memory.get("gone", "dflt") == "dflt"
    assert _hot_counts(memory) == (before[0], before[1] + 1)


async def test_a_closed_client_still_raises(memory: MemoryClient) -> None:
    from tiermem import ClientClosedError

    await memory.set("k", "v")
    assert await memory.get("k") == "v"
    await memory.aclose()
    with pytest.raises(ClientClosedError):
        await memory.get("k")
