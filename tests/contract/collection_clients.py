"""Client configurations the collection contract runs on: every way a client can hold collections.

Each factory builds a client over real tiers (the Azure ones on the local stand-ins, requested lazily)
and returns it with a probe of its raw stores, so tests can check that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import FakeClock
from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, MemoryClient, SqliteWarmMemory


@dataclass
class Setup:
    """A client plus its raw stores (for leftover checks) and the clock it runs on."""

    memory: MemoryClient
    clock: FakeClock
    hot: Any = None
    warm: Any = None
    cold: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[pytest.FixtureRequest, Path, FakeClock, dict[str, Any]], Setup]


def _build(
    clock: FakeClock, policy: dict[str, Any], hot: Any = None, warm: Any = None, cold: Any = None
) -> Setup:
    builder = MemoryBuilder().with_clock(clock).with_scope(tenant=f"t{secrets.token_hex(4)}", namespace="ns")
    if policy:
        builder = builder.with_policy(**policy)
    if hot is not None:
        builder = builder.with_hot(hot)
    if warm is not None:
        builder = builder.with_warm(warm)
    if cold is not None:
        builder = builder.with_cold(cold)
    return Setup(builder.build(), clock, hot, warm, cold)


def _files_counter(root: Path) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return await asyncio.to_thread(lambda: sum(1 for p in root.rglob("*") if p.is_file()))

    return count


def _embedded(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    made = _build(
        clock,
        policy,
        hot=LocalHotMemory(clock=clock),
        warm=SqliteWarmMemory(tmp / "warm.db", clock=clock),
        cold=FileColdMemory(tmp / "cold"),
    )
    made.extras["count_cold"] = _files_counter(tmp / "cold")
    return made


def _sqlite_only(
    request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]
) -> Setup:
    return _build(clock, policy, warm=SqliteWarmMemory(tmp / "warm.db", clock=clock))


def _hot_only(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    return _build(clock, policy, hot=LocalHotMemory(clock=clock))


def _redis_hot(request: pytest.FixtureRequest, *, cluster: bool = False) -> Any:
    from tiermem.tiers.redis import RedisHotMemory

    if cluster:
        nodes = request.getfixturevalue("redis_cluster")
        return RedisHotMemory.from_url(nodes.url, cluster=True, prefix=f"tm{secrets.token_hex(4)}")
    server = request.getfixturevalue("redis_server")
    return RedisHotMemory.from_url(server.url, prefix=f"tm{secrets.token_hex(4)}")


def _cosmos_warm(request: pytest.FixtureRequest, clock: FakeClock) -> Any:
    from pydantic import SecretStr

    from tiermem.tiers.cosmos import CosmosWarmMemory

    server = request.getfixturevalue("cosmos_server")
    return CosmosWarmMemory(
        server.endpoint,
        "collections",
        f"c{secrets.token_hex(6)}",
        key=SecretStr(server.key),
        retry_total=2,
        clock=clock,
    )


def _blob_cold(request: pytest.FixtureRequest, clock: FakeClock) -> tuple[Any, Callable[[], Awaitable[int]]]:
    from pydantic import SecretStr

    from tiermem.tiers.blob import BlobColdMemory

    azurite = request.getfixturevalue("azurite")
    container = f"c{secrets.token_hex(6)}"
    store = BlobColdMemory(
        container=container,
        connection_string=SecretStr(azurite.connection_string),
        retry_total=2,
        clock=clock,
    )

    async def count() -> int:
        from azure.storage.blob.aio import ContainerClient

        async with ContainerClient.from_connection_string(azurite.connection_string, container) as client:
            return len([blob async for blob in client.list_blobs()])

    return store, count


def _stand_ins(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    cold, count = _blob_cold(request, clock)
    made = _build(clock, policy, hot=_redis_hot(request), warm=_cosmos_warm(request, clock), cold=cold)
    made.extras["count_cold"] = count
    return made


def _cluster_cosmos(
    request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]
) -> Setup:
    return _build(clock, policy, hot=_redis_hot(request, cluster=True), warm=_cosmos_warm(request, clock))


def _files_only(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    return _build(clock, policy, cold=FileColdMemory(tmp / "cold", clock=clock))


def _hot_files(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    return _build(
        clock, policy, hot=LocalHotMemory(clock=clock), cold=FileColdMemory(tmp / "cold", clock=clock)
    )


def _redis_blob(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    cold, _ = _blob_cold(request, clock)
    return _build(clock, policy, hot=_redis_hot(request), cold=cold)


def _blob_only(request: pytest.FixtureRequest, tmp: Path, clock: FakeClock, policy: dict[str, Any]) -> Setup:
    cold, _ = _blob_cold(request, clock)
    return _build(clock, policy, cold=cold)


# name -> (factory, marks, capabilities)
CLIENTS: dict[str, tuple[Factory, tuple[pytest.MarkDecorator, ...], frozenset[str]]] = {
    "embedded": (_embedded, (), frozenset({"hot", "large", "etag"})),
    "sqlite": (_sqlite_only, (), frozenset({"etag"})),
    "hot-only": (_hot_only, (), frozenset({"etag"})),
    "redis-cosmos-blob": (
        _stand_ins,
        (pytest.mark.redis, pytest.mark.cosmos, pytest.mark.blob),
        frozenset({"hot", "large", "etag", "cosmos"}),
    ),
    "files-only": (_files_only, (), frozenset({"etag"})),
    "hot-files": (_hot_files, (), frozenset({"hot", "etag"})),
    "redis-blob": (_redis_blob, (pytest.mark.redis, pytest.mark.blob), frozenset({"hot", "etag"})),
    "blob-only": (_blob_only, (pytest.mark.blob,), frozenset({"etag"})),
    "redis-cluster-cosmos": (
        _cluster_cosmos,
        (pytest.mark.redis, pytest.mark.cosmos),
        frozenset({"hot", "etag", "cosmos"}),
    ),
}


def client_params(*needs: str) -> list[Any]:
    """Parameters for the configurations that have every capability in ``needs``."""
    return [
        pytest.param(name, id=name, marks=marks)
        for name, (_, marks, caps) in CLIENTS.items()
        if set(needs) <= caps
    ]
