"""Memory per cached item: the in-process hot tier against cashews ``mem://`` and a plain ``dict``.

Each variant gets a fresh, empty store (made before the first snapshot, so its fixed cost is not
counted per item), then ``tracemalloc`` snapshots around storing ``items`` 300 B JSON values with
a ttl, each after a ``gc.collect()``: the snapshot difference divided by ``items`` is what one item
keeps alive. Keys and values are built inside the traced window and the caller's references are
dropped before the second snapshot, so a store is charged for what it retains: tiermem its encoded
records, cashews the value objects it holds by reference, the floor ``dict`` the JSON bytes.

``tracemalloc`` sees allocations, not object sizes: a ``bytes`` returned by ``orjson.dumps`` keeps
the ~4 KiB buffer it was written into (``sys.getsizeof`` says ~400 B; the process's RSS grows by
~4 KiB), so a store that keeps those objects is charged ~4 KiB per small value, which is what it costs.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Variant
from benchmarks._hot import TTL, hot_client
from benchmarks._payloads import small_message

__all__ = ["ROW_IDS", "memory_scenario"]

ROW_IDS = ("inproc.memory.cashews", "inproc.memory.dict")

Fill = Callable[[list[str], list[Any]], Awaitable[None]]
"""Store the values under the keys; the store it fills was opened before the first snapshot."""
Opener = Callable[[], Awaitable[tuple[Fill, Callable[[], Awaitable[None]]]]]
"""Open a fresh, empty store: return its fill and its close."""

_IGNORED = (tracemalloc.Filter(False, tracemalloc.__file__),)  # the snapshot code's own objects


def _traced_bytes(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.filter_traces(_IGNORED).statistics("filename"))


def _retained(open_store: Opener) -> Callable[[int], Awaitable[float]]:
    """A variant's run: the bytes ``n`` stored items retain, measured with ``tracemalloc``."""

    async def run(n: int) -> float:
        fill, close = await open_store()
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            gc.collect()
            before = _traced_bytes(tracemalloc.take_snapshot())
            keys = [f"m{i:06d}" for i in range(n)]
            values = [small_message(30_000 + i) for i in range(n)]
            await fill(keys, values)
            del keys, values  # the store keeps what it needs; the caller keeps nothing
            gc.collect()
            after = _traced_bytes(tracemalloc.take_snapshot())
        finally:
            if started:
                tracemalloc.stop()
            await close()
        if after <= before:
            raise BenchmarkError(f"storing {n} items retained no memory ({after - before} bytes)")
        return float(after - before)

    return run


async def _open_tiermem() -> tuple[Fill, Callable[[], Awaitable[None]]]:
    client = hot_client(None)

    async def fill(keys: list[str], values: list[Any]) -> None:
        for key, value in zip(keys, values, strict=True):
            await client.set(key, value, ttl=TTL)
        if await client.get(keys[-1]) != values[-1]:
            raise BenchmarkError("tiermem hot-only client lost a stored item")

    return fill, client.aclose


async def _open_cashews() -> tuple[Fill, Callable[[], Awaitable[None]]]:
    from cashews import Cache

    cache = Cache()
    cache.setup("mem://", size=1_000_000)  # holds every item: nothing is evicted while measuring

    async def fill(keys: list[str], values: list[Any]) -> None:
        for key, value in zip(keys, values, strict=True):
            await cache.set(key, value, expire=TTL)
        if await cache.get(keys[-1]) != values[-1]:
            raise BenchmarkError("cashews mem:// lost a stored item")

    return fill, cache.close


async def _open_dict() -> tuple[Fill, Callable[[], Awaitable[None]]]:
    store: dict[str, bytes] = {}

    async def fill(keys: list[str], values: list[Any]) -> None:
        for key, value in zip(keys, values, strict=True):
            # copied to an exact-size bytes: orjson's output keeps its ~4 KiB write buffer allocated
            store[key] = bytes(memoryview(orjson.dumps(value)))

    async def close() -> None:
        store.clear()

    return fill, close


def memory_scenario(*, items: int) -> Scenario:
    """``items`` values of ~300 B JSON through tiermem's hot-only client, cashews ``mem://`` and a dict."""
    label = f"in-process hot memory per cached item ({items:,} x 300 B JSON, ttl)"
    variants = [
        Variant("tiermem", _retained(_open_tiermem), max_ops=items),
        Variant("dict of bytes", _retained(_open_dict), max_ops=items),
    ]
    comparisons = [
        Comparison(
            "inproc.memory.dict",
            f"{label} vs a dict of JSON bytes",
            "tiermem",
            "dict of bytes",
            note="floor: exact-size JSON bytes alone, no TTL, LRU, envelope or stats",
        )
    ]
    unavailable: list[Row] = []
    try:
        import cashews  # noqa: F401
    except ImportError as exc:
        unavailable.append(
            Row(
                "inproc.memory.cashews",
                "hot",
                f"{label} vs cashews",
                None,
                None,
                na_reason=f"cashews is not installed ({exc.name})",
                baseline_name="cashews",
            )
        )
    else:
        variants.append(Variant("cashews mem://", _retained(_open_cashews), max_ops=items))
        comparisons.insert(
            0,
            Comparison(
                "inproc.memory.cashews",
                f"{label} vs cashews",
                "tiermem",
                "cashews mem://",
                note="issue 17 gives no target; cashews holds the value objects, tiermem encoded records",
            ),
        )
    return Scenario("inproc.memory", "hot", variants, comparisons, unavailable, unit="B", items=items)
