"""The engine's own instrumentation: spans, metrics and the in-process stats snapshot (private).

Wiring these to a backend is the application's job (or :mod:`tiermem.telemetry`, the public
Azure Monitor helper for the edges).

The library uses the OpenTelemetry *API* only (``pip install tiermem[otel]``); without an SDK
(or without the package) spans are skipped entirely, so tracing costs nothing until an
application configures a TracerProvider. ``memory.stats()`` is always available: it keeps
fixed-size log-bucket histograms, never a list of samples.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

from tiermem._errors import AuthenticationError, CircuitOpenError, key_digest
from tiermem._version import __version__

if TYPE_CHECKING:
    from tiermem._types import Tier

__all__ = ["LatencyHistogram", "Stats", "Telemetry", "TierStats"]

logger = logging.getLogger("tiermem")

try:  # the API is optional: tracing and OTel metrics switch off without it
    from opentelemetry import context as _otel_context
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode

    _OTEL = True
except ImportError:  # pragma: no cover - exercised in the no-extras install
    _OTEL = False

_SCOPE: Final = "tiermem"

_RECHECK_SECONDS: Final = 1.0
_NO_SPAN: Final[AbstractContextManager[None]] = nullcontext()

# Bucket upper bounds in seconds: 1 us .. ~200 s, 8 buckets per doubling (<= 9% relative error).
_BOUNDS: Final = tuple(1e-6 * 2 ** (i / 8) for i in range(8 * 28))


class LatencyHistogram:
    """Fixed-memory latency histogram (log buckets) with approximate percentiles."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, q: float) -> float | None:
        """Approximate ``q``-quantile (0..1) in seconds: the upper bound of the bucket that holds it."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(_BOUNDS[i] if i < len(_BOUNDS) else self.max, self.max)
        return self.max  # pragma: no cover - unreachable: counts sum to count


@dataclass
class TierStats:
    """Per-tier counters for the human snapshot."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    writes: int = 0
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)

    def hit_rate(self) -> float | None:
        reads = self.hits + self.misses
        return self.hits / reads if reads else None


@dataclass(frozen=True)
class Stats:
    """A snapshot of what the client did since it was built (see ``MemoryClient.stats``)."""

    tiers: dict[str, dict[str, Any]]
    promotions: int
    fallthroughs: int
    bytes_in: int
    bytes_out: int
    dirty_keys: int
    dirty_overflows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "tiers": self.tiers,
            "promotions": self.promotions,
            "fallthroughs": self.fallthroughs,
            "compression": {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out},
            "dirty_keys": self.dirty_keys,
            "dirty_overflows": self.dirty_overflows,
        }


class GaugeSource(Protocol):
    """What a client exposes to the shared gauges."""

    def gauge_circuits(self) -> dict[str, int]: ...

    def gauge_dirty(self) -> int: ...


