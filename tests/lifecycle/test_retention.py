"""Retention: ``maintain`` archives idle values to cold and expires old ones; beside live writers, no
acknowledged write is lost or rolled back to the archived copy."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle.rigs import build, make_rig, rig_params
from tiermem import MemoryClient, RecordKind, Retention, RetentionPolicy, Tier
from tiermem.lifecycle import DAY

LATER = 2 * DAY  # every value is "idle" when maintain judges ages this far in the future


async def cold_objects(memory: MemoryClient, tenant: str) -> int:
    usage = await memory.usage(tenant=tenant)
    return sum(s.tiers[Tier.COLD].items for s in usage.scopes if Tier.COLD in s.tiers)


@pytest.mark.parametrize("name", rig_params(warm=True))
async def test_archive_then_expire(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    rig = make_rig(name, request, tmp_path)
    async with rig.memory as memory:
        await memory.setup()
        notes = memory.scoped(tenant="acme", namespace="notes")
        scratch = memory.scoped(tenant="acme", namespace="scratch")
        values = {f"n{i}": {"i": i, "text": "note " * 40} for i in range(12)}
        await notes.mset(values)
        await scratch.mset({f"s{i}": i for i in range(5)})
        policy = RetentionPolicy(
            Retention(archive_after=DAY), namespaces={"scratch": Retention(expire_after=DAY)}
        )

        assert (await memory.maintain(retention=policy, now=time.time() + 0.5 * DAY)).archived == 0
        planned = await memory.maintain(retention=policy, now=time.time() + LATER, dry_run=True)
        assert (planned.archived, planned.expired) == (12, 5)
        assert await cold_objects(memory, "acme") == 0  # a dry run changes nothing

        report = await memory.maintain(retention=policy, now=time.time() + LATER, sweep=False)
        assert (report.archived, report.expired, report.skipped) == (12, 5, 0)
        assert report.archived_bytes > 12 * 100
        assert await cold_objects(memory, "acme") == 12
        assert await notes.mget(list(values)) == values  # reads follow the pointers (and promote)
        assert (await notes.get_entry("n3", consistent=True)).tier is Tier.COLD  # type: ignore[union-attr]
        assert await scratch.mget(["s0", "s4"]) == {"s0": None, "s4": None}

        again = await memory.maintain(retention=policy, now=time.time() + LATER, sweep=False)
        assert (again.archived, again.expired) == (0, 0)  # idempotent

        await notes.set("n0", "rewritten")  # written again: warm, no longer archived
        gone = await memory.maintain(
            retention=RetentionPolicy(Retention(expire_after=DAY)),
            now=time.time() + LATER,
            sweep=False,
            orphan_grace=0.0,
        )
        assert gone.expired == 12
        assert gone.orphans == 1  # n0's archived version, left behind by the small rewrite
        assert await notes.mget(["n0", "n5"]) == {"n0": None, "n5": None}
        assert await cold_objects(memory, "acme") == 0  # the archived versions went with them


@pytest.mark.parametrize("name", rig_params(warm=True))
async def test_archival_racing_writers_loses_no_acknowledged_write(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Writers rewrite their keys (small and large values) while maintain archives everything it sees.

    After every round, each key must read back its last acknowledged value, from the durable tier and
    through hot: an archival that raced a write must never replace it with the older archived copy.
    """
    rig = make_rig(name, request, tmp_path)
    keys, versions = 12, 8
    policy = RetentionPolicy(Retention(archive_after=DAY))
    rng = random.Random(16)
    async with rig.memory as memory:
        await memory.setup()
        view = memory.scoped(tenant="acme", namespace="race")
        acked: dict[str, Any] = {}
        totals = {"archived": 0, "skipped": 0}

        def value(key: str, version: int) -> Any:
            if version % 3 == 0:
                return os.urandom(3000) + f"{key}@{version}".encode()  # large: cold behind a pointer
            return {"key": key, "version": version}

        async def writer(key: str) -> None:
            for version in range(versions):
                v = value(key, version)
                await view.set(key, v)
                acked[key] = v
                await asyncio.sleep(rng.random() / 50)

        async def archiver(stop: asyncio.Event) -> None:
            while not stop.is_set():
                report = await memory.maintain(retention=policy, now=time.time() + LATER, sweep=False)
                totals["archived"] += report.archived
                totals["skipped"] += report.skipped
                await asyncio.sleep(0)  # let the writers run even when a pass finds nothing to do

        stop = asyncio.Event()
        archiving = asyncio.create_task(archiver(stop))
        await asyncio.gather(*(writer(f"k{i}") for i in range(keys)))
        stop.set()
        await archiving
        final = await memory.maintain(retention=policy, now=time.time() + LATER, sweep=False)
        totals["archived"] += final.archived
        print(
            f"\n{name}: {keys} keys x {versions} writes, archived {totals['archived']}, "
            f"skipped (changed meanwhile) {totals['skipped']}"
        )
        assert totals["archived"] > 0
        for key, expected in acked.items():
            entry = await view.get_entry(key, consistent=True)
            assert entry is not None and entry.value == expected, key
            assert await view.get(key) == expected, key  # through hot as well


class GatedWarm:
    """The real warm store, except that an archival's pointer write waits at a gate after its cold copy
    is made: the worst moment for a writer to commit a newer value."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def set(
        self, key: Any, record: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> Any:
        if record.kind is RecordKind.POINTER:
            self.reached.set()
            await self.release.wait()
        return await self._inner.set(key, record, if_match=if_match, if_absent=if_absent)


@pytest.mark.parametrize("name", rig_params(warm=True))
async def test_write_between_archive_copy_and_pointer_wins(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rig = make_rig(name, request, tmp_path)
    stores = (
        rig.memory.tier_store(Tier.HOT),
        rig.memory.tier_store(Tier.WARM),
        rig.memory.tier_store(Tier.COLD),
    )
    gated = GatedWarm(stores[1])
    memory = build(stores[0], gated, stores[2])
    async with rig.memory, memory:
        await memory.setup()
        view = memory.scoped(tenant="acme", namespace="race")
        await view.set("k", {"version": 1})
        archiving = asyncio.create_task(
            memory.maintain(retention=RetentionPolicy(Retention(archive_after=DAY)), now=time.time() + LATER)
        )
        await gated.reached.wait()  # the archive copy of version 1 is in cold; its pointer is not written
        await view.set("k", {"version": 2})  # acknowledged: it must survive
        gated.release.set()
        report = await archiving
        assert (report.archived, report.skipped) == (0, 1)  # the pointer was refused, its copy removed
        assert (await view.get_entry("k", consistent=True)).value == {"version": 2}  # type: ignore[union-attr]
        assert await view.get("k") == {"version": 2}
        assert await cold_objects(memory, "acme") == 0
