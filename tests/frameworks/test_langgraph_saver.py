"""TierMemSaver beyond the conformance suite: idle-thread TTL, sync use, large values, tenants,
and the storage layout's promises (one collection per thread, O(limit) reads for a listing)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from tests.doubles import FakeClock, clocked_memory
from tests.frameworks import graph_app
from tests.frameworks.conftest import MakeMemory
from tiermem import (
    ConfigurationError,
    FileColdMemory,
    InvalidInputError,
    InvalidTTLError,
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    SqliteWarmMemory,
)
from tiermem.langgraph import TierMemSaver


def _config(thread: str, checkpoint_id: str | None = None, ns: str = "") -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


async def _put(saver: TierMemSaver, thread: str, parent: Any, values: dict[str, Any], step: int) -> Any:
    checkpoint = empty_checkpoint()
    versions = {ch: saver.get_next_version(None, None) for ch in values}
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(parent["versions"] if parent else {}) | versions
    conf = _config(thread, parent["config"]["configurable"]["checkpoint_id"] if parent else None)
    stored = await saver.aput(conf, checkpoint, {"source": "loop", "step": step}, versions)
    return {"config": stored, "versions": checkpoint["channel_versions"]}


async def test_idle_thread_expires_as_a_whole_but_live_data_never_does(tmp_path: Path) -> None:
    clock = FakeClock()
    memory = clocked_memory(tmp_path, clock)
    async with memory:
        saver = TierMemSaver(memory, ttl=100)
        first = await _put(saver, "t1", None, {"a": "written at step 1"}, 1)
        state = first
        for step in range(2, 12):  # one write every 30 s, for 300 s: three TTLs, never idle
            clock.advance(30)
            state = await _put(saver, "t1", state, {"b": step}, step)
        tup = await saver.aget_tuple(_config("t1"))
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {"a": "written at step 1", "b": 11}
        clock.advance(101)  # idle longer than the TTL
        assert await saver.aget_tuple(_config("t1")) is None
        assert [t async for t in saver.alist(_config("t1"))] == []
        assert [name async for name in memory.collections(prefix="lg-cp")] == []
        # sweep reclaims threads nobody reads again
        await _put(saver, "t2", None, {"a": 1}, 1)
        clock.advance(101)
        assert await saver.asweep() == 1
        assert [name async for name in memory.collections(prefix="lg-cp")] == []
    with pytest.raises(InvalidTTLError):
        TierMemSaver(memory, ttl=0)


async def test_large_channel_values_round_trip_through_cold(tmp_path: Path) -> None:
    memory = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(tmp_path / "w.db"))
        .with_cold(FileColdMemory(tmp_path / "cold"))
        .build()
    )
    async with memory:
        saver = TierMemSaver(memory)
        big = secrets.token_hex(1_500_000)  # 3 MB that gzip cannot shrink below the warm limit
        await _put(saver, "big", None, {"doc": big}, 1)
        tup = await saver.aget_tuple(_config("big"))
        assert tup is not None and tup.checkpoint["channel_values"]["doc"] == big
        assert any(p.is_file() for p in (tmp_path / "cold").rglob("*"))
        await saver.adelete_thread("big")
        assert not any(p.is_file() for p in (tmp_path / "cold").rglob("*"))


async def test_threads_of_other_tenants_are_invisible(make_memory: MakeMemory) -> None:
    base = make_memory()
    acme, other = TierMemSaver(base.scoped(tenant="acme")), TierMemSaver(base.scoped(tenant="other"))
    await _put(acme, "shared-id", None, {"secret": 1}, 1)
    assert await other.aget_tuple(_config("shared-id")) is None
    assert [t async for t in other.alist(None)] == []
    await other.adelete_thread("shared-id")
    assert await acme.aget_tuple(_config("shared-id")) is not None


async def test_list_reads_only_what_it_returns(memory: MemoryClient) -> None:
    """newest-first listing with a limit asks the tier for O(limit) checkpoints, not the thread."""
    saver = TierMemSaver(memory)
    state = None
    for step in range(300):
        state = await _put(saver, "long", state, {"n": step}, step)
    seen: list[tuple[str, int | None]] = []
    coll = saver._coll("long")
    original = type(coll).list

    def spy(self: Any, **kwargs: Any) -> Any:
        seen.append((kwargs.get("prefix", ""), kwargs.get("limit")))
        return original(self, **kwargs)

    type(coll).list = spy  # type: ignore[method-assign]
    try:
        got = [t.metadata["step"] async for t in saver.alist(_config("long"), limit=10)]
        filtered = [t.metadata["step"] async for t in saver.alist(_config("long"), filter={"step": 7})]
    finally:
        type(coll).list = original  # type: ignore[method-assign]
    assert got == list(range(299, 289, -1))
    assert filtered == [7]
    assert ("c!!!!", 10) in seen  # the tier was asked for ten checkpoints of namespace ""


async def test_bad_arguments_raise_typed_errors(memory: MemoryClient) -> None:
    saver = TierMemSaver(memory)
    with pytest.raises(InvalidInputError):
        await saver.aprune(["t"], strategy="keep_some")
    with pytest.raises(InvalidInputError):
        [t async for t in saver.alist(_config("t"), filter={"step": {"$regex": "1"}})]


def test_sync_graph_runs_on_the_savers_own_loop(tmp_path: Path) -> None:
    memory = MemoryBuilder().with_warm(SqliteWarmMemory(tmp_path / "w.db")).build()
    saver = TierMemSaver(memory)
    try:
        app = graph_app.build(saver)
        config: Any = {"configurable": {"thread_id": f"sync-{uuid.uuid4().hex[:6]}"}}
        app.invoke({"topic": "s", "results": []}, config)
        assert app.get_state(config).next == ("review",)
        assert len(list(app.get_state_history(config))) >= 5
        assert saver.get_tuple(config) is not None

        async def from_inside() -> Any:
            return saver.get_tuple(config)

        with pytest.raises(ConfigurationError, match="own event loop"):
            saver._sync.run(from_inside())
    finally:
        saver._sync.run(memory.aclose())
        saver.close()


async def test_concurrent_graph_runs_on_different_threads_do_not_interfere(memory: MemoryClient) -> None:
    saver = TierMemSaver(memory)
    histories = await asyncio.gather(*(graph_app.run(saver, f"par-{i}") for i in range(4)))
    assert all(h == histories[0] for h in histories)


async def test_writes_stored_before_their_checkpoint_are_not_hidden(memory: MemoryClient) -> None:
    """LangGraph runs puts in the background, so a task's writes can land before their checkpoint."""
    saver = TierMemSaver(memory)
    checkpoint = empty_checkpoint()
    config = _config("early", checkpoint["id"])
    await saver.aput_writes(config, [("ch", "early write")], "task-1")
    await saver.aput(_config("early"), checkpoint, {"source": "input", "step": -1}, {})
    tup = await saver.aget_tuple(_config("early"))
    assert tup is not None
    assert tup.pending_writes == [("task-1", "ch", "early write")]
