"""``ConversationStore``: append-only conversation sessions on top of :class:`tiermem.MemoryClient`.

Layout (every key lives in the store's namespace, in the client's tenant; ``{sid}`` is the
session id, always last, so the prefixes below can never collide)::

    h:{sid}                  head: counters, timestamps, and the most recent turns (hot + warm)
    c:{gen}:{k}:{sid}        sealed chunk k: consecutive turns, immutable once referenced (warm)
    t:{token}:{sid}          one large turn, referenced from a head or chunk (warm, or cold + pointer)
    a:{token}:{sid}          archive: every turn up to the archive point (cold, pointer in warm)

Appends are one optimistic-concurrency step on the head: read it with ``get_entry(consistent=True)``,
add the turn (sealing the unsealed turns into a new chunk first when the turn would not fit),
and write it back with ``set(if_match=etag)``; the first append creates the head with
``set(if_absent=True)``. A conflict re-reads the head after a jittered exponential backoff, a
bounded number of times. The turn is stored by the same write that assigns its index, so an
index is never reserved without its turn: there is no gap for a crash to leave behind. Items
written before the head (chunks, large turns, archives) are unreachable until the head refers
to them; a crash in between leaves unreachable garbage, never a lie. See docs/agents.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from tiermem._client import MemoryClient, internal_view
from tiermem._codec import Codec
from tiermem._errors import (
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    InvalidValueError,
)
from tiermem._locks import StripedLocks
from tiermem._protocols import Tier
from tiermem._session_layout import (
    DOC_OVERHEAD,
    FORMAT,
    MAX_SESSION_ID_BYTES,
    Entry,
    Head,
    Missing,
    archive_key,
    chunk_key,
    etag_of,
    head_key,
    new_token,
    parse_archive,
    parse_chunk,
    parse_chunk_any,
    ref_tokens,
    stored_size,
    turn_key,
    validate_session_id,
)

__all__ = ["MAX_SESSION_ID_BYTES", "ConversationStore", "SessionMetadata"]

logger = logging.getLogger(__name__)

_DEFAULT_CHUNK_BYTES: Final = 64 * 1024
_DISCARD_CONCURRENCY: Final = 16
_READ_ATTEMPTS: Final = 4
_PAGE_KEYS: Final = 64
"""Most items one batch read or delete asks for: a head's counters never decide a round trip's size."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SessionMetadata:
    """What a session's head says about it.

    Attributes:
        session_id: the session.
        turn_count: number of turns appended since the session was created (or last cleared).
        created_at: Unix time of the first turn.
        updated_at: Unix time of the latest turn (archiving does not change it).
        archived: every turn is in the cold archive (an append after archiving makes it ``False``).
    """

    session_id: str
    turn_count: int
    created_at: float
    updated_at: float
    archived: bool


