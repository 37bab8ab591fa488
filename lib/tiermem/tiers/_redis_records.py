"""How the Redis hot tier stores records: sealed to their Redis key (ADR 0015), with a native expiry.

Kept apart from the adapter so the one rule (seal what is written, verify what is read, a
record-level verdict in a batch) is written once for ``get``, ``mget``, ``set``, ``mset`` and ``swap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from tiermem._codec import CorruptBatchError, Record
from tiermem._errors import ConfigurationError, CorruptValueError
from tiermem._seal import HotSeal
from tiermem._types import MemoryKey, Tier
from tiermem.tiers._base import retag_corrupt

__all__ = ["open_envelopes", "open_one", "records_of", "sealed", "ttl_ms"]


def ttl_ms(record: Record, now: float) -> int | None:
    """Milliseconds until the record expires (rounded up); ``None`` when it never does."""
    if record.expires_at is None:
        return None
    return math.ceil((record.expires_at - now) * 1000)


def sealed(seal: HotSeal, name: str | bytes, record: Record) -> bytes:
    """The bytes stored under the Redis key ``name`` (deterministic: compare-and-swap compares them);
    a ``str`` name is bound as its UTF-8 bytes, what the client sends (batches pass those bytes)."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogatepass")
    return seal.seal(name, record)


def open_one(seal: HotSeal, name: str, data: bytes | str, operation: str, key: MemoryKey) -> Record:
    """Verify a stored value's seal against its Redis key and parse it.

    Raises:
        CorruptValueError: the seal does not hold or the envelope is damaged (names ``key``).
    """
    if isinstance(data, str):  # ruled out by the decode_responses check of the adapter
        raise ConfigurationError("the Redis client decodes responses; use decode_responses=False")
    try:
        return seal.open(name.encode("utf-8", "surrogatepass"), data)
    except CorruptValueError as exc:
        raise retag_corrupt(exc, Tier.HOT, operation, key) from exc


def records_of(
    keys: Sequence[MemoryKey], envelopes: Sequence[bytes | CorruptValueError | None]
) -> list[Record | None]:
    """The records of one ``MGET`` from its verified envelopes (:func:`open_envelopes`), input order.

    Raises:
        CorruptBatchError: some records are damaged: the error names the first; its ``readable``
            holds every other key's record, so one bad record does not fail the others' reads.
    """
    records: list[Record | None] = []
    damaged: dict[MemoryKey, CorruptValueError] = {}
    for mk, data in zip(keys, envelopes, strict=True):
        if data is None:
            records.append(None)
            continue
        if isinstance(data, CorruptValueError):
            records.append(None)
            damaged[mk] = data
            continue
        try:
            records.append(Record.from_bytes(data))
        except CorruptValueError as exc:
            records.append(None)
            damaged[mk] = exc
    if damaged:
        first_key, first = next(iter(damaged.items()))
        readable = {mk: rec for mk, rec in zip(keys, records, strict=True) if mk not in damaged}
        raise CorruptBatchError(
            first.message, readable=readable, tier=Tier.HOT, operation="mget", key=first_key.key
        ) from first
    return records


def open_envelopes(
    seal: HotSeal, names: Sequence[bytes], values: Sequence[bytes | str | None]
) -> list[bytes | CorruptValueError | None]:
    """The envelopes of one ``MGET`` (``values[i]`` stored under ``names[i]``), each verified against
    its Redis key and stripped of its seal; a record whose seal does not hold is its error in place
    (not raised), so it costs only its own key.
    """
    if str in map(type, values):  # ruled out by the decode_responses check of the adapter
        raise ConfigurationError("the Redis client decodes responses; use decode_responses=False")
    return seal.envelopes(names, cast("Sequence[bytes | None]", values))
