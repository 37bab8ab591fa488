"""Batch paths of the Redis hot tier against real servers (issue 17): many compare-and-swaps in one
pipeline of the single-key script, batch reads decoded from envelope headers, damaged copies read
through one by one, and leases and fills for the misses of a batch."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.records import k, rec
from tiermem import MemoryBuilder, RecordKind, SqliteWarmMemory, TierError, make_key
from tiermem.tiers.redis import RedisHotMemory

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def calls(client: redis.Redis, command: str) -> int:
    """How many times ``command`` ran on the server (``INFO commandstats``)."""
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        yield client


@pytest.fixture
async def hot(redis_url: str) -> AsyncIterator[RedisHotMemory]:
    store = RedisHotMemory.from_url(redis_url)
    await store.setup()
    try:
        yield store
    finally:
        await store.aclose()


async def test_swap_of_many_keys_runs_the_single_key_script_per_key(
    hot: RedisHotMemory, raw: redis.Redis
) -> None:
    a, b, c = rec("a", ttl=60), rec("b", ttl=60), rec("c", ttl=60)
    await hot.mset([(k("held"), a), (k("other"), b)])
    before = calls(raw, "evalsha")
    done = await hot.swap(
        [
            (k("absent"), None, a),  # nothing there: swaps
            (k("held"), None, b),  # expects nothing, holds a
            (k("other"), a, None),  # expects a, holds b
            (k("late"), None, rec("x", expires_at=time.time() - 1)),  # expired: never sent
            (k("held"), a, c),  # expects a, holds a: swaps
        ]
    )
    assert done == [True, False, False, False, True]
    assert calls(raw, "evalsha") - before == 4
    assert await hot.mget([k("absent"), k("held"), k("other"), k("late")]) == [a, c, b, None]
    assert await hot.swap([(k("absent"), a, None), (k("other"), b, None)]) == [True, True]
    assert await hot.mget([k("absent"), k("other")]) == [None, None]


@pytest.mark.parametrize("size", [1, 5])
async def test_swap_loads_the_script_again_when_the_server_lost_it(
    hot: RedisHotMemory, raw: redis.Redis, size: int
) -> None:
    await hot.swap([(k("first"), None, rec(0))])
    raw.script_flush()  # a restart or failover empties the script cache
    items = [(k(f"after-{i}"), None, rec(i)) for i in range(size)]
    assert await hot.swap(items) == [True] * size
    assert await hot.mget([mk for mk, _, _ in items]) == [new for _, _, new in items]


async def test_a_failed_swap_in_a_batch_raises(hot: RedisHotMemory, raw: redis.Redis) -> None:
    raw.rpush(hot.raw_key(k("list")), b"x")  # the script's GET fails with WRONGTYPE
    with pytest.raises(TierError, match="WRONGTYPE") as info:
        await hot.swap([(k("fine"), None, rec(1)), (k("list"), None, rec(2))])
    assert info.value.operation == "swap"


async def test_cluster_swap_of_many_keys_over_many_slots(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    host, port = redis_cluster_nodes[0]
    store = RedisHotMemory.from_url(f"redis://{host}:{port}", cluster=True)
    try:
        items = [(k(f"c-{i}"), None, rec(i, ttl=60)) for i in range(200)]
        assert await store.swap(items) == [True] * 200
        assert await store.swap(items[:3]) == [False] * 3  # not absent any more
        assert await store.mget([mk for mk, _, _ in items]) == [new for _, _, new in items]
        swapped = [(mk, new, None) for mk, _, new in items]
        assert await store.swap(swapped) == [True] * 200
        assert await store.mget([mk for mk, _, _ in items]) == [None] * 200
    finally:
        await store.aclose()


async def test_client_mget_reads_damaged_hot_copies_through_and_repairs_them(
    hot: RedisHotMemory, raw: redis.Redis, tmp_path: Path
) -> None:
    values = {f"key-{i}": {"i": i} for i in range(20)}
    async with (
        MemoryBuilder()
        .with_hot(hot, owned=False)
        .with_warm(SqliteWarmMemory(tmp_path / "w.db"))
        .build() as memory
    ):
        await memory.setup()
        await memory.mset(values)
        assert await memory.mget(list(values)) == values  # fills hot under leases
        names = {key: hot.raw_key(make_key("default", "default", key)) for key in values}
        raw.set(names["key-3"], b"not an envelope")
        envelope = raw.get(names["key-7"])
        assert isinstance(envelope, bytes)
        raw.set(names["key-7"], envelope[:-1] + bytes([envelope[-1] ^ 0xFF]))  # fails its CRC
        assert await memory.mget(list(values)) == values  # the two come from warm
        assert await memory.mget(list(values)) == values  # their hot copies were deleted, then refilled
        for key in ("key-3", "key-7"):
            filled = await hot.get(make_key("default", "default", key))
            assert filled is not None and filled.kind is RecordKind.JSON


async def test_client_mget_with_misses_takes_leases_and_fills_in_one_batch_each(
    hot: RedisHotMemory, raw: redis.Redis, tmp_path: Path
) -> None:
    values = {f"key-{i}": {"i": i} for i in range(100)}
    async with (
        MemoryBuilder()
        .with_hot(hot, owned=False)
        .with_warm(SqliteWarmMemory(tmp_path / "w.db"))
        .build() as memory
    ):
        await memory.setup()
        await memory.mset(values)
        assert await memory.mget(list(values)) == values
        dropped = [hot.raw_key(make_key("default", "default", f"key-{i}")) for i in range(0, 100, 3)]
        raw.unlink(*dropped)
        before = calls(raw, "evalsha")
        assert await memory.mget(list(values)) == values
        assert calls(raw, "evalsha") - before == 2 * len(dropped)  # one lease and one fill per miss
        stored = raw.mget(dropped)
        assert all(isinstance(data, bytes) and data[3] == RecordKind.JSON for data in stored)
