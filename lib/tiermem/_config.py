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
        mget_max_bytes: decoded bytes one ``mget`` may return, over every tier; past it the call
            raises :class:`~tiermem.ResultTooLargeError` (page through the keys).
        tombstone_ttl: how long a reader's hot lease lives (ADR 0006): a read slower than this
            cannot fill hot.
        negative_ttl: cache all-tier misses in hot for this long; ``None`` disables it.
        dirty_max_keys: bound on hot keys remembered for invalidation while hot is unreachable.
        coherence_interval: seconds between reads of the durable hot epoch (ADR 0006): the
            staleness bound after a write that could not invalidate hot.
        record_keys: put raw keys in spans (off: a stable hash is recorded instead).
        detailed_spans: a CLIENT child span for every tier call. Off (the default), hot-tier calls
            are attributes of the method span (``tiermem.hot.get="hit"``), so a hot hit is one span;
            calls to the durable tiers keep their child spans either way (docs/adr/0016).
    """

    hot_ttl: float | None = 300.0
    compress_min_bytes: int = 4096
    compress_level: int = 1
    hot_max_bytes: int = 512 * 1024
    warm_max_bytes: int = 1024 * 1024  # base64 in Cosmos: 1 MiB -> ~1.4 MB of the 2 MB item limit
    max_value_bytes: int = 64 * 1024 * 1024
    mget_max_bytes: int = 64 * 1024 * 1024
    tombstone_ttl: float = 5.0
    negative_ttl: float | None = None
    dirty_max_keys: int = 10_000
    coherence_interval: float = 1.0
    record_keys: bool = False
    detailed_spans: bool = False

    def __post_init__(self) -> None:
        for name in ("hot_ttl", "negative_ttl"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"policy {name} must be > 0 seconds or None, got {value!r}")
        if not self.tombstone_ttl > 0:
            raise ConfigurationError("policy tombstone_ttl must be > 0 seconds")
        if not self.coherence_interval > 0:
            raise ConfigurationError("policy coherence_interval must be > 0 seconds")
        if min(self.hot_max_bytes, self.warm_max_bytes, self.max_value_bytes, self.mget_max_bytes) < 1:
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
            In-process stores (``TierInfo.in_process``) never wait on I/O and get no deadline.
        failure_threshold: consecutive unavailability failures that open the circuit.
        reset_timeout: seconds the circuit stays open before a half-open probe.
        seconds_per_mib: added to ``timeout`` per MiB a call moves (writes; reads through a pointer
            that names the size), so a large value gets the time it needs and a small one fails fast.
    """

    timeout: float | None = None
    failure_threshold: int = 5
    reset_timeout: float = 10.0
    seconds_per_mib: float = 0.0

    def deadline(self, nbytes: int) -> float | None:
        """The deadline for a call that moves ``nbytes``."""
        if self.timeout is None:
            return None
        return self.timeout + self.seconds_per_mib * nbytes / 1_048_576


DEFAULT_TIER_OPTIONS: Final = {
    # Redis: 2 s for a whole call, retries included (redis-py alone: 1 s socket timeout x 4 tries).
    Tier.HOT: TierOptions(timeout=2.0),
    Tier.WARM: TierOptions(timeout=15.0),
    # Blob: 30 s plus 2 s per MiB (a 64 MiB value gets 158 s; a hung endpoint fails a small call in 30 s).
    Tier.COLD: TierOptions(timeout=30.0, seconds_per_mib=2.0),
}
