"""Leaf types every module shares: tier identity, the logical key, tier facts, values, clocks, entries.

This module imports nothing from tiermem, so anything may import it without making a cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Clock", "Entry", "MemoryKey", "Tier", "TierInfo", "Value"]

Value = Any
"""A storable value: JSON-compatible objects (dict/list/str/int/float/bool/None), ``str`` or ``bytes``."""

Clock = Callable[[], float]
"""A wall-clock source in Unix seconds (``time.time``); injectable in tests."""


class Tier(enum.Enum):
    """Which tier a store plays: fast and volatile, durable, or large and cheap."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class MemoryKey(NamedTuple):
    """A validated logical key: (tenant, namespace, key). Build it with :func:`tiermem.make_key`.

    A named tuple rather than a dataclass: hashing and equality run in C, and batches hash every key
    several times (dedupe, lock stripes, result maps).
    """

    tenant: str
    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class TierInfo:
    """Static facts about a tier implementation, used for limits, tracing and ``doctor``.

    Attributes:
        db_system: OpenTelemetry ``db.system`` value (``redis``, ``cosmosdb``, ``azure_blob``, ``sqlite``...).
        server_address: host of the service, when there is one.
        max_record_bytes: the largest encoded record the tier accepts, if it has a hard limit.
        native_ttl: whether the service expires data by itself (the client checks expiry anyway).
        in_process: the store never waits on I/O (an in-process map), so calls need no deadline.
    """

    db_system: str
    server_address: str | None = None
    max_record_bytes: int | None = None
    native_ttl: bool = False
    in_process: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """A value with where it was served from and the durable tier's ETag (for ``if_match``)."""

    value: Value
    tier: Tier
    etag: str | None = None
    expires_at: float | None = None