class ConversationStore:
    """Conversation sessions: ordered JSON turns, recent ones served from hot, all durable in warm.

    Turns are appended to a session head; when the unsealed turns reach ``chunk_turns`` turns or
    ``max_chunk_bytes`` bytes they are sealed into an immutable chunk, so no stored item grows
    past ``max_chunk_bytes`` (+1 KiB) however long the conversation gets (Cosmos items max out at
    2 MB). A turn larger than ``inline_turn_bytes`` is stored as its own item, which the client
    puts in cold behind a pointer when it is above ``warm_max_bytes`` (and rejects with
    :class:`~tiermem.ValueTooLargeError` when there is no cold tier). The head also keeps the last
    ``recent_turns`` turns, so ``load_turns(limit=recent_turns)`` is one hot read.

    Concurrent appends to one session never lose a turn, in one process or many: each append is an
    ``if_match`` write of the head, retried with jittered backoff on conflict. Within one store,
    appends to a session also queue on a local lock, so they do not spend retries on each other.

    Consistency: writes go through to hot, so a process sees its own appends at once. Reads are
    served from hot by default; across processes the client's write ordering can leave hot with
    an older head for at most ``hot_ttl`` (docs/adr/0003-write-ordering.md). Pass
    ``consistent=True`` to read the durable tier instead.

    The default namespace, ``sessions``, is reserved: plain views (``memory.scoped``) and the HTTP
    memory routes cannot use it, so nobody but a store writes the heads and chunks it trusts
    (docs/security.md). Reads are paged (at most 64 items per batch), so a head's counters never
    decide how much one round trip fetches.

    The store never closes ``memory``. Session ids follow the key rules (1..256 UTF-8 bytes, no
    control characters); turns are JSON objects (never pickled) and come back as new dicts.

    Args:
        memory: the client (or a view of it); the store uses its tenant and ``namespace``.
        namespace: the namespace every session key lives in.
        chunk_turns: most turns in one chunk.
        recent_turns: turns kept in the head for fast recent reads.
        max_chunk_bytes: most bytes of turn JSON in one chunk (and in the head's turns). Default:
            64 KiB, or less when ``warm_max_bytes`` needs it.
        inline_turn_bytes: larger turns are stored as their own item (default: ``max_chunk_bytes // 4``).
        max_attempts: head writes tried before an append gives up with :class:`~tiermem.ConflictError`.
        backoff_base: first retry delay bound, in seconds (full jitter, doubling per attempt).
        backoff_cap: largest retry delay bound, in seconds.
        clock: Unix-time source for ``created_at``/``updated_at``.

    Raises:
        ConfigurationError: ``memory`` has no durable tier, or an option is out of range.
    """

    def __init__(
        self,
        memory: MemoryClient,
        *,
        namespace: str = "sessions",
        chunk_turns: int = 32,
        recent_turns: int = 16,
        max_chunk_bytes: int | None = None,
        inline_turn_bytes: int | None = None,
        max_attempts: int = 16,
        backoff_base: float = 0.005,
        backoff_cap: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(memory, MemoryClient):
            raise ConfigurationError(f"memory must be a tiermem.MemoryClient, not {type(memory).__name__}")
        tiers = memory.tiers
        if Tier.WARM not in tiers and Tier.COLD not in tiers:
            raise ConfigurationError(
                "ConversationStore needs a durable tier (warm or cold); this client has only "
                f"{[t.value for t in tiers]}"
            )
        if chunk_turns < 1 or recent_turns < 0 or max_attempts < 1:
            raise ConfigurationError("chunk_turns and max_attempts must be >= 1, recent_turns >= 0")
        if not 0 <= backoff_base <= backoff_cap:
            raise ConfigurationError("backoff must satisfy 0 <= backoff_base <= backoff_cap")
        policy = memory.policy
        ceiling = policy.max_value_bytes - DOC_OVERHEAD
        if Tier.WARM in tiers:
            # Heads and chunks must stay plain warm items: conditional writes of values that spill
            # to cold are not atomic across the two tiers.
            ceiling = min(ceiling, policy.warm_max_bytes - DOC_OVERHEAD)
        if max_chunk_bytes is None:
            max_chunk_bytes = min(_DEFAULT_CHUNK_BYTES, ceiling)
        if not 1024 <= max_chunk_bytes <= ceiling:
            raise ConfigurationError(
                f"max_chunk_bytes={max_chunk_bytes} must be between 1024 and {ceiling} (the policy's "
                f"warm_max_bytes, or max_value_bytes without a warm tier, minus {DOC_OVERHEAD} bytes "
                "for the rest of a head or chunk); lower it or raise the policy limit"
            )
        if inline_turn_bytes is None:
            inline_turn_bytes = max_chunk_bytes // 4
        if not 1 <= inline_turn_bytes <= max_chunk_bytes:
            raise ConfigurationError("inline_turn_bytes must be between 1 and max_chunk_bytes")
        self._memory = internal_view(memory, namespace)
        self._chunk_turns = chunk_turns
        self._recent_turns = recent_turns
        self._max_chunk_bytes = max_chunk_bytes
        self._inline_bytes = inline_turn_bytes
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._codec = Codec()
        self._locks = StripedLocks(256)

    @property
    def memory(self) -> MemoryClient:
        """The view the store writes through (its tenant, the store's namespace)."""
        return self._memory

    @property
    def max_chunk_bytes(self) -> int:
        return self._max_chunk_bytes

    # -- writes ---------------------------------------------------------------------------------------

    async def append_turn(self, session_id: str, turn: Mapping[str, Any]) -> int:
        """Append one turn; return its 0-based index. Creates the session on its first turn.

        Raises:
            InvalidKeyError: the session id is invalid.
            InvalidValueError: the turn is not a JSON object (``ValueTooLargeError`` if no tier holds it).
            ConflictError: the head kept changing for ``max_attempts`` tries; the turn was not appended.
            TierUnavailableError: a tier could not be reached; the turn may or may not have been
                appended (as for any write whose answer was lost).
        """
        sid = validate_session_id(session_id)
        value, size = self._serialize_turn(turn)
        async with self._locks.lock(sid):
            if size + 7 > self._inline_bytes:
                # Large turns get a key of their own, written before the head refers to it.
                token = new_token()
                await self._memory.set(turn_key(token, sid), value)
                entry: Entry = {"r": token}
                try:
                    return await self._commit(sid, entry)
                except (ConflictError, CorruptValueError):
                    # No head write of ours succeeded, so nothing refers to the item. (Not on
                    # TierUnavailableError: a head write whose answer was lost may have landed.)
                    await self._discard([turn_key(token, sid)], sid)
                    raise
            return await self._commit(sid, {"t": value})

    async def _commit(self, sid: str, entry: Entry) -> int:
        memory = self._memory
        hkey = head_key(sid)
        entry_size = stored_size(entry)
        last: ConflictError | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                await self._backoff(attempt)
            current = await memory.get_entry(hkey, consistent=True)
            now = self._clock()
            if current is None:
                head = Head(gen=secrets.token_hex(6), count=1, created=now, updated=now, held=[entry])
                try:
                    await memory.set(hkey, head.to_value(), if_absent=True)
                except ConflictError as exc:
                    last = exc
                    continue
                return 0
            etag = etag_of(current.etag)
            head = Head.parse(current.value, hkey)
            index = head.count
            try:
                await self._make_room(sid, head, entry_size)
            except Missing:
                continue  # a chunk we had to adopt vanished: the session was cleared meanwhile
            head.held.append(entry)
            head.count += 1
            head.updated = now
            self._trim(head)
            try:
                await memory.set(hkey, head.to_value(), if_match=etag)
            except ConflictError as exc:
                last = exc
                continue
            return index
        raise ConflictError(
            f"the session head changed on each of {self._max_attempts} attempts; the turn was not appended",
            operation="append_turn",
            key=hkey,
        ) from last

    async def _make_room(self, sid: str, head: Head, entry_size: int) -> None:
        """Seal unsealed turns into chunks until one more turn of ``entry_size`` fits."""
        while True:
            unsealed = head.unsealed()
            if not unsealed:
                return
            nbytes = sum(stored_size(e) for e in unsealed)
            if nbytes + entry_size <= self._max_chunk_bytes and len(unsealed) < self._chunk_turns:
                return
            head.sealed += await self._seal(sid, head, unsealed)
            head.ck += 1

    async def _seal(self, sid: str, head: Head, unsealed: list[Entry]) -> int:
        """Create chunk ``head.ck`` from the unsealed turns; return how many turns it holds.

        Create-only, so a slow writer can never overwrite a chunk a head already refers to. If the
        chunk exists (a crashed or concurrent sealer of this same head state wrote it), it holds a
        prefix of our unsealed turns (they only grow while ``ck`` stays the same): adopt it.
        """
        key = chunk_key(head.gen, head.ck, sid)
        doc = {"v": FORMAT, "gen": head.gen, "s": head.sealed, "e": unsealed}
        try:
            await self._memory.set(key, doc, if_absent=True)
        except ConflictError:
            found = await self._memory.get_entry(key, consistent=True)
            if found is None:
                raise Missing(key) from None
            entries = parse_chunk(found.value, head.gen, head.sealed, key)
            if not entries or entries != unsealed[: len(entries)]:
                raise CorruptValueError(
                    "an existing chunk does not match the session's unsealed turns",
                    operation="append_turn",
                    key=key,
                ) from None
            return len(entries)
        return len(unsealed)

    def _trim(self, head: Head) -> None:
        """Keep every unsealed turn, plus sealed ones up to ``recent_turns`` and the byte budget."""
        unsealed = head.count - head.sealed
        keep = max(unsealed, min(self._recent_turns, len(head.held)))
        held = head.held[len(head.held) - keep :] if keep else []
        total = sum(stored_size(e) for e in held)
        drop = 0
        while total > self._max_chunk_bytes and len(held) - drop > unsealed:
            total -= stored_size(held[drop])
            drop += 1
        head.held = held[drop:]

    async def _backoff(self, attempt: int) -> None:
        bound = min(self._backoff_cap, self._backoff_base * (2 ** (attempt - 1)))
        await asyncio.sleep(random.uniform(0.0, bound))

    def _serialize_turn(self, turn: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        if not isinstance(turn, Mapping):
            raise InvalidValueError(f"a turn must be a mapping (JSON object), not {type(turn).__name__}")
        value = dict(turn)
        _, payload = self._codec.serialize(value)
        return value, len(payload)

    async def clear_session(self, session_id: str) -> None:
        """Delete the session and everything it stored. Idempotent.

        An append racing this call either is cleared with the session or starts a new one.
        """
        sid = validate_session_id(session_id)
        hkey = head_key(sid)
        async with self._locks.lock(sid):
            current = await self._memory.get_entry(hkey, consistent=True)
            head: Head | None = None
            if current is not None:
                try:
                    head = Head.parse(current.value, hkey)
                except CorruptValueError as exc:
                    logger.warning(
                        "clearing a session whose head is damaged; its items stay as garbage: %s", exc
                    )
            refs: list[str] = []
            chunk_keys: list[str] = []
            if head is not None:
                entries = list(head.held)
                for page in _pages(range(head.c0, head.ck)):
                    keys = [chunk_key(head.gen, k, sid) for k in page]
                    chunks = await self._memory.mget(keys)
                    found = [key for key in keys if chunks.get(key) is not None]
                    chunk_keys += found
                    for key in found:
                        value = chunks[key]
                        if isinstance(value, dict) and isinstance(value.get("e"), list):
                            entries.extend(value["e"])
                    if len(found) < len(keys):
                        break  # a damaged head: the chunks it claims past here never existed
                refs = ref_tokens(entries)
            # The head goes first: once it is gone nothing can reach the rest, even if we stop here.
            await self._memory.delete(hkey)
            if head is not None:
                # Chunks below c0 were the archive's to delete; chunk ck may be a racing sealer's.
                garbage = [*chunk_keys, chunk_key(head.gen, head.ck, sid)]
                garbage += [turn_key(token, sid) for token in refs]
                if head.archive is not None:
                    garbage.append(archive_key(head.archive, sid))
                await self._discard(garbage, sid)

    async def archive_session(self, session_id: str) -> None:
        """Move every turn of the session into one cold object; remove its warm chunks.

        The session stays readable (``load_turns`` reads the archive) and appendable (new turns
        start new chunks). Archiving an archived or missing session does nothing.

        Raises:
            ConfigurationError: the client has no cold tier.
            ValueTooLargeError: the session is larger than ``max_value_bytes``; nothing changed.
            ConflictError: the session kept changing for ``max_attempts`` tries; nothing changed.
        """
        sid = validate_session_id(session_id)
        if Tier.COLD not in self._memory.tiers:
            raise ConfigurationError("archive_session needs a cold tier (with_cold / with_blob)")
        memory = self._memory
        hkey = head_key(sid)
        last: BaseException | None = None
        async with self._locks.lock(sid):
            for attempt in range(self._max_attempts):
                if attempt:
                    await self._backoff(attempt)
                current = await memory.get_entry(hkey, consistent=True)
                if current is None:
                    return
                etag = etag_of(current.etag)
                head = Head.parse(current.value, hkey)
                if head.archived == head.count:
                    return
                try:
                    entries = await self._entries(sid, head, 0)
                    turns = await self._resolve(sid, entries)
                except Missing as exc:
                    last = exc
                    continue
                token = new_token()
                akey = archive_key(token, sid)
                doc = {"v": FORMAT, "gen": head.gen, "n": head.count, "turns": turns}
                # A fresh key per attempt: a slow, losing attempt can never overwrite the archive
                # that a committed head refers to.
                await memory.set(akey, doc, tier=Tier.COLD)
                # Chunk numbers restart above ck: a slow sealer of an older head state may still
                # create chunk ck, which must never be mistaken for a chunk of the new turns.
                archived = Head(
                    gen=head.gen,
                    count=head.count,
                    sealed=head.count,
                    archived=head.count,
                    archive=token,
                    c0=head.ck + 1,
                    ck=head.ck + 1,
                    created=head.created,
                    updated=head.updated,
                )
                try:
                    await memory.set(hkey, archived.to_value(), if_match=etag)
                except ConflictError as exc:
                    last = exc
                    await self._discard([akey], sid)
                    continue
                garbage = [chunk_key(head.gen, k, sid) for k in range(head.c0, head.ck + 1)]
                garbage += [turn_key(t, sid) for t in ref_tokens(entries)]
                if head.archive is not None:
                    garbage.append(archive_key(head.archive, sid))
                await self._discard(garbage, sid)
                return
        raise ConflictError(
            f"the session changed on each of {self._max_attempts} attempts; it was not archived",
            operation="archive_session",
            key=hkey,
        ) from last

    async def _discard(self, keys: Sequence[str], sid: str) -> None:
        """Best-effort removal of items no head refers to: a failure leaves unreachable garbage only."""
        if not keys:
            return
        limit = asyncio.Semaphore(_DISCARD_CONCURRENCY)

        async def one(key: str) -> None:
            async with limit:
                await self._memory.delete(key)

        results: list[BaseException | None] = []
        for page in _pages(keys):
            results += await asyncio.gather(*(one(k) for k in page), return_exceptions=True)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            logger.warning(
                "could not delete %d unreachable item(s) of a session (left as garbage): %s",
                len(failed),
                failed[0],
            )
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r  # cancellation and the like are not ours to swallow

    # -- reads ----------------------------------------------------------------------------------------

    async def load_turns(
        self, session_id: str, limit: int | None = None, *, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The session's turns in order, or its last ``limit`` turns; ``[]`` if there is no session.

        Args:
            limit: return only the last ``limit`` turns (``None``: all).
            consistent: read the head from the durable tier, not hot (see the class docs).

        Raises:
            InvalidInputError: bad session id or ``limit``.
            CorruptValueError: an item the session needs is missing or damaged.
        """
        sid = validate_session_id(session_id)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInputError(f"limit must be None or an int >= 0, got {limit!r}")
        if limit == 0:
            return []
        hkey = head_key(sid)
        seen: set[str | None] = set()
        for attempt in range(_READ_ATTEMPTS):
            head, etag = await self._read_head(sid, consistent=consistent or attempt > 0)
            if head is None:
                return []
            lo = 0 if limit is None else max(0, head.count - limit)
            try:
                return await self._resolve(sid, await self._entries(sid, head, lo))
            except Missing as exc:
                # A stale head (hot, or read just before an archive/clear): re-read the durable one.
                # The same durable version missing an item twice is damage, not a race.
                if etag is not None and etag in seen:
                    raise CorruptValueError(
                        "session refers to an item that does not exist", operation="load_turns", key=hkey
                    ) from exc
                seen.add(etag)
        raise ConflictError("the session kept changing while it was read", operation="load_turns", key=hkey)

    async def session_exists(self, session_id: str, *, consistent: bool = False) -> bool:
        """Whether the session has a head (at least one turn since it was created or cleared)."""
        sid = validate_session_id(session_id)
        if consistent:
            return await self._memory.get_entry(head_key(sid), consistent=True) is not None
        return await self._memory.exists(head_key(sid))

    async def session_metadata(self, session_id: str, *, consistent: bool = False) -> SessionMetadata | None:
        """Counts and timestamps of the session, or ``None`` if there is no such session."""
        sid = validate_session_id(session_id)
        head, _ = await self._read_head(sid, consistent=consistent)
        if head is None:
            return None
        return SessionMetadata(
            session_id=sid,
            turn_count=head.count,
            created_at=head.created,
            updated_at=head.updated,
            archived=head.count > 0 and head.archived == head.count,
        )

    async def _read_head(self, sid: str, *, consistent: bool) -> tuple[Head | None, str | None]:
        hkey = head_key(sid)
        entry = await self._memory.get_entry(hkey, consistent=consistent)
        if entry is None:
            return None, None
        return Head.parse(entry.value, hkey), entry.etag

    async def _entries(self, sid: str, head: Head, lo: int) -> list[Entry]:
        """Entries of turns ``[lo, count)``: from the archive, the chunks, then the head."""
        held_start = head.held_start
        if lo >= held_start:
            return head.held[lo - held_start :]
        older: list[Entry] = []
        # Chunks c0..ck-1 hold [archived, sealed); read backwards until the first one we need.
        chunks: list[tuple[int, list[Entry]]] = []  # (start, entries), newest first
        k = head.ck
        floor = max(lo, head.archived)
        next_start = head.sealed
        while k > head.c0 and next_start > floor:
            want = min(_PAGE_KEYS, -(-(next_start - floor) // self._chunk_turns) + 1)
            batch = list(range(max(head.c0, k - want), k))
            keys = [chunk_key(head.gen, j, sid) for j in batch]
            found = await self._memory.mget(keys)
            for j, key in zip(reversed(batch), reversed(keys), strict=True):
                value = found.get(key)
                if value is None:
                    raise Missing(key)
                entries = parse_chunk_any(value, head.gen, key)
                start = int(value["s"])
                if start + len(entries) != next_start or (j == head.c0 and start != head.archived):
                    raise CorruptValueError("session chunks are not contiguous", operation="load", key=key)
                chunks.append((start, entries))
                next_start = start
            k = batch[0]
        if lo < head.archived:
            if head.archive is None:
                raise CorruptValueError("session head lost its archive", operation="load", key=head_key(sid))
            akey = archive_key(head.archive, sid)
            doc = await self._memory.get(akey)
            if doc is None:
                raise Missing(akey)
            turns = parse_archive(doc, head, akey)
            older.extend({"t": t} for t in turns[lo:])
        for start, entries in reversed(chunks):
            skip = max(0, lo - start)
            older.extend(entries[skip:])
        # Chunk turns may overlap the head's recent window: take each index once.
        older = older[: held_start - lo]
        if len(older) != held_start - lo:
            raise CorruptValueError("session is missing turns", operation="load", key=head_key(sid))
        return older + head.held

    async def _resolve(self, sid: str, entries: list[Entry]) -> list[dict[str, Any]]:
        """Turn entries into turns, fetching the ones stored as their own items in one batch."""
        tokens = ref_tokens(entries)
        stored: dict[str, Any] = {}
        for page in _pages(tokens):
            keys = [turn_key(t, sid) for t in page]
            found = await self._memory.mget(keys)
            for token, key in zip(page, keys, strict=True):
                value = found.get(key)
                if not isinstance(value, dict):
                    raise Missing(key)
                stored[token] = value
        turns: list[dict[str, Any]] = []
        for entry in entries:
            if "r" in entry:
                turns.append(stored[entry["r"]])
            else:
                turns.append(entry["t"])
        return turns


def _pages(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``items`` in slices of at most ``_PAGE_KEYS`` (a ``range`` stays lazy)."""
    for start in range(0, len(items), _PAGE_KEYS):
        yield items[start : start + _PAGE_KEYS]