class _GaugeSet:
    """The gauges of one MeterProvider and the clients they observe."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider  # keeps id(provider) unique while registered
        self.sources: weakref.WeakSet[Any] = weakref.WeakSet()
        self.instruments: list[Any] = []

    def create(self, meter: Any) -> None:
        from opentelemetry.metrics import Observation

        def circuits(_options: Any) -> list[Any]:
            worst: dict[str, int] = {}
            for source in list(self.sources):
                for tier, state in source.gauge_circuits().items():
                    worst[tier] = max(state, worst.get(tier, 0))
            return [Observation(state, {"tiermem.tier": tier}) for tier, state in worst.items()]

        def dirty(_options: Any) -> list[Any]:
            return [Observation(sum(source.gauge_dirty() for source in list(self.sources)))]

        self.instruments.append(
            meter.create_observable_gauge(
                "tiermem.circuit.state",
                callbacks=[circuits],
                description="Circuit breaker state per tier: 0 closed, 1 half-open, 2 open",
            )
        )
        self.instruments.append(
            meter.create_observable_gauge(
                "tiermem.dirty_keys", callbacks=[dirty], description="Hot keys awaiting invalidation"
            )
        )


_GAUGES: dict[int, _GaugeSet] = {}
_GAUGES_LOCK = threading.Lock()


class _SpanScope:
    """A started span made current for a block; an exception leaving the block is recorded on it.

    What ``start_as_current_span(record_exception=False, set_status_on_exception=False)`` inside a
    ``@contextmanager`` did, without the two generator-based context managers (a span per call is on
    the hot path when tracing is on; ADR 0016).
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = _otel_context.attach(_otel_trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        try:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        finally:
            _otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()


class Telemetry:
    """One instance per client: OTel spans/instruments (when available) plus local stats.

    Args:
        record_keys: put raw keys in span attributes (off by default: a stable hash is recorded).
        detailed_spans: a child span per hot-tier call too (off: the call is an attribute of the
            method span; durable-tier calls always get child spans). See docs/adr/0016.
        tracer_provider: use this provider instead of the global one (tests, multi-tenant hosts).
        meter_provider: use this provider instead of the global one.
    """

    def __init__(
        self,
        *,
        record_keys: bool = False,
        detailed_spans: bool = False,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.record_keys = record_keys
        self.detailed_spans = detailed_spans
        self._lock = threading.Lock()
        self.tiers: dict[str, TierStats] = {}
        self.promotions = 0
        self.fallthroughs = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dirty_overflows = 0
        self._tracer: Any = None
        self._instruments: dict[str, Any] = {}
        self._gauges: list[Any] = []
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracing_on = False
        self._metrics_on = False
        self._next_tracing_check = 0.0
        self._next_metrics_check = 0.0
        self._attrs: dict[tuple[str, str, str], tuple[dict[str, str], dict[str, str]]] = {}
        if _OTEL:
            if tracer_provider is not None:
                self._tracer = tracer_provider.get_tracer(_SCOPE, __version__)
            else:
                self._tracer = _otel_trace.get_tracer(_SCOPE, __version__)
            meter = (meter_provider or _otel_metrics.get_meter_provider()).get_meter(_SCOPE, __version__)
            self._instruments = {
                "operations": meter.create_counter(
                    "tiermem.operations", unit="{operation}", description="Tier operations by outcome"
                ),
                "duration": meter.create_histogram(
                    "tiermem.operation.duration", unit="s", description="Tier call latency"
                ),
                "promotions": meter.create_counter(
                    "tiermem.promotions", unit="{value}", description="Values promoted to a faster tier"
                ),
                "fallthroughs": meter.create_counter(
                    "tiermem.fallthroughs", unit="{call}", description="Reads that skipped a failing tier"
                ),
                "bytes_in": meter.create_counter(
                    "tiermem.compression.bytes_in", unit="By", description="Payload bytes before compression"
                ),
                "bytes_out": meter.create_counter(
                    "tiermem.compression.bytes_out", unit="By", description="Payload bytes as stored"
                ),
                "dirty_overflows": meter.create_counter(
                    "tiermem.dirty_keys.overflows",
                    unit="{event}",
                    description="Times the bounded dirty-key set overflowed",
                ),
            }
            self._meter = meter

    def register_gauges(self, source: GaugeSource) -> None:
        """Report ``source``'s breaker states and dirty keys through the observable gauges.

        Instruments are deduplicated by name per MeterProvider, so the gauges are created once per
        provider and observe every open client registered with it (worst breaker state per tier,
        dirty keys summed); closed or collected clients drop out.
        """
        if not _OTEL:
            return
        provider = self._meter_provider or _otel_metrics.get_meter_provider()
        with _GAUGES_LOCK:
            entry = _GAUGES.get(id(provider))
            if entry is None:
                entry = _GAUGES[id(provider)] = _GaugeSet(provider)
                entry.create(self._meter)
            entry.sources.add(source)

    # -- tracing ---------------------------------------------------------------------------------

    @property
    def tracing(self) -> bool:
        """True once an SDK TracerProvider is installed (the API's default provider records nothing).

        Looking the global provider up reads the environment, so the answer is cached: a provider
        installed after the client was built is noticed within a second.
        """
        if self._tracing_on:
            return True
        if self._tracer is None:
            return False
        now = time.monotonic()
        if now < self._next_tracing_check:
            return False
        self._next_tracing_check = now + _RECHECK_SECONDS
        provider = self._tracer_provider or _otel_trace.get_tracer_provider()
        self._tracing_on = not isinstance(
            provider, _otel_trace.ProxyTracerProvider | _otel_trace.NoOpTracerProvider
        )
        return self._tracing_on

    @property
    def metrics(self) -> bool:
        """True once an SDK MeterProvider is installed; until then the (no-op) instruments are skipped."""
        if self._metrics_on:
            return True
        if not self._instruments:
            return False
        now = time.monotonic()
        if now < self._next_metrics_check:
            return False
        self._next_metrics_check = now + _RECHECK_SECONDS
        provider = self._meter_provider or _otel_metrics.get_meter_provider()
        # The API's default is a private proxy class; both it and the no-op provider record nothing.
        self._metrics_on = type(provider).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider")
        return self._metrics_on

    def key_attr(self, key: str) -> str:
        return key if self.record_keys else key_digest(key)

    def span(
        self, name: str, attributes: dict[str, Any], *, client: bool = False
    ) -> AbstractContextManager[Span | None]:
        """A span when tracing is on, else a shared no-op context; exceptions are recorded and re-raised.

        Client-method spans are INTERNAL; tier calls are CLIENT spans (a call to a service), so
        Azure Monitor shows them as dependencies typed by ``db.system``.
        """
        if not self.tracing:
            return _NO_SPAN
        return self._span(name, attributes, client)

    def _span(self, name: str, attributes: dict[str, Any], client: bool) -> _SpanScope:
        kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
        return _SpanScope(self._tracer.start_span(name, kind=kind, attributes=attributes))

    def annotate(self, name: str, value: Any) -> None:
        """Set an attribute on the current span (the client method's span), if one is recording."""
        if self.tracing:
            current = _otel_trace.get_current_span()
            if current.is_recording():
                current.set_attribute(name, value)

    # -- metrics ---------------------------------------------------------------------------------

    def tier_stats(self, tier: Tier) -> TierStats:
        stats = self.tiers.get(tier.value)
        if stats is None:
            stats = self.tiers.setdefault(tier.value, TierStats())
        return stats

    def record(self, tier: Tier, operation: str, outcome: str, seconds: float, count: int = 1) -> None:
        """Count one tier call (outcome: hit, miss, ok, error) and its latency."""
        self.record_in(self.slot(tier, operation), tier, operation, outcome, seconds, count)

    def slot(self, tier: Tier, operation: str) -> tuple[TierStats, LatencyHistogram]:
        """Where ``record`` counts ``tier``'s ``operation``: a caller on a hot path looks it up once
        and passes it to :meth:`record_in`."""
        stats = self.tier_stats(tier)
        with self._lock:
            hist = stats.latency.get(operation)
            if hist is None:
                hist = stats.latency.setdefault(operation, LatencyHistogram())
        return stats, hist

    def record_in(
        self,
        slot: tuple[TierStats, LatencyHistogram],
        tier: Tier,
        operation: str,
        outcome: str,
        seconds: float,
        count: int = 1,
    ) -> None:
        """:meth:`record` for a caller that holds the :meth:`slot` of ``tier`` and ``operation``."""
        stats, hist = slot
        with self._lock:
            hist.record(seconds)
            if outcome == "hit":
                stats.hits += count
            elif outcome == "miss":
                stats.misses += count
            elif outcome == "error":
                stats.errors += 1
            elif operation in ("set", "mset", "delete"):
                stats.writes += count
        if self._metrics_on or self.metrics:
            self._emit(tier, operation, outcome, seconds, count)

    def _emit(self, tier: Tier, operation: str, outcome: str, seconds: float, count: int) -> None:
        cache_key = (tier.value, operation, outcome)
        attrs = self._attrs.get(cache_key)
        if attrs is None:  # attribute dicts are built once per (tier, op, outcome), then reused
            base = {"tiermem.tier": tier.value, "tiermem.operation": operation}
            attrs = self._attrs.setdefault(cache_key, ({**base, "tiermem.outcome": outcome}, base))
        self._instruments["operations"].add(count, attrs[0])
        self._instruments["duration"].record(seconds, attrs[1])

    def count_keys(self, tier: Tier, hits: int, misses: int) -> None:
        """Count per-key hits and misses of a batch read (its latency is recorded by ``record``)."""
        stats = self.tier_stats(tier)
        with self._lock:
            stats.hits += hits
            stats.misses += misses
        if self.metrics:
            base = {"tiermem.tier": tier.value, "tiermem.operation": "mget"}
            if hits > 0:
                self._instruments["operations"].add(hits, {**base, "tiermem.outcome": "hit"})
            if misses > 0:
                self._instruments["operations"].add(misses, {**base, "tiermem.outcome": "miss"})

    def promoted(self, tier: Tier, count: int = 1) -> None:
        with self._lock:
            self.promotions += count
        if self.metrics:
            self._instruments["promotions"].add(count, {"tiermem.tier": tier.value})

    def fell_through(self, tier: Tier, operation: str, exc: BaseException, span: Span | None) -> None:
        """A failing tier was skipped: count it, log a WARNING, add a span event. Never silent."""
        with self._lock:
            self.fallthroughs += 1
        # An open circuit is already reported once, when it opens, and rejected credentials at ERROR
        # by the guard that opened it for them (ADR 0017); don't log every skipped call.
        level = logging.DEBUG if isinstance(exc, CircuitOpenError | AuthenticationError) else logging.WARNING
        logger.log(
            level,
            "tier unavailable, falling through: tier=%s op=%s error=%s: %s",
            tier.value,
            operation,
            type(exc).__name__,
            exc,
        )
        if self.metrics:
            self._instruments["fallthroughs"].add(
                1, {"tiermem.tier": tier.value, "tiermem.operation": operation}
            )
        if span is None and self.tracing:
            current = _otel_trace.get_current_span()
            span = current if current.is_recording() else None
        if span is not None:
            span.add_event(
                "tiermem.fallthrough",
                {
                    "tiermem.tier": tier.value,
                    "exception.type": type(exc).__name__,
                    "exception.message": str(exc),
                },
            )

    def compressed(self, raw: int, stored: int) -> None:
        with self._lock:
            self.bytes_in += raw
            self.bytes_out += stored
        if self.metrics:
            self._instruments["bytes_in"].add(raw)
            self._instruments["bytes_out"].add(stored)

    def dirty_overflow(self) -> None:
        with self._lock:
            self.dirty_overflows += 1
        if self.metrics:
            self._instruments["dirty_overflows"].add(1)

    def snapshot(self, *, circuits: dict[str, str], dirty_keys: int) -> Stats:
        tiers: dict[str, dict[str, Any]] = {}
        with self._lock:
            for name, st in self.tiers.items():
                latency = {
                    op: {
                        "count": h.count,
                        "p50_ms": _ms(h.percentile(0.50)),
                        "p95_ms": _ms(h.percentile(0.95)),
                        "p99_ms": _ms(h.percentile(0.99)),
                        "max_ms": _ms(h.max if h.count else None),
                    }
                    for op, h in st.latency.items()
                }
                tiers[name] = {
                    "hits": st.hits,
                    "misses": st.misses,
                    "errors": st.errors,
                    "writes": st.writes,
                    "hit_rate": st.hit_rate(),
                    "latency": latency,
                    "circuit": circuits.get(name, "closed"),
                }
            for name, state in circuits.items():
                tiers.setdefault(
                    name,
                    {
                        "hits": 0,
                        "misses": 0,
                        "errors": 0,
                        "writes": 0,
                        "hit_rate": None,
                        "latency": {},
                        "circuit": state,
                    },
                )
            return Stats(
                tiers=tiers,
                promotions=self.promotions,
                fallthroughs=self.fallthroughs,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                dirty_keys=dirty_keys,
                dirty_overflows=self.dirty_overflows,
            )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
