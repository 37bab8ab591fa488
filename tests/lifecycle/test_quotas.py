"""Quotas: concurrent writers never take a tenant past its quota; counters reconcile from usage.

The overshoot (stored items beyond ``max_items``) is measured under concurrency: many tasks in one
process, several clients sharing Redis counters, and several processes sharing Redis and one SQLite
file. Every write that returned must be stored (no acknowledged write is lost).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle.rigs import build, embedded_stores, make_rig, rig_params, stand_in_stores
from tiermem import MemoryClient, Quota, QuotaExceededError, QuotaPolicy

LIMIT = 40


async def hammer(clients: list[MemoryClient], tenant: str, writes: int) -> tuple[int, int, list[str]]:
    """``writes`` concurrent sets of distinct keys spread over ``clients``: (ok, refused, written keys)."""
    written: list[str] = []
    refusals: list[QuotaExceededError] = []

    async def one(i: int) -> None:
        key = f"k{i}"
        try:
            await clients[i % len(clients)].scoped(tenant=tenant, namespace="load").set(key, {"i": i})
            written.append(key)
        except QuotaExceededError as exc:
            refusals.append(exc)

    await asyncio.gather(*(one(i) for i in range(writes)))
    assert all(e.resource == "items" and e.tenant == tenant for e in refusals)
    return len(written), len(refusals), written


async def stored_items(memory: MemoryClient, tenant: str) -> int:
    return (await memory.usage(tenant=tenant)).tenant_totals(tenant)[0]


@pytest.mark.parametrize("name", rig_params())
async def test_concurrent_writers_never_overshoot(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    quotas = QuotaPolicy(Quota(max_items=LIMIT), tenants={"big": Quota(max_items=10 * LIMIT)})
    rig = make_rig(name, request, tmp_path, quotas=quotas)
    clients = [rig.memory]
    if name == "redis-cosmos-blob":  # more clients on the same Redis counters and Cosmos container
        clients += [build(*stand_in_stores(rig.config), quotas=quotas) for _ in range(3)]
    async with rig.memory:
        await rig.memory.setup()
        ok, refused, written = await hammer(clients, "acme", 5 * LIMIT)
        stored = await stored_items(rig.memory, "acme")
        print(
            f"\n{name}: {len(clients)} clients, {5 * LIMIT} concurrent writes, quota {LIMIT}: "
            f"{ok} accepted, {refused} refused, {stored} stored, overshoot {stored - LIMIT}"
        )
        assert stored <= LIMIT  # the measured overshoot is zero
        assert ok == stored == LIMIT  # every accepted write is stored, and the quota was used up
        view = rig.memory.scoped(tenant="acme", namespace="load")
        assert all(v is not None for v in (await view.mget(written)).values())
        # Another tenant has its own budget (a per-tenant override), untouched by acme's refusals.
        assert (await hammer(clients, "big", LIMIT))[0] == LIMIT
        for extra in clients[1:]:
            await extra.aclose()


@pytest.mark.parametrize("name", rig_params())
async def test_overwrites_at_the_quota_and_reconcile_after_deletes(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    quotas = QuotaPolicy(Quota(max_items=5), reconcile_interval=0.0)
    rig = make_rig(name, request, tmp_path, quotas=quotas)
    async with rig.memory:
        await rig.memory.setup()
        view = rig.memory.scoped(tenant="acme", namespace="n")
        for i in range(5):
            await view.set(f"k{i}", i)
        await view.set("k0", "overwritten")  # at the quota, an overwrite adds no item
        await view.mset({"k1": "a", "k2": "b"})
        with pytest.raises(QuotaExceededError) as refused:
            await view.set("k5", 5)
        assert (refused.value.resource, refused.value.limit) == ("items", 5)
        assert await view.get("k5") is None  # nothing was written
        await view.delete("k1")
        await view.set("k5", 5)  # the refusal recounts the tenant: the delete made room
        assert await stored_items(rig.memory, "acme") == 5
        with pytest.raises(QuotaExceededError):
            await view.mset({"k6": 6, "k7": 7})
        assert await view.mget(["k6", "k7"]) == {"k6": None, "k7": None}


async def test_byte_quota_and_quota_lookup_callable(tmp_path: Path) -> None:
    def lookup(tenant: str) -> Quota | None:
        return Quota(max_bytes=2_000) if tenant.startswith("small-") else None

    memory = build(*embedded_stores(tmp_path), quotas=QuotaPolicy(lookup=lookup))
    async with memory:
        small = memory.scoped(tenant="small-1", namespace="n")
        await small.set("a", "x" * 1_500)
        with pytest.raises(QuotaExceededError) as refused:
            await small.set("b", "y" * 1_000)
        assert refused.value.resource == "bytes" and refused.value.limit == 2_000
        await memory.scoped(tenant="other", namespace="n").set("b", "y" * 10_000)  # unlimited


@pytest.mark.redis
async def test_processes_sharing_redis_counters_never_overshoot(redis_server: Any, tmp_path: Path) -> None:
    prefix = f"tm{secrets.token_hex(3)}"
    workers, writes = 4, 60
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.lifecycle.quota_worker",
            redis_server.url,
            prefix,
            str(tmp_path),
            "acme",
            str(LIMIT),
            str(writes),
            str(w),
            stdout=asyncio.subprocess.PIPE,
        )
        for w in range(workers)
    ]
    results = []
    for proc in procs:
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    accepted = sum(r["ok"] for r in results)
    from tiermem.tiers.redis import RedisHotMemory

    memory = build(RedisHotMemory.from_url(redis_server.url, prefix=prefix), *embedded_stores(tmp_path)[1:])
    async with memory:
        stored = await stored_items(memory, "acme")
    print(
        f"\n{workers} processes x {writes} concurrent writes, quota {LIMIT}: {accepted} accepted, "
        f"{stored} stored, overshoot {stored - LIMIT}"
    )
    assert accepted == stored == LIMIT  # zero overshoot across processes; no accepted write lost
