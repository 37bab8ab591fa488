"""Explicit lifecycle shared by clients and tiers: ``async with`` + idempotent ``aclose()``."""

from __future__ import annotations

import enum
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from tiermem._errors import ClientClosedError

__all__ = ["AsyncResource", "ClientState", "Closable"]


@runtime_checkable
class Closable(Protocol):
    """Anything with an async ``aclose()``: tiers, credentials, secret sources, agents."""

    async def aclose(self) -> None: ...


class ClientState(enum.Enum):
    """Where a client is in its life; use after ``CLOSED`` raises :class:`ClientClosedError`."""

    OPEN = "open"
    CLOSED = "closed"


class AsyncResource:
    """Base for objects that hold connections or files: context manager, idempotent close."""

    _state: ClientState = ClientState.OPEN

    def _ensure_open(self, operation: str) -> None:
        if self._state is ClientState.CLOSED:
            raise ClientClosedError(f"{type(self).__name__} is closed", operation=operation)

    async def _close(self) -> None:
        """Release resources this object created. Called once by :meth:`aclose`."""

    async def aclose(self) -> None:
        """Close what this object created (never what was injected). Safe to call twice."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        await self._close()

    async def __aenter__(self) -> Self:
        self._ensure_open("__aenter__")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
