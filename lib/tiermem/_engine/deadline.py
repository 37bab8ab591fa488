"""Per-call deadlines for tier calls without a timer per call: one watchdog timer per guard and loop.

``asyncio.timeout`` costs a ``Timeout`` object, a heap push and a cancelled ``TimerHandle`` per call
(12-20 us on a 2-core machine, as much as the SQLite read it guards). A :class:`Watchdog` keeps the
calls in flight in a dict and one timer armed for the earliest deadline among them; a call pays a
dict insert and delete. When the timer fires, every call past its deadline has its task cancelled,
and :meth:`Watchdog.disarm` turns that cancellation back into :class:`TimeoutError` the way
``asyncio.timeout`` does: only when the cancellation was ours (``Task.uncancel``), so a caller's own
cancellation is never swallowed and ours never leaks to the caller.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["Watchdog"]

_SLACK: Final = 0.001
"""The timer fires up to this much (seconds) after a deadline rather than re-arming for each call."""


class Watchdog:
    """Deadlines of the calls in flight on one event loop, checked by one timer."""

    __slots__ = ("_armed_at", "_expired", "_handle", "_inflight", "_seq", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # token -> (deadline in loop time, the task awaiting the call, its cancel count at arm time)
        self._inflight: dict[int, tuple[float, asyncio.Task[object], int]] = {}
        self._expired: set[int] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._seq = 0

    def arm(self, timeout: float) -> int:
        """Start the deadline of the current task's call; returns the token for :meth:`disarm`."""
        task = asyncio.current_task(self.loop)
        if task is None:  # pragma: no cover - guards are awaited from tasks
            raise RuntimeError("a tier call with a deadline must run in a task")
        deadline = self.loop.time() + timeout
        self._seq += 1
        token = self._seq
        self._inflight[token] = (deadline, task, task.cancelling())
        if self._handle is None or deadline < self._armed_at:
            self._schedule(deadline)
        return token

    def disarm(self, token: int) -> bool:
        """End a call's deadline; ``True`` when it expired and its cancellation was ours alone.

        Call it once, when the call ends, however it ends. After ``True`` the caller raises
        :class:`TimeoutError` in place of the ``CancelledError`` it caught.
        """
        entry = self._inflight.pop(token)
        if not self._expired or token not in self._expired:
            return False
        self._expired.discard(token)
        _, task, cancelling = entry
        return task.uncancel() <= cancelling

    def _schedule(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = deadline
        self._handle = self.loop.call_at(deadline + _SLACK, self._sweep)

    def _sweep(self) -> None:
        """Cancel every call past its deadline; re-arm for the earliest one still running."""
        self._handle = None
        now = self.loop.time()
        earliest: float | None = None
        for token, (deadline, task, _) in self._inflight.items():
            if token in self._expired:
                continue
            if deadline <= now:
                self._expired.add(token)
                task.cancel()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._schedule(earliest)
