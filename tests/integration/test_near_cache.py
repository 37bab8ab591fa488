"""The near cache (L1 over RedisHotMemory) against real redis-server processes.

Coherence is checked through what Redis itself announces: another client's SET, DEL, EXPIRE and
FLUSHALL drop L1 entries; a killed invalidation connection turns L1 off until tracking is back; a
server that refuses tracking leaves L1 off; a writer in another OS process racing readers here never
leaves L1 staler than the documented bound.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from tests.records import hot_bytes
from tests.services._process import ServiceUnavailableError
from tests.services.fixtures import service_missing
from tests.services.redis import RedisServer
from tiermem import (
    ConfigurationError,
    HotMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryKey,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
    make_key,
)
from tiermem._codec import Codec, Record
from tiermem.tiers.near import CLIENT_NAME, ENTRY_OVERHEAD, NearCache
from tiermem.tiers.redis import RedisHotMemory

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

CODEC = Codec(compress_min_bytes=1 << 20)


def rec(value: Any, *, ttl: float | None = None) -> Record:
    record, _ = CODEC.encode(value, expires_at=None if ttl is None else time.time() + ttl)
    return record


def k(key: str) -> MemoryKey:
    return make_key("acme", "ns", key)


async def eventually(check: Callable[[], bool], *, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting until {what}"
        await asyncio.sleep(0.002)


async def settle(near: NearCache, key: MemoryKey) -> Record | None:
    """Read ``key`` until L1 holds it (our own writes' invalidations may drop the first fills)."""
    got = await near.get(key)
    deadline = time.monotonic() + 5
    while not near.cached(key):
        assert time.monotonic() < deadline, "L1 never kept the key"
        await asyncio.sleep(0.005)
        got = await near.get(key)
    return got


def kill_channel(raw: redis.Redis) -> int:
    """``CLIENT KILL`` the near cache's invalidation connection; return how many were killed."""
    killed = 0
    for client in raw.client_list():
        if client.get("name") == CLIENT_NAME:
            raw.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        yield client


@pytest.fixture
async def near(redis_url: str) -> AsyncIterator[NearCache]:
    async with NearCache(RedisHotMemory.from_url(redis_url), max_staleness=0.5) as store:
        await store.setup()
        await store.wait_until_serving()
        yield store


# -- serving and local writes --------------------------------------------------------------------


async def test_hits_are_served_from_l1_and_local_writes_drop_them(near: NearCache, raw: redis.Redis) -> None:
    assert isinstance(near, HotMemory)
    assert near.info.db_system == "redis"
    v1, v2 = rec("v1"), rec("v2")
    await near.set(k("a"), v1)
    assert await settle(near, k("a")) == v1
    before = near.stats()
    for _ in range(5):
        assert await near.get(k("a")) == v1
    assert near.stats().hits == before.hits + 5
    assert raw.get(near.raw_key(k("a"))) == hot_bytes(near.raw_key(k("a")), v1)
    await near.set(k("a"), v2)  # read-your-writes without waiting for the push
    assert not near.cached(k("a"))
    assert await near.get(k("a")) == v2
    await near.delete(k("a"))
    assert not near.cached(k("a"))
    assert await near.get(k("a")) is None
    assert not near.cached(k("a"))  # misses are not cached
    await near.mset([(k("b"), v1), (k("c"), v2)])
    assert await near.mget([k("b"), k("x"), k("c"), k("b")]) == [v1, None, v2, v1]
    assert await near.exists(k("b")) is True
    await near.mdelete([k("b"), k("c")])
    assert not near.cached(k("b")) and not near.cached(k("c"))
    assert await near.exists(k("b")) is False
    await near.set(k("s"), v1)
    assert await settle(near, k("s")) == v1
    assert await near.swap([(k("s"), v2, v1)]) == [False]  # Redis compares with what it holds
    assert not near.cached(k("s"))
    assert await settle(near, k("s")) == v1
    assert await near.swap([(k("s"), v1, v2)]) == [True]
    assert not near.cached(k("s"))
    assert await near.get(k("s")) == v2


async def test_entries_never_outlive_the_record(near: NearCache, raw: redis.Redis) -> None:
    # The envelope expires before the Redis key does: L1 must go by the envelope.
    short = rec("short", ttl=0.3)
    raw.set(near.raw_key(k("e")), hot_bytes(near.raw_key(k("e")), short))
    assert await settle(near, k("e")) == short
    await asyncio.sleep(0.35)
    hits = near.stats().hits
    got = await near.get(k("e"))
    assert got is not None and got.is_expired(time.time())  # what Redis still holds, flagged expired
    assert near.stats().hits == hits
    assert not near.cached(k("e"))


# -- invalidation by other clients ---------------------------------------------------------------


def _other_set(raw: redis.Redis, key: str) -> None:
    raw.set(key, hot_bytes(key, rec("from another client")))


def _other_delete(raw: redis.Redis, key: str) -> None:
    raw.delete(key)


def _other_expire(raw: redis.Redis, key: str) -> None:
    raw.pexpire(key, 150)


def _other_flushall(raw: redis.Redis, key: str) -> None:
    raw.flushall()


@pytest.mark.parametrize(
    "change",
    [_other_set, _other_delete, _other_expire, _other_flushall],
    ids=["set", "del", "expire", "flushall"],
)
async def test_another_clients_change_invalidates_l1(
    near: NearCache, raw: redis.Redis, change: Callable[[redis.Redis, str], None]
) -> None:
    await near.set(k("shared"), rec("mine"))
    await near.set(k("bystander"), rec("other"))
    for key in ("shared", "bystander"):
        await settle(near, k(key))
    change(raw, near.raw_key(k("shared")))
    await eventually(lambda: not near.cached(k("shared")), what="the invalidation arrives", within=2.0)
    assert near.cached(k("bystander")) is (change is not _other_flushall)
    stored = raw.get(near.raw_key(k("shared")))
    got = await near.get(k("shared"))
    assert (None if got is None else hot_bytes(near.raw_key(k("shared")), got)) == stored
    if change is _other_expire:
        # The refilled entry's envelope has no expiry; Redis announces the key's expiry instead.
        await eventually(lambda: raw.exists(near.raw_key(k("shared"))) == 0, what="Redis expires it")
        await eventually(lambda: not near.cached(k("shared")), what="the expiry is announced", within=2.0)
        assert await near.get(k("shared")) is None
        assert await near.get(k("shared")) is None


async def test_writes_under_another_prefix_do_not_invalidate(near: NearCache, raw: redis.Redis) -> None:
    await near.set(k("p"), rec("v"))
    await settle(near, k("p"))
    raw.set("other:" + near.raw_key(k("p")), b"x")
    raw.set(near.raw_key(k("sentinel")), b"x")  # same prefix: arrives after the one above would have
    await eventually(lambda: near.stats().invalidations > 0, what="the sentinel's invalidation")
    assert near.cached(k("p"))


# -- channel loss, refusal, cluster --------------------------------------------------------------


async def test_killed_channel_turns_l1_off_then_on(near: NearCache, raw: redis.Redis) -> None:
    await near.set(k("a"), rec("before"))
    await settle(near, k("a"))
    reconnects = near.stats().reconnects
    assert kill_channel(raw) == 1
    await eventually(lambda: not near.stats().connected, what="the loss is noticed", within=2.0)
    assert near.stats().items == 0 and not near.stats().serving
    # A write while the channel is down, which this process is never told about.
    raw.set(near.raw_key(k("a")), hot_bytes(near.raw_key(k("a")), rec("during the outage")))
    got = await near.get(k("a"))
    assert got is not None and CODEC.decode(got) == "during the outage"
    await near.wait_until_serving(within=10)
    assert near.stats().reconnects == reconnects + 1
    got = await near.get(k("a"))
    assert got is not None and CODEC.decode(got) == "during the outage"
    raw.set(near.raw_key(k("a")), hot_bytes(near.raw_key(k("a")), rec("after")))
    await eventually(lambda: not near.cached(k("a")), what="invalidations flow again", within=2.0)


async def test_a_silent_channel_stops_serving_within_the_bound(redis_url: str, raw: redis.Redis) -> None:
    async with NearCache(RedisHotMemory.from_url(redis_url), max_staleness=0.3) as near:
        await near.setup()
        await near.wait_until_serving()
        await near.set(k("s"), rec("v"))
        await settle(near, k("s"))
        assert near.stats().serving
        # The server holds every command (the channel's PING too) for 1.5 s: the channel goes
        # quiet without dropping, and L1 must stop answering within the bound.
        raw.client_pause(1500, all=True)
        await eventually(lambda: not near.stats().serving, what="L1 stops serving", within=1.4)
        assert near.cached(k("s"))  # nothing was missed, so nothing is dropped
        await near.wait_until_serving(within=10)
        assert near.stats().reconnects == 1
        assert await near.get(k("s")) == rec("v")


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start()
    except ServiceUnavailableError as exc:
        service_missing(f"redis-server is unavailable: {exc}")
    try:
        with redis.Redis(host=server.host, port=server.port, socket_timeout=5) as admin:
            admin.execute_command(
                "ACL", "SETUSER", "notrack", "on", ">pw", "~*", "&*", "+@all", "-client|tracking"
            )
        yield server
    finally:
        server.stop()


async def test_server_refusing_tracking_leaves_l1_off_with_one_warning(
    acl_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    inner = RedisHotMemory.from_url(acl_server.url, username="notrack", password=SecretStr("pw"))
    caplog.set_level(logging.WARNING, logger="tiermem.near")
    async with NearCache(inner) as near:
        await near.setup()
        await eventually(lambda: not near.stats().supported, what="the refusal is noticed")
        with pytest.raises(TierUnavailableError, match="refused CLIENT TRACKING"):
            await near.wait_until_serving(within=1)
        await near.set(k("a"), rec("v"))
        for _ in range(3):
            assert await near.get(k("a")) == rec("v")
        stats = near.stats()
        assert stats.hits == 0 and stats.items == 0 and stats.misses == 3
    warnings = [r for r in caplog.records if r.name == "tiermem.near"]
    assert len(warnings) == 1 and "refused CLIENT TRACKING" in warnings[0].getMessage()


def test_cluster_and_non_redis_hot_tiers_are_refused(tmp_path: Path) -> None:
    cluster = RedisHotMemory.from_url("redis://127.0.0.1:1/0", cluster=True)  # no I/O until used
    with pytest.raises(ConfigurationError, match="Redis Cluster"):
        NearCache(cluster)
    with pytest.raises(ConfigurationError, match="Redis Cluster"):
        MemoryBuilder().with_redis("redis://127.0.0.1:1/0", cluster=True).with_near_cache().build()
    with pytest.raises(ConfigurationError, match="needs a Redis hot tier"):
        MemoryBuilder().with_hot(LocalHotMemory()).with_near_cache().build()
    with pytest.raises(ConfigurationError, match="needs a Redis hot tier"):
        MemoryBuilder().with_warm(SqliteWarmMemory(tmp_path / "w.db")).with_near_cache().build()
    single = RedisHotMemory.from_url("redis://127.0.0.1:1/0")
    for bad in ({"max_items": 0}, {"max_bytes": 0}, {"max_staleness": 0}, {"ping_interval": 1.0}):
        with pytest.raises(ConfigurationError):
            NearCache(single, owned=False, **bad)


# -- bounds --------------------------------------------------------------------------------------


async def test_max_items_is_an_lru_bound(redis_url: str) -> None:
    async with NearCache(RedisHotMemory.from_url(redis_url), max_items=5) as near:
        await near.setup()
        await near.wait_until_serving()
        await near.mset([(k(f"i{n}"), rec(n)) for n in range(10)])
        await asyncio.sleep(0.05)  # let our own writes' invalidations pass
        for n in range(5):
            await near.get(k(f"i{n}"))
        await near.get(k("i0"))  # most recently used
        for n in range(5, 9):
            await near.get(k(f"i{n}"))
        stats = near.stats()
        assert stats.items == 5 and stats.evictions == 4
        assert near.cached(k("i0")) and not near.cached(k("i1"))
        assert all(near.cached(k(f"i{n}")) for n in range(5, 9))


async def test_max_bytes_bounds_memory_and_skips_large_records(redis_url: str) -> None:
    budget = 16 * 1024
    async with NearCache(RedisHotMemory.from_url(redis_url), max_bytes=budget) as near:
        await near.setup()
        await near.wait_until_serving()
        small = rec("x" * 200)
        big = rec("y" * (budget // 16))
        await near.mset([(k(f"b{n:03d}"), small) for n in range(100)] + [(k("big"), big)])
        await asyncio.sleep(0.05)
        for n in range(100):
            assert await near.get(k(f"b{n:03d}")) == small
        assert await near.get(k("big")) == big
        stats = near.stats()
        per_entry = small.size + len(near.raw_key(k("b000"))) + ENTRY_OVERHEAD
        assert stats.bytes <= budget and stats.items == budget // per_entry
        assert stats.evictions == 100 - stats.items
        assert not near.cached(k("big"))


# -- the engine on top ---------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["hot-only", "full-tier"])
async def test_memory_client_with_near_cache(
    redis_url: str, raw: redis.Redis, tmp_path: Path, full: bool
) -> None:
    builder = MemoryBuilder().with_redis(redis_url).with_near_cache(max_items=100, max_staleness=0.5)
    if full:
        builder = builder.with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
    async with builder.build() as memory:
        await memory.setup()
        await memory.set("a", {"n": 1})
        assert await memory.get("a") == {"n": 1}
        assert await memory.get("a") == {"n": 1}
        near = memory.tier_store(Tier.HOT)
        assert isinstance(near, NearCache)
        await near.wait_until_serving()
        await memory.get("a")
        hits = near.stats().hits
        assert await memory.get("a") == {"n": 1}
        assert near.stats().hits == hits + 1
        await memory.delete("a")
        assert await memory.get("a") is None
        await memory.set("b", "v")
        await memory.get("b")
        raw.delete(near.raw_key(make_key("default", "default", "b")))
        await eventually(lambda: not near.cached(make_key("default", "default", "b")), what="invalidation")
        assert await memory.get("b") == ("v" if full else None)
    assert near.stats().items == 0  # closed with the client


# -- racing a writer in another process ----------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys, time
    import redis
    from tiermem._codec import Codec
    from tiermem._seal import HotSeal
    url, key, seconds, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    codec = Codec(compress_min_bytes=1 << 20)
    client = redis.Redis.from_url(url)
    out = []
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        client.set(key, HotSeal().seal(key.encode(), codec.encode(n)[0]))
        out.append(f"{n} {time.monotonic()!r}")  # CLOCK_MONOTONIC is shared by every process
        if n % 50 == 0:
            time.sleep(0.002)
    with open(path, "w") as file:
        file.write("\\n".join(out))
    """
)


async def test_racing_writer_in_another_process_never_leaves_l1_stale_beyond_the_bound(
    redis_url: str, tmp_path: Path
) -> None:
    bound = 0.3
    key = k("race")
    async with NearCache(RedisHotMemory.from_url(redis_url), max_staleness=bound) as near:
        await near.setup()
        await near.wait_until_serving()
        await near.set(key, rec(0))
        raw_key = near.raw_key(key)
        log = tmp_path / "writes.txt"
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WRITER, redis_url, raw_key, "2.0", str(log)
        )
        reads: list[tuple[float, int]] = []  # (monotonic time the read started, value)

        async def reader() -> None:
            while writer.returncode is None:
                started = time.monotonic()
                got = await near.get(key)
                assert got is not None
                reads.append((started, CODEC.decode(got)))
                await asyncio.sleep(0)

        await asyncio.gather(*(reader() for _ in range(4)))
        assert await writer.wait() == 0
        writes = [(float(t), int(n)) for n, t in (line.split() for line in log.read_text().splitlines())]
        final = writes[-1][1]
        # Every read reflects every write acknowledged at least `bound` before the read started.
        acked = 0
        index = 0
        stale = []
        for started, value in sorted(reads):
            while index < len(writes) and writes[index][0] < started - bound:
                acked = writes[index][1]
                index += 1
            if value < acked:
                stale.append((started, value, acked))
        assert not stale, f"{len(stale)} reads staler than {bound}s, first: {stale[0]}"
        stats = near.stats()
        assert stats.hits > 0, "the race never exercised L1"
        # After the writer is gone, L1 converges on the last value within the bound.
        await asyncio.sleep(bound)
        for _ in range(20):
            got = await near.get(key)
            assert got is not None and CODEC.decode(got) == final
        assert near.cached(key)
