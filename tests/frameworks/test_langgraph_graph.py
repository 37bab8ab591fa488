"""A real compiled graph (Send fan-out, a subgraph, interrupt/resume, update_state) gives the same
state history with TierMemSaver as with LangGraph's InMemorySaver, including the subgraph's own
checkpoints, on every memory configuration."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from tests.frameworks import graph_app
from tests.frameworks.conftest import CONFIGS, MakeMemory
from tiermem.langgraph import TierMemSaver


async def _all_namespaces(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[str]:
    """Every checkpoint of the thread in every namespace (root and subgraph), normalized and sorted."""
    rows = []
    async for tup in saver.alist({"configurable": {"thread_id": thread_id}}):
        md = {k: v for k, v in tup.metadata.items() if k not in ("parents", "run_id", "thread_id")}
        ns = graph_app._scrub(tup.config["configurable"]["checkpoint_ns"])
        writes = sorted(graph_app._scrub(repr([w[1], w[2]])) for w in tup.pending_writes or [])
        rows.append(graph_app._scrub(repr((ns, md, tup.checkpoint["channel_values"], writes))))
    return sorted(rows)


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_state_history_matches_in_memory_saver(make_memory: MakeMemory) -> None:
    thread = f"thread-{uuid.uuid4().hex[:8]}"
    reference = InMemorySaver()
    expected = await graph_app.run(reference, thread)
    saver = TierMemSaver(make_memory())
    got = await graph_app.run(saver, thread)

    assert len(expected) >= 7  # input, plan, fan-out, subgraph, review (interrupted, resumed), update
    assert any(s["tasks"] and s["tasks"][0]["interrupts"] for s in expected)
    assert got == expected
    assert await _all_namespaces(saver, thread) == await _all_namespaces(reference, thread)
    # A second, independent client (another process) reads the same history.
    again = [
        graph_app.normalize(s)
        async for s in graph_app.build(TierMemSaver(make_memory())).aget_state_history(
            {"configurable": {"thread_id": thread}}
        )
    ]
    assert again == expected
