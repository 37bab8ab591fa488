"""A 100,000-item collection listed newest first with ``limit=10`` reads O(limit) items from the store.

Counts, never times: ``items_read`` is what the store fetched from its backend (SQLite rows, Cosmos query
results), and on SQLite the traced statements must be index range scans with no sort step.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tiermem import MemoryBuilder, MemoryClient, SqliteWarmMemory, Tier
from tiermem._collection import Collection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N = 100_000


def key(i: int) -> str:
    return f"c|{i:07d}"


async def fill(coll: Collection, batch: int, concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(start: int) -> None:
        async with limit:
            await coll.put_many(
                [(key(i), {"step": i}, {"step": i}) for i in range(start, min(N, start + batch))]
            )

    await asyncio.gather(*(one(start) for start in range(0, N, batch)))


async def newest_first(coll: Collection, **kwargs: Any) -> list[str]:
    return [item.key async for item in coll.list(reverse=True, limit=10, **kwargs)]


async def check_bounded(coll: Collection, store: Any) -> dict[str, int]:
    reads: dict[str, int] = {}
    cases: dict[str, tuple[dict[str, Any], list[str]]] = {
        "newest": ({}, [key(i) for i in range(N - 1, N - 11, -1)]),
        "before": ({"before": key(50_000)}, [key(i) for i in range(49_999, 49_989, -1)]),
        "prefix": ({"prefix": "c|00123"}, [key(i) for i in range(12_399, 12_389, -1)]),
        "where": ({"where": {"step": {"$gte": 99_995}}}, [key(i) for i in range(N - 1, 99_994, -1)]),
    }
    for name, (kwargs, expected) in cases.items():
        before = store.items_read
        assert await newest_first(coll, **kwargs) == expected
        reads[name] = store.items_read - before
        assert reads[name] <= 10, (name, reads[name])
    return reads


@pytest.fixture
async def sqlite_memory(tmp_path: Path) -> AsyncIterator[MemoryClient]:
    async with MemoryBuilder().with_warm(SqliteWarmMemory(tmp_path / "warm.db")).build() as memory:
        await memory.setup()
        yield memory


async def test_sqlite_lists_newest_first_from_an_index_range(
    sqlite_memory: MemoryClient, tmp_path: Path
) -> None:
    coll = sqlite_memory.collection("big")
    await fill(coll, batch=5000, concurrency=1)
    warm: Any = sqlite_memory.tier_store(next(iter(sqlite_memory.tiers)))
    store = warm.collection_store()
    statements: list[str] = []
    await warm._exclusive("trace", lambda conn: conn.set_trace_callback(statements.append))
    reads = await check_bounded(coll, store)
    await warm._exclusive("trace", lambda conn: conn.set_trace_callback(None))
    listings = [s for s in statements if "FROM tiermem_collection_items" in s and "ORDER BY key" in s]
    assert listings
    with sqlite3.connect(tmp_path / "warm.db") as conn:
        for sql in listings:
            plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert "USING PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
    print(f"sqlite items read per listing of 10 from {N}: {reads}")


async def test_cosmos_lists_newest_first_with_top_in_one_partition(cosmos_server: Any) -> None:
    from tiermem.tiers.cosmos import CosmosWarmMemory

    warm = CosmosWarmMemory(
        cosmos_server.endpoint, "scale", f"c{secrets.token_hex(6)}", key=SecretStr(cosmos_server.key)
    )
    # The stand-in evaluates every query over all its items in JavaScript: give COUNT(1) over 100,000
    # items more than the default 15 s deadline (a real account answers it from the index).
    builder = MemoryBuilder().with_warm(warm).with_resilience(Tier.WARM, timeout=300)
    async with builder.build() as memory:
        await memory.setup()
        coll = memory.collection("big")
        started = time.perf_counter()
        await fill(coll, batch=100, concurrency=8)
        print(f"cosmos stand-in: {N} items in {time.perf_counter() - started:.0f}s")
        assert [i.key async for i in coll.list(limit=2)] == [key(0), key(1)]
        reads = await check_bounded(coll, warm.collection_store())
        print(f"cosmos items read per listing of 10 from {N}: {reads}")
