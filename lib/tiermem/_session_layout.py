"""How a conversation session is stored: its keys and documents (heads, chunks, archives).

Pure data: building keys, parsing and checking documents. :class:`tiermem.ConversationStore`
(``sessions.py``) does the reading and writing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tiermem._errors import ConfigurationError, CorruptValueError, InvalidKeyError
from tiermem._keys import validate_key

MAX_SESSION_ID_BYTES: Final = 256
"""Session ids are keys (1..256 UTF-8 bytes, no control characters): room is left for the prefixes."""

FORMAT: Final = 1
DOC_OVERHEAD: Final = 1024  # JSON around the turns of a head or chunk document (counters, ids, times)

Entry = dict[str, Any]  # {"t": turn} inline, or {"r": token} for a turn stored as its own item


class Missing(Exception):
    """An internal signal that never escapes the store: an item the head refers to is gone (the head
    changed under us, by archive or clear, or it is damaged)."""


@dataclass(slots=True)
class Head:
    """The session head. ``held`` holds the turns ``[count - len(held), count)``; every unsealed turn
    (index >= ``sealed``) is held, older ones only as the recent window. Chunks ``c0..ck-1`` hold
    ``[archived, sealed)``; the archive holds ``[0, archived)``."""

    gen: str
    count: int = 0
    sealed: int = 0
    archived: int = 0
    archive: str | None = None
    c0: int = 0
    ck: int = 0
    created: float = 0.0
    updated: float = 0.0
    held: list[Entry] = field(default_factory=list)

    def to_value(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "gen": self.gen,
            "n": self.count,
            "sealed": self.sealed,
            "archived": self.archived,
            "archive": self.archive,
            "c0": self.c0,
            "ck": self.ck,
            "created": self.created,
            "updated": self.updated,
            "held": self.held,
        }

    @classmethod
    def parse(cls, value: Any, key: str) -> Head:
        if not isinstance(value, dict) or value.get("v") != FORMAT:
            raise CorruptValueError("not a session head of a known format", operation="session", key=key)
        try:
            head = cls(
                gen=str(value["gen"]),
                count=int(value["n"]),
                sealed=int(value["sealed"]),
                archived=int(value["archived"]),
                archive=None if value["archive"] is None else str(value["archive"]),
                c0=int(value["c0"]),
                ck=int(value["ck"]),
                created=float(value["created"]),
                updated=float(value["updated"]),
                held=list(value["held"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptValueError(f"malformed session head: {exc}", operation="session", key=key) from exc
        if not 0 <= head.archived <= head.sealed <= head.count or len(head.held) < head.count - head.sealed:
            raise CorruptValueError("session head counters are inconsistent", operation="session", key=key)
        return head

    @property
    def held_start(self) -> int:
        return self.count - len(self.held)

    def unsealed(self) -> list[Entry]:
        n = self.count - self.sealed
        return self.held[len(self.held) - n :] if n else []


def stored_size(entry: Entry) -> int:
    return len(orjson.dumps(entry)) + 1  # + the comma between entries


def new_token() -> str:
    return secrets.token_hex(8)


def validate_session_id(session_id: object) -> str:
    sid = validate_key(session_id)
    size = len(sid.encode("utf-8"))
    if size > MAX_SESSION_ID_BYTES:
        raise InvalidKeyError(f"session id is {size} UTF-8 bytes; the limit is {MAX_SESSION_ID_BYTES}")
    return sid


def head_key(sid: str) -> str:
    return f"h:{sid}"


def chunk_key(gen: str, k: int, sid: str) -> str:
    return f"c:{gen}:{k}:{sid}"


def turn_key(token: str, sid: str) -> str:
    return f"t:{token}:{sid}"


def archive_key(token: str, sid: str) -> str:
    return f"a:{token}:{sid}"


def etag_of(etag: str | None) -> str:
    if etag is None:
        raise ConfigurationError(
            "the durable tier returned no ETag; ConversationStore needs optimistic concurrency (if_match)"
        )
    return etag


def ref_tokens(entries: Sequence[Entry]) -> list[str]:
    return [str(e["r"]) for e in entries if isinstance(e, dict) and "r" in e]


def parse_chunk_any(value: Any, gen: str, key: str) -> list[Entry]:
    if not isinstance(value, dict) or value.get("v") != FORMAT or value.get("gen") != gen:
        raise CorruptValueError("not a chunk of this session", operation="load", key=key)
    entries = value.get("e")
    if not isinstance(entries, list) or not isinstance(value.get("s"), int):
        raise CorruptValueError("malformed session chunk", operation="load", key=key)
    return entries


def parse_chunk(value: Any, gen: str, start: int, key: str) -> list[Entry]:
    entries = parse_chunk_any(value, gen, key)
    if value["s"] != start:
        raise CorruptValueError("session chunk starts at the wrong turn", operation="append_turn", key=key)
    return entries


def parse_archive(doc: Any, head: Head, key: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or doc.get("v") != FORMAT or doc.get("gen") != head.gen:
        raise CorruptValueError("not an archive of this session", operation="load", key=key)
    turns = doc.get("turns")
    if not isinstance(turns, list) or len(turns) != head.archived or doc.get("n") != head.archived:
        raise CorruptValueError("session archive has the wrong number of turns", operation="load", key=key)
    return turns
