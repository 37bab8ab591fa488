"""Helpers every tier test shares: the codec, records from values, and logical keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tiermem import Codec, MemoryKey, Record, make_key
from tiermem._seal import HotSeal

__all__ = ["CODEC", "hot_bytes", "k", "keyed", "rec", "val"]

CODEC = Codec(compress_min_bytes=1024)


def rec(value: Any, *, ttl: float | None = None, expires_at: float | None = None) -> Record:
    """A record holding ``value``; ``ttl`` (seconds from now) or ``expires_at`` (Unix seconds)."""
    if ttl is not None:
        expires_at = time.time() + ttl
    record, _ = CODEC.encode(value, expires_at=expires_at)
    return record


def hot_bytes(name: str | bytes, record: Record, *, seal: HotSeal | None = None) -> bytes:
    """What a Redis hot tier stores for ``record`` under the Redis key ``name`` (sealed, ADR 0015;
    unkeyed unless ``seal`` says otherwise)."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    return (seal or HotSeal()).seal(raw, record)


def val(record: Record | None) -> Any:
    """The value a record holds (there must be one)."""
    assert record is not None
    return CODEC.decode(record)


def keyed(tenant: str, namespace: str) -> Callable[..., MemoryKey]:
    """A ``k(key, tenant=..., namespace=...)`` with other default scopes."""

    def k(key: str, tenant: str = tenant, namespace: str = namespace) -> MemoryKey:
        return make_key(tenant, namespace, key)

    return k


k = keyed("acme", "ns")
