"""Span trees, attributes and metrics, read back with the OTel SDK's in-memory exporter and reader.

Span-tree tests run in both shapes (ADR 0016): compact (the default: hot-tier calls are attributes
of the method span, durable-tier calls child spans) and ``detailed_spans=True`` (a child span for
every tier call). Each asserts what only its own shape produces, so a mode that is ignored fails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.doubles import WrappedStore
from tiermem import (
    FileColdMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
)
from tiermem._errors import key_digest

SECRET_KEY = "user:ada@example.com:ssn"


@dataclass
class Traced:
    memory: MemoryClient
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    hot: WrappedStore
    warm: WrappedStore
    detailed: bool = False

    def tier_calls(self, root: ReadableSpan) -> list[str]:
        """The tier calls under ``root``, in order: child span names, plus (compact shape) the
        ``tiermem.<tier>.<op>`` attributes of ``root`` itself."""
        kids = [c.name for c in sorted(self.children(root), key=lambda s: s.start_time or 0)]
        noted = [k for k in (root.attributes or {}) if k.startswith("tiermem.hot.")]
        return kids + noted

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s for s in self.finished() if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def _make(tmp_path: Path, *, record_keys: bool = False, detailed: bool = False) -> Traced:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    hot = WrappedStore(LocalHotMemory(), Tier.HOT)
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "w.db"), Tier.WARM)
    memory = (
        MemoryBuilder()
        .with_hot(hot)  # type: ignore[arg-type]
        .with_warm(warm)  # type: ignore[arg-type]
        .with_cold(FileColdMemory(tmp_path / "cold"))
        .with_telemetry(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            record_keys=record_keys,
            detailed_spans=detailed,
        )
        .with_resilience(Tier.HOT, failure_threshold=100)
        .with_policy(coherence_interval=3600)  # one epoch read per test, before it starts
        .build()
    )
    return Traced(memory, exporter, reader, hot, warm, detailed)


@pytest.fixture(params=[False, True], ids=["compact", "detailed"])
async def traced(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Traced]:
    t = _make(tmp_path, detailed=request.param)
    async with t.memory:
        assert await t.memory._core.epoch.fresh()
        t.spans.clear()
        yield t


async def test_hot_hit_span_tree(traced: Traced) -> None:
    await traced.memory.set(SECRET_KEY, {"v": 1})
    await traced.memory.get(SECRET_KEY)  # fills hot
    traced.spans.clear()
    assert await traced.memory.get(SECRET_KEY) == {"v": 1}
    (root,) = traced.by_name("tiermem.get")
    assert root.kind is SpanKind.INTERNAL
    assert root.attributes is not None
    assert root.attributes["tiermem.hit"] is True
    assert root.attributes["tiermem.tier"] == "hot"
    assert root.attributes["tiermem.key"] == key_digest(SECRET_KEY)
    if not traced.detailed:  # one span: the hot call is an attribute of the method span
        assert traced.finished() == [root]
        assert root.attributes["tiermem.hot.get"] == "hit"
        return
    assert "tiermem.hot.get" not in root.attributes
    (child,) = traced.children(root)
    assert child.name == "tiermem.hot.get"
    assert child.kind is SpanKind.CLIENT
    assert child.attributes is not None
    assert child.attributes["tiermem.tier"] == "hot"
    assert child.attributes["db.system"] == "tiermem_local"
    assert child.attributes["tiermem.hit"] is True


async def test_warm_hit_with_promotion(traced: Traced) -> None:
    await traced.memory.set("k", "v")
    await traced.hot.inner.delete(traced.memory._key("k"))
    traced.spans.clear()
    assert await traced.memory.get("k") == "v"
    (root,) = traced.by_name("tiermem.get")
    assert root.attributes is not None
    assert root.attributes["tiermem.tier"] == "warm"
    assert root.attributes["tiermem.promoted"] == 1
    names = [c.name for c in sorted(traced.children(root), key=lambda s: s.start_time or 0)]
    if traced.detailed:
        assert names == ["tiermem.hot.get", "tiermem.hot.lease", "tiermem.warm.get", "tiermem.hot.promote"]
        hot_get = next(c for c in traced.children(root) if c.name == "tiermem.hot.get")
        assert hot_get.attributes is not None and hot_get.attributes["tiermem.hit"] is False
    else:  # the durable read keeps its span; the hot calls are attributes of the method span
        assert names == ["tiermem.warm.get"]
        assert root.attributes["tiermem.hot.get"] == "miss"
        assert root.attributes["tiermem.hot.lease"] == "ok"
        assert root.attributes["tiermem.hot.promote"] == "ok"
    warm_get = next(c for c in traced.children(root) if c.name == "tiermem.warm.get")
    assert warm_get.attributes is not None and warm_get.attributes["db.system"] == "sqlite"
    promotions = traced.metric_points("tiermem.promotions")
    assert sum(p.value for p in promotions) == 1


async def test_all_tier_miss(traced: Traced) -> None:
    assert await traced.memory.get("nothing") is None
    (root,) = traced.by_name("tiermem.get")
    assert root.attributes is not None and root.attributes["tiermem.hit"] is False
    assert set(traced.tier_calls(root)) == {"tiermem.hot.get", "tiermem.hot.lease", "tiermem.warm.get"}
    hot_spans = {c.name for c in traced.children(root)} - {"tiermem.warm.get"}
    assert bool(hot_spans) is traced.detailed
    outcomes = {
        (p.attributes["tiermem.tier"], p.attributes["tiermem.outcome"]): p.value
        for p in traced.metric_points("tiermem.operations")
        if p.attributes["tiermem.operation"] == "get"
    }
    assert outcomes == {("hot", "miss"): 1, ("warm", "miss"): 1}


async def test_mget_with_mixed_hits(traced: Traced) -> None:
    await traced.memory.mset({"a": 1, "b": 2, "c": 3})
    await traced.memory.mget(["a", "c"])  # fills hot with a and c
    traced.spans.clear()
    assert await traced.memory.mget(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3, "d": None}
    (root,) = traced.by_name("tiermem.mget")
    assert root.attributes is not None
    assert root.attributes["tiermem.keys"] == 4
    assert root.attributes["tiermem.promoted"] == 1
    kids = {c.name: c for c in traced.children(root)}
    calls = {"tiermem.hot.mget", "tiermem.hot.lease", "tiermem.warm.mget", "tiermem.hot.promote"}
    assert set(traced.tier_calls(root)) == calls
    assert kids["tiermem.warm.mget"].attributes["tiermem.keys"] == 2  # type: ignore[index]
    if traced.detailed:
        assert set(kids) == calls
        assert kids["tiermem.hot.mget"].attributes["tiermem.keys"] == 4  # type: ignore[index]
    else:
        assert set(kids) == {"tiermem.warm.mget"}
    per_key = {
        (p.attributes["tiermem.tier"], p.attributes["tiermem.outcome"]): p.value
        for p in traced.metric_points("tiermem.operations")
        if p.attributes["tiermem.operation"] == "mget" and p.attributes["tiermem.outcome"] in ("hit", "miss")
    }
    assert per_key == {("hot", "hit"): 2, ("hot", "miss"): 4, ("warm", "hit"): 3, ("warm", "miss"): 1}


async def test_failing_hot_tier_is_an_event_and_a_warning(
    traced: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    await traced.memory.set("k", "v")
    traced.hot.down = True
    traced.spans.clear()
    with caplog.at_level("WARNING", logger="tiermem"):
        assert await traced.memory.get("k") == "v"
    (root,) = traced.by_name("tiermem.get")
    events = [e for e in root.events if e.name == "tiermem.fallthrough"]
    assert events and events[0].attributes is not None
    assert events[0].attributes["tiermem.tier"] == "hot"
    assert events[0].attributes["exception.type"] == "TierUnavailableError"
    if traced.detailed:
        failed = next(c for c in traced.children(root) if c.name == "tiermem.hot.get")
        assert failed.status.status_code is StatusCode.ERROR
        assert any(e.name == "exception" for e in failed.events)
    else:
        assert root.attributes is not None and root.attributes["tiermem.hot.get"] == "error"
        assert "tiermem.hot.get" not in {c.name for c in traced.children(root)}
    assert root.status.status_code is not StatusCode.ERROR  # the read itself succeeded
    assert any(r.levelname == "WARNING" and "falling through" in r.getMessage() for r in caplog.records)
    assert sum(p.value for p in traced.metric_points("tiermem.fallthroughs")) >= 1


async def test_failing_durable_tier_records_exception_on_root(traced: Traced) -> None:
    traced.warm.down = True
    with pytest.raises(TierUnavailableError):  # a write whose outcome cannot be confirmed
        await traced.memory.set("k", "v")
    (root,) = traced.by_name("tiermem.set")
    assert root.status.status_code is StatusCode.ERROR
    exc_events = [e for e in root.events if e.name == "exception"]
    assert exc_events and exc_events[0].attributes is not None
    assert exc_events[0].attributes["exception.type"] == "tiermem.WriteOutcomeUnknownError"


async def test_set_attributes_and_compression_metrics(traced: Traced) -> None:
    text = "compress me please " * 1000
    await traced.memory.set("big", text)
    (root,) = traced.by_name("tiermem.set")
    assert root.attributes is not None
    assert root.attributes["tiermem.compressed"] is True
    assert 0 < root.attributes["tiermem.bytes"] < len(text)  # type: ignore[operator]
    bytes_in = sum(p.value for p in traced.metric_points("tiermem.compression.bytes_in"))
    bytes_out = sum(p.value for p in traced.metric_points("tiermem.compression.bytes_out"))
    assert bytes_in == len(text) and 0 < bytes_out < bytes_in / 10
    durations = traced.metric_points("tiermem.operation.duration")
    assert any(p.attributes["tiermem.tier"] == "warm" and p.count >= 1 for p in durations)


def _all_span_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([json.loads(s.to_json()) for s in spans])


async def test_raw_keys_never_recorded_by_default(traced: Traced) -> None:
    await traced.memory.set(SECRET_KEY, 1)
    await traced.memory.get(SECRET_KEY)
    await traced.memory.mget([SECRET_KEY, "other"])
    await traced.memory.delete(SECRET_KEY)
    traced.hot.down = True
    await traced.memory.get(SECRET_KEY)
    text = _all_span_text(traced.finished())
    assert "ada@example.com" not in text
    assert key_digest(SECRET_KEY) in text


async def test_raw_keys_when_opted_in(tmp_path: Path) -> None:
    t = _make(tmp_path, record_keys=True)
    async with t.memory:
        await t.memory.get(SECRET_KEY)
    assert SECRET_KEY in _all_span_text(t.finished())


async def test_circuit_state_gauge(traced: Traced) -> None:
    points = traced.metric_points("tiermem.circuit.state")
    assert {p.attributes["tiermem.tier"]: p.value for p in points} == {"hot": 0, "warm": 0, "cold": 0}


async def test_gauges_cover_every_open_client_on_a_provider(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def client(name: str) -> tuple[MemoryClient, WrappedStore]:
        hot = WrappedStore(LocalHotMemory(), Tier.HOT)
        memory = (
            MemoryBuilder()
            .with_hot(hot)  # type: ignore[arg-type]
            .with_warm(SqliteWarmMemory(tmp_path / f"{name}.db"))
            .with_telemetry(meter_provider=provider)
            .with_resilience(Tier.HOT, failure_threshold=1, reset_timeout=60)
            .build()
        )
        return memory, hot

    def gauge(name: str) -> dict[Any, Any]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            tuple(sorted(p.attributes.items())): p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        }

    first, _ = client("a")
    second, second_hot = client("b")
    async with first, second:
        await second.set("k", "v")
        second_hot.down = True
        await second.get("k")  # one failure opens the second client's hot circuit
        assert gauge("tiermem.circuit.state")[(("tiermem.tier", "hot"),)] == 2  # worst of both clients
        await second.aclose()
        assert gauge("tiermem.circuit.state")[(("tiermem.tier", "hot"),)] == 0  # closed clients drop out
