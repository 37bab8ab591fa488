"""``TierMemHistoryProvider``: Agent Framework chat history, one collection per session (ADR 0013).

Messages are items ``m!!<sequence>`` in the collection ``af-hist.<session>``; the sequence is a
nanosecond timestamp made strictly increasing per process plus a random suffix, so concurrent
appenders never collide and listing in key order is the conversation order. ``save_messages`` reads
only the last ``len(messages) + 1`` stored messages (enough for Agent Framework's replay detection)
and appends the new ones with one atomic ``put_many`` (up to 90 messages): no compare-and-swap
per message.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from agent_framework import HistoryProvider, Message
from agent_framework._sessions import filter_new_messages

from tiermem._client import MemoryClient
from tiermem._collection import Collection, Item
from tiermem._errors import CorruptValueError, InvalidInputError, InvalidTTLError
from tiermem._ordkey import SEP, collection_name

__all__ = ["TierMemHistoryProvider"]

HISTORY_KIND: Final = "af-hist"
_MSG: Final = "m" + SEP
MAX_BATCH: Final = 90


class _Sequence:
    """Strictly increasing, process-unique message sequence numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._suffix = secrets.token_hex(4)

    def take(self, n: int) -> list[str]:
        with self._lock:
            start = max(time.time_ns(), self._last + 1)
            self._last = start + n - 1
        return [f"{start + i:020d}-{self._suffix}" for i in range(n)]


_SEQ: Final = _Sequence()


class TierMemHistoryProvider(HistoryProvider):
    """Conversation history in tiermem, shared by every process that uses the same memory view.

    Args:
        memory: the memory view; its tenant and namespace scope the stored history.
        source_id: Agent Framework provider id (default ``"tiermem"``).
        ttl: seconds after which a stored message expires (``None``: kept until cleared).
        skip_excluded: omit messages a compaction provider marked ``_excluded`` when loading.
        load_messages, store_inputs, store_context_messages, store_context_from, store_outputs:
            as for every Agent Framework ``HistoryProvider``.
    """

    DEFAULT_SOURCE_ID: ClassVar[str] = "tiermem"

    def __init__(
        self,
        memory: MemoryClient,
        *,
        source_id: str | None = None,
        ttl: float | None = None,
        skip_excluded: bool = False,
        load_messages: bool = True,
        store_inputs: bool = True,
        store_context_messages: bool = False,
        store_context_from: set[str] | None = None,
        store_outputs: bool = True,
    ) -> None:
        super().__init__(
            source_id or self.DEFAULT_SOURCE_ID,
            load_messages=load_messages,
            store_inputs=store_inputs,
            store_context_messages=store_context_messages,
            store_context_from=store_context_from,
            store_outputs=store_outputs,
        )
        if ttl is not None and not ttl > 0:
            raise InvalidTTLError(
                f"ttl must be a positive number of seconds, got {ttl!r}", operation="history"
            )
        self.memory = memory
        self.ttl = ttl
        self.skip_excluded = skip_excluded

    def _coll(self, session_id: str | None, operation: str) -> Collection:
        if not isinstance(session_id, str) or not session_id:
            raise InvalidInputError("TierMemHistoryProvider needs a session id", operation=operation)
        return self.memory.collection(collection_name(HISTORY_KIND, session_id))

    @staticmethod
    def _decode(item: Item) -> Message:
        if not isinstance(item.value, dict):
            raise CorruptValueError("stored message is not an object", operation="get_messages", key=item.key)
        return Message.from_dict(item.value)

    async def get_messages(
        self, session_id: str | None, *, state: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Message]:
        """Every stored message of the session, oldest first."""
        coll = self._coll(session_id, "get_messages")
        messages = [self._decode(item) async for item in coll.list(prefix=_MSG)]
        if self.skip_excluded:
            messages = [m for m in messages if not m.additional_properties.get("_excluded", False)]
        return messages

    async def save_messages(
        self,
        session_id: str | None,
        messages: Sequence[Message],
        *,
        state: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Append the messages not already at the end of the history, in one atomic batch."""
        coll = self._coll(session_id, "save_messages")
        if not messages:
            return
        encoded = [m.to_dict() for m in messages]
        # Agent Framework drops a replayed prefix; it only ever compares against the last
        # len(messages) stored messages, plus one to know whether the history is longer.
        tail = [item async for item in coll.list(prefix=_MSG, reverse=True, limit=len(messages) + 1)]
        existing = [self._decode(item) for item in reversed(tail)]
        new = filter_new_messages(existing, list(messages))
        if not new:
            return
        by_id = {id(m): e for m, e in zip(messages, encoded, strict=True)}
        items = [
            (_MSG + seq, by_id[id(m)] if id(m) in by_id else m.to_dict())
            for seq, m in zip(_SEQ.take(len(new)), new, strict=True)
        ]
        # One atomic batch per call; a save of more than MAX_BATCH messages goes in order, in batches.
        for i in range(0, len(items), MAX_BATCH):
            await coll.put_many(items[i : i + MAX_BATCH], ttl=self.ttl)

    async def clear(self, session_id: str) -> None:
        """Delete the session's whole history."""
        await self._coll(session_id, "clear").drop()
