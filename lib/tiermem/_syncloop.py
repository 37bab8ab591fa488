"""A private event loop on a daemon thread, so adapters can offer the sync methods frameworks call.

The async methods are the implementation; a sync call submits the coroutine to this loop and waits.
Calling a sync method from the loop's own thread would deadlock, so it raises instead. The memory
client used through sync methods must not be used from another event loop at the same time: Redis
and aiohttp connections belong to the loop that opened them (docs/langgraph.md, "Sync use").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from tiermem._errors import ConfigurationError

__all__ = ["SyncLoop"]

T = TypeVar("T")


class SyncLoop:
    """Runs coroutines on a loop this object owns (started on first use, stopped by ``close``)."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"{self._owner}-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and return its result (exceptions propagate)."""
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise ConfigurationError(
                f"a synchronous {self._owner} method was called from the {self._owner}'s own event loop; "
                "use the async method (a-prefixed) there",
                operation="sync",
            )
        loop = self._start()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def iterate(self, agen: AsyncGenerator[T, None]) -> Iterator[T]:
        """Step an async generator on the private loop, one item at a time; closing this closes it."""
        try:
            while True:
                try:
                    item = self.run(_next(agen))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self.run(agen.aclose())

    def close(self) -> None:
        """Stop the loop and join its thread; idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()
