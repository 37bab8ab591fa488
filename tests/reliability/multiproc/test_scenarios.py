"""Multi-process scenarios, one per finding of issue 12, against real Redis, Cosmos stand-in and Azurite.

Each scenario forces the interleaving that exposes its finding (a fault proxy that holds one process's
bytes, a hot outage with the breaker open, a paused server), records every operation of every process,
and asserts that the checker finds nothing. Scenarios that find violations with today's client are
strict xfails raising :class:`ViolationsFound`: they turn the run red once the finding is fixed (remove
the marker then), and any other error (a precondition of the forcing that did not hold) fails as usual.
``TIERMEM_SOAK=1`` multiplies rounds and durations; ``TIERMEM_STALENESS_BOUND`` sets the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.reliability.multiproc.checker import TOMBSTONE, Kind
from tests.reliability.multiproc.conftest import Runs
from tests.reliability.multiproc.harness import BOUND, SCALE, Run, ViolationsFound, WorkerProcess
from tests.reliability.multiproc.history import Op
from tests.reliability.proxy import Mode
from tiermem import Tier

pytestmark = [
    pytest.mark.redis,
    pytest.mark.cosmos,
    pytest.mark.blob,
    pytest.mark.slow,
    pytest.mark.timeout(300 * SCALE),
]

READS = {"get": 1.0}


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=ViolationsFound, reason=reason)


async def wait_for(predicate: Callable[[], Awaitable[bool]], limit: float = 15.0, what: str = "") -> None:
    """Poll until ``predicate`` holds; a forcing step that never happens fails the test (not xfail)."""
    try:
        async with asyncio.timeout(limit):
            while not await predicate():  # noqa: ASYNC110 - the condition is state in another process
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise RuntimeError(f"forcing step did not happen within {limit}s: {what}") from None


async def read_for(seconds: float, keys: list[str], *readers: WorkerProcess, interval: float = 0.02) -> None:
    """Every reader reads random keys of ``keys`` for ``seconds``."""
    for r in readers:
        await r.call("loop", name="read", mix=READS, keys=keys, interval=interval)
    await asyncio.sleep(seconds)
    for r in readers:
        await r.call("stop", name="read")


async def barrier_rounds(run: Run, a: WorkerProcess, b: WorkerProcess, op_b: str, keys: list[str]) -> None:
    """Rounds where A sets and B runs ``op_b`` on the same key at the same instant (a start time)."""
    for key in keys:
        at = time.monotonic() + 0.05
        await asyncio.gather(a.call("set", key=key, at=at), b.call(op_b, key=key, at=at))


# -- concurrent writers -------------------------------------------------------------------------------


@xfail("issue 12: concurrent set/set from two processes leaves hot holding the older value for hot_ttl")
async def test_concurrent_set_set_hot_converges(runs: Runs) -> None:
    run = await runs.azure("set_set")
    slow_hot = {"socket_timeout": 10.0, "socket_connect_timeout": 2.0, "retries": 0}
    a, b, r = await asyncio.gather(
        run.worker(
            "A",
            proxy={Tier.HOT},
            redis_options=slow_hot,
            resilience={**run.base.resilience, "hot": {"timeout": 10.0}},
        ),
        run.worker("B"),
        run.worker("R"),
    )
    forced = [f"forced{i}" for i in range(3 * SCALE)]
    hot_a = run.proxy("A", Tier.HOT)
    for key in forced:
        # A's durable write lands, its hot write is held; B writes durable and hot; then A's hot write lands.
        hot_a.set_mode(Mode.STALL)
        pending = a.submit("set", key=key)

        async def a_is_durable(key: str = key) -> bool:
            return str(await run.durable_value(key)).startswith("A:")

        await wait_for(a_is_durable, what="A's durable write")
        assert (await b.call("set", key=key))["outcome"] == "ok"
        hot_a.set_mode(Mode.PASS)
        assert (await pending)["outcome"] == "ok"
    raced = [f"raced{i}" for i in range(20 * SCALE)]
    await barrier_rounds(run, a, b, "set", raced)
    keys = forced + raced
    await read_for(BOUND + 1.0, keys, r, a, b)
    await run.stop_workers()
    run.check(await run.end_state(keys))


@xfail("issue 12: a delete racing another process's set leaves hot serving a value the durable tier deleted")
async def test_concurrent_set_delete_hot_converges(runs: Runs) -> None:
    run = await runs.azure("set_delete")
    a, b, r = await asyncio.gather(run.worker("A"), run.worker("B", proxy={Tier.WARM}), run.worker("R"))
    forced = [f"forced{i}" for i in range(3 * SCALE)]
    warm_b = run.proxy("B", Tier.WARM)
    for key in forced:
        # B's hot tombstone lands and its durable delete is held; A writes durable and hot; B's delete lands.
        warm_b.set_mode(Mode.STALL)
        pending = b.submit("delete", key=key)

        async def tombstoned(key: str = key) -> bool:
            return await run.hot_value(key) == TOMBSTONE

        await wait_for(tombstoned, what="B's hot tombstone")
        assert (await a.call("set", key=key))["outcome"] == "ok"
        warm_b.set_mode(Mode.PASS)
        assert (await pending)["outcome"] == "ok"
    raced = [f"raced{i}" for i in range(20 * SCALE)]
    await barrier_rounds(run, a, b, "delete", raced)
    keys = forced + raced
    await read_for(BOUND + 1.0, keys, r, a, b)
    await run.stop_workers()
    run.check(await run.end_state(keys))


__all__ = ["Kind", "Op"]
