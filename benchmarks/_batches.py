"""Hot batch reads with misses: half the keys absent (hot-only), and misses over a durable tier.

``hot.mget.mixed`` (``inproc.mget.mixed`` in-process) reads ``batch`` keys of which every other one
is absent, on the hot-only client, against the raw client reading the same shape.
``hot.mget.leases`` reads ``batch`` keys through a client with a SQLite warm tier after a third of
their hot copies were dropped (outside the timed part): the misses take leases (one pipeline of the
swap script), read SQLite, and are filled (one more pipeline), ADR 0006. Informational against the
raw ``MGET``: it does three round trips and a durable read the raw client does not.
"""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Target, Variant, timer
from benchmarks._hot import TTL, HotBench
from benchmarks._payloads import small_message
from tiermem import MemoryBuilder, SqliteWarmMemory, Tier, make_key

__all__ = ["leases_scenario", "mixed_scenario", "unavailable_rows"]

_LEASES_ROW = "hot.mget.leases.raw"


def unavailable_rows() -> list[Row]:
    """The Redis rows when there is no Redis (the in-process hot tier has no round trips to pipeline)."""
    leases = "Redis hot mget with hot misses over SQLite vs redis-py MGET"
    mixed = "Redis hot mget, half of the keys absent, vs redis-py MGET"
    return [
        Row("hot.mget.mixed.raw", "hot", mixed, None, None, na_reason="needs Redis (--redis)"),
        Row(_LEASES_ROW, "hot", leases, None, None, na_reason="leases over Redis need Redis (--redis)"),
    ]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


async def mixed_scenario(bench: HotBench) -> Scenario:
    """Half hits, half misses on the hot-only client (no durable tier: no leases)."""
    keys = [f"x{i:05d}" for i in range(bench.batch)]
    present = {key: small_message(i) for i, key in enumerate(keys) if i % 2}
    await bench.client.mset(present, ttl=TTL)
    raw_keys = [bench.raw_key(k) for k in keys]
    if bench.on_redis:
        raw = bench.raw
        pipe = raw.pipeline(transaction=False)
        for key, value in present.items():
            pipe.set(bench.raw_key(key), orjson.dumps(value), ex=TTL)
        await pipe.execute()
        raw_name = "redis-py MGET"

        async def raw_mget() -> Any:
            return await raw.mget(raw_keys)
    else:
        store = bench.store
        store.update({bench.raw_key(k): orjson.dumps(v) for k, v in present.items()})
        raw_name = "dict comprehension"

        async def raw_mget() -> Any:
            return [store.get(k) for k in raw_keys]

    client = bench.client
    hits = len(present)

    def repeat(op: Any, count: Any, what: str) -> Any:
        async def run(n: int) -> float:
            result: Any = None
            start = timer()
            for _ in range(n):
                result = await op()
            elapsed = timer() - start
            _check(count(result) == hits, what)
            return elapsed

        return run

    async def tiermem_mget() -> Any:
        return await client.mget(keys)

    def found(result: Any) -> int:
        values = result.values() if isinstance(result, dict) else result
        return sum(v is not None for v in values)

    size = len(keys)
    return Scenario(
        f"{bench.prefix}.mget.mixed",
        "hot",
        [
            Variant("tiermem", repeat(tiermem_mget, found, "tiermem mget found the wrong keys")),
            Variant(raw_name, repeat(raw_mget, found, "raw MGET found the wrong keys")),
        ],
        [
            Comparison(
                f"{bench.prefix}.mget.mixed.raw",
                f"{bench.title} mget {size}, half of them absent, vs {raw_name}",
                "tiermem",
                raw_name,
                Target("max_ratio", 2.0, "<= 2x") if bench.on_redis else None,
                note="hot-only client: misses are answers, no leases",
            )
        ],
    )


async def leases_scenario(stack: AsyncExitStack, bench: HotBench) -> Scenario:
    """Misses over a durable tier: lease, durable read and fill for a third of the keys (Redis only)."""
    from tiermem.tiers.redis import RedisHotMemory

    if bench.redis_url is None or bench.raw is None:
        raise BenchmarkError("the leases scenario needs Redis")
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tiermem-bench-")))
    hot = RedisHotMemory.from_url(bench.redis_url, prefix="tmbenchl")
    client = (
        MemoryBuilder()
        .with_hot(hot)
        .with_warm(SqliteWarmMemory(directory / "warm.db", durability="os"))
        .build()
    )
    stack.push_async_callback(client.aclose)
    await client.setup()
    keys = [f"l{i:05d}" for i in range(bench.batch)]
    await client.mset({key: small_message(i) for i, key in enumerate(keys)}, ttl=TTL)
    await client.mget(keys)  # fills hot
    store: Any = client.tier_store(Tier.HOT)
    dropped = [store.raw_key(make_key(client.tenant, client.namespace, k)) for k in keys[::3]]
    raw = bench.raw
    raw_keys = [bench.raw_key(k) for k in bench.keys[: bench.batch]]

    async def tiermem_run(n: int) -> float:
        elapsed = 0.0
        result: dict[str, Any] = {}
        for _ in range(n):
            await raw.unlink(*dropped)  # not timed: what a write elsewhere would have invalidated
            start = timer()
            result = await client.mget(keys)
            elapsed += timer() - start
        _check(all(v is not None for v in result.values()), "tiermem mget missed")
        return elapsed

    async def raw_run(n: int) -> float:
        start = timer()
        for _ in range(n):
            await raw.mget(raw_keys)
        return timer() - start

    size = len(keys)
    return Scenario(
        "hot.mget.leases",
        "hot",
        [Variant("tiermem", tiermem_run), Variant("redis-py MGET", raw_run)],
        [
            Comparison(
                _LEASES_ROW,
                f"hot mget {size} with {len(dropped)} hot misses over SQLite vs redis-py MGET",
                "tiermem",
                "redis-py MGET",
                None,
                note="misses: lease pipeline + SQLite read + fill pipeline (ADR 0006); informational",
            )
        ],
    )
