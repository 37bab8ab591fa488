"""Fault injection against real processes: redis-server killed and restarted, connections dropped,
latency and stalls through a loopback proxy, Azurite unreachable and stopped.

Each test checks that the workload continues where the design says it should (hot down: reads fall
through, writes still commit), that errors are typed where they must be (durable tier down), that
recovery happens, and that every acknowledged write is readable afterwards with its last value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest

from tests.reliability.conftest import FIGURES, StackFactory
from tests.reliability.history import DELETED, History
from tests.reliability.proxy import Mode
from tests.services.azurite import Azurite
from tiermem import RecordKind, Tier, TierMemError, TierUnavailableError, make_key

pytestmark = [
    pytest.mark.redis,
    pytest.mark.cosmos,
    pytest.mark.blob,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]


async def _verify(memory: Any, history: History, keys: list[str]) -> int:
    """Every key holds an allowed value, in the durable tier and through the cascade alike."""
    lost = 0
    for key in keys:
        allowed = history.allowed(key)
        via_cascade = await memory.get(key, DELETED)
        durable = await memory.get_entry(key, consistent=True)
        via_durable = DELETED if durable is None else durable.value
        if via_cascade not in allowed or via_durable not in allowed or via_cascade != via_durable:
            lost += 1
    FIGURES["writes_verified"] += history.acknowledged_writes
    FIGURES["values_lost"] += lost
    return lost


async def _owned_key_workload(
    memory: Any,
    history: History,
    stop: asyncio.Event,
    worker: int,
    keys: list[str],
    errors: list[BaseException],
) -> int:
    """One task per key set: sequential writes then reads, so read-your-writes must always hold."""
    n = 0
    while not stop.is_set():
        key = keys[n % len(keys)]
        value = {"key": key, "w": worker, "n": n}
        start = history.now()
        try:
            await memory.set(key, value)
        except TierMemError as exc:
            history.record(key, value, start, acked=False)
            errors.append(exc)
        else:
            history.record(key, value, start, acked=True)
            got = await memory.get(key)
            if got != value:
                errors.append(AssertionError(f"read-your-writes broken for {key}: {got} != {value}"))
        n += 1
        await asyncio.sleep(0)
    FIGURES["operations"] += 2 * n
    return n


async def _wait_until(predicate: Any, limit: float = 15.0) -> None:
    """Poll an async predicate until it holds, failing after ``limit`` seconds (never a fixed sleep)."""
    async with asyncio.timeout(limit):
        while not await predicate():  # noqa: ASYNC110 - the condition is remote state, not an Event
            await asyncio.sleep(0.05)


async def test_redis_killed_and_restarted_mid_workload(make_stack: StackFactory) -> None:
    stack = await make_stack(reset_timeout=0.3)
    memory = stack.memory
    history = History()
    stop = asyncio.Event()
    errors: list[BaseException] = []
    keys = [[f"w{w}:k{i}" for i in range(10)] for w in range(8)]
    tasks = [
        asyncio.create_task(_owned_key_workload(memory, history, stop, w, keys[w], errors)) for w in range(8)
    ]
    await _wait_until(lambda: _acked_at_least(history, 200))
    await asyncio.to_thread(stack.redis.kill)  # a crash, not a clean shutdown
    FIGURES["faults_injected"] += 1
    before = history.acknowledged_writes
    await _wait_until(lambda: _acked_at_least(history, before + 200))  # durable writes continue
    assert memory.stats().fallthroughs > 0
    await asyncio.to_thread(stack.redis.restart)
    await _wait_until(lambda: _hot_serving(memory))  # the breaker half-opens and closes again
    after = history.acknowledged_writes
    await _wait_until(lambda: _acked_at_least(history, after + 200))
    stop.set()
    await asyncio.gather(*tasks)
    assert errors == []  # hot down never surfaced as an error, and read-your-writes held throughout
    assert await _verify(memory, history, [k for ks in keys for k in ks]) == 0
    assert memory.stats().tiers["hot"]["circuit"] == "closed"


async def _acked_at_least(history: History, n: int) -> bool:
    return history.acknowledged_writes >= n


async def _hot_serving(memory: Any) -> bool:
    await memory.set("probe", "p")
    await memory.get("probe")  # a read fills hot (writes only invalidate it)
    entry = await memory.get_entry("probe")
    return entry is not None and entry.tier is Tier.HOT


async def test_writes_during_hot_partition_never_served_stale_after_recovery(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(proxy={Tier.HOT}, reset_timeout=0.2)
    memory = stack.memory
    proxy = stack.proxies[Tier.HOT]
    keys = [f"k{i}" for i in range(50)]
    await memory.mset({k: {"v": 1} for k in keys})
    proxy.set_mode(Mode.DROP)  # Redis keeps the v1 copies; we just cannot reach it
    FIGURES["faults_injected"] += 1
    for k in keys:
        await memory.set(k, {"v": 2})  # durable write succeeds; hot invalidation is remembered
    assert memory.stats().dirty_keys == len(keys)
    for k in keys[:5]:
        assert await memory.get(k) == {"v": 2}  # served from warm while hot is unreachable
    proxy.set_mode(Mode.PASS)
    await _wait_until(lambda: _no_dirty(memory))
    assert await memory.mget(keys) == {k: {"v": 2} for k in keys}
    # And the raw Redis copies of v1 are gone (fenced, or replaced by promotions of v2).
    for k in keys:
        rec = await stack.hot.get(make_key("default", "default", k))
        assert rec is None or rec.kind is RecordKind.FENCE or rec.payload == b'{"v":2}'
    FIGURES["writes_verified"] += 2 * len(keys)
    FIGURES["operations"] += 4 * len(keys)


async def _no_dirty(memory: Any) -> bool:
    await memory.get("any")  # a read flushes pending invalidations once hot answers
    return bool(memory.stats().dirty_keys == 0)


async def test_hot_stall_falls_through_within_the_timeout(make_stack: StackFactory) -> None:
    stack = await make_stack(proxy={Tier.HOT}, hot_timeout=0.3, failure_threshold=3)
    memory = stack.memory
    await memory.set("k", "v")
    stack.proxies[Tier.HOT].set_mode(Mode.STALL)
    FIGURES["faults_injected"] += 1
    for _ in range(5):  # a hung Redis: reads still answer from warm; the breaker then skips hot
        assert await memory.get("k") == "v"
    assert memory.stats().tiers["hot"]["circuit"] in ("open", "half-open")
    await memory.set("k", "v2")  # writes still commit durably
    stack.proxies[Tier.HOT].set_mode(Mode.PASS)
    await _wait_until(lambda: _hot_serving(memory))
    assert await memory.get("k") == "v2"
    FIGURES["operations"] += 8


async def test_durable_stall_raises_typed_error_quickly(make_stack: StackFactory) -> None:
    stack = await make_stack(proxy={Tier.WARM}, warm_timeout=1.0)
    memory = stack.memory
    await memory.set("k", "v")
    stack.proxies[Tier.WARM].set_mode(Mode.STALL)
    FIGURES["faults_injected"] += 1
    with pytest.raises(TierUnavailableError) as info:
        await memory.set("k", "never acknowledged")
    assert info.value.tier is Tier.WARM
    stack.proxies[Tier.WARM].set_mode(Mode.PASS)
    entry = await memory.get_entry("k", consistent=True)
    assert entry is not None
    # The failed write may or may not have landed (its outcome is unknown), but hot must agree with warm.
    assert await memory.get("k") == entry.value
    FIGURES["operations"] += 4


async def test_durable_latency_slows_but_loses_nothing(make_stack: StackFactory) -> None:
    stack = await make_stack(proxy={Tier.WARM, Tier.COLD})
    stack.proxies[Tier.WARM].set_mode(Mode.LATENCY, latency=0.02)
    stack.proxies[Tier.COLD].set_mode(Mode.LATENCY, latency=0.02)
    FIGURES["faults_injected"] += 2
    memory = stack.memory
    history = History()
    values = {f"k{i}": {"i": i, "pad": "x" * (i * 500)} for i in range(30)}
    for key, value in values.items():
        start = history.now()
        await memory.set(key, value)
        history.record(key, value, start, acked=True)
    big = os.urandom(100 * 1024)  # above warm_max_bytes: cold + pointer, through the slow link
    start = history.now()
    await memory.set("big", big)
    history.record("big", big, start, acked=True)
    assert await _verify(memory, history, [*values, "big"]) == 0
    FIGURES["operations"] += 2 * len(values) + 2


async def test_blob_unreachable_then_back(make_stack: StackFactory) -> None:
    stack = await make_stack(proxy={Tier.COLD})
    memory = stack.memory
    big = os.urandom(100 * 1024)
    await memory.set("archived", big)
    stack.proxies[Tier.COLD].set_mode(Mode.DROP)
    FIGURES["faults_injected"] += 1
    with pytest.raises(TierUnavailableError) as info:
        await memory.set("big2", os.urandom(100 * 1024))  # cold write first: nothing reported written
    assert info.value.tier is Tier.COLD
    pointer = await stack.warm.get(make_key("default", "default", "big2"))
    assert pointer is None  # no warm pointer to a blob that was never written
    await memory.set("small", {"still": "works"})  # values that fit warm do not need Blob
    assert await memory.get("small") == {"still": "works"}
    await stack.hot.mdelete([make_key("default", "default", "archived")])
    with pytest.raises(TierUnavailableError):
        await memory.get("archived")  # the value lives only in Blob: a typed error, not None
    stack.proxies[Tier.COLD].set_mode(Mode.PASS)
    await _wait_until(lambda: _readable(memory, "archived", big))
    FIGURES["operations"] += 6
    FIGURES["writes_verified"] += 2


async def _readable(memory: Any, key: str, value: Any) -> bool:
    with contextlib.suppress(TierUnavailableError):
        return bool(await memory.get(key) == value)
    return False


async def test_azurite_stopped(make_stack: StackFactory, cosmos_server: Any) -> None:
    azurite = await asyncio.to_thread(Azurite.start)
    try:
        factory = StackFactory(make_stack.redis, cosmos_server, azurite)
        stack = await factory()
        memory = stack.memory
        await memory.set("fits-warm", "ok")
        await asyncio.to_thread(azurite.kill)
        FIGURES["faults_injected"] += 1
        with pytest.raises(TierUnavailableError) as info:
            await memory.set("large", os.urandom(100 * 1024))
        assert info.value.tier is Tier.COLD
        assert await memory.get("fits-warm") == "ok"
        with pytest.raises(TierUnavailableError):
            await memory.set("pinned", "archive", tier=Tier.COLD)
        warm_rec = await stack.warm.get(make_key("default", "default", "pinned"))
        assert warm_rec is None or warm_rec.kind is not RecordKind.POINTER
        FIGURES["operations"] += 4
        await factory.close()
    finally:
        await asyncio.to_thread(azurite.stop)
