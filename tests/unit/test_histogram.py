"""The fixed-memory latency histogram and the stats snapshot built from it."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from tiermem import Stats, Tier
from tiermem._instrumentation import LatencyHistogram, Telemetry

# Log buckets with 8 per doubling: the reported upper bound is at most 2**(1/8) ~ 1.0905 times the value.
BUCKET_ERROR = 2 ** (1 / 8)


def nearest_rank(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def histogram_of(samples: list[float]) -> LatencyHistogram:
    hist = LatencyHistogram()
    for s in samples:
        hist.record(s)
    return hist


def assert_close(estimate: float | None, true: float) -> None:
    assert estimate is not None
    assert true / BUCKET_ERROR * 0.999 <= estimate <= true * BUCKET_ERROR * 1.001, (estimate, true)


def _uniform() -> list[float]:
    return [0.001 + i * (0.099 / 9999) for i in range(10_000)]


def _exponential() -> list[float]:
    rng = random.Random(42)
    return [rng.expovariate(1 / 0.005) + 1e-5 for _ in range(20_000)]


def _lognormal() -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(math.log(0.002), 1.5) for _ in range(20_000)]


def _bimodal() -> list[float]:
    rng = random.Random(3)
    return [rng.gauss(0.0005, 0.00005) if rng.random() < 0.9 else rng.gauss(0.2, 0.02) for _ in range(20_000)]


@pytest.mark.parametrize("make", [_uniform, _exponential, _lognormal, _bimodal])
@pytest.mark.parametrize("q", [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999])
def test_percentiles_within_bucket_error(make: Callable[[], list[float]], q: float) -> None:
    samples = make()
    hist = histogram_of(samples)
    assert_close(hist.percentile(q), nearest_rank(samples, q))


def test_constant_samples() -> None:
    hist = histogram_of([0.0123] * 1000)
    for q in (0.0, 0.5, 0.99, 1.0):
        assert_close(hist.percentile(q), 0.0123)


def test_single_sample_is_every_percentile() -> None:
    hist = histogram_of([0.25])
    for q in (0.0, 0.5, 1.0):
        assert_close(hist.percentile(q), 0.25)


def test_percentile_never_exceeds_max() -> None:
    samples = [0.001, 0.0011, 0.0012]
    hist = histogram_of(samples)
    for q in (0.5, 0.9, 1.0):
        p = hist.percentile(q)
        assert p is not None
        assert p <= max(samples)
    assert hist.percentile(1.0) == max(samples)


def test_percentiles_are_monotonic() -> None:
    hist = histogram_of(_lognormal())
    values = [hist.percentile(q / 100) or math.nan for q in range(101)]
    assert not any(math.isnan(v) for v in values)
    assert values == sorted(values)


def test_tail_is_not_swamped_by_the_body() -> None:
    samples = [0.001] * 9_900 + [1.0] * 100
    hist = histogram_of(samples)
    assert_close(hist.percentile(0.5), 0.001)
    assert_close(hist.percentile(0.995), 1.0)


def test_empty_histogram_has_no_percentiles() -> None:
    hist = LatencyHistogram()
    assert hist.count == 0
    for q in (0.0, 0.5, 0.99, 1.0):
        assert hist.percentile(q) is None


def test_memory_is_fixed() -> None:
    hist = LatencyHistogram()
    size = len(hist.counts)
    rng = random.Random(1)
    for _ in range(100_000):
        hist.record(rng.expovariate(100.0))
    assert len(hist.counts) == size
    assert hist.count == 100_000
    assert sum(hist.counts) == 100_000


def test_max_count_and_total_are_tracked() -> None:
    samples = [0.003, 0.5, 0.0001, 0.02]
    hist = histogram_of(samples)
    assert hist.max == 0.5
    assert hist.count == 4
    assert hist.total == pytest.approx(sum(samples))


@pytest.mark.parametrize("extreme", [1e-9, 0.0, 1_000.0, 1e6])
def test_values_outside_the_bucket_range(extreme: float) -> None:
    hist = histogram_of([extreme])
    p = hist.percentile(0.5)
    assert p is not None
    assert p <= max(extreme, 1e-6)
    assert hist.max == extreme
    if extreme >= 1.0:
        assert p == extreme  # beyond the last bucket the max is exact


# -- the stats snapshot --------------------------------------------------------------------------------


def test_snapshot_counts_and_latencies() -> None:
    tel = Telemetry()
    for _ in range(3):
        tel.record(Tier.HOT, "get", "hit", 0.002)
    tel.record(Tier.HOT, "get", "miss", 0.002)
    tel.record(Tier.HOT, "get", "error", 0.002)
    tel.record(Tier.WARM, "set", "ok", 0.010)
    tel.record(Tier.WARM, "mset", "ok", 0.010, count=4)
    tel.count_keys(Tier.WARM, hits=2, misses=6)
    tel.promoted(Tier.HOT, 2)
    tel.compressed(1000, 300)

    stats = tel.snapshot(circuits={"hot": "closed", "warm": "open", "cold": "half_open"}, dirty_keys=7)
    assert isinstance(stats, Stats)
    hot = stats.tiers["hot"]
    assert (hot["hits"], hot["misses"], hot["errors"], hot["writes"]) == (3, 1, 1, 0)
    assert hot["hit_rate"] == pytest.approx(3 / 4)
    assert hot["latency"]["get"]["count"] == 5
    for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert_close(hot["latency"]["get"][name], 2.0)
    assert hot["circuit"] == "closed"

    warm = stats.tiers["warm"]
    assert (warm["hits"], warm["misses"], warm["writes"]) == (2, 6, 5)
    assert warm["hit_rate"] == pytest.approx(0.25)
    assert warm["circuit"] == "open"
    assert set(warm["latency"]) == {"set", "mset"}

    cold = stats.tiers["cold"]  # known only from the circuits: present, with nothing counted
    assert cold["hits"] == cold["misses"] == cold["writes"] == cold["errors"] == 0
    assert cold["hit_rate"] is None
    assert cold["latency"] == {}
    assert cold["circuit"] == "half_open"

    assert stats.promotions == 2
    assert stats.dirty_keys == 7
    d = stats.as_dict()
    assert d["compression"] == {"bytes_in": 1000, "bytes_out": 300}
    assert d["dirty_keys"] == 7
    assert d["tiers"] is stats.tiers


def test_snapshot_of_an_idle_client() -> None:
    stats = Telemetry().snapshot(circuits={}, dirty_keys=0)
    assert stats.tiers == {}
    assert stats.promotions == stats.fallthroughs == stats.bytes_in == stats.bytes_out == 0
