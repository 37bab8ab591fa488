"""ConversationStore on the real stand-ins: Redis (hot), the Cosmos DB stand-in (warm), Azurite (cold).

Each test gets its own Cosmos container, Blob container and Redis key prefix, so nothing leaks
between tests. The Cosmos stand-in does not enforce the 2 MB item limit: the size test measures
the stored items instead of relying on the service to refuse them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from tiermem import MemoryBuilder, MemoryClient, Record, RecordKind, Tier
from tiermem.sessions import ConversationStore

pytestmark = [pytest.mark.redis, pytest.mark.cosmos, pytest.mark.blob]

COSMOS_ITEM_LIMIT = 2 * 1024 * 1024
MakeClient = Callable[..., MemoryClient]


@pytest.fixture
async def make_client(
    redis_server: Any,
    cosmos_server: Any,
    azurite: Any,
    cosmos_database_name: str,
    cosmos_container_name: str,
    blob_container_name: str,
) -> AsyncIterator[MakeClient]:
    """Builds independent clients (own connections, like separate processes) over the same data."""
    clients: list[MemoryClient] = []
    prefix = f"tm{secrets.token_hex(4)}"

    def make(*, redis_prefix: str = prefix) -> MemoryClient:
        client = (
            MemoryBuilder()
            .with_redis(redis_server.url, prefix=redis_prefix)
            .with_cosmos(
                cosmos_server.endpoint,
                cosmos_database_name,
                cosmos_container_name,
                key=SecretStr(cosmos_server.key),
                retry_total=2,
            )
            .with_blob(
                container=blob_container_name,
                connection_string=SecretStr(azurite.connection_string),
                retry_total=2,
            )
            .with_scope(tenant="acme")
            .build()
        )
        clients.append(client)
        return client

    setup = make()
    await setup.setup()  # database, container, blob container: once, explicitly
    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


async def stored(memory: MemoryClient, tier: Tier) -> dict[str, Record]:
    """Every record the tier holds for the sessions namespace, read from the service itself."""
    store: Any = memory.tier_store(tier)
    keys = [mk async for mk in store.scan("acme", "sessions")]
    found: list[Record | None] = await store.mget(keys)
    return {mk.key: rec for mk, rec in zip(keys, found, strict=True) if rec is not None}


def random_text(nbytes: int) -> str:
    return base64.b64encode(os.urandom(nbytes * 3 // 4)).decode("ascii")[:nbytes]


async def test_concurrent_appends_from_two_clients_lose_no_turn(make_client: MakeClient) -> None:
    one, two = make_client(), make_client()  # two "processes": separate Redis/Cosmos/Blob connections
    stores = [ConversationStore(one, chunk_turns=8, recent_turns=4), ConversationStore(two, chunk_turns=8)]
    items = [{"writer": i % 2, "n": i} for i in range(120)]
    async with asyncio.timeout(120):
        indices = await asyncio.gather(*(stores[i % 2].append_turn("shared", t) for i, t in enumerate(items)))
    assert sorted(indices) == list(range(120))
    expected = [items[i] for i in sorted(range(120), key=lambda i: indices[i])]
    for store in stores:
        assert await store.load_turns("shared", consistent=True) == expected
        assert await store.load_turns("shared", 20, consistent=True) == expected[-20:]
    meta = await stores[1].session_metadata("shared", consistent=True)
    assert meta is not None and meta.turn_count == 120
    chunks = [k for k in await stored(one, Tier.WARM) if k.startswith("c:")]
    assert len(chunks) >= 120 // 8 - 1  # sealed into chunks, none lost or duplicated
    assert len(set(chunks)) == len(chunks)


async def test_a_session_larger_than_a_cosmos_item(make_client: MakeClient) -> None:
    memory = make_client()
    store = ConversationStore(memory)
    items: list[dict[str, Any]] = [{"role": "user", "i": i, "text": random_text(8192)} for i in range(400)]
    async with asyncio.timeout(240):
        for t in items:
            await store.append_turn("long", t)
    assert sum(len(t["text"]) for t in items) > COSMOS_ITEM_LIMIT

    warm = await stored(memory, Tier.WARM)
    assert len(warm) > 20 and all(rec.kind is RecordKind.JSON for rec in warm.values())
    assert max(rec.size for rec in warm.values()) <= store.max_chunk_bytes + 1024 + 64
    assert all(rec.size <= memory.policy.warm_max_bytes < COSMOS_ITEM_LIMIT for rec in warm.values())
    assert sum(rec.size for rec in warm.values()) > COSMOS_ITEM_LIMIT
    assert await store.load_turns("long") == items
    assert await store.load_turns("long", 50) == items[-50:]


async def test_archive_to_blob_and_load_from_a_fresh_client(make_client: MakeClient) -> None:
    memory = make_client()
    store = ConversationStore(memory, chunk_turns=8)
    items = [{"i": i, "text": f"turn {i}"} for i in range(40)]
    big = {"i": 40, "text": random_text(2 * 1024 * 1024)}  # a turn too large for a Cosmos item
    for t in [*items, big]:
        await store.append_turn("old", t)
    await store.archive_session("old")

    assert sorted(k[:2] for k in await stored(memory, Tier.WARM)) == ["a:", "h:"]  # head + pointer
    assert [k[:2] for k in await stored(memory, Tier.COLD)] == ["a:"]  # one blob: the archive

    fresh = ConversationStore(make_client(redis_prefix=f"tm{secrets.token_hex(4)}"))  # empty hot
    meta = await fresh.session_metadata("old")
    assert meta is not None and meta.archived and meta.turn_count == 41
    assert await fresh.load_turns("old") == [*items, big]
    assert await fresh.load_turns("old", 3) == [*items[-2:], big]

    assert await fresh.append_turn("old", {"i": 41}) == 41
    assert await store.load_turns("old", 2, consistent=True) == [big, {"i": 41}]
    await fresh.clear_session("old")
    assert await stored(memory, Tier.WARM) == {}
    assert await stored(memory, Tier.COLD) == {}
    assert await fresh.session_exists("old") is False
    # `store` caches in another Redis prefix (a separate hot tier): its durable view agrees.
    assert await store.session_exists("old", consistent=True) is False
