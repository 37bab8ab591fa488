"""The durable hot epoch (ADR 0006): the trace a write leaves when it could not invalidate hot.

Every hot record carries the epoch its filler knew before reading the durable tier. A writer whose
hot invalidation failed raises the epoch in the durable tier *after* its durable write, so any hot
record stamped with an older epoch may predate that write; every client re-reads the epoch at least
every ``coherence_interval`` seconds and treats older hot records as misses. The trace is durable:
it holds when the writer exits right after its write, and whatever process reads hot next.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Final

import orjson

from tiermem._codec import Record, RecordKind, make_record
from tiermem._engine.guard import Guard
from tiermem._errors import ConflictError, CorruptValueError, TierMemError
from tiermem._instrumentation import logger
from tiermem._protocols import TierStore
from tiermem._types import MemoryKey, Tier

__all__ = ["EPOCH_KEY", "HotEpoch"]

EPOCH_KEY: Final = MemoryKey("_tiermem", "_coherence", "\x00hot-epoch")
"""Where the epoch lives in the durable tier. User keys cannot contain NUL, so no key can spell it."""


def _parse(record: Record | None) -> int:
    if record is None:
        return 0
    try:
        value = orjson.loads(record.payload)
    except orjson.JSONDecodeError as exc:
        raise CorruptValueError("hot epoch item does not parse", tier=Tier.WARM, operation="epoch") from exc
    if record.kind is not RecordKind.JSON or not isinstance(value, int) or value < 0:
        raise CorruptValueError("hot epoch item is not a non-negative integer", tier=Tier.WARM)
    return value


class HotEpoch:
    """The epoch this client knows, how fresh that knowledge is, and coalesced bumps.

    Args:
        durable: the durable tier, or ``None`` (a hot-only client has nothing to be coherent with).
        interval: the longest time hot is trusted on one reading of the epoch.
    """

    def __init__(self, durable: Guard[TierStore] | None, *, interval: float) -> None:
        self._durable = durable
        self._interval = interval
        self.current = 0
        self._known_at = -math.inf  # monotonic start of the newest successful read (or bump)
        self._failed_at = -math.inf
        self._refresh: asyncio.Task[None] | None = None
        self._bump: asyncio.Task[None] | None = None
        self._requested = 0
        self._done = 0

    @property
    def enabled(self) -> bool:
        return self._durable is not None

    def trusted(self) -> bool:
        """Whether hot may be trusted now with no refresh due: :meth:`fresh` would answer ``True``
        without starting a read (the hot-hit fast path asks this, then :meth:`fresh` when not)."""
        return self._durable is None or time.monotonic() - self._known_at < self._interval / 2

    async def fresh(self) -> bool:
        """Whether hot may be trusted now. Refreshes in the background after half the interval and
        waits for the refresh only when the last reading is older than the whole interval."""
        if self._durable is None:
            return True
        now = time.monotonic()
        age = now - self._known_at
        if age < self._interval / 2:
            return True
        task = self._refresh
        if task is None or task.done():
            if age >= self._interval and now - self._failed_at < self._interval / 4:
                return False  # the durable tier just failed us: do not hammer it on every read
            task = self._refresh = asyncio.ensure_future(self._read())
        if age < self._interval:
            return True
        try:
            await asyncio.shield(task)
        except TierMemError:
            return False
        return time.monotonic() - self._known_at < self._interval

    async def _read(self) -> None:
        durable = self._durable
        assert durable is not None
        started = time.monotonic()
        try:
            value = _parse(await durable.get(EPOCH_KEY, operation="epoch"))
        except TierMemError as exc:
            self._failed_at = time.monotonic()
            logger.warning("could not read the hot epoch (hot is not trusted until it can): %s", exc)
            raise
        self._adopt(value, started)

    def _adopt(self, value: int, started: float) -> None:
        if value > self.current:
            self.current = value
        if started > self._known_at:
            self._known_at = started

    async def bump(self) -> None:
        """Raise the durable epoch after the caller's durable write; concurrent callers share bumps.

        Raises:
            TierMemError: the durable tier could not be written (the caller keeps its own fallback).
        """
        if self._durable is None:
            return
        self._requested += 1
        ticket = self._requested
        while self._done < ticket:
            task = self._bump
            if task is None or task.done():
                task = self._bump = asyncio.ensure_future(self._raise(self._requested))
            await asyncio.shield(task)

    async def _raise(self, upto: int) -> None:
        """One bump covering every request made before it started (their durable writes are done)."""
        durable = self._durable
        assert durable is not None
        started = time.monotonic()
        record = await durable.get(EPOCH_KEY, operation="epoch")
        value = max(_parse(record), self.current) + 1
        new = make_record(RecordKind.JSON, orjson.dumps(value))
        try:
            if record is None:
                await durable.set(EPOCH_KEY, new, if_absent=True, operation="epoch")
            else:
                await durable.set(EPOCH_KEY, new, if_match=record.etag, operation="epoch")
        except ConflictError:
            # Another client raised it after we read it, so after our callers' durable writes:
            # that bump covers them too. Adopt whatever is there now.
            self._adopt(_parse(await durable.get(EPOCH_KEY, operation="epoch")), started)
        else:
            self._adopt(value, started)
        self._done = max(self._done, upto)
        logger.warning("raised the hot epoch to %d: hot copies cached before it are ignored", self.current)

    async def aclose(self) -> None:
        for task in (self._refresh, self._bump):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TierMemError):
                    await task
