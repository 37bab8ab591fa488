"""Agent Framework pieces shared by the tests and the docs test: a scripted chat client and a workflow."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Never

import pydantic
from agent_framework import (
    BaseChatClient,
    ChatResponse,
    Executor,
    Message,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
)
from agent_framework._workflows._checkpoint import CheckpointStorage


class ScriptedChatClient(BaseChatClient):  # type: ignore[misc]
    """Answers ``reply 1``, ``reply 2``, ... and records every model input it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[list[dict[str, Any]]] = []

    async def _inner_get_response(
        self, *, messages: Sequence[Message], stream: bool, options: Any, **kwargs: Any
    ) -> ChatResponse:
        self.inputs.append([m.to_dict() for m in messages])
        n = len(self.inputs)
        return ChatResponse(
            messages=[Message(role="assistant", contents=[f"reply {n}"])], response_id=f"r{n}"
        )


def without_attribution(inputs: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Model inputs minus the ``_attribution`` each history provider stamps with its own name."""
    out = []
    for call in inputs:
        row = []
        for message in call:
            props = {k: v for k, v in message.get("additional_properties", {}).items() if k != "_attribution"}
            row.append({**message, "additional_properties": props})
        out.append(row)
    return out


class Upper(Executor):  # type: ignore[misc]
    @handler  # type: ignore[misc]
    async def process(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text.upper())


class Reverse(Executor):  # type: ignore[misc]
    @handler  # type: ignore[misc]
    async def process(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text[::-1])


def workflow(storage: CheckpointStorage) -> Workflow:
    upper, reverse = Upper(id="upper"), Reverse(id="reverse")
    return (
        WorkflowBuilder(name="shout", start_executor=upper, checkpoint_storage=storage)
        .add_edge(upper, reverse)
        .build()
    )


# A human-in-the-loop workflow whose messages, executor state, shared state and pending request
# hold values Agent Framework would pickle: a dataclass, a pydantic model, an enum, datetimes,
# tuples, sets, bytes and UUIDs. TierMemCheckpointStorage stores them as JSON once registered.


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclass
class Draft:
    text: str
    tags: tuple[str, ...]
    written: datetime
    priority: Priority


@dataclass
class ReviewRequest:
    draft: Draft
    question: str


class Verdict(pydantic.BaseModel):
    approved: bool
    note: str


REVIEW_TYPES: list[type] = [Priority, Draft, ReviewRequest, Verdict]
WRITTEN = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
RUN_ID = uuid.UUID("00000000-0000-4000-8000-000000000015")


class Writer(Executor):  # type: ignore[misc]
    def __init__(self, executor_id: str) -> None:
        super().__init__(id=executor_id)
        self.drafts: list[Draft] = []

    @handler  # type: ignore[misc]
    async def process(self, text: str, ctx: WorkflowContext[Draft]) -> None:
        draft = Draft(text=text, tags=("af", "tiermem"), written=WRITTEN, priority=Priority.HIGH)
        self.drafts.append(draft)
        ctx.set_state("run", {"id": RUN_ID, "seen": {3, 1, 2}, "raw": b"\x00\xff", 1: (WRITTEN.date(),)})
        await ctx.send_message(draft)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"drafts": list(self.drafts)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.drafts = list(state["drafts"])


class Reviewer(Executor):  # type: ignore[misc]
    @handler  # type: ignore[misc]
    async def process(self, draft: Draft, ctx: WorkflowContext) -> None:
        await ctx.request_info(ReviewRequest(draft=draft, question="publish?"), Verdict)

    @response_handler  # type: ignore[misc]
    async def on_verdict(
        self, original: ReviewRequest, verdict: Verdict, ctx: WorkflowContext[Never, str]
    ) -> None:
        run = ctx.get_state("run")
        await ctx.yield_output(
            f"{original.draft.text} {original.draft.priority.name} {original.draft.tags} "
            f"{original.draft.written.isoformat()} {verdict.approved} {verdict.note} "
            f"{run['id']} {sorted(run['seen'])} {run['raw']!r} {run[1]}"
        )


def review_workflow(storage: CheckpointStorage) -> Workflow:
    writer, reviewer = Writer("writer"), Reviewer(id="reviewer")
    return (
        WorkflowBuilder(name="review", start_executor=writer, checkpoint_storage=storage)
        .add_edge(writer, reviewer)
        .build()
    )
