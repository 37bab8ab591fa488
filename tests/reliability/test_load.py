"""Load: 64 concurrent tasks mixing get/set/mget/mset/delete over a small, colliding key space against
real Redis + Cosmos stand-in + Azurite, for a bounded time; then every key is checked against the
history of acknowledged operations: zero lost or stale values, hot and durable tiers in agreement."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from typing import Any

import pytest

from tests.reliability.conftest import FIGURES, StackFactory
from tests.reliability.history import DELETED, History
from tiermem import BatchWriteError, TierMemError

pytestmark = [
    pytest.mark.redis,
    pytest.mark.cosmos,
    pytest.mark.blob,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

TASKS = 64
KEYS = [f"key:{i}" for i in range(120)]
DURATION = float(os.environ.get("TIERMEM_LOAD_SECONDS", "12"))


def _value(key: str, task: int, n: int, rng: random.Random) -> Any:
    if rng.random() < 0.03:  # some large values: cold + warm pointer
        return {"key": key, "t": task, "n": n, "blob": rng.randbytes(80 * 1024).hex()}
    return {"key": key, "t": task, "n": n}


def _check_read(key: str, value: Any, problems: list[str]) -> None:
    # A read may return any value ever written to *this* key, or nothing; never another key's value.
    if value is not None and (not isinstance(value, dict) or value.get("key") != key):
        problems.append(f"{key} read a foreign value {str(value)[:80]}")


async def _worker(
    memory: Any, history: History, task: int, deadline: float, ops: Counter[str], problems: list[str]
) -> None:
    rng = random.Random(task)
    n = 0
    while history.now() < deadline:
        n += 1
        roll = rng.random()
        if roll < 0.35:
            key = rng.choice(KEYS)
            _check_read(key, await memory.get(key), problems)
            ops["get"] += 1
        elif roll < 0.60:
            key = rng.choice(KEYS)
            value = _value(key, task, n, rng)
            start = history.now()
            try:
                await memory.set(key, value, ttl=3600)
            except TierMemError:
                history.record(key, value, start, acked=False)
                ops["set_failed"] += 1
            else:
                history.record(key, value, start, acked=True)
            ops["set"] += 1
        elif roll < 0.72:
            keys = rng.sample(KEYS, 5)
            for key, value in (await memory.mget(keys)).items():
                _check_read(key, value, problems)
            ops["mget"] += 1
        elif roll < 0.84:
            keys = rng.sample(KEYS, 3)
            items = {k: _value(k, task, n, rng) for k in keys}
            start = history.now()
            try:
                await memory.mset(items)
            except BatchWriteError as exc:
                for k, v in items.items():
                    history.record(k, v, start, acked=k in exc.written)
                ops["mset_partial"] += 1
            except TierMemError:
                for k, v in items.items():
                    history.record(k, v, start, acked=False)
                ops["mset_failed"] += 1
            else:
                for k, v in items.items():
                    history.record(k, v, start, acked=True)
            ops["mset"] += 1
        else:
            key = rng.choice(KEYS)
            start = history.now()
            try:
                await memory.delete(key)
            except TierMemError:
                history.record(key, DELETED, start, acked=False)
                ops["delete_failed"] += 1
            else:
                history.record(key, DELETED, start, acked=True)
            ops["delete"] += 1


async def test_concurrent_mixed_load_loses_nothing(make_stack: StackFactory) -> None:
    stack = await make_stack()
    memory = stack.memory
    history = History()
    ops: Counter[str] = Counter()
    problems: list[str] = []
    deadline = history.now() + DURATION
    await asyncio.gather(*(_worker(memory, history, t, deadline, ops, problems) for t in range(TASKS)))
    assert problems == []

    lost: list[str] = []
    for key in KEYS:
        allowed = history.allowed(key)
        cascade = await memory.get(key, DELETED)
        durable_entry = await memory.get_entry(key, consistent=True)
        durable = DELETED if durable_entry is None else durable_entry.value
        if cascade not in allowed or durable not in allowed or cascade != durable:
            lost.append(key)
    total = sum(v for k, v in ops.items() if not k.endswith(("_failed", "_partial")))
    FIGURES["operations"] += total
    FIGURES["load_operations"] += total
    FIGURES["writes_verified"] += history.acknowledged_writes
    FIGURES["values_lost"] += len(lost)
    assert lost == []
    assert ops["set"] > 0 and ops["mset"] > 0 and ops["delete"] > 0 and ops["mget"] > 0
    stats = memory.stats()
    assert stats.tiers["hot"]["hits"] > 0  # the hot tier really served reads during the run
