"""Where tiermem's time goes on the hot path (``--profile``).

Two views of a hot-hit ``get``:

* a layered breakdown: raw redis-py ``GET`` -> the ``RedisHotMemory`` adapter's ``get`` -> the
  ``MemoryClient.get`` on top of it, alternated over several rounds (medians), plus the CPU cost of
  each piece the client and adapter add (key validation, span and metrics bookkeeping, circuit
  breaker, ``asyncio.timeout``, the adapter's ``asynccontextmanager``, envelope parsing, decoding),
  each timed in isolation;
* a deterministic profile (cProfile, or pyinstrument when it is importable) of a loop of ``get``,
  ``mget`` and ``mset`` calls, listing the functions with the most own time.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks._embedded import EmbeddedBench
from benchmarks._harness import timer
from benchmarks._hot import TTL, HotBench
from benchmarks._payloads import small_message

__all__ = ["ProfileResult", "profile_embedded", "profile_hot"]


@dataclass(slots=True)
class ProfileResult:
    layers: list[tuple[str, float]] = field(default_factory=list)  # (layer, microseconds per get)
    pieces: list[tuple[str, float]] = field(default_factory=list)  # (piece, microseconds per call)
    profiles: dict[str, str] = field(default_factory=dict)  # operation -> profiler text
    # The embedded default: title -> [(layer, microseconds per call)], from the raw call upwards.
    embedded: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers_us": [{"layer": name, "us_per_get": round(us, 2)} for name, us in self.layers],
            "pieces_us": [{"piece": name, "us_per_call": round(us, 3)} for name, us in self.pieces],
            "profiles": self.profiles,
            "embedded_us": {
                title: [{"layer": name, "us_per_call": round(us, 2)} for name, us in layers]
                for title, layers in self.embedded.items()
            },
        }


def _sync_us(fn: Callable[[], Any], *, n: int) -> float:
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        timings.append((time.perf_counter() - start) / n)
    return statistics.median(timings) * 1e6


async def _async_us(fn: Callable[[], Awaitable[Any]], *, n: int) -> float:
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        timings.append((time.perf_counter() - start) / n)
    return statistics.median(timings) * 1e6


async def _layers(bench: HotBench, *, n: int, rounds: int) -> list[tuple[str, float]]:
    from tiermem import Tier, make_key

    client = bench.client
    key = bench.keys[0]
    mk = make_key(client.tenant, client.namespace, key)
    store: Any = client.tier_store(Tier.HOT)
    layers: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if bench.on_redis:
        raw_key = bench.raw_key(key)
        layers.append(("redis-py GET (raw)", lambda: bench.raw.get(raw_key)))
    else:
        data = bench.store
        raw_key = bench.raw_key(key)

        async def dict_get() -> Any:
            return data.get(raw_key)

        layers.append(("dict.get in a coroutine (raw)", dict_get))
    layers.append((f"{type(store).__name__}.get (adapter)", lambda: store.get(mk)))
    layers.append(("MemoryClient.get (client)", lambda: client.get(key)))
    samples: dict[str, list[float]] = {name: [] for name, _ in layers}
    for _ in range(rounds):
        for name, fn in layers:
            start = timer()
            for _ in range(n):
                await fn()
            samples[name].append((timer() - start) / n * 1e6)
    return [(name, statistics.median(values)) for name, values in samples.items()]


async def _pieces(bench: HotBench, *, quick: bool) -> list[tuple[str, float]]:
    from opentelemetry.trace import get_tracer_provider

    from tiermem import Codec, make_key
    from tiermem._breaker import CircuitBreaker
    from tiermem._codec import Record
    from tiermem._errors import key_digest
    from tiermem._instrumentation import Telemetry
    from tiermem._keys import redis_key
    from tiermem._protocols import Tier

    client = bench.client
    telemetry = Telemetry()
    codec = Codec()
    record, _ = codec.encode(small_message(0), expires_at=time.time() + TTL)
    data = record.to_bytes()
    mk = make_key(client.tenant, client.namespace, bench.keys[0])
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=10.0)
    attrs = {"tiermem.tier": "hot", "db.system": "redis"}
    n = 200 if quick else 20_000

    def span_off() -> None:
        with telemetry.span("tiermem.get", attrs):
            pass

    def breaker_round() -> None:
        breaker.allow()
        breaker.success()

    async def timeout_block() -> None:
        async with asyncio.timeout(2.0):  # noqa: ASYNC100 - the enter/exit cost is the point
            pass

    async def noop() -> None:
        return None

    pieces = [
        (
            "make_key (validate tenant, namespace, key)",
            _sync_us(lambda: make_key("default", "default", "k00001"), n=n),
        ),
        ("redis_key (encode the Redis key)", _sync_us(lambda: redis_key(mk, "tmbench"), n=n)),
        ("Telemetry.span, tracing off (x2 per get)", _sync_us(span_off, n=n)),
        (
            "  of which: opentelemetry get_tracer_provider() (reads os.environ)",
            _sync_us(get_tracer_provider, n=n),
        ),
        (
            "key_digest (sha256 for span attributes; computed with tracing off too)",
            _sync_us(lambda: key_digest("k00001"), n=n),
        ),
        (
            "Telemetry.record: histogram + OTel counters (per tier call)",
            _sync_us(lambda: telemetry.record(Tier.HOT, "get", "hit", 1e-4), n=n),
        ),
        ("CircuitBreaker.allow + success", _sync_us(breaker_round, n=n)),
        ("Record.from_bytes (300 B envelope)", _sync_us(lambda: Record.from_bytes(data), n=n)),
        ("Codec.decode (CRC32 + orjson, 300 B)", _sync_us(lambda: codec.decode(record), n=n)),
        ("asyncio.timeout(2.0) enter/exit", await _async_us(timeout_block, n=n)),
        ("await of a no-op coroutine (reference)", await _async_us(noop, n=n)),
    ]
    store: Any = client.tier_store(Tier.HOT)
    if hasattr(store, "_call"):

        async def adapter_call() -> None:
            async with store._call("get", mk):
                pass

        pieces.append(("RedisHotMemory._call (asynccontextmanager)", await _async_us(adapter_call, n=n)))
    return pieces


def _profile_text(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    header = next((line for line in lines if "function calls" in line), "").strip()
    return "\n".join([header, *lines[start:]]).rstrip()


async def _profile_ops(bench: HotBench, *, n: int) -> dict[str, str]:
    client = bench.client
    keys = bench.keys
    batch = keys[: bench.batch]
    items = {f"p{i:05d}": small_message(i) for i in range(bench.batch)}

    async def gets() -> None:
        for i in range(n):
            await client.get(keys[i % len(keys)])

    async def mgets() -> None:
        for _ in range(max(1, n // 200)):
            await client.mget(batch)

    async def msets() -> None:
        for _ in range(max(1, n // 500)):
            await client.mset(items, ttl=TTL)

    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None

    results: dict[str, str] = {}
    for name, body in (("get", gets), ("mget", mgets), ("mset", msets)):
        await body()  # warm
        profile = cProfile.Profile()
        profile.enable()
        await body()
        profile.disable()
        results[f"{name} (cProfile, by own time)"] = _profile_text(profile, 18)
        if Profiler is not None:
            profiler = Profiler(interval=0.0001, async_mode="disabled")
            profiler.start()
            await body()
            profiler.stop()
            results[f"{name} (pyinstrument)"] = profiler.output_text(
                unicode=False, color=False, show_all=False
            )
    return results


async def _alternate(
    layers: list[tuple[str, Callable[[int], Any]]], *, n: int, rounds: int
) -> list[tuple[str, float]]:
    """Median microseconds per call of each layer, the layers run alternately round by round.

    A layer's callable takes the call number and returns an awaitable, or ``None`` for a
    synchronous call that already ran.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in layers}
    for _ in range(rounds):
        for name, fn in layers:
            start = timer()
            for i in range(n):
                pending = fn(i)
                if pending is not None:
                    await pending
            samples[name].append((timer() - start) / n * 1e6)
    return [(name, statistics.median(values)) for name, values in samples.items()]


