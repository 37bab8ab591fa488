"""Agent Framework pieces shared by the tests and the docs test: a scripted chat client and a workflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Never

from agent_framework import (
    BaseChatClient,
    ChatResponse,
    Executor,
    Message,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
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
