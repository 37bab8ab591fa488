"""A history of acknowledged and unacknowledged writes, and the final values it allows.

A final value is allowed if it comes from an acknowledged write (or delete) that no other
acknowledged operation on the key *started after it finished*, or from an operation whose
outcome is unknown (it raised, so it may or may not have applied) and that no acknowledged
operation followed. No value, ever, may come from nowhere: that would be a lost or invented write.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

DELETED = "<deleted>"


@dataclass(frozen=True)
class Op:
    key: str
    value: Any  # DELETED for a delete
    start: float
    end: float
    acked: bool


@dataclass
class History:
    ops: dict[str, list[Op]] = field(default_factory=lambda: defaultdict(list))

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def record(self, key: str, value: Any, start: float, *, acked: bool) -> None:
        self.ops[key].append(Op(key, value, start, self.now(), acked))

    def allowed(self, key: str) -> list[Any]:
        """Values the key may hold now (DELETED stands for "absent")."""
        ops = self.ops.get(key, [])
        if not ops:
            return [DELETED]
        acked = [o for o in ops if o.acked]
        out = []
        for op in ops:
            later = [o for o in acked if o is not op and o.start > op.end]
            if not later:
                out.append(op.value)
        if not acked:
            out.append(DELETED)  # nothing certainly applied
        return out

    @property
    def acknowledged_writes(self) -> int:
        return sum(o.acked for ops in self.ops.values() for o in ops)
