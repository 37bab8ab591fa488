"""Promotion races against real Redis + Cosmos, forced deterministically.

The warm tier is wrapped so a read pauses *after* it fetched the old value and *before* the client
promotes it; the test then runs a delete or a write and releases the read. The promotion (SET NX)
must lose to the tombstone or the newer value in the real Redis.
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
    memory = MemoryBuilder().with_hot(hot).with_warm(warm).build()  # type: ignore[arg-type]
    await memory.setup()
    async with memory:
        yield memory, hot, warm


@pytest.mark.parametrize("racing", ["delete", "set"])
async def test_a_promotion_never_overwrites_what_a_racing_write_left_on_real_services(
    raced: tuple[MemoryClient, RedisHotMemory, WrappedStore], racing: str
) -> None:
    """A read holds "old" from warm, paused before promoting; a delete or a newer set lands; the
    promotion (SET NX) must lose to the tombstone or the new value."""
    memory, hot, warm = raced
    mk = make_key("default", "default", "k")
    await memory.set("k", "old")
    await hot.delete(mk)
    reached, release = warm.gate("get")
    reader = asyncio.create_task(memory.get("k"))
    await reached.wait()
    await (memory.delete("k") if racing == "delete" else memory.set("k", "new"))
    release.set()
    assert await reader == "old"  # it read before the write: a valid linearization
    left = await hot.get(mk)
    assert left is not None
    if racing == "delete":
        assert left.kind is RecordKind.TOMBSTONE
        assert await memory.get("k") is None
    else:
        assert left.payload == b"new"
        assert await memory.get("k") == "new"
