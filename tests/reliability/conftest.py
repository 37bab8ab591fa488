"""Fixtures for fault, load and hostile-input tests: a full Azure-shaped stack on real local services.

Each test gets its own redis-server (so it can be stopped), its own Cosmos container and Blob
container; faults go through :class:`FaultProxy` on loopback. Figures (operations, faults,
writes verified, values lost, bad inputs) are collected and printed at the end of the run, and
written to ``$TIERMEM_RELIABILITY_REPORT`` when set (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from tests.reliability.proxy import FaultProxy
from tests.services.fixtures import require_local
from tests.services.redis import RedisServer
from tiermem import MemoryBuilder, MemoryClient, Tier
from tiermem.tiers.blob import BlobColdMemory
from tiermem.tiers.cosmos import CosmosWarmMemory
from tiermem.tiers.redis import RedisHotMemory

FIGURES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    line = ", ".join(f"{name}={value}" for name, value in sorted(FIGURES.items()))
    terminalreporter.write_line(f"tiermem reliability figures: {line}")
    path = os.environ.get("TIERMEM_RELIABILITY_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(FIGURES), fh, indent=2, sort_keys=True)


@dataclass
class Stack:
    """A MemoryClient on Redis + Cosmos stand-in + Azurite, plus handles to break each."""

    memory: MemoryClient
    redis: RedisServer
    hot: RedisHotMemory
    warm: CosmosWarmMemory
    cold: BlobColdMemory
    redis_prefix: str
    warm_endpoint: str
    warm_key: str
    blob_connection_string: str
    proxies: dict[Tier, FaultProxy] = field(default_factory=dict)


def _port(url: str) -> int:
    match = re.search(r":(\d+)(/|$)", url.split("://", 1)[1])
    assert match, url
    return int(match.group(1))


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server only this test uses, so stopping it disturbs nobody."""
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


class StackFactory:
    def __init__(self, redis: RedisServer, cosmos: Any, azurite: Any) -> None:
        self.redis = redis
        self.cosmos = cosmos
        self.azurite = azurite
        self.made: list[Stack] = []
        self.cosmos_endpoint = cosmos.endpoint
        self.cosmos_key = cosmos.key
        self.blob_connection_string = azurite.connection_string

    async def __call__(
        self,
        *,
        proxy: set[Tier] | frozenset[Tier] = frozenset(),
        hot_timeout: float = 2.0,
        warm_timeout: float = 10.0,
        cold_timeout: float = 10.0,
        failure_threshold: int = 5,
        reset_timeout: float = 0.5,
        **policy: Any,
    ) -> Stack:
        proxies: dict[Tier, FaultProxy] = {}

        async def via(tier: Tier, port: int) -> int:
            if tier not in proxy:
                return port
            p = await FaultProxy(port).start()
            proxies[tier] = p
            return p.port

        redis_port = await via(Tier.HOT, self.redis.port)
        prefix = f"tm{secrets.token_hex(3)}"
        hot = RedisHotMemory.from_url(
            f"redis://127.0.0.1:{redis_port}/0",
            prefix=prefix,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retries=1,
        )
        cosmos_port = await via(Tier.WARM, _port(self.cosmos.endpoint))
        warm = CosmosWarmMemory(
            f"https://127.0.0.1:{cosmos_port}/",
            "reliability",
            f"c{secrets.token_hex(6)}",
            key=SecretStr(self.cosmos.key),
            retry_total=1,
            connection_timeout=2,
            read_timeout=5,
        )
        blob_port = await via(Tier.COLD, _port(self.azurite.blob_endpoint))
        conn = self.azurite.connection_string.replace(
            f":{_port(self.azurite.blob_endpoint)}/", f":{blob_port}/"
        )
        cold = BlobColdMemory(
            container=f"c{secrets.token_hex(6)}",
            connection_string=SecretStr(conn),
            retry_total=1,
            connection_timeout=2,
            read_timeout=5,
        )
        builder = (
            MemoryBuilder()
            .with_hot(hot)
            .with_warm(warm)
            .with_cold(cold)
            .with_policy(**{"warm_max_bytes": 64 * 1024, **policy})
        )
        for tier, timeout in ((Tier.HOT, hot_timeout), (Tier.WARM, warm_timeout), (Tier.COLD, cold_timeout)):
            builder.with_resilience(
                tier, timeout=timeout, failure_threshold=failure_threshold, reset_timeout=reset_timeout
            )
        memory = builder.build()
        stack = Stack(
            memory,
            self.redis,
            hot,
            warm,
            cold,
            prefix,
            self.cosmos.endpoint,
            self.cosmos.key,
            self.azurite.connection_string,
            proxies,
        )
        self.made.append(stack)  # registered before any I/O, so a failed setup is still cleaned up
        # Set the stores up directly: the deadlines under test may be tighter than a cold start.
        for store in (hot, warm, cold):
            await store.setup()
        return stack

    async def close(self) -> None:
        for stack in self.made:
            await stack.memory.aclose()
            for p in stack.proxies.values():
                await p.stop()


@pytest.fixture
async def make_stack(own_redis: RedisServer, cosmos_server: Any, azurite: Any) -> AsyncIterator[StackFactory]:
    require_local(own_redis, RedisServer)
    factory = StackFactory(own_redis, cosmos_server, azurite)
    try:
        yield factory
    finally:
        await factory.close()
