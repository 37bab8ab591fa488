"""Workflow checkpoints are JSON and never pickled: a human-in-the-loop workflow whose state holds
dataclasses, a pydantic model, an enum, datetimes, sets, bytes and UUIDs resumes from tiermem
exactly as from InMemoryCheckpointStorage; pickled or unknown stored values are refused."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from agent_framework import (
    AgentExecutorRequest,
    AgentExecutorResponse,
    AgentResponse,
    InMemoryCheckpointStorage,
    Message,
    WorkflowCheckpoint,
    WorkflowCheckpointException,
)
from agent_framework._workflows import _checkpoint_encoding as af_encoding
from agent_framework._workflows._checkpoint import CheckpointStorage

from tests.frameworks.af_app import REVIEW_TYPES, Draft, Priority, Verdict, review_workflow
from tests.frameworks.conftest import CONFIGS, MakeMemory
from tiermem import ConfigurationError, CorruptValueError, InvalidInputError, InvalidValueError, MemoryClient
from tiermem.agent_framework import TierMemCheckpointStorage
from tiermem.agent_framework._checkpoint_codec import TAG, CheckpointCodec
from tiermem.agent_framework._checkpoints import CHECKPOINT_COLLECTION

ANSWER = Verdict(approved=True, note="ship it")


def _comparable(cp: WorkflowCheckpoint) -> dict[str, Any]:
    """A checkpoint minus what differs between two runs (ids, times, request ids)."""
    events = [
        (e.type, e.source_executor_id, e.data, e.request_type, e.response_type)
        for e in cp.pending_request_info_events.values()
    ]
    return {
        "messages": cp.messages,
        "state": cp.state,
        "events": events,
        "iteration_count": cp.iteration_count,
        "metadata": cp.metadata,
    }


async def _run_and_resume(
    storage: CheckpointStorage, fresh: CheckpointStorage
) -> tuple[list[Any], list[Any]]:
    first = await review_workflow(storage).run("hello")
    requests = first.get_request_info_events()
    assert len(requests) == 1
    checkpoints = await storage.list_checkpoints(workflow_name="review")
    latest = await fresh.get_latest(workflow_name="review")
    assert latest is not None
    # Resume in a fresh workflow from a fresh storage object (as another process would) and answer.
    resumed = await review_workflow(fresh).run(
        checkpoint_id=latest.checkpoint_id, responses={requests[0].request_id: ANSWER}
    )
    return [_comparable(cp) for cp in checkpoints], resumed.get_outputs()


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_human_in_the_loop_workflow_resumes_as_from_in_memory_storage(make_memory: MakeMemory) -> None:
    reference = InMemoryCheckpointStorage()
    expected = await _run_and_resume(reference, reference)
    got = await _run_and_resume(
        TierMemCheckpointStorage(make_memory(), types=REVIEW_TYPES),
        TierMemCheckpointStorage(make_memory(), types=REVIEW_TYPES),
    )
    assert got == expected
    checkpoints, outputs = got
    assert checkpoints[-1]["events"][0][2].draft.priority is Priority.HIGH
    assert checkpoints[-1]["state"]["run"]["seen"] == {1, 2, 3}
    assert outputs == [
        "hello HIGH ('af', 'tiermem') 2026-12-07T01:02:03.456789+00:00 True ship it "
        "00000000-0000-4000-8000-000000000015 [1, 2, 3] b'\\x00\\xff' (datetime.date(2026, 12, 7),)"
    ]


def _forbid_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("pickle was called")

    for name in ("loads", "load", "dumps", "dump", "Unpickler", "Pickler"):
        monkeypatch.setattr(pickle, name, refuse)
    # Agent Framework's own helpers hold the classes already; close those doors too.
    monkeypatch.setattr(af_encoding, "_base64_to_unpickle", refuse)
    monkeypatch.setattr(af_encoding, "_pickle_to_base64", refuse)


async def test_save_and_load_of_a_real_workflow_never_call_pickle(
    memory: MemoryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_pickle(monkeypatch)
    # The trap works: Agent Framework's own encoder trips it on the same kind of value.
    with pytest.raises(AssertionError, match="pickle was called"):
        af_encoding.encode_checkpoint_value(Draft("x", (), datetime.now(UTC), Priority.LOW))
    storage, fresh = (TierMemCheckpointStorage(memory, types=REVIEW_TYPES) for _ in range(2))
    checkpoints, outputs = await _run_and_resume(storage, fresh)
    assert len(checkpoints) >= 2 and outputs and "ship it" in outputs[0]
    for cid in await storage.list_checkpoint_ids(workflow_name="review"):
        assert (await storage.load(cid)).checkpoint_id == cid


async def _plant(memory: MemoryClient, storage: TierMemCheckpointStorage, value: object) -> str:
    """Save a real checkpoint, then overwrite one stored state value as someone with access could."""
    cid = await storage.save(
        WorkflowCheckpoint(workflow_name="wf", graph_signature_hash="h", state={"x": 1, "y": [1]})
    )
    coll = memory.collection(CHECKPOINT_COLLECTION)
    item = await coll.get(f"id!!{cid}")
    assert isinstance(item, dict)
    item["checkpoint"]["state"]["y"] = [value]
    await coll.put(f"id!!{cid}", item)
    return cid


async def test_a_stored_pickled_value_is_refused_and_never_unpickled(
    memory: MemoryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = TierMemCheckpointStorage(memory, types=REVIEW_TYPES)
    # Agent Framework's envelope around a real pickle of a registered type (as its own storages,
    # or an older tiermem, wrote it).
    envelope = af_encoding.encode_checkpoint_value(Draft("x", ("a",), datetime.now(UTC), Priority.LOW))
    assert "__pickled__" in envelope
    cid = await _plant(memory, storage, envelope)
    _forbid_pickle(monkeypatch)
    with pytest.raises(CorruptValueError, match="never unpickles"):
        await storage.load(cid)
    with pytest.raises(CorruptValueError):
        await storage.list_checkpoints(workflow_name="wf")
    with pytest.raises(CorruptValueError):
        await storage.get_latest(workflow_name="wf")


@pytest.mark.parametrize(
    "planted",
    [
        {TAG: "os:system", "value": "echo owned"},
        {TAG: "builtins:eval", "value": "1"},
        {TAG: "datetime", "value": "not a time"},
        {TAG: "tuple", "value": [1], "extra": 1},
        {TAG: "dict", "value": [[1]]},
    ],
)
async def test_unknown_or_malformed_tags_are_corrupt(memory: MemoryClient, planted: dict[str, Any]) -> None:
    storage = TierMemCheckpointStorage(memory)
    cid = await _plant(memory, storage, planted)
    with pytest.raises(CorruptValueError):
        await storage.load(cid)


async def test_a_type_registered_at_save_but_not_at_load_is_corrupt(memory: MemoryClient) -> None:
    draft = Draft("x", ("a",), datetime(2026, 1, 1, tzinfo=UTC), Priority.LOW)
    cid = await TierMemCheckpointStorage(memory, types=REVIEW_TYPES).save(
        WorkflowCheckpoint(workflow_name="wf", graph_signature_hash="h", state={"d": draft})
    )
    assert (await TierMemCheckpointStorage(memory, types=REVIEW_TYPES).load(cid)).state == {"d": draft}
    with pytest.raises(CorruptValueError, match="not allowed"):
        await TierMemCheckpointStorage(memory).load(cid)


async def test_an_unregistered_type_is_refused_before_anything_is_written(memory: MemoryClient) -> None:
    storage = TierMemCheckpointStorage(memory, types=[Priority])
    checkpoint = WorkflowCheckpoint(
        workflow_name="wf",
        graph_signature_hash="h",
        state={"ok": [1], "draft": Draft("x", (), datetime.now(UTC), Priority.LOW)},
    )
    with pytest.raises(InvalidValueError, match=r"Draft.*\$\.state\.draft.*types=\[Draft\]") as caught:
        await storage.save(checkpoint)
    assert isinstance(caught.value, InvalidInputError)
    assert await storage.list_checkpoint_ids(workflow_name="wf") == []
    with pytest.raises(WorkflowCheckpointException):
        await storage.load(checkpoint.checkpoint_id)


class _Opaque:
    pass


@dataclasses.dataclass
class _Counter:
    n: int
    seen: int = dataclasses.field(init=False, default=0)


@pytest.mark.parametrize("bad", [_Opaque, _Counter])
def test_a_type_that_cannot_be_json_is_a_configuration_error(memory: MemoryClient, bad: type) -> None:
    with pytest.raises(ConfigurationError, match=bad.__qualname__):
        TierMemCheckpointStorage(memory, types=[bad])


def test_codec_round_trips_builtin_tagged_values_as_strict_json() -> None:
    codec = CheckpointCodec()
    value = {
        "when": datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC),
        "naive": datetime(2026, 12, 7, 1, 2, 3),
        "day": date(2026, 12, 7),
        "at": time(1, 2, 3, 4),
        "span": timedelta(days=-1, seconds=5, microseconds=6),
        "id": uuid.uuid4(),
        "money": Decimal("1.10"),
        "raw": bytes(range(256)),
        "pair": (1, (2, "3")),
        "set": {3, 1, 2},
        "frozen": frozenset({"a"}),
        "floats": [1.5, math.inf, -math.inf],
        "int keys": {1: "a", "1": "b", (1, 2): "c"},
        "reserved": {TAG: "not a tag", "__pickled__": "not a pickle"},
        "nested": [[{"a": None, "b": True}]],
    }
    encoded = codec.encode(value)
    text = json.dumps(encoded, allow_nan=False)
    decoded = codec.decode(json.loads(text))
    assert decoded == value
    assert type(decoded["pair"]) is tuple and type(decoded["money"]) is Decimal  # type: ignore[index]
    nan = codec.decode(json.loads(json.dumps(codec.encode(math.nan), allow_nan=False)))
    assert isinstance(nan, float) and math.isnan(nan)


def test_codec_round_trips_agent_framework_types_through_their_public_serialization() -> None:
    codec = CheckpointCodec()
    message = Message(role="user", contents=["hi"])
    response = AgentResponse(messages=[Message(role="assistant", contents=["yo"])], response_id="r1")
    values: list[Any] = [
        message,
        response,
        AgentExecutorRequest(messages=[message], should_respond=False),
        AgentExecutorResponse(executor_id="e", agent_response=response, full_conversation=[message]),
    ]
    for value in values:
        back = codec.decode(json.loads(json.dumps(codec.encode(value), allow_nan=False)))
        assert type(back) is type(value)
        if dataclasses.is_dataclass(value):
            assert json.dumps(codec.encode(back)) == json.dumps(codec.encode(value))
        else:
            assert back.to_dict() == value.to_dict()  # type: ignore[attr-defined]
    with pytest.raises(InvalidValueError, match="_Opaque"):
        codec.encode({"x": [_Opaque()]})
