"""Multi-process scenarios, one per finding of issue 12, against real Redis, Cosmos stand-in and Azurite.

Each scenario forces the interleaving that exposes its finding (a fault proxy that holds one process's
bytes, a hot outage with the breaker open, a paused server), records every operation of every process,
and asserts that the checker finds nothing. A scenario for a finding that is not fixed yet is marked
``@xfail("...")`` (strict, raising only :class:`ViolationsFound`): it turns the run red once the finding
is fixed, and any other error (a forcing step that did not happen) fails as usual. Every finding of
issue 12 passes since the ADR 0006 engine; before it, each scenario here was such a strict xfail.
``TIERMEM_TEST_SOAK=1`` multiplies rounds and durations; ``TIERMEM_TEST_STALENESS_BOUND`` sets the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.reliability.multiproc.checker import Kind
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
READ_FOR = BOUND + 0.5 * SCALE  # readers keep reading past the bound after the last write


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
    raced = [f"raced{i}" for i in range(12 * SCALE)]
    await barrier_rounds(run, a, b, "set", raced)
    keys = forced + raced
    await read_for(READ_FOR, keys, r, a, b)
    await run.stop_workers()
    run.check(await run.end_state(keys))


async def test_concurrent_set_delete_hot_converges(runs: Runs) -> None:
    run = await runs.azure("set_delete")
    patient = {  # B's held delete must outlast the forcing step, however loaded the machine is
        "cosmos_options": {**run.base.cosmos_options, "read_timeout": 15},
        "resilience": {**run.base.resilience, "warm": {"timeout": 20.0}},
    }
    a, b, r = await asyncio.gather(
        run.worker("A"), run.worker("B", proxy={Tier.WARM}, **patient), run.worker("R")
    )
    forced = [f"forced{i}" for i in range(3 * SCALE)]
    warm_b = run.proxy("B", Tier.WARM)
    for key in forced:
        # B's delete reaches Cosmos and is held there; A's whole set runs inside it; then B's delete lands.
        warm_b.set_mode(Mode.STALL)
        pending = b.submit("delete", key=key)

        async def delete_held() -> bool:
            return warm_b.held > 0

        await wait_for(delete_held, what="B's durable delete is held")
        assert (await a.call("set", key=key))["outcome"] == "ok"
        warm_b.set_mode(Mode.PASS)
        assert (await pending)["outcome"] == "ok"
    raced = [f"raced{i}" for i in range(12 * SCALE)]
    await barrier_rounds(run, a, b, "delete", raced)
    keys = forced + raced
    await read_for(READ_FOR, keys, r, a, b)
    await run.stop_workers()
    run.check(await run.end_state(keys))


# -- V1: a writer-only process across a hot outage -----------------------------------------------------


async def test_writer_only_process_across_a_hot_outage(runs: Runs) -> None:
    run = await runs.azure("v1_hot_outage")
    # W's circuit opens on its first hot failure and stays open for the whole scenario (no timing race).
    breaker = {"timeout": 2.0, "failure_threshold": 1, "reset_timeout": 120.0}
    w, r1, r2 = await asyncio.gather(
        run.worker("W", resilience={**run.base.resilience, "hot": breaker}),
        run.worker("R1"),
        run.worker("R2"),
    )
    keys = [f"k{i}" for i in range(5 * SCALE)]
    for key in keys:
        assert (await w.call("set", key=key))["outcome"] == "ok"
    for r in (r1, r2):
        await r.call("loop", name="read", mix=READS, keys=keys, interval=0.02)
    await asyncio.to_thread(runs.redis.kill)
    for key in keys:  # durable writes succeed; W's hot writes fail and its circuit opens
        assert (await w.call("set", key=key))["outcome"] == "ok"
    assert await w.call("circuit") == "open"
    await asyncio.to_thread(runs.redis.restart)

    async def readers_promoted() -> bool:  # the readers refill the empty Redis from the durable tier
        for key in keys:
            hot = await run.hot_value(key)
            if hot is None or hot != await run.durable_value(key):
                return False
        return True

    await wait_for(readers_promoted, what="readers promote the values into the restarted Redis")
    assert await w.call("circuit") == "open", "W's circuit closed before the forcing writes"
    for key in keys:  # durable only: W's circuit is open, so its hot writes are skipped
        assert (await w.call("set", key=key))["outcome"] == "ok"
    assert await w.call("circuit") == "open", "W's circuit closed during the forcing writes"
    await w.close()  # the writer exits: nothing is left that remembers its dirty keys
    await asyncio.sleep(READ_FOR)
    await run.stop_workers()
    run.check(await run.end_state(keys))


# -- V2: conditional writes and session appends whose reply is lost ------------------------------------

PADDED = 12_000  # the request carrying such a value is larger than the proxy's swallow threshold


async def test_conditional_writes_and_appends_across_a_lost_cosmos_reply(runs: Runs) -> None:
    run = await runs.azure("v2_lost_reply")
    # The Cosmos client times out a request after 1 s and retries it; the warm deadline is 10 s.
    cosmos = {"retry_total": 1, "connection_timeout": 2, "read_timeout": 1}
    p, r = await asyncio.gather(run.worker("P", proxy={Tier.WARM}, cosmos_options=cosmos), run.worker("R"))
    warm = run.proxy("P", Tier.WARM)
    keys = [f"c{i}" for i in range(SCALE)]
    for key in keys:
        assert (await p.call("set", key=key))["outcome"] == "ok"  # written through to hot
        etag = (await p.call("get", key=key, consistent=True))["etag"]
        before = warm.swallowed
        warm.set_mode(Mode.SWALLOW_REPLY)  # the write lands; its reply never comes back
        await p.call("set", key=key, size=PADDED, if_match=etag)
        assert warm.swallowed == before + 1, "no reply was swallowed"
    sessions = [f"s{i}" for i in range(SCALE)]
    for sid in sessions:
        assert (await p.call("append", session=sid))["outcome"] == "ok"
        before = warm.swallowed
        warm.set_mode(Mode.SWALLOW_REPLY)  # the head write of the next append lands, its reply is lost
        await p.call("append", session=sid, size=PADDED)
        assert warm.swallowed == before + 1, "no reply was swallowed"
    await read_for(READ_FOR, keys, r)
    await run.stop_workers()
    run.check(await run.end_state(keys, sessions))


# -- V3: cold overwrites under readers -----------------------------------------------------------------

LARGE = 160_000  # incompressible: above warm_max_bytes (64 KiB) after compression, so cold + pointer


async def test_cold_overwrites_under_readers(runs: Runs) -> None:
    run = await runs.azure(
        "v3_cold_overwrite", policy={"warm_max_bytes": 64 * 1024, "hot_max_bytes": 16 * 1024}
    )
    patient = {  # R's held cold read must outlast the forcing step, however loaded the machine is
        "blob_options": {**run.base.blob_options, "read_timeout": 15},
        "resilience": {**run.base.resilience, "cold": {"timeout": 20.0}},
    }
    w, r, r2 = await asyncio.gather(
        run.worker("W"), run.worker("R", proxy={Tier.COLD}, **patient), run.worker("R2")
    )
    cold = run.proxy("R", Tier.COLD)
    forced = [f"forced{i}" for i in range(3 * SCALE)]
    for key in forced:
        assert (await w.call("set", key=key, size=LARGE))["outcome"] == "ok"
        assert (await r.call("get", key=key))["value"] is not None
        # R has read the warm pointer and waits for the cold object; W replaces it meanwhile.
        cold.set_mode(Mode.STALL)
        pending = r.submit("get", key=key)

        async def cold_read_held() -> bool:
            return cold.held > 0

        await wait_for(cold_read_held, what="R's cold read is held")
        assert (await w.call("set", key=key, size=LARGE))["outcome"] == "ok"
        cold.set_mode(Mode.PASS)
        await pending
    raced = [f"raced{i}" for i in range(2)]
    for key in raced:
        assert (await w.call("set", key=key, size=LARGE))["outcome"] == "ok"
    await w.call("loop", name="write", mix={"set": 1.0}, keys=raced, large_size=LARGE, large_ratio=1.0)
    await read_for(2.0 * SCALE, raced, r, r2, interval=0.0)
    await run.stop_workers()
    run.check(await run.end_state(forced + raced))


# -- V4: deletes that fail -----------------------------------------------------------------------------


TOMBSTONE_TTL = 2.0


async def test_failed_deletes_leave_the_key_as_it_was(runs: Runs) -> None:
    run = await runs.azure("v4_failed_delete")
    d, r1, r2 = await asyncio.gather(
        run.worker("D", proxy={Tier.WARM}, policy={"tombstone_ttl": TOMBSTONE_TTL}),
        run.worker("R1"),
        run.worker("R2"),
    )
    warm = run.proxy("D", Tier.WARM)
    keys = [f"k{i}" for i in range(3 * SCALE)]
    for key in keys:
        assert (await d.call("set", key=key))["outcome"] == "ok"
    for r in (r1, r2):
        await r.call("loop", name="read", mix=READS, keys=keys, interval=0.02)
    warm.set_mode(Mode.DROP)  # Cosmos unreachable for D only
    for key in keys:
        assert (await d.call("delete", key=key))["outcome"] != "ok", "the delete did not fail"
        await r1.call("get", key=key)  # one read inside the tombstone's lifetime, whatever the timing
    warm.set_mode(Mode.PASS)
    await asyncio.sleep(TOMBSTONE_TTL + 0.5)  # the tombstones expire and the values come back
    await run.stop_workers()
    run.check(await run.end_state(keys))


# -- deadlines -----------------------------------------------------------------------------------------

WARM_DEADLINE = 1.0
HOT_DEADLINE = 2.0  # docs/reliability.md: the documented default hot deadline
SLACK = 0.5


async def test_no_operation_exceeds_its_deadline(runs: Runs) -> None:
    run = await runs.azure("deadlines")
    warm_only = {"warm": {"timeout": WARM_DEADLINE, "failure_threshold": 100, "reset_timeout": 0.5}}
    # L: five concurrent sets of one key while Cosmos stalls (L's hot tier is in-process: no Redis here).
    # H: library defaults for the hot tier (no deadline, redis-py timeouts) while Redis is paused.
    lock, hot = await asyncio.gather(
        run.worker("L", proxy={Tier.WARM}, hot="local", resilience=warm_only),
        run.worker("H", redis_options={}, resilience=warm_only),
    )
    assert (await hot.call("set", key="h"))["outcome"] == "ok"
    run.proxy("L", Tier.WARM).set_mode(Mode.STALL)
    sets = [lock.submit("set", key="contended") for _ in range(5)]
    await asyncio.to_thread(runs.redis.pause)
    try:
        read = hot.submit("get", key="h")  # hot stalls, falls through to warm, then promotes into hot
        await asyncio.sleep(4.0 * WARM_DEADLINE + SLACK)
        run.proxy("L", Tier.WARM).set_mode(Mode.PASS)
        await asyncio.gather(*sets)
        await read  # it ends while Redis is still paused (the client gives up on hot by itself)
    finally:
        await asyncio.to_thread(runs.redis.resume)
    await run.stop_workers()
    deadlines = {
        Op.SET: WARM_DEADLINE + HOT_DEADLINE + SLACK,  # durable write, then hot
        Op.GET: 2 * HOT_DEADLINE + WARM_DEADLINE + SLACK,  # hot, warm, promotion into hot
    }
    run.check(None, kinds={Kind.DEADLINE}, deadlines=deadlines)


# -- what holds today: no acknowledged write is lost --------------------------------------------------

MIX = {"get": 3.0, "set": 3.0, "delete": 1.0, "mget": 1.0, "mset": 1.0, "append": 1.0}
NO_LOSS = {Kind.LOST_WRITE, Kind.DUPLICATED_TURN, Kind.FOREIGN_VALUE, Kind.PHANTOM_WRITE, Kind.FALSE_MISS}


async def test_no_acknowledged_write_lost_across_processes_under_faults(runs: Runs) -> None:
    """Random operations from three processes while Redis is killed, flushed and paused and Cosmos
    stalls: every acknowledged write and turn survives, once, and nothing appears from nowhere.
    (Staleness and divergence are the xfail scenarios above.)"""
    run = await runs.azure("faults_no_loss")
    a, b, c = await asyncio.gather(run.worker("A"), run.worker("B", proxy={Tier.WARM}), run.worker("C"))
    keys = [f"k{i}" for i in range(12)]
    sessions = ["s0", "s1"]
    for w in (a, b, c):
        await w.call("loop", name="mix", mix=MIX, keys=keys, sessions=sessions, interval=0.01)
    phase = 0.7 * SCALE
    await asyncio.sleep(phase)
    await asyncio.to_thread(runs.redis.kill)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(runs.redis.restart)
    await asyncio.sleep(phase)
    await run.flushall()
    await asyncio.sleep(phase)
    await asyncio.to_thread(runs.redis.pause)
    await asyncio.sleep(0.6)
    await asyncio.to_thread(runs.redis.resume)
    await asyncio.sleep(phase)
    run.proxy("B", Tier.WARM).set_mode(Mode.STALL)
    await asyncio.sleep(0.6)
    run.proxy("B", Tier.WARM).set_mode(Mode.PASS)
    await asyncio.sleep(phase)
    await runs.pause_cosmos(0.6)
    await asyncio.sleep(phase)
    await run.stop_workers()
    run.check(await run.end_state(keys, sessions, quiet=0.0), kinds=NO_LOSS)


async def test_no_acknowledged_write_lost_on_shared_embedded_tiers(runs: Runs) -> None:
    """Three processes sharing one SQLite warm file and one cold directory (Redis hot), with large
    values in cold files and a FLUSHALL: nothing acknowledged is lost or duplicated."""
    run = await runs.embedded("embedded_no_loss", policy={"warm_max_bytes": 64 * 1024})
    workers = await asyncio.gather(run.worker("A"), run.worker("B"), run.worker("C"))
    keys = [f"k{i}" for i in range(12)]
    sessions = ["s0"]
    for w in workers:
        await w.call(
            "loop",
            name="mix",
            mix=MIX,
            keys=keys,
            sessions=sessions,
            interval=0.02,
            large_size=LARGE,
            large_ratio=0.03,
        )
    await asyncio.sleep(1.0 * SCALE)
    await run.flushall()
    await asyncio.sleep(1.0 * SCALE)
    await run.stop_workers()
    # False misses are V3's (a large overwrite under a reader), asserted in its own scenario.
    run.check(await run.end_state(keys, sessions, quiet=0.0), kinds=NO_LOSS - {Kind.FALSE_MISS})


# -- the near cache (ADR 0010) over the coherent hot tier ------------------------------------------------


async def test_near_cache_readers_stay_within_the_bound(runs: Runs) -> None:
    run = await runs.azure("near_cache")
    near = ("tests.reliability.multiproc.clients:near_cache",)
    a, b, r1, r2 = await run.start_all("A", "B", "R1", "R2", customize=near)
    keys = [f"n{i}" for i in range(6 * SCALE)]
    for key in keys:
        assert (await a.call("set", key=key))["outcome"] == "ok"
    for r in (r1, r2):  # the readers fill their near caches, then keep reading through every write
        await r.call("loop", name="read", mix=READS, keys=keys, interval=0.01)
    await barrier_rounds(run, a, b, "set", keys)
    await barrier_rounds(run, a, b, "delete", keys[: len(keys) // 2])
    await asyncio.sleep(READ_FOR)
    for r in (r1, r2):
        await r.call("stop", name="read")
    await run.stop_workers()
    run.check(await run.end_state(keys))