async def profile_embedded(result: ProfileResult, bench: EmbeddedBench, *, quick: bool) -> None:
    """Where an embedded ``get``/``set`` spends its time: raw sqlite3, the adapter, the client."""
    from tiermem import Tier, make_key

    keys = bench.keys
    count = len(keys)
    values = [small_message(i) for i in range(count)]
    warm_only = bench.warm_only
    mks = [make_key(warm_only.tenant, warm_only.namespace, key) for key in keys]
    records = [await bench.warm_store.get(mk) for mk in mks]
    n, rounds = (20, 1) if quick else (400, 7)
    raw_os, raw_fsync = bench.raw["os"], bench.raw["fsync"]
    select = "SELECT data, etag FROM tiermem_items WHERE tenant=? AND ns=? AND key=?"
    upsert = "INSERT OR REPLACE INTO tiermem_items VALUES (?,?,?,?,?,?)"
    rows = [("t", "n", key, data, None, "e") for key, data in zip(keys, bench.encoded, strict=True)]

    def raw_commit(conn: Any) -> Callable[[int], None]:
        def run(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(upsert, rows[i % count])
            conn.execute("COMMIT")

        return run

    stores = {d: c.tier_store(Tier.WARM) for d, c in bench.clients.items()}
    writer: Any = bench.warm_store._writer
    result.embedded["get"] = await _alternate(
        [
            (
                "sqlite3 SELECT (raw, same process)",
                lambda i: raw_os.execute(select, ("t", "n", keys[i % count])).fetchone() and None,
            ),
            (
                "SqliteWarmMemory.get (inline read on the loop)",
                lambda i: bench.warm_store.get(mks[i % count]),
            ),
            ("warm-only MemoryClient.get (+ client)", lambda i: warm_only.get(keys[i % count])),
            ("embedded MemoryClient.get (hot hit)", lambda i: bench.clients["os"].get(keys[i % count])),
        ],
        n=n,
        rounds=rounds,
    )
    result.embedded["set, durability=os"] = await _alternate(
        [
            ("sqlite3 insert+commit NORMAL (raw)", raw_commit(raw_os)),
            (
                "SqliteWarmMemory.set (inline commit)",
                lambda i: stores["os"].set(mks[i % count], records[i % count]),
            ),
            (
                "warm-only MemoryClient.set (+ client)",
                lambda i: warm_only.set(keys[i % count], values[i % count]),
            ),
            (
                "embedded MemoryClient.set (+ hot tier)",
                lambda i: bench.clients["os"].set(keys[i % count], values[i % count]),
            ),
        ],
        n=n,
        rounds=rounds,
    )
    result.embedded["set, durability=fsync"] = await _alternate(
        [
            ("sqlite3 insert+commit FULL (raw)", raw_commit(raw_fsync)),
            (
                "SqliteWarmMemory.set (writer thread, group of one)",
                lambda i: stores["fsync"].set(mks[i % count], records[i % count]),
            ),
            (
                "embedded MemoryClient.set",
                lambda i: bench.clients["fsync"].set(keys[i % count], values[i % count]),
            ),
        ],
        n=max(5, n // 8),
        rounds=rounds,
    )
    result.embedded["the writer thread alone"] = await _alternate(
        [
            ("round trip to the writer thread (no statement)", lambda i: writer.call(lambda conn: None)),
            (
                "empty group: BEGIN IMMEDIATE + COMMIT, no change",
                lambda i: writer.submit(lambda conn: None, savepoint=False),
            ),
        ],
        n=n,
        rounds=rounds,
    )
    for name, body in (
        ("warm-only get", lambda i: warm_only.get(keys[i % count])),
        ("warm-only set, durability=os", lambda i: warm_only.set(keys[i % count], values[i % count])),
    ):
        profile = cProfile.Profile()
        profile.enable()
        for i in range(n * 2):
            await body(i)
        profile.disable()
        result.profiles[f"{name} (cProfile, by own time)"] = _profile_text(profile, 14)


async def profile_hot(bench: HotBench, *, quick: bool) -> ProfileResult:
    """Layers, pieces and profiles of the hot path, on the bench's client and backend."""
    result = ProfileResult()
    result.layers = await _layers(bench, n=50 if quick else 2000, rounds=1 if quick else 9)
    result.pieces = await _pieces(bench, quick=quick)
    result.profiles = await _profile_ops(bench, n=100 if quick else 3000)
    return result
