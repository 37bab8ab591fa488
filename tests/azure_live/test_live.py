"""What only real Azure can prove. Skipped unless TIERMEM_AZURE_LIVE=1 (see docs/testing.md).

Point the usual settings at a deployment made from infra/ (managed identity or `az login` for
DefaultAzureCredential): TIERMEM_REDIS_URL, TIERMEM_COSMOS_ENDPOINT, TIERMEM_BLOB_ACCOUNT_URL, ...
Each test works in a unique namespace and deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest

from tiermem import MemoryBuilder, MemoryClient, Tier, TierUnavailableError
from tiermem._settings import MemorySettings

pytestmark = [pytest.mark.azure_live, pytest.mark.timeout(600)]


@pytest.fixture
async def live() -> AsyncIterator[MemoryClient]:
    settings = MemorySettings()
    if not settings.cosmos_endpoint or not settings.blob_account_url or not settings.redis_url:
        pytest.fail(
            "set TIERMEM_REDIS_URL, TIERMEM_COSMOS_ENDPOINT and TIERMEM_BLOB_ACCOUNT_URL for live tests"
        )
    memory = MemoryBuilder.from_settings(settings).build()
    async with memory:
        yield memory.scoped(tenant="tiermem-live", namespace=f"t{secrets.token_hex(4)}")


async def test_entra_auth_on_every_tier_and_round_trip(live: MemoryClient) -> None:
    assert all(err is None for err in (await live.ping()).values())
    await live.set("small", {"ok": True}, ttl=600)
    await live.set("large", os.urandom(2 * 1024 * 1024), ttl=600)  # above warm_max_bytes: Blob + pointer
    assert await live.get("small") == {"ok": True}
    assert len(await live.get("large")) == 2 * 1024 * 1024
    await live.delete("small")
    await live.delete("large")


async def test_cosmos_enforces_item_ttl(live: MemoryClient) -> None:
    await live.set("expiring", "x", ttl=2, tier=Tier.WARM)
    warm = live.tier_store(Tier.WARM)
    assert warm is not None
    mk = live._key("expiring")
    async with asyncio.timeout(300):  # Cosmos deletes expired items in the background
        while await warm.get(mk) is not None:  # noqa: ASYNC110 - remote state, polled with a deadline
            await asyncio.sleep(5)


async def test_cosmos_rejects_items_over_2mb_before_we_do(live: MemoryClient) -> None:
    warm = live.tier_store(Tier.WARM)
    assert warm is not None and warm.info.max_record_bytes is not None
    assert warm.info.max_record_bytes < 2 * 1024 * 1024


async def test_managed_redis_token_refresh_survives_an_hour(live: MemoryClient) -> None:
    if os.environ.get("TIERMEM_LIVE_LONG") != "1":
        pytest.fail("set TIERMEM_LIVE_LONG=1 to run the 70-minute token-refresh soak")
    deadline = asyncio.get_running_loop().time() + 70 * 60
    while asyncio.get_running_loop().time() < deadline:
        try:
            await live.set("soak", "v", ttl=120)
        except TierUnavailableError as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"Redis stopped accepting the refreshed Entra token: {exc}")
        assert await live.get("soak") == "v"
        await asyncio.sleep(30)
