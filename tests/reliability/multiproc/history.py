"""The recorded history: one event per client operation on one key, with invoke and complete times.

Every process stamps events with ``time.monotonic()``: on Linux that is ``CLOCK_MONOTONIC``, one clock
for every process on the host and never stepped by NTP, so times from different processes compare.
Values are unique per write (``"<process>:<n>"``), so a read names the one write it observed.
"""

from __future__ import annotations

import enum
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FOREIGN", "Event", "Op", "Outcome", "dump", "load", "uid_of", "value_for"]


class Op(enum.StrEnum):
    """What an event did to its key. ``mget``/``mset`` are recorded as one get/set per key."""

    SET = "set"
    DELETE = "delete"
    GET = "get"
    APPEND = "append"  # a ConversationStore turn: key = session id, value = the turn's id


class Outcome(enum.StrEnum):
    """``fail``: the client said it did not happen (conflict, bad input). ``unknown``: it raised an
    error after which the operation may or may not have applied (unavailable, timeout)."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


WRITES = frozenset({Op.SET, Op.DELETE})


@dataclass(frozen=True, slots=True)
class Event:
    """One operation. ``value`` is the id written (set/append), read (get; ``None`` = miss) or ``None``."""

    process: str
    op: Op
    key: str
    value: str | None
    invoke: float
    complete: float
    outcome: Outcome = Outcome.OK
    error: str | None = None
    seq: int = field(default=0, compare=False)  # position in its process's history

    @property
    def duration(self) -> float:
        return self.complete - self.invoke

    @property
    def is_write(self) -> bool:
        return self.op in WRITES

    def to_json(self) -> str:
        data = asdict(self)
        data["op"] = self.op.value
        data["outcome"] = self.outcome.value
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event:
        data = json.loads(line)
        data["op"] = Op(data["op"])
        data["outcome"] = Outcome(data["outcome"])
        return cls(**data)


INITIAL_TIME = -math.inf


def dump(events: Iterable[Event], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for event in events:
            fh.write(event.to_json() + "\n")


def load(path: Path) -> Iterator[Event]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield Event.from_json(line)


FOREIGN = "<foreign>"


def value_for(uid: str, size: int, rng: random.Random) -> dict[str, Any]:
    """A unique value; ``size`` characters of incompressible padding make it large (cold, not hot)."""
    if size <= 0:
        return {"id": uid}
    return {"id": uid, "pad": rng.randbytes(size // 2).hex()}


def uid_of(value: Any) -> str | None:
    """The id a value carries (``None`` for a miss); anything else is marked as foreign."""
    if value is None:
        return None
    if isinstance(value, dict):
        uid = value.get("id")
        if isinstance(uid, str):
            return uid
    return f"{FOREIGN}{str(value)[:40]}"
