"""The plumbing every tier adapter shares, written once.

Translating an SDK's exceptions stays in each adapter (one ``_translate`` per adapter); what sits
around it lives here: the call wrapper that turns "not found" into a miss and everything else
into a tiermem error, the optional-extra import guard, bounding SDK messages, re-tagging a
corrupt value with its tier, operation and key, and bounded per-key fan-out whose failures are
collected into one :class:`tiermem.BatchWriteError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from typing import ClassVar, TypeVar

from tiermem._codec import Record
from tiermem._errors import (
    BatchWriteError,
    ConflictError,
    CorruptValueError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._lifecycle import AsyncResource
from tiermem._types import Clock, MemoryKey, Tier, TierInfo

__all__ = [
    "BatchOutcome",
    "Clock",
    "TierAdapter",
    "brief",
    "check_options",
    "for_each",
    "require_extra",
    "retag_corrupt",
]

_T = TypeVar("_T")
_X = TypeVar("_X")


def require_extra(missing: ImportError | None, adapter: str, needs: str, extra: str) -> None:
    """Raise the ImportError that names the extra to install, when an optional import failed."""
    if missing is not None:
        raise ImportError(f"{adapter} needs {needs}: pip install 'tiermem[{extra}]'") from missing


def check_options(options: Mapping[str, object], known: Collection[str], owner: str) -> None:
    """Refuse keyword arguments an adapter does not take, as Python would for named parameters."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{owner}() got unexpected keyword argument(s) {unknown}")


def brief(exc: BaseException) -> str:
    """First line of an SDK message, bounded (SDK messages can carry whole response bodies)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:300]


def retag_corrupt(exc: CorruptValueError, tier: Tier, operation: str, key: MemoryKey) -> CorruptValueError:
    """The same damage report, now saying where it was found (raise it ``from exc``)."""
    return CorruptValueError(exc.message, tier=tier, operation=operation, key=key.key)


class BatchOutcome:
    """Which keys of a batch were written and which failed, raised as one :class:`BatchWriteError`."""

    __slots__ = ("failed", "written")

    def __init__(self) -> None:
        self.written: list[str] = []
        self.failed: dict[str, BaseException] = {}

    def ok(self, key: MemoryKey) -> None:
        self.written.append(key.key)

    def fail(self, key: MemoryKey, exc: BaseException) -> None:
        self.failed[key.key] = exc

    def raise_failures(self, tier: Tier, what: str, *, outage_as_itself: bool = False) -> None:
        """Raise :class:`BatchWriteError` if anything failed (chained to the first failure).

        Args:
            outage_as_itself: when nothing was written and every failure is unavailability, raise
                that failure itself: the whole batch met an outage, not a partial failure.
        """
        if not self.failed:
            return
        errors = list(self.failed.values())
        if outage_as_itself and not self.written and all(isinstance(e, TierUnavailableError) for e in errors):
            raise errors[0]
        raise BatchWriteError(
            f"{what} mset failed", written=self.written, failed=self.failed, tier=tier
        ) from errors[0]


async def for_each(
    source: Iterable[_X] | AsyncIterable[_X], fn: Callable[[_X], Awaitable[None]], concurrency: int
) -> None:
    """Run ``fn`` over ``source`` with at most ``concurrency`` calls in flight.

    Workers pull from one iterator, so a huge listing is never materialized as tasks. The first
    tiermem error stops the remaining work and is raised as it is (no ``ExceptionGroup``);
    cancelling the caller cancels every worker (``TaskGroup``).
    """
    items: AsyncIterator[_X] = aiter(source) if isinstance(source, AsyncIterable) else _aiter(source)
    failures: list[TierMemError] = []
    pulling = asyncio.Lock()  # an async iterator must not be advanced by two tasks at once

    async def worker() -> None:
        while not failures:
            async with pulling:
                if failures:
                    return
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
                except TierMemError as exc:
                    failures.append(exc)
                    return
            try:
                await fn(item)
            except TierMemError as exc:
                failures.append(exc)
                return

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
    if failures:
        raise failures[0]


async def _aiter(items: Iterable[_X]) -> AsyncIterator[_X]:
    for item in items:
        yield item


class TierAdapter(AsyncResource):
    """Base of the adapters: the SDK call wrapper and the per-key batch write, over ``_translate``.

    A subclass sets :attr:`tier`, ``_info`` and :attr:`failures` (the SDK exceptions its ``_translate``
    maps; anything else is a bug and propagates as itself), implements :meth:`_translate`, and
    overrides :meth:`_is_miss` when its SDK reports "not found" as an exception.
    """

    tier: ClassVar[Tier]
    failures: ClassVar[tuple[type[BaseException], ...]] = ()
    _info: TierInfo

    @property
    def info(self) -> TierInfo:
        """Static facts about this tier (set by the subclass as ``_info``)."""
        return self._info

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierMemError:
        """The one place this adapter's SDK exceptions become tiermem errors."""
        raise NotImplementedError

    def _is_miss(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "no such item" (a miss, not a failure)."""
        return False

    async def _sdk(
        self,
        operation: str,
        key: MemoryKey | None,
        call: Callable[[], Awaitable[_T]],
        *,
        size: int | None = None,
    ) -> _T:
        """Await one SDK call; its failures leave as tiermem errors chained to the SDK's."""
        try:
            return await call()
        except (TierMemError, StopAsyncIteration):  # ours already, or the end of a listing
            raise
        except self.failures as exc:
            raise self._translate(exc, operation, key, size) from exc

    async def _sdk_or_none(
        self,
        operation: str,
        key: MemoryKey | None,
        call: Callable[[], Awaitable[_T]],
        *,
        size: int | None = None,
    ) -> _T | None:
        """Like :meth:`_sdk`, but "no such item" is ``None`` (a miss)."""

        async def or_none() -> _T | None:
            try:
                return await call()
            except self.failures as exc:
                if self._is_miss(exc):
                    return None
                raise

        return await self._sdk(operation, key, or_none, size=size)

    async def _write_each(
        self,
        items: Sequence[tuple[MemoryKey, Record]],
        write: Callable[[MemoryKey, Record], Awaitable[object]],
        *,
        if_absent: bool,
        concurrency: int,
        what: str,
    ) -> None:
        """``mset`` for tiers without a batch write: one ``write`` per key, ``concurrency`` in flight.

        A key given twice is written once, with its last record (as sequential writes would leave
        it). With ``if_absent`` a conflict means a live value is kept, which is the point.

        Raises:
            BatchWriteError: some writes failed; ``written`` and ``failed`` say which.
        """
        outcome = BatchOutcome()

        async def one(item: tuple[MemoryKey, Record]) -> None:
            mk, record = item
            try:
                await write(mk, record)
            except ConflictError as exc:
                if not if_absent:
                    outcome.fail(mk, exc)
                return
            except TierMemError as exc:
                outcome.fail(mk, exc)
                return
            outcome.ok(mk)

        await for_each(dict(items).items(), one, concurrency)
        outcome.raise_failures(self.tier, what)
