"""What a client does on top of its tiers (:class:`Policy`) and per-tier resilience (:class:`TierOptions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tiermem._errors import ConfigurationError
from tiermem._types import Tier

__all__ = ["DEFAULT_TIER_OPTIONS", "Policy", "TierOptions"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What the client does on top of the tiers. Every field has a safe default.

    Attributes:
        hot_ttl: cap (seconds) on how long any value stays in hot; bounds staleness. ``None`` = no cap.
        compress_min_bytes: gzip payloads at least this large (when it saves >= 10%).
        compress_level: gzip level (1: see docs/adr/0002-compression.md).
        hot_max_bytes: larger values are not cached in hot.
        warm_max_bytes: larger values go to cold, with a pointer in warm (Cosmos items max out at 2 MB).
        max_value_bytes: hard limit on any value (also bounds decompression).
        tombstone_ttl: how long a delete's hot tombstone lives (must outlast a racing read).
        negative_ttl: cache all-tier misses in hot for this long; ``None`` disables it.
        dirty_max_keys: bound on hot keys remembered for invalidation while hot is unreachable.
        record_keys: put raw keys in spans (off: a stable hash is recorded instead).
    """

    hot_ttl: float | None = 300.0
    compress_min_bytes: int = 4096
    compress_level: int = 1
    hot_max_bytes: int = 512 * 1024
    warm_max_bytes: int = 1024 * 1024  # base64 in Cosmos: 1 MiB -> ~1.4 MB of the 2 MB item limit
    max_value_bytes: int = 64 * 1024 * 1024
    tombstone_ttl: float = 5.0
    negative_ttl: float | None = None
    dirty_max_keys: int = 10_000
    record_keys: bool = False

    def __post_init__(self) -> None:
        for name in ("hot_ttl", "negative_ttl"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"policy {name} must be > 0 seconds or None, got {value!r}")
        if not self.tombstone_ttl > 0:
            raise ConfigurationError("policy tombstone_ttl must be > 0 seconds")
        if self.hot_max_bytes < 1 or self.warm_max_bytes < 1 or self.max_value_bytes < 1:
            raise ConfigurationError("policy size limits must be >= 1 byte")
        if self.dirty_max_keys < 1:
            raise ConfigurationError("policy dirty_max_keys must be >= 1")
        if self.compress_min_bytes < 0 or not 0 <= self.compress_level <= 9:
            raise ConfigurationError("policy compress_min_bytes must be >= 0 and compress_level 0..9")


@dataclass(frozen=True, slots=True)
class TierOptions:
    """Resilience settings for one tier.

    Attributes:
        timeout: deadline (seconds) for one tier call including the SDK's own retries; ``None`` = none.
        failure_threshold: consecutive unavailability failures that open the circuit.
        reset_timeout: seconds the circuit stays open before a half-open probe.
    """

    timeout: float | None = None
    failure_threshold: int = 5
    reset_timeout: float = 10.0


DEFAULT_TIER_OPTIONS: Final = {
    # No asyncio deadline on hot calls by default: redis-py's socket timeouts bound them, and a
    # deadline costs ~9 us per call (a timer-heap entry) on the path that must cost nothing.
    Tier.HOT: TierOptions(timeout=None),
    Tier.WARM: TierOptions(timeout=15.0),
    Tier.COLD: TierOptions(timeout=120.0),
}
