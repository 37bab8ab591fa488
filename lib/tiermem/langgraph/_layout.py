"""The item layout of :class:`tiermem.langgraph.TierMemSaver` (ADR 0013): key builders, value framing
and the decoded checkpoint record. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

from langchain_core.runnables import RunnableConfig

from tiermem._errors import CorruptValueError, InvalidInputError
from tiermem._ordkey import SEP, join

THREAD_KIND: Final = "lg-cp"
RUNS_COLLECTION: Final = "lg-runs"
META_KEY: Final = "m"
MAX_BATCH: Final = 90
META_ATTR_FIRST: Final = ("source", "step", "run_id")
_IDX_OFFSET: Final = 100
LIST_CHUNK: Final = 16
_NUL: Final = b"\x00"


def ckey(ns: str, cid: str) -> str:
    return join("c", ns, cid)


def cprefix(ns: str | None) -> str:
    return join("c", ns) + SEP if ns is not None else "c" + SEP


def hkey(ns: str) -> str:
    return join("h", ns)


def vkey(ns: str, channel: str, version: str | int | float) -> str:
    return join("v", ns, channel, str(version))


def wprefix(ns: str, cid: str) -> str:
    return join("w", ns, cid) + SEP


def wkey(ns: str, cid: str, task_path: str, task_id: str, idx: int) -> str:
    return wprefix(ns, cid) + join(task_path, task_id, f"{idx + _IDX_OFFSET:010d}")


def xkey(ns: str, cid: str) -> str:
    return join("x", ns, cid)


def pack(parts: Sequence[str], data: bytes) -> bytes:
    """Frame ``parts`` (NUL-free strings) and the serializer's bytes into one stored value."""
    for part in parts:
        if "\x00" in part:
            raise InvalidInputError("names stored by TierMemSaver must not contain NUL", operation="aput")
    return _NUL.join(p.encode("utf-8") for p in parts) + _NUL + data


def unpack(value: object, nparts: int, key: str) -> tuple[list[str], bytes]:
    if not isinstance(value, bytes):
        raise CorruptValueError("checkpoint item is not bytes", operation="aget_tuple", key=key)
    pieces = value.split(_NUL, nparts)
    if len(pieces) != nparts + 1:
        raise CorruptValueError("checkpoint item framing is damaged", operation="aget_tuple", key=key)
    return [p.decode("utf-8") for p in pieces[:nparts]], pieces[nparts]


def run_config(thread_id: str, ns: str, cid: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}


class CheckpointRecord:
    """A decoded checkpoint item."""

    __slots__ = ("checkpoint", "cid", "metadata", "ns", "parent", "thread_id")

    def __init__(
        self,
        thread_id: str,
        ns: str,
        checkpoint: dict[str, Any],
        metadata: dict[str, Any],
        parent: str | None,
    ) -> None:
        self.thread_id = thread_id
        self.ns = ns
        self.checkpoint = checkpoint
        self.cid = cast(str, checkpoint["id"])
        self.metadata = metadata
        self.parent = parent


def no_pickle(kind: str, key: str) -> str:
    """Stored data never reaches an unpickler, whatever the serializer allows (a planted "pickle" tag)."""
    if kind == "pickle":
        raise CorruptValueError("stored checkpoint data is tagged pickle: tiermem never unpickles", key=key)
    return kind
