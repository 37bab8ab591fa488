"""How the Redis hot tier stores records: sealed to their Redis key (ADR 0015), with a native expiry.

Kept apart from the adapter so the one rule (seal what is written, verify what is read, a
record-level verdict in a batch) is written once for ``get``, ``mget``, ``set``, ``mset`` and ``swap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tiermem._codec import CorruptBatchError, Record
from tiermem._errors import ConfigurationError, CorruptValueError
from tiermem._seal import HotSeal
from tiermem._types import MemoryKey, Tier
from tiermem.tiers._base import retag_corrupt

__all__ = ["open_many", "open_one", "sealed", "ttl_ms"]


def ttl_ms(record: Record, now: float) -> int | None:
    """Milliseconds until the record expires (rounded up); ``None`` when it never does."""
    if record.expires_at is None:
        return None
    return math.ceil((record.expires_at - now) * 1000)


def sealed(seal: HotSeal, name: str, record: Record) -> bytes:
    """The bytes stored under the Redis key ``name`` (deterministic: compare-and-swap compares them)."""
    return seal.seal(name.encode("utf-8", "surrogatepass"), record)


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


def open_many(
    seal: HotSeal, keys: Sequence[MemoryKey], names: Sequence[str], values: Sequence[bytes | str | None]
) -> list[Record | None]:
    """The records of one ``MGET``, in input order.

    Raises:
        CorruptBatchError: some records are damaged: the error names the first; its ``readable``
            holds every other key's record, so one bad record does not fail the others' reads.
    """
    records: list[Record | None] = []
    damaged: dict[MemoryKey, CorruptValueError] = {}
    opened = seal.open  # the per-record loop of every MGET: no call layers beyond the seal itself
    for mk, name, data in zip(keys, names, values, strict=True):
        if data is None:
            records.append(None)
            continue
        if isinstance(data, str):  # ruled out by the decode_responses check of the adapter
            raise ConfigurationError("the Redis client decodes responses; use decode_responses=False")
        try:
            records.append(opened(name.encode("utf-8", "surrogatepass"), data))
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
