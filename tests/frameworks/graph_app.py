"""A LangGraph application that exercises what a checkpointer must get right.

Parallel fan-out with ``Send``, a compiled subgraph as a node, and a human-in-the-loop ``interrupt``
resumed with ``Command(resume=...)``. Shared by the state-history test and the benchmarks' smoke use.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send, StateSnapshot, interrupt


class State(TypedDict, total=False):
    topic: str
    items: list[str]
    results: Annotated[list[str], operator.add]
    summary: str
    approved: bool


class WorkState(TypedDict):
    item: str


class SubState(TypedDict, total=False):
    results: list[str]
    summary: str


def _plan(state: State) -> dict[str, Any]:
    return {"items": [f"{state['topic']}-{i}" for i in range(4)]}


def _fan_out(state: State) -> list[Send]:
    return [Send("work", {"item": item}) for item in state["items"]]


def _work(state: WorkState) -> dict[str, Any]:
    return {"results": [state["item"].upper()]}


def _count(state: SubState) -> dict[str, Any]:
    return {"summary": f"{len(state['results'])} results"}


def _polish(state: SubState) -> dict[str, Any]:
    return {"summary": state["summary"] + " (" + ", ".join(sorted(state["results"])) + ")"}


def _review(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "summary": state["summary"]})
    return {"approved": answer == "yes"}


def build(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    sub = StateGraph(SubState)
    sub.add_node("count", _count)
    sub.add_node("polish", _polish)
    sub.add_edge(START, "count")
    sub.add_edge("count", "polish")
    sub.add_edge("polish", END)

    graph = StateGraph(State)
    graph.add_node("plan", _plan)
    graph.add_node("work", _work)
    graph.add_node("summarize", sub.compile())
    graph.add_node("review", _review)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", _fan_out, ["work"])
    graph.add_edge("work", "summarize")
    graph.add_edge("summarize", "review")
    graph.add_edge("review", END)
    return graph.compile(checkpointer=checkpointer)


async def run(checkpointer: BaseCheckpointSaver[Any], thread_id: str) -> list[dict[str, Any]]:
    """Run to the interrupt, resume, update state once, and return the normalized state history."""
    app = build(checkpointer)
    config: Any = {"configurable": {"thread_id": thread_id}}
    await app.ainvoke({"topic": "t", "results": []}, config)
    await app.ainvoke(Command(resume="yes"), config)
    await app.aupdate_state(config, {"summary": "edited"})
    return [normalize(s) async for s in app.aget_state_history(config)]


_UUIDISH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")


def _scrub(value: Any) -> Any:
    """Replace ids that differ between runs (checkpoint, task and interrupt ids) with a placeholder."""
    if isinstance(value, str):
        return _UUIDISH.sub("<id>", value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def normalize(snapshot: StateSnapshot) -> dict[str, Any]:
    """A state snapshot without run-specific ids and timestamps."""
    metadata = {
        k: v for k, v in (snapshot.metadata or {}).items() if k not in ("parents", "run_id", "thread_id")
    }
    return {
        "values": snapshot.values,
        "next": snapshot.next,
        "metadata": _scrub(metadata),
        "has_parent": snapshot.parent_config is not None,
        "checkpoint_ns": snapshot.config["configurable"].get("checkpoint_ns", ""),
        "tasks": [
            {
                "name": t.name,
                "path": _scrub(list(t.path)),
                "error": repr(t.error) if t.error else None,
                "interrupts": [_scrub(i.value) for i in t.interrupts],
                "result": t.result,
            }
            for t in snapshot.tasks
        ],
        "interrupts": [_scrub(i.value) for i in snapshot.interrupts],
    }
