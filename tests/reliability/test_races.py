"""Fill races against real Redis + Cosmos, forced deterministically (ADR 0006).

The warm tier is wrapped so a read pauses *after* it fetched the old value and *before* the client
fills hot with it; the test then runs a racing write or delete and releases the read. The write's
invalidation removed the reader's lease, so the fill (a compare-and-swap script in the real Redis)
must fail and hot must never hold the old value.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from tests.doubles import WrappedStore
from tiermem import MemoryBuilder, MemoryClient, RecordKind, Tier, make_key
from tiermem.tiers.cosmos import CosmosWarmMemory
from tiermem.tiers.redis import RedisHotMemory

pytestmark = [pytest.mark.redis, pytest.mark.cosmos, pytest.mark.timeout(120)]


@pytest.fixture
async def raced(
    redis_url: str, cosmos_server: Any
) -> AsyncIterator[tuple[MemoryClient, RedisHotMemory, WrappedStore]]:
    hot = RedisHotMemory.from_url(redis_url, prefix=f"race{secrets.token_hex(3)}")
    warm = WrappedStore(
        CosmosWarmMemory(
            cosmos_server.endpoint, "races", f"c{secrets.token_hex(6)}", key=SecretStr(cosmos_server.key)
        ),
        Tier.WARM,
    )
    memory = (
        MemoryBuilder()
        .with_hot(hot)
        .with_warm(warm)  # type: ignore[arg-type]
        .with_policy(coherence_interval=3600)  # one epoch read, before the gate is set
        .build()
    )
    await memory.setup()
    async with memory:
        assert await memory._core.epoch.fresh()
        yield memory, hot, warm


async def _write_new(memory: MemoryClient) -> object:
    await memory.set("k", "new")
    return "new"


async def _write_warm_only(memory: MemoryClient) -> object:
    await memory.set("k", "new", tier=Tier.WARM)
    return "new"


async def _delete(memory: MemoryClient) -> object:
    await memory.delete("k")
    return None


async def _mset(memory: MemoryClient) -> object:
    await memory.mset({"k": "new"})
    return "new"


@pytest.mark.parametrize("race", [_write_new, _write_warm_only, _delete, _mset], ids=lambda f: f.__name__)
async def test_a_fill_racing_a_write_cannot_cache_the_old_value(
    raced: tuple[MemoryClient, RedisHotMemory, WrappedStore], race: Any
) -> None:
    memory, hot, warm = raced
    mk = make_key("default", "default", "k")
    await memory.set("k", "old")
    reached, release = warm.gate("get")
    reader = asyncio.create_task(memory.get("k"))
    await reached.wait()  # the reader holds "old" and a lease; it has not filled hot yet
    expected = await race(memory)
    release.set()
    assert await reader == "old"  # it read before the write: a valid linearization
    assert await hot.get(mk) is None  # the write removed the lease, so the fill failed
    assert await memory.get("k") == expected
    if expected is not None:
        cached = await hot.get(mk)
        assert cached is not None and cached.kind is RecordKind.STR and cached.payload == b"new"
