"""Near-cache scenario: an L1 hit against a raw redis-py ``GET`` of the same value, in the same run.

Two subjects on the same keys: ``NearCache.get`` (the hot tier the engine calls, returning the
stored record) and ``tiermem get`` through a client built with ``with_near_cache()`` (the whole read
path: breaker, telemetry, decode). Both are measured only once every key is in L1 and the
invalidation channel is confirmed; the baseline is the raw ``GET`` of the hot scenarios.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Target, Variant, timer
from benchmarks._hot import PREFIX_TIERMEM, HotBench
from tiermem import MemoryBuilder, Tier, make_key

__all__ = ["ROW_IDS", "near_scenario", "unavailable_rows"]

ROW_IDS = ("hot.near.raw", "hot.near.client")
_LABELS = {
    "hot.near.raw": "near-cache hit (NearCache.get) vs redis-py GET",
    "hot.near.client": "tiermem get, near-cache hit vs redis-py GET",
}


def unavailable_rows() -> list[Row]:
    """The rows when there is no Redis: a near cache needs one."""
    return [
        Row(row_id, "hot", _LABELS[row_id], None, None, na_reason="the near cache needs Redis (--redis)")
        for row_id in ROW_IDS
    ]


def _loop(
    op: Callable[[Any], Awaitable[Any]], keys: list[Any], what: str
) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        count = len(keys)
        value: Any = None
        start = timer()
        for i in range(n):
            value = await op(keys[i % count])
        elapsed = timer() - start
        if value is None:
            raise BenchmarkError(what)
        return elapsed

    return run


async def near_scenario(stack: AsyncExitStack, bench: HotBench) -> Scenario:
    """Open a near-cached client on the hot scenario's keys, fill L1, and compare it with raw GET."""
    from tiermem.tiers.near import NearCache
    from tiermem.tiers.redis import RedisHotMemory

    if bench.redis_url is None or bench.raw is None:
        raise BenchmarkError("the near-cache scenario needs Redis")
    client = (
        MemoryBuilder()
        .with_policy(hot_ttl=None)
        .with_hot(RedisHotMemory.from_url(bench.redis_url, prefix=PREFIX_TIERMEM))
        .with_near_cache(max_items=len(bench.keys) * 2)
        .build()
    )
    stack.push_async_callback(client.aclose)
    await client.setup()
    near = client.tier_store(Tier.HOT)
    if not isinstance(near, NearCache):
        raise BenchmarkError("with_near_cache() did not put a NearCache in front of Redis")
    await near.wait_until_serving(within=10)
    memory_keys = [make_key("default", "default", key) for key in bench.keys]
    for _ in range(50):  # until every key is in L1 (late self-invalidations can drop a first fill)
        for mk in memory_keys:
            await near.get(mk)
        if all(near.cached(mk) for mk in memory_keys):
            break
    else:
        raise BenchmarkError("the near cache never held every key")
    raw_keys = [bench.raw_key(key) for key in bench.keys]
    variants = [
        Variant("NearCache.get", _loop(near.get, memory_keys, "near cache missed")),
        Variant("tiermem get (near cache)", _loop(client.get, bench.keys, "tiermem get missed")),
        Variant("redis-py GET", _loop(bench.raw.get, raw_keys, "raw GET missed")),
    ]
    note = "same Redis and pool settings; every key in L1, channel confirmed"
    comparisons = [
        Comparison(
            "hot.near.raw",
            _LABELS["hot.near.raw"],
            "NearCache.get",
            "redis-py GET",
            Target("max_ratio", 0.1, "<= 0.1x"),
            note=note,
        ),
        Comparison(
            "hot.near.client",
            _LABELS["hot.near.client"],
            "tiermem get (near cache)",
            "redis-py GET",
            None,
            note=note + "; includes breaker, telemetry and decode",
        ),
    ]
    return Scenario("hot.near", "hot", variants, comparisons)
