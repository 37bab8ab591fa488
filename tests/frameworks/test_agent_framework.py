"""Agent Framework adapters: same model inputs as the in-memory history provider, history that
survives a new process, and workflow checkpoints that behave like InMemoryCheckpointStorage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from agent_framework import (
    Agent,
    InMemoryCheckpointStorage,
    InMemoryHistoryProvider,
    Message,
    WorkflowCheckpoint,
    WorkflowCheckpointException,
)

from tests.frameworks.af_app import ScriptedChatClient, without_attribution, workflow
from tests.frameworks.conftest import CONFIGS, MakeMemory
from tiermem import InvalidInputError
from tiermem.agent_framework import TierMemCheckpointStorage, TierMemHistoryProvider

TURNS = ["hi", "what is tiermem?", "and on Azure?", "thanks"]


async def _converse(provider: Any, session_id: str) -> list[list[dict[str, Any]]]:
    client = ScriptedChatClient()
    agent = Agent(client=client, instructions="be brief", context_providers=[provider])
    session = agent.create_session(session_id=session_id)
    for text in TURNS:
        await agent.run(text, session=session)
    return without_attribution(client.inputs)


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_agent_gets_the_same_model_inputs_as_with_the_in_memory_provider(
    make_memory: MakeMemory,
) -> None:
    session = f"s-{uuid.uuid4().hex[:8]}"
    expected = await _converse(InMemoryHistoryProvider(), session)
    got = await _converse(TierMemHistoryProvider(make_memory()), session)
    assert [len(call) for call in expected] == [1, 3, 5, 7]
    assert got == expected
    # Another client (another process) sees the whole conversation.
    history = await TierMemHistoryProvider(make_memory()).get_messages(session)
    replies = [f"reply {i}" for i in range(1, 5)]
    assert [m.text for m in history] == [t for turn in zip(TURNS, replies, strict=True) for t in turn]


async def test_replayed_transcript_is_not_stored_twice(memory: Any) -> None:
    provider = TierMemHistoryProvider(memory)
    first = [Message(role="user", contents=["a"]), Message(role="assistant", contents=["b"])]
    await provider.save_messages("s", first)
    await provider.save_messages("s", [*first, Message(role="user", contents=["c"])])  # full replay + one new
    assert [m.text for m in await provider.get_messages("s")] == ["a", "b", "c"]
    with pytest.raises(InvalidInputError):
        await provider.get_messages(None)
    await provider.clear("s")
    assert await provider.get_messages("s") == []


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from tiermem import MemoryBuilder, SqliteWarmMemory
    from tiermem.agent_framework import TierMemHistoryProvider
    from agent_framework import Agent
    from tests.frameworks.af_app import ScriptedChatClient

    async def main():
        memory = MemoryBuilder().with_warm(SqliteWarmMemory(sys.argv[1])).build()
        async with memory:
            client = ScriptedChatClient()
            agent = Agent(client=client, context_providers=[TierMemHistoryProvider(memory)])
            await agent.run(sys.argv[2], session=agent.create_session(session_id="persistent"))
            print(json.dumps([[m["contents"][0]["text"] for m in call] for call in client.inputs]))

    asyncio.run(main())
    """
)


def test_history_survives_a_new_process(tmp_path: Path) -> None:
    db = tmp_path / "warm.db"
    root = Path(__file__).resolve().parents[2]

    def turn(text: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(db), text],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    assert turn("first") == '[["first"]]'
    assert turn("second") == '[["first", "reply 1", "second"]]'


def _checkpoint(name: str, n: int, previous: str | None, ts: str) -> WorkflowCheckpoint:
    return WorkflowCheckpoint(
        workflow_name=name,
        graph_signature_hash="h",
        checkpoint_id=f"cp-{n}",
        previous_checkpoint_id=previous,
        timestamp=ts,
        state={"n": n, "nested": {"when": ts}},
        iteration_count=n,
    )


async def _storage_script(storage: Any) -> list[Any]:
    out: list[Any] = []
    stamps = ["2026-12-07T01:00:00+00:00", "2026-12-07T02:00:00+01:00", "2026-12-07T01:00:01+00:00"]
    previous = None
    for n, ts in enumerate(stamps):
        out.append(await storage.save(_checkpoint("wf", n, previous, ts)))
        previous = f"cp-{n}"
    await storage.save(_checkpoint("other", 9, None, stamps[0]))
    # Two checkpoints at the same instant: the one that names the other as previous is the latest.
    await storage.save(_checkpoint("tie", 1, None, stamps[0]))
    await storage.save(_checkpoint("tie", 2, "cp-1", stamps[0]))
    out.append(sorted(await storage.list_checkpoint_ids(workflow_name="wf")))
    out.append(sorted(cp.state["n"] for cp in await storage.list_checkpoints(workflow_name="wf")))
    out.append((await storage.get_latest(workflow_name="wf")).checkpoint_id)
    out.append((await storage.get_latest(workflow_name="tie")).checkpoint_id)
    out.append(await storage.get_latest(workflow_name="none"))
    out.append((await storage.load("cp-1")).to_dict())
    out.append(await storage.delete("cp-1"))
    out.append(await storage.delete("cp-1"))
    out.append(sorted(await storage.list_checkpoint_ids(workflow_name="wf")))
    with pytest.raises(WorkflowCheckpointException):
        await storage.load("cp-1")
    return out


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_checkpoint_storage_behaves_like_in_memory_storage(make_memory: MakeMemory) -> None:
    assert await _storage_script(TierMemCheckpointStorage(make_memory())) == await _storage_script(
        InMemoryCheckpointStorage()
    )


async def test_workflow_checkpoints_resume_in_a_fresh_workflow(make_memory: MakeMemory) -> None:
    storage = TierMemCheckpointStorage(make_memory())
    reference = InMemoryCheckpointStorage()
    assert (await workflow(storage).run("hello")).get_outputs() == ["OLLEH"]
    await workflow(reference).run("hello")
    ours = await storage.list_checkpoints(workflow_name="shout")
    theirs = await reference.list_checkpoints(workflow_name="shout")
    assert [cp.iteration_count for cp in ours] == [cp.iteration_count for cp in theirs]
    assert len(ours) >= 2
    # Restore the first checkpoint from a new storage object (another process) and finish the run.
    first = ours[0]
    again = TierMemCheckpointStorage(make_memory())
    events = await workflow(again).run(checkpoint_id=first.checkpoint_id, checkpoint_storage=again)
    assert events.get_outputs() == ["OLLEH"]
