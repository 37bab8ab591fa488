"""One contract suite over every tier implementation (aiocache-style parametrized fixture).

Each implementation is a factory keyed by name; the Azure adapters request their real service
fixtures lazily, so running ``-m "not redis"`` (etc.) never starts a service it does not need.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tiermem import FileColdMemory, LocalHotMemory, SqliteWarmMemory, Tier, TierStore

Factory = Callable[[pytest.FixtureRequest, Path], Any]


def _local_hot(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    return LocalHotMemory(max_items=100_000, max_bytes=256 * 1024 * 1024)


def _sqlite(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    return SqliteWarmMemory(tmp / "warm.db")


def _sqlite_os(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    return SqliteWarmMemory(tmp / "warm.db", durability="os")  # small writes commit on the loop's thread


def _files(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    return FileColdMemory(tmp / "cold")


def _redis(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    from tiermem.tiers.redis import RedisHotMemory

    server = request.getfixturevalue("redis_server")
    return RedisHotMemory.from_url(server.url, prefix=f"tm{secrets.token_hex(4)}")


def _redis_cluster(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    from tiermem.tiers.redis import RedisHotMemory

    cluster = request.getfixturevalue("redis_cluster")
    return RedisHotMemory.from_url(cluster.url, cluster=True, prefix=f"tm{secrets.token_hex(4)}")


def _cosmos(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    from pydantic import SecretStr

    from tiermem.tiers.cosmos import CosmosWarmMemory

    server = request.getfixturevalue("cosmos_server")
    return CosmosWarmMemory(
        server.endpoint, "contract", f"c{secrets.token_hex(6)}", key=SecretStr(server.key), retry_total=2
    )


def _blob(request: pytest.FixtureRequest, tmp: Path) -> TierStore:
    from pydantic import SecretStr

    from tiermem.tiers.blob import BlobColdMemory

    azurite = request.getfixturevalue("azurite")
    return BlobColdMemory(
        container=f"c{secrets.token_hex(6)}",
        connection_string=SecretStr(azurite.connection_string),
        retry_total=2,
    )


# name -> (tier role, factory, marks)
IMPLEMENTATIONS: dict[str, tuple[Tier, Factory, tuple[pytest.MarkDecorator, ...]]] = {
    "local-hot": (Tier.HOT, _local_hot, ()),
    "sqlite-warm": (Tier.WARM, _sqlite, ()),
    "sqlite-warm-os": (Tier.WARM, _sqlite_os, ()),
    "file-cold": (Tier.COLD, _files, ()),
    "redis-hot": (Tier.HOT, _redis, (pytest.mark.redis,)),
    "redis-cluster-hot": (Tier.HOT, _redis_cluster, (pytest.mark.redis,)),
    "cosmos-warm": (Tier.WARM, _cosmos, (pytest.mark.cosmos,)),
    "blob-cold": (Tier.COLD, _blob, (pytest.mark.blob,)),
}


def _params(roles: set[Tier]) -> list[Any]:
    return [
        pytest.param(name, id=name, marks=marks)
        for name, (role, _, marks) in IMPLEMENTATIONS.items()
        if role in roles
    ]


ALL = _params({Tier.HOT, Tier.WARM, Tier.COLD})
DURABLE = _params({Tier.WARM, Tier.COLD})
HOT = _params({Tier.HOT})
WARM = _params({Tier.WARM})
COLD = _params({Tier.COLD})


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh, set-up store of the implementation named by the test's parameter."""
    _, factory, _ = IMPLEMENTATIONS[request.param]
    instance = factory(request, tmp_path)
    await instance.setup()
    try:
        yield instance
    finally:
        await instance.aclose()


def role_of(name: str) -> Tier:
    return IMPLEMENTATIONS[name][0]
