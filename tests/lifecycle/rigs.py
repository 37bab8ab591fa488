"""Client configurations for the lifecycle tests, each with an independent probe of its raw stores.

The probes read the stores with their own connections and plain queries (Redis ``SCAN``, a Cosmos SQL
query, a Blob listing, ``sqlite3``, ``os.walk``): they never use tiermem's lifecycle code, so an
erasure that missed something cannot hide it from them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, MemoryClient, SqliteWarmMemory, Tier
from tiermem._keys import file_scope_parts

Probe = Callable[[str], Awaitable[dict[Tier, int]]]
"""Raw objects of one tenant per tier (everything whose name or fields belong to it)."""

SMALL_POLICY: dict[str, Any] = {"warm_max_bytes": 2048, "hot_max_bytes": 1024}


@dataclass
class Rig:
    memory: MemoryClient
    probe: Probe
    config: dict[str, Any] = field(default_factory=dict)
    """How a second process can build the same client (see erase_worker.py)."""


def build(hot: Any, warm: Any, cold: Any, **options: Any) -> MemoryClient:
    builder = MemoryBuilder().with_policy(**SMALL_POLICY)
    if hot is not None:
        builder.with_hot(hot)
    if warm is not None:
        builder.with_warm(warm)
    if cold is not None:
        builder.with_cold(cold)
    if "quotas" in options:
        builder.with_quotas(options["quotas"])
    if "retention" in options:
        builder.with_retention(options["retention"])
    return builder.build()


def embedded_stores(tmp: Path) -> tuple[Any, Any, Any]:
    return LocalHotMemory(), SqliteWarmMemory(tmp / "warm.db"), FileColdMemory(tmp / "cold")


def embedded(request: pytest.FixtureRequest, tmp: Path, **options: Any) -> Rig:
    hot, warm, cold = embedded_stores(tmp)
    memory = build(hot, warm, cold, **options)

    async def probe(tenant: str) -> dict[Tier, int]:
        def count() -> dict[Tier, int]:
            conn = sqlite3.connect(tmp / "warm.db")
            try:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                warm_rows = sum(
                    conn.execute(f"SELECT count(*) FROM {t} WHERE tenant=?", (tenant,)).fetchone()[0]
                    for t in tables
                    if t.startswith("tiermem_")
                )
            finally:
                conn.close()
            return {Tier.WARM: warm_rows, Tier.COLD: cold_files(tmp / "cold", tenant)}

        found = await asyncio.to_thread(count)
        found[Tier.HOT] = sum(1 for mk in hot._entries if mk.tenant == tenant)
        return found

    return Rig(memory, probe, {"kind": "embedded", "dir": str(tmp)})


def cold_files(root: Path, tenant: str) -> int:
    """Files under the tenant's directory and under ``~tenant`` (collections of a client without warm)."""
    total = 0
    for name in (tenant, f"~{tenant}"):
        base = root.joinpath(*file_scope_parts(name))
        total += sum(len(f) for _, _, f in os.walk(base)) if base.exists() else 0
    return total


def hot_cold(request: pytest.FixtureRequest, tmp: Path, **options: Any) -> Rig:
    """No warm tier: cold (files) is the durable tier and holds the collections."""
    hot, cold = LocalHotMemory(), FileColdMemory(tmp / "cold")
    memory = build(hot, None, cold, **options)

    async def probe(tenant: str) -> dict[Tier, int]:
        files = await asyncio.to_thread(cold_files, tmp / "cold", tenant)
        return {Tier.HOT: sum(1 for mk in hot._entries if mk.tenant == tenant), Tier.COLD: files}

    return Rig(memory, probe, {"kind": "hot-cold", "dir": str(tmp)})


def stand_in_stores(endpoints: dict[str, Any]) -> tuple[Any, Any, Any]:
    from pydantic import SecretStr

    from tiermem.tiers.blob import BlobColdMemory
    from tiermem.tiers.cosmos import CosmosWarmMemory
    from tiermem.tiers.redis import RedisHotMemory

    hot = RedisHotMemory.from_url(endpoints["redis"], prefix=endpoints["prefix"])
    warm = CosmosWarmMemory(
        endpoints["cosmos"], "lifecycle", endpoints["container"], key=SecretStr(endpoints["cosmos_key"])
    )
    cold = BlobColdMemory(container=endpoints["container"], connection_string=SecretStr(endpoints["blob"]))
    return hot, warm, cold


def stand_ins(request: pytest.FixtureRequest, tmp: Path, **options: Any) -> Rig:
    redis = request.getfixturevalue("redis_server")
    cosmos = request.getfixturevalue("cosmos_server")
    azurite = request.getfixturevalue("azurite")
    endpoints = {
        "redis": redis.url,
        "prefix": f"tm{secrets.token_hex(3)}",
        "cosmos": cosmos.endpoint,
        "cosmos_key": cosmos.key,
        "container": f"c{secrets.token_hex(6)}",
        "blob": azurite.connection_string,
    }
    memory = build(*stand_in_stores(endpoints), **options)

    async def probe(tenant: str) -> dict[Tier, int]:
        import redis.asyncio as aioredis
        from azure.cosmos.aio import CosmosClient
        from azure.storage.blob.aio import ContainerClient

        prefix = endpoints["prefix"]
        async with aioredis.Redis.from_url(endpoints["redis"]) as client:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        hot = sum(1 for k in keys if f":{tenant}:" in k.decode() or f"{{{tenant}}}" in k.decode())
        async with CosmosClient(endpoints["cosmos"], endpoints["cosmos_key"]) as cosmos_client:
            container = cosmos_client.get_database_client("lifecycle").get_container_client(
                endpoints["container"]
            )
            rows = [r async for r in container.query_items("SELECT * FROM c")]
        warm = sum(
            1
            for r in rows
            if tenant in (r.get("tenant"), r.get("t")) or f":{tenant}:" in f":{r.get('pk', '')}"
        )
        async with ContainerClient.from_connection_string(endpoints["blob"], endpoints["container"]) as blobs:
            names = [b.name async for b in blobs.list_blobs()]
        cold = sum(1 for n in names if n.startswith((f"{tenant}/", f"~{tenant}/")))
        return {Tier.HOT: hot, Tier.WARM: warm, Tier.COLD: cold}

    return Rig(memory, probe, {"kind": "stand-ins", **endpoints})


STAND_INS = (pytest.mark.redis, pytest.mark.cosmos, pytest.mark.blob)
RIGS: dict[str, tuple[Callable[..., Rig], tuple[pytest.MarkDecorator, ...]]] = {
    "embedded": (embedded, ()),
    "hot-cold": (hot_cold, ()),
    "redis-cosmos-blob": (stand_ins, STAND_INS),
}


def rig_params(*, warm: bool = False) -> list[Any]:
    """Every rig (``warm``: only those with a warm tier, which retention needs)."""
    return [
        pytest.param(name, id=name, marks=marks)
        for name, (_, marks) in RIGS.items()
        if not (warm and name == "hot-cold")
    ]


def make_rig(name: str, request: pytest.FixtureRequest, tmp: Path, **options: Any) -> Rig:
    return RIGS[name][0](request, tmp, **options)
