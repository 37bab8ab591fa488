"""Erasure: ``forget`` leaves no raw trace of a tenant (or namespace) on any tier; nothing else is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle.rigs import Rig, make_rig, rig_params
from tiermem import ConversationStore, InvalidScopeError, MemoryClient, Tier

BIG = os.urandom(4000)  # incompressible, above warm_max_bytes (2048): a cold object behind a warm pointer


async def populate(memory: MemoryClient, tenant: str) -> dict[str, Any]:
    """KV items, a large value and its replaced version, a pinned cold value, a delete (tombstone), a
    promoted hot copy, collection items (one large), a session and a second namespace."""
    app = memory.scoped(tenant=tenant, namespace="app")
    await app.set("k1", {"tenant": tenant})
    await app.set("k2", "short-lived", ttl=3600)
    await app.set("big", BIG + tenant.encode())
    await app.set("big", BIG + tenant.encode() + b"-v2")
    await app.set("replaced", BIG)
    await app.set("replaced", "small now")  # leaves the large version behind (ADR 0005 orphan)
    await app.set("pinned", f"archived-{tenant}", tier=Tier.COLD)
    await app.delete("k2")  # a hot tombstone
    await app.get("k1")
    coll = app.collection("thread-1")
    await coll.put("c|001", {"step": 1}, attrs={"step": 1})
    await coll.put("c|002", BIG, attrs={"step": 2})
    sessions = ConversationStore(app)
    await sessions.append_turn("s1", {"role": "user", "content": f"hi from {tenant}"})
    await memory.scoped(tenant=tenant, namespace="other").set("o1", 1)
    return {"k1": {"tenant": tenant}, "big": BIG + tenant.encode() + b"-v2", "pinned": f"archived-{tenant}"}


async def assert_intact(memory: MemoryClient, tenant: str, expected: dict[str, Any]) -> None:
    app = memory.scoped(tenant=tenant, namespace="app")
    for key, value in expected.items():
        assert await app.get(key) == value
    assert await app.collection("thread-1").get("c|002") == BIG
    turns = await ConversationStore(app).load_turns("s1")
    assert turns == [{"role": "user", "content": f"hi from {tenant}"}]
    assert await memory.scoped(tenant=tenant, namespace="other").get("o1") == 1


def durable_only(counts: dict[Tier, int]) -> dict[Tier, int]:
    """Another tenant's raw objects, hot aside: its hot tombstones and fences expire while a test runs
    (its cached values are checked by reading them back)."""
    return {t: n for t, n in counts.items() if t is not Tier.HOT}


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: Rig = make_rig(request.param, request, tmp_path)
    async with made.memory:
        await made.memory.setup()
        yield made


@pytest.mark.parametrize("rig", rig_params(), indirect=True)
async def test_forget_tenant_leaves_no_raw_trace_and_spares_the_other(rig: Rig) -> None:
    memory = rig.memory
    await populate(memory, "acme")
    kept = await populate(memory, "globex")
    await memory.usage()  # SQLite: installs the write-time triggers (bookkeeping rows count as traces)
    before = await rig.probe("acme")
    assert all(before[t] > 0 for t in before), before
    other_before = await rig.probe("globex")

    counted = await memory.forget(tenant="acme", dry_run=True)
    assert counted.dry_run and counted.deleted[Tier.COLD] == before[Tier.COLD] and counted.total > 0
    assert await rig.probe("acme") == before  # a dry run deletes nothing

    report = await memory.forget(tenant="acme")
    durable = Tier.WARM if Tier.WARM in before else Tier.COLD
    assert report.deleted[durable] > 0 and report.deleted[Tier.HOT] > 0
    assert report.deleted[Tier.COLD] == before[Tier.COLD]
    assert await rig.probe("acme") == dict.fromkeys(before, 0)
    assert durable_only(await rig.probe("globex")) == durable_only(other_before)
    await assert_intact(memory, "globex", kept)
    again = await memory.forget(tenant="acme")  # idempotent: nothing left to delete
    assert again.total == 0
    app = memory.scoped(tenant="acme", namespace="app")
    assert await app.get("k1") is None
    assert [k async for k in app.keys(prefix="")] == []


@pytest.mark.parametrize("rig", rig_params(), indirect=True)
async def test_view_forget_erases_only_its_namespace(rig: Rig) -> None:
    memory = rig.memory
    await populate(memory, "acme")
    app = memory.scoped(tenant="acme", namespace="app", lock_tenant=True)
    report = await app.forget()
    assert report.namespace == "app" and report.total > 0
    assert await app.get("k1") is None
    assert await app.collection("thread-1").count() == 0
    assert await memory.scoped(tenant="acme", namespace="other").get("o1") == 1
    assert await ConversationStore(memory.scoped(tenant="acme")).load_turns("s1")
    usage = await memory.usage(tenant="acme")
    assert {s.namespace for s in usage.scopes} == {"other", "sessions"}
    with pytest.raises(InvalidScopeError):
        await app.forget(tenant="globex")


@pytest.mark.parametrize("rig", rig_params(), indirect=True)
async def test_erasure_killed_mid_way_finishes_on_rerun(rig: Rig) -> None:
    memory = rig.memory
    await populate(memory, "acme")
    kept = await populate(memory, "globex")
    for i in range(6):  # enough cold objects that the crash leaves some behind
        await memory.scoped(tenant="acme", namespace="bulk").set(f"b{i}", BIG)
    await memory.usage()
    other_before = await rig.probe("globex")
    before = await rig.probe("acme")

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.lifecycle.erase_worker",
        json.dumps(rig.config),
        "acme",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, out
    crashed = await rig.probe("acme")
    assert crashed.get(Tier.WARM, 0) == 0  # hot and warm were erased before the cold tier
    assert 0 < crashed[Tier.COLD] < before[Tier.COLD], (crashed, before)  # died half-way through cold

    report = await memory.forget(tenant="acme")  # the rerun finishes the job
    assert report.deleted[Tier.COLD] == crashed[Tier.COLD]
    assert await rig.probe("acme") == dict.fromkeys(before, 0)
    assert durable_only(await rig.probe("globex")) == durable_only(other_before)
    await assert_intact(memory, "globex", kept)
