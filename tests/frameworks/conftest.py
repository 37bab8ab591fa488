"""Memory configurations the framework adapters are proven on.

``embedded``: in-process hot + SQLite warm + files cold (the default); ``azure``: Redis + the Cosmos
DB stand-in + Azurite; ``cluster``: a 3-node Redis Cluster + the Cosmos stand-in + Azurite. Every
test gets its own tenant, Redis key prefix, Cosmos container and Blob container.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, MemoryClient, SqliteWarmMemory

MakeMemory = Callable[[], MemoryClient]

CONFIGS = [
    pytest.param("embedded", id="embedded"),
    pytest.param(
        "azure", id="redis+cosmos+azurite", marks=(pytest.mark.redis, pytest.mark.cosmos, pytest.mark.blob)
    ),
    pytest.param(
        "cluster",
        id="cluster+cosmos+azurite",
        marks=(pytest.mark.redis, pytest.mark.cosmos, pytest.mark.blob),
    ),
]


def _azure_builder(request: pytest.FixtureRequest, *, cluster: bool, prefix: str) -> MemoryBuilder:
    redis: Any = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    cosmos: Any = request.getfixturevalue("cosmos_server")
    azurite: Any = request.getfixturevalue("azurite")
    return (
        MemoryBuilder()
        .with_redis(redis.url, cluster=cluster, prefix=prefix)
        .with_cosmos(
            cosmos.endpoint,
            request.getfixturevalue("cosmos_database_name"),
            request.getfixturevalue("cosmos_container_name"),
            key=SecretStr(cosmos.key),
            retry_total=2,
        )
        .with_blob(
            container=request.getfixturevalue("blob_container_name"),
            connection_string=SecretStr(azurite.connection_string),
            retry_total=2,
        )
    )


@pytest.fixture
async def make_memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeMemory]:
    """Builds independent clients over the same stored data (like separate processes).

    Parametrize indirectly with a name from ``CONFIGS`` (default: ``embedded``).
    """
    config = getattr(request, "param", "embedded")
    tenant = f"t{secrets.token_hex(4)}"
    prefix = f"tm{secrets.token_hex(4)}"
    clients: list[MemoryClient] = []

    def make() -> MemoryClient:
        if config == "embedded":
            builder = (
                MemoryBuilder()
                .with_hot(LocalHotMemory())
                .with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
                .with_cold(FileColdMemory(tmp_path / "cold"))
            )
        else:
            builder = _azure_builder(request, cluster=config == "cluster", prefix=prefix)
        client = builder.with_scope(tenant=tenant, namespace="agents").build()
        clients.append(client)
        return client

    if config != "embedded":
        await make().setup()
    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
async def memory(make_memory: MakeMemory) -> MemoryClient:
    return make_memory()
