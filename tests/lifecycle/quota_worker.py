"""A writer process for the cross-process quota test: many concurrent writes against shared tiers.

Usage: python -m tests.lifecycle.quota_worker REDIS_URL PREFIX DIR TENANT MAX_ITEMS WRITES WORKER_ID
Prints one JSON line: {"ok": n, "refused": n}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tiermem import FileColdMemory, MemoryBuilder, Quota, QuotaExceededError, QuotaPolicy, SqliteWarmMemory
from tiermem.tiers.redis import RedisHotMemory


async def main(
    url: str, prefix: str, directory: str, tenant: str, max_items: int, writes: int, wid: str
) -> None:
    memory = (
        MemoryBuilder()
        .with_hot(RedisHotMemory.from_url(url, prefix=prefix))
        .with_warm(SqliteWarmMemory(Path(directory) / "warm.db"))
        .with_cold(FileColdMemory(Path(directory) / "cold"))
        .with_quotas(QuotaPolicy(Quota(max_items=max_items)))
        .build()
    )
    counts = {"ok": 0, "refused": 0}

    async def one(i: int) -> None:
        try:
            await memory.scoped(tenant=tenant, namespace="load").set(f"w{wid}-{i}", {"i": i})
            counts["ok"] += 1
        except QuotaExceededError:
            counts["refused"] += 1

    async with memory:
        await asyncio.gather(*(one(i) for i in range(writes)))
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), a[6]))
