"""Tracing cost on a hot-hit ``get``: off, OTel API only, and OTel SDK with a batch processor.

The SDK is measured in both span shapes (ADR 0016): the default (one span per hot hit, the hot call an
attribute) and ``detailed_spans=True`` (a child span per tier call: two spans per hot hit).

* off: the builder's default (the global provider, which is the API's no-op proxy here: no SDK is
  installed in this process), so tiermem skips span creation entirely.
* API only: a ``NoOpTracerProvider`` passed to ``with_telemetry``, so every span goes through the
  OpenTelemetry API's no-op path (what a library pays when an application has the API but no SDK).
* SDK: a real ``TracerProvider`` (always-on sampler) with a ``BatchSpanProcessor`` whose exporter
  drops the spans, so export I/O is not measured but span creation, attributes and queueing are.

The three clients are alike otherwise (same hot backend, own connection pools of the same size).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from benchmarks._harness import BenchmarkError, Comparison, Scenario, Target, Variant, timer
from benchmarks._hot import TTL, hot_client
from benchmarks._payloads import small_message

__all__ = ["tracing_scenario"]


def _discarding_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardExporter(SpanExporter):
        """Accepts every batch and keeps nothing."""

        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    return provider


async def tracing_scenario(stack: AsyncExitStack, *, redis_url: str | None, keys: int) -> Scenario:
    from opentelemetry.trace import NoOpTracerProvider

    sdk = _discarding_provider()
    stack.callback(sdk.shutdown)  # runs after the clients close (LIFO): flushes the last batch
    clients = {
        "tracing off": hot_client(redis_url),
        "API only (no SDK)": hot_client(redis_url, tracer_provider=NoOpTracerProvider()),
        "SDK + BatchSpanProcessor": hot_client(redis_url, tracer_provider=sdk),
        "SDK, detailed_spans": hot_client(redis_url, tracer_provider=sdk, detailed_spans=True),
    }
    names = [f"t{i:05d}" for i in range(keys)]
    values = {name: small_message(i) for i, name in enumerate(names)}
    for client in clients.values():
        stack.push_async_callback(client.aclose)
        await client.mset(values, ttl=TTL)

    def variant(name: str) -> Variant:
        get = clients[name].get

        async def run(n: int) -> float:
            value: Any = None
            start = timer()
            for i in range(n):
                value = await get(names[i % keys])
            elapsed = timer() - start
            if value is None:
                raise BenchmarkError(f"{name}: hot get missed")
            return elapsed

        return Variant(name, run)

    on_redis = redis_url is not None
    note = (
        ""
        if on_redis
        else "embedded hot tier: a get costs microseconds, so span cost dominates; targets are for Redis"
    )
    return Scenario(
        "tracing",
        "tracing",
        [variant(name) for name in clients],
        [
            Comparison(
                "tracing.api",
                "hot get, OTel API only (no SDK) vs tracing off",
                "API only (no SDK)",
                "tracing off",
                Target("max_ratio", 1.05, "<= +5%") if on_redis else None,
                note=note or "NoOpTracerProvider passed to with_telemetry: no-op spans",
            ),
            Comparison(
                "tracing.sdk",
                "hot get, OTel SDK + BatchSpanProcessor vs tracing off",
                "SDK + BatchSpanProcessor",
                "tracing off",
                Target("max_ratio", 1.35, "<= +35%") if on_redis else None,
                note=note or "always-on sampler, exporter discards: 1 recorded span per get",
            ),
            Comparison(
                "tracing.sdk.detailed",
                "hot get, OTel SDK with detailed_spans=True vs tracing off",
                "SDK, detailed_spans",
                "tracing off",
                None,
                note=note or "a child span per tier call: 2 recorded spans per get",
            ),
        ],
    )
