"""The embedded tiers: in-process hot (LRU/LFU/FIFO), SQLite warm, and local-file cold."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.records import keyed, rec, val
from tiermem import (
    BatchWriteError,
    ClientClosedError,
    ColdMemory,
    ConflictError,
    EvictionPolicy,
    FileColdMemory,
    HotMemory,
    InvalidScopeError,
    LocalHotMemory,
    MemoryKey,
    SqliteWarmMemory,
    Tier,
    TierError,
    TierUnavailableError,
    ValueTooLargeError,
    WarmMemory,
)

k = keyed("t", "n")


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def files_under(root: Path) -> list[Path]:
    return [Path(d, f) for d, _, names in os.walk(root) for f in names]


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def all_inside(paths: list[Path], root: Path) -> bool:
    real_root = root.resolve()
    return all(p.resolve().is_relative_to(real_root) and ".." not in p.relative_to(root).parts for p in paths)


def test_local_tiers_satisfy_their_protocols(tmp_path: Path) -> None:
    assert isinstance(LocalHotMemory(), HotMemory)
    assert isinstance(SqliteWarmMemory(tmp_path / "w.db"), WarmMemory)
    assert isinstance(FileColdMemory(tmp_path / "c"), ColdMemory)


def test_constructors_do_no_io(tmp_path: Path) -> None:
    SqliteWarmMemory(tmp_path / "new" / "w.db")
    FileColdMemory(tmp_path / "cold")
    assert list(tmp_path.iterdir()) == []


# =====================================================================================================
# LocalHotMemory


async def present(hot: LocalHotMemory, names: str) -> set[str]:
    return {n for n in names if await hot.exists(k(n))}


async def test_lru_evicts_least_recently_used() -> None:
    hot = LocalHotMemory(max_items=3, eviction=EvictionPolicy.LRU)
    for n in "abc":
        await hot.set(k(n), rec(n))
    assert val(await hot.get(k("a"))) == "a"  # a is now the most recently used
    await hot.set(k("d"), rec("d"))
    assert await present(hot, "abcd") == {"a", "c", "d"}
    assert hot.evictions == 1
    await hot.mget([k("c")])  # batch reads count as use too
    await hot.set(k("e"), rec("e"))
    assert await present(hot, "abcde") == {"c", "d", "e"}
    assert hot.evictions == 2


async def test_lru_overwrite_counts_as_use() -> None:
    hot = LocalHotMemory(max_items=2, eviction=EvictionPolicy.LRU)
    await hot.set(k("a"), rec(1))
    await hot.set(k("b"), rec(1))
    await hot.set(k("a"), rec(2))
    await hot.set(k("c"), rec(1))
    assert await present(hot, "abc") == {"a", "c"}
    assert val(await hot.get(k("a"))) == 2


async def test_fifo_evicts_oldest_insertion_regardless_of_reads() -> None:
    hot = LocalHotMemory(max_items=3, eviction=EvictionPolicy.FIFO)
    for n in "abc":
        await hot.set(k(n), rec(n))
    for _ in range(5):
        await hot.get(k("a"))
    await hot.mget([k("a")] * 3)
    await hot.set(k("d"), rec("d"))
    assert await present(hot, "abcd") == {"b", "c", "d"}
    await hot.set(k("e"), rec("e"))
    assert await present(hot, "abcde") == {"c", "d", "e"}
    assert hot.evictions == 2


async def test_lfu_evicts_least_frequently_used() -> None:
    hot = LocalHotMemory(max_items=3, eviction=EvictionPolicy.LFU)
    for n in "abc":
        await hot.set(k(n), rec(n))
    for _ in range(3):
        await hot.get(k("a"))
    await hot.get(k("c"))
    await hot.set(k("d"), rec("d"))  # b was never read
    assert await present(hot, "abcd") == {"a", "c", "d"}
    assert hot.evictions == 1


async def test_lfu_ties_between_unread_entries_evict_the_oldest() -> None:
    hot = LocalHotMemory(max_items=3, eviction=EvictionPolicy.LFU)
    for n in "abc":
        await hot.set(k(n), rec(n))
    await hot.set(k("d"), rec("d"))
    assert await present(hot, "abcd") == {"b", "c", "d"}


async def test_lfu_ties_evict_the_least_recently_used() -> None:
    hot = LocalHotMemory(max_items=3, eviction=EvictionPolicy.LFU)
    for n in "abc":
        await hot.set(k(n), rec(n))
    for n in "cba":  # equal counts; c was used longest ago
        await hot.get(k(n))
    await hot.set(k("d"), rec("d"))
    assert await present(hot, "abcd") == {"a", "b", "d"}


async def test_lfu_admits_a_new_entry_into_a_full_cache() -> None:
    # Every resident entry has been read, so the newcomer has the lowest count; it must still be
    # cached (an existing entry makes room), or nothing new could ever enter a warmed-up cache.
    hot = LocalHotMemory(max_items=2, eviction=EvictionPolicy.LFU)
    for n in "ab":
        await hot.set(k(n), rec(n))
        await hot.get(k(n))
    await hot.set(k("c"), rec("c"))
    assert val(await hot.get(k("c"))) == "c"
    assert len(hot) == 2
    assert hot.evictions == 1


class _Model:
    """A plain reference cache: evicts before inserting, so the entry being written is never the victim."""

    def __init__(self, policy: EvictionPolicy, max_items: int) -> None:
        self.policy = policy
        self.max_items = max_items
        self.entries: OrderedDict[str, int] = OrderedDict()  # key -> value, in LRU/FIFO order
        self.freq: dict[str, int] = {}
        self.last_use: dict[str, int] = {}
        self.tick = 0

    def _use(self, key: str) -> None:
        self.tick += 1
        self.last_use[key] = self.tick

    def get(self, key: str) -> int | None:
        if key not in self.entries:
            return None
        if self.policy is EvictionPolicy.LRU:
            self.entries.move_to_end(key)
        self.freq[key] += 1
        self._use(key)
        return self.entries[key]

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)
        self.freq.pop(key, None)
        self.last_use.pop(key, None)

    def set(self, key: str, value: int) -> None:
        assert key not in self.entries
        while len(self.entries) >= self.max_items:
            if self.policy is EvictionPolicy.LFU:
                victim = min(self.entries, key=lambda e: (self.freq[e], self.last_use[e]))
            else:
                victim = next(iter(self.entries))
            self.delete(victim)
        self.entries[key] = value
        self.freq[key] = 1
        self._use(key)


ops = st.lists(st.tuples(st.sampled_from(["set", "get", "delete"]), st.sampled_from("abcdefg")), max_size=60)


@pytest.mark.parametrize("policy", list(EvictionPolicy))
@settings(max_examples=100, deadline=None)
@given(script=ops)
@example(
    script=[("set", "a"), ("set", "b"), ("set", "c"), ("get", "a"), ("get", "b"), ("get", "c"), ("set", "d")]
)
@example(script=[("set", "a"), ("set", "b"), ("set", "c"), ("get", "c"), ("set", "d"), ("set", "e")])
async def test_eviction_matches_a_reference_model(
    policy: EvictionPolicy, script: list[tuple[str, str]]
) -> None:
    hot = LocalHotMemory(max_items=3, eviction=policy)
    model = _Model(policy, 3)
    for i, (op, name) in enumerate(script):
        if op == "get":
            got = await hot.get(k(name))
            assert (None if got is None else val(got)) == model.get(name), (i, op, name)
        elif op == "delete":
            await hot.delete(k(name))
            model.delete(name)
        else:
            # Overwrites are spelled as delete + set so the model does not presume how they count.
            await hot.delete(k(name))
            model.delete(name)
            await hot.set(k(name), rec(i))
            model.set(name, i)
        assert len(hot) == len(model.entries)
        assert await present(hot, "abcdefg") == set(model.entries), (i, op, name)


@pytest.mark.parametrize("policy", list(EvictionPolicy))
@settings(max_examples=60, deadline=None)
@given(
    writes=st.lists(st.tuples(st.sampled_from("abcdefghij"), st.integers(0, 1500)), min_size=1, max_size=40)
)
async def test_size_never_exceeds_max_bytes(policy: EvictionPolicy, writes: list[tuple[str, int]]) -> None:
    max_bytes = 3000
    hot = LocalHotMemory(max_items=1000, max_bytes=max_bytes, eviction=policy)
    for name, size in writes:
        await hot.set(k(name), rec(b"x" * size))
        assert 0 < hot.size_bytes <= max_bytes
        assert val(await hot.get(k(name))) == b"x" * size  # the value just written is cached
    for name in "abcdefghij":
        await hot.delete(k(name))
    assert hot.size_bytes == 0
    assert len(hot) == 0


async def test_record_larger_than_max_bytes_is_rejected() -> None:
    hot = LocalHotMemory(max_bytes=1000)
    await hot.set(k("small"), rec("s"))
    before = hot.size_bytes
    with pytest.raises(ValueTooLargeError) as info:
        await hot.set(k("big"), rec(os.urandom(2000)))
    assert info.value.limit == 1000
    assert info.value.size > 1000
    assert info.value.tier is Tier.HOT
    assert hot.size_bytes == before
    assert await hot.get(k("big")) is None
    assert val(await hot.get(k("small"))) == "s"
    assert hot.evictions == 0


async def test_mset_reports_the_records_that_do_not_fit() -> None:
    hot = LocalHotMemory(max_bytes=1000)
    with pytest.raises(BatchWriteError) as info:
        await hot.mset([(k("ok"), rec(1)), (k("big"), rec(os.urandom(2000))), (k("ok2"), rec(2))])
    assert info.value.written == ("ok", "ok2")
    assert set(info.value.failed) == {"big"}
    assert isinstance(info.value.failed["big"], ValueTooLargeError)
    assert [None if r is None else val(r) for r in await hot.mget([k("ok"), k("big"), k("ok2")])] == [
        1,
        None,
        2,
    ]


async def test_max_items_bound() -> None:
    hot = LocalHotMemory(max_items=10)
    for i in range(100):
        await hot.set(k(str(i)), rec(i))
        assert len(hot) <= 10
    assert hot.evictions == 90


async def test_evictions_counts_only_evictions() -> None:
    hot = LocalHotMemory(max_items=2, clock=FakeClock(100.0))
    await hot.set(k("a"), rec(1))
    await hot.set(k("a"), rec(2))  # overwrite
    await hot.set(k("b"), rec(1, expires_at=50.0))
    await hot.get(k("b"))  # expired and dropped
    await hot.delete(k("a"))
    assert hot.evictions == 0
    for n in "cde":
        await hot.set(k(n), rec(n))
    assert hot.evictions == 1


async def test_ttl_expiry_with_an_injected_clock() -> None:
    clock = FakeClock(1000.0)
    hot = LocalHotMemory(clock=clock)
    await hot.set(k("a"), rec("a", expires_at=1010.0))
    await hot.set(k("b"), rec("b"))
    clock.now = 1009.999
    assert val(await hot.get(k("a"))) == "a"
    assert await hot.exists(k("a"))
    clock.now = 1010.0
    assert await hot.get(k("a")) is None
    assert not await hot.exists(k("a"))
    assert await hot.mget([k("a"), k("b")]) == [None, await hot.get(k("b"))]
    assert len(hot) == 1
    clock.now = 1e12
    assert val(await hot.get(k("b"))) == "b"  # no expiry means never


async def test_expired_entries_free_their_bytes() -> None:
    clock = FakeClock(0.0)
    hot = LocalHotMemory(clock=clock)
    await hot.set(k("a"), rec("a" * 500, expires_at=1.0))
    assert hot.size_bytes > 500
    clock.now = 2.0
    assert not await hot.exists(k("a"))
    assert hot.size_bytes == 0


async def test_hot_if_absent() -> None:
    clock = FakeClock(0.0)
    hot = LocalHotMemory(clock=clock)
    await hot.set(k("a"), rec(1), if_absent=True)
    with pytest.raises(ConflictError):
        await hot.set(k("a"), rec(2), if_absent=True)
    assert val(await hot.get(k("a"))) == 1
    await hot.set(k("e"), rec(1, expires_at=1.0))
    clock.now = 5.0
    await hot.set(k("e"), rec(2), if_absent=True)  # an expired entry is absent
    assert val(await hot.get(k("e"))) == 2
    await hot.mset([(k("a"), rec(3)), (k("new"), rec(4))], if_absent=True)
    assert val(await hot.get(k("a"))) == 1
    assert val(await hot.get(k("new"))) == 4


async def test_hot_has_no_etags() -> None:
    hot = LocalHotMemory()
    assert await hot.set(k("a"), rec(1)) is None
    with pytest.raises(TierError):
        await hot.set(k("a"), rec(2), if_match="etag")
    assert val(await hot.get(k("a"))) == 1


async def test_hot_keys_are_scoped_by_tenant_and_namespace() -> None:
    hot = LocalHotMemory()
    await hot.set(k("x", "t1", "n"), rec(1))
    await hot.set(k("x", "t2", "n"), rec(2))
    await hot.set(k("x", "t1", "m"), rec(3))
    assert [val(r) for r in await hot.mget([k("x", "t1", "n"), k("x", "t2", "n"), k("x", "t1", "m")])] == [
        1,
        2,
        3,
    ]
    await hot.mdelete([k("x", "t1", "n"), k("missing")])
    assert await hot.get(k("x", "t1", "n")) is None
    assert val(await hot.get(k("x", "t2", "n"))) == 2


async def test_hot_use_after_close() -> None:
    hot = LocalHotMemory()
    await hot.set(k("a"), rec(1))
    await hot.aclose()
    await hot.aclose()  # idempotent
    calls = [
        hot.get(k("a")),
        hot.set(k("a"), rec(1)),
        hot.delete(k("a")),
        hot.exists(k("a")),
        hot.mget([k("a")]),
        hot.mset([(k("a"), rec(1))]),
        hot.mdelete([k("a")]),
        hot.ping(),
    ]
    for call in calls:
        with pytest.raises(ClientClosedError):
            await call
    assert len(hot) == 0
    assert hot.size_bytes == 0


async def test_hot_context_manager_closes() -> None:
    async with LocalHotMemory() as hot:
        await hot.set(k("a"), rec(1))
    with pytest.raises(ClientClosedError):
        await hot.get(k("a"))
    with pytest.raises(ClientClosedError):
        async with hot:
            pass


@pytest.mark.parametrize(("items", "size"), [(0, 10), (10, 0), (-1, 10)])
def test_hot_rejects_bad_bounds(items: int, size: int) -> None:
    with pytest.raises(ValueError):
        LocalHotMemory(max_items=items, max_bytes=size)


# =====================================================================================================
# SqliteWarmMemory


@pytest.fixture
async def warm(tmp_path: Path) -> AsyncIterator[SqliteWarmMemory]:
    store = SqliteWarmMemory(tmp_path / "warm.db")
    await store.setup()
    yield store
    await store.aclose()


async def test_sqlite_creates_nested_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "warm.db"
    async with SqliteWarmMemory(path) as store:
        await store.setup()
        await store.set(k("x"), rec(1))
        assert path.is_file()
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            assert conn.execute("SELECT COUNT(*) FROM tiermem_items").fetchone()[0] == 1


async def test_sqlite_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable" / "warm.db"
    values: dict[str, Any] = {
        "json": {"a": [1, 2]},
        "text": "żółć 😀",
        "bytes": os.urandom(5000),
        "big": "z" * 9000,
    }
    etags: dict[str, str | None] = {}
    first = SqliteWarmMemory(path)
    for name, value in values.items():
        etags[name] = await first.set(k(name), rec(value, expires_at=4e9))
    await first.aclose()

    async with SqliteWarmMemory(path) as second:
        for name, value in values.items():
            record = await second.get(k(name))
            assert record is not None
            assert val(record) == value
            assert record.expires_at == 4e9
            assert record.etag == etags[name]


async def test_sqlite_concurrent_sets_all_land(warm: SqliteWarmMemory) -> None:
    keys = [k(f"key-{i}") for i in range(200)]
    etags = await asyncio.gather(*(warm.set(mk, rec(i)) for i, mk in enumerate(keys)))
    assert len(set(etags)) == 200
    assert [val(r) for r in await warm.mget(keys)] == list(range(200))
    assert len([mk async for mk in warm.scan("t")]) == 200


async def test_sqlite_does_not_block_the_event_loop(warm: SqliteWarmMemory) -> None:
    items = [(k(f"bulk-{i}"), rec(os.urandom(200))) for i in range(5_000)]
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await warm.mset(items)
    during_write = ticks - start
    start = ticks
    found = await warm.mget([mk for mk, _ in items])
    during_read = ticks - start
    stop.set()
    await task
    assert all(r is not None for r in found)
    # A blocked loop would let the ticker run at most once while each call is in flight.
    assert during_write >= 20, during_write
    assert during_read >= 20, during_read


async def test_sqlite_if_match(warm: SqliteWarmMemory) -> None:
    first = await warm.set(k("a"), rec(1))
    assert first
    record = await warm.get(k("a"))
    assert record is not None
    assert record.etag == first
    second = await warm.set(k("a"), rec(2), if_match=first)
    assert second
    assert second != first
    with pytest.raises(ConflictError):
        await warm.set(k("a"), rec(3), if_match=first)
    assert val(await warm.get(k("a"))) == 2
    with pytest.raises(ConflictError):
        await warm.set(k("missing"), rec(1), if_match=first)
    assert await warm.get(k("missing")) is None
    third = await warm.set(k("a"), rec(4))  # an unconditional write moves the etag too
    assert third not in (first, second)


async def test_sqlite_if_absent(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    async with SqliteWarmMemory(tmp_path / "w.db", clock=clock) as store:
        assert await store.set(k("a"), rec(1), if_absent=True)
        with pytest.raises(ConflictError):
            await store.set(k("a"), rec(2), if_absent=True)
        assert val(await store.get(k("a"))) == 1
        await store.set(k("old"), rec(1, expires_at=999.0))
        await store.set(k("old"), rec(2), if_absent=True)  # expired counts as absent
        assert val(await store.get(k("old"))) == 2
        await store.mset([(k("a"), rec(9)), (k("b"), rec(9))], if_absent=True)
        assert val(await store.get(k("a"))) == 1
        assert val(await store.get(k("b"))) == 9


async def test_sqlite_exists_and_delete(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    async with SqliteWarmMemory(tmp_path / "w.db", clock=clock) as store:
        await store.set(k("live"), rec(1, expires_at=2000.0))
        await store.set(k("dead"), rec(1, expires_at=1000.0))
        assert await store.exists(k("live"))
        assert not await store.exists(k("dead"))
        assert not await store.exists(k("missing"))
        await store.delete(k("live"))
        await store.delete(k("live"))  # idempotent
        assert not await store.exists(k("live"))


async def test_sqlite_sweep_deletes_only_expired_rows(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    async with SqliteWarmMemory(tmp_path / "w.db", clock=clock) as store:
        await store.set(k("past"), rec(1, expires_at=900.0))
        await store.set(k("now"), rec(1, expires_at=1000.0))
        await store.set(k("future"), rec(1, expires_at=1100.0))
        await store.set(k("never"), rec(1))
        await store.set(k("past", "other"), rec(1, expires_at=1.0))
        assert await store.sweep() == 3
        assert {mk.key for mk in [m async for m in store.scan("t")]} == {"future", "never"}
        assert [m async for m in store.scan("other")] == []
        assert await store.sweep() == 0
        assert await store.sweep(now=5000.0) == 1
        assert val(await store.get(k("never"))) == 1


async def test_sqlite_scan_and_purge_are_per_tenant(warm: SqliteWarmMemory) -> None:
    layout = {("t1", "n1"): 3, ("t1", "n2"): 2, ("t2", "n1"): 4, ("t10", "n1"): 1, ("T1", "n1"): 1}
    for (tenant, ns), count in layout.items():
        await warm.mset([(k(f"k{i}", tenant, ns), rec(i)) for i in range(count)])

    async def keys_of(tenant: str, ns: str | None = None) -> set[MemoryKey]:
        return {mk async for mk in warm.scan(tenant, ns)}

    assert await keys_of("t1") == {k(f"k{i}", "t1", ns) for ns, c in (("n1", 3), ("n2", 2)) for i in range(c)}
    assert await keys_of("t1", "n2") == {k("k0", "t1", "n2"), k("k1", "t1", "n2")}
    assert await keys_of("nobody") == set()
    assert await warm.purge("t1", "n1") == 3
    assert await keys_of("t1") == {k("k0", "t1", "n2"), k("k1", "t1", "n2")}
    assert await warm.purge("t1") == 2
    assert await warm.purge("t1") == 0
    assert len(await keys_of("t2")) == 4
    assert len(await keys_of("t10")) == 1
    assert len(await keys_of("T1")) == 1
    with pytest.raises(InvalidScopeError):
        await warm.purge("bad/tenant")
    with pytest.raises(InvalidScopeError):
        await warm.purge("t2", "..")
    with pytest.raises(InvalidScopeError):
        _ = [mk async for mk in warm.scan("..")]
    assert len(await keys_of("t2")) == 4


async def test_sqlite_mget_keeps_order_across_batches(warm: SqliteWarmMemory) -> None:
    keys = [k(f"m{i}") for i in range(700)]
    await warm.mset([(mk, rec(i)) for i, mk in enumerate(keys) if i % 3])
    query = [*reversed(keys), keys[1], keys[0]]
    result = await warm.mget(query)
    expected = [None if int(mk.key[1:]) % 3 == 0 else int(mk.key[1:]) for mk in query]
    assert [None if r is None else val(r) for r in result] == expected
    assert await warm.mget([]) == []


async def test_sqlite_keys_are_scoped(warm: SqliteWarmMemory) -> None:
    await warm.set(k("x", "t1", "n"), rec(1))
    await warm.set(k("x", "t1", "N"), rec(2))
    await warm.set(k("X", "t1", "n"), rec(3))
    assert [val(r) for r in await warm.mget([k("x", "t1", "n"), k("x", "t1", "N"), k("X", "t1", "n")])] == [
        1,
        2,
        3,
    ]


async def test_sqlite_use_after_close(tmp_path: Path) -> None:
    store = SqliteWarmMemory(tmp_path / "w.db")
    await store.set(k("a"), rec(1))
    await store.aclose()
    await store.aclose()
    for call in (store.get(k("a")), store.set(k("a"), rec(1)), store.delete(k("a")), store.ping()):
        with pytest.raises(ClientClosedError):
            await call
    reopened = SqliteWarmMemory(tmp_path / "w.db")
    async with reopened:
        assert val(await reopened.get(k("a"))) == 1


async def test_sqlite_close_without_use(tmp_path: Path) -> None:
    store = SqliteWarmMemory(tmp_path / "never.db")
    await store.aclose()
    assert not (tmp_path / "never.db").exists()


# =====================================================================================================
# FileColdMemory


@pytest.fixture
def cold_root(tmp_path: Path) -> Path:
    return tmp_path / "cold" / "root"


@pytest.fixture
def cold(cold_root: Path) -> FileColdMemory:
    return FileColdMemory(cold_root, fsync=False)


async def test_file_atomic_writes_leave_no_temp_files(cold_root: Path) -> None:
    store = FileColdMemory(cold_root, fsync=True)
    await asyncio.gather(*(store.set(k(f"k{i % 5}"), rec(os.urandom(3000))) for i in range(40)))
    await store.mset([(k(f"m{i}"), rec(i)) for i in range(20)])
    names = [p.name for p in files_under(cold_root)]
    assert len(names) == 25
    assert not [n for n in names if n.startswith(".tmp-")]


async def test_file_failed_write_raises_and_leaves_no_temp_file(
    cold: FileColdMemory, cold_root: Path
) -> None:
    mk = k("target")
    await cold.set(mk, rec("first"))
    (path,) = files_under(cold_root)
    # Occupy the final path with a directory, so the rename over it must fail.
    path.unlink()
    path.mkdir()
    (path / "keep.txt").write_text("untouched")
    with pytest.raises(TierUnavailableError) as info:
        await cold.set(mk, rec("second"))
    assert info.value.tier is Tier.COLD
    assert info.value.operation == "set"
    assert isinstance(info.value.__cause__, OSError)
    assert path.is_dir()
    assert (path / "keep.txt").read_text() == "untouched"
    assert [p.name for p in files_under(cold_root)] == ["keep.txt"]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
async def test_file_failed_overwrite_keeps_the_previous_value(cold: FileColdMemory, cold_root: Path) -> None:
    import resource

    mk = k("precious")
    await cold.set(mk, rec(b"old value"))
    big = rec(os.urandom(512 * 1024))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = 64 * 1024 if hard == resource.RLIM_INFINITY else min(64 * 1024, hard)
    # With SIGXFSZ ignored, writing past RLIMIT_FSIZE fails with EFBIG: a real disk-full style failure.
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(TierUnavailableError) as info:
            await cold.set(mk, big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.EFBIG
    assert val(await cold.get(mk)) == b"old value"
    assert [p.name for p in files_under(cold_root) if p.name.startswith(".tmp-")] == []
    assert len(files_under(cold_root)) == 1


HOSTILE_KEYS = [
    "../../etc/passwd",
    "../sibling/planted",
    "../../../../../../tmp/escape",
    "a/b",
    "a/../../b",
    "..",
    ".",
    "/",
    "/abs/path",
    "\\..\\..\\win",
    "%2F..%2Fx",
    "..%2f..%2f",
    "~",
    "~/home",
    ".tmp-looks-temporary",
    ".hidden",
    "con",
    "nul.txt",
    "a:b",
    "x" * 300,
]


async def test_file_hostile_keys_stay_under_root(tmp_path: Path, cold_root: Path) -> None:
    sibling = tmp_path / "cold" / "sibling"
    sibling.mkdir(parents=True)
    store = FileColdMemory(cold_root, fsync=False)
    for i, key in enumerate(HOSTILE_KEYS):
        await store.set(k(key), rec(i))
    for i, key in enumerate(HOSTILE_KEYS):
        assert val(await store.get(k(key))) == i
    files = files_under(cold_root)
    assert len(files) == len(HOSTILE_KEYS)
    assert all_inside(files, cold_root)
    # Nothing appeared anywhere else.
    assert names_in(tmp_path / "cold") == ["root", "sibling"]
    assert names_in(sibling) == []
    assert names_in(tmp_path) == ["cold"]
    assert {mk.key async for mk in store.scan("t")} == set(HOSTILE_KEYS)
    for key in HOSTILE_KEYS:
        await store.delete(k(key))
    assert files_under(cold_root) == []


@pytest.mark.parametrize("key", ["k" * 512, "é" * 256, "😀" * 128, "/" * 512, "." * 512, "A" * 512])
async def test_file_longest_keys(cold: FileColdMemory, cold_root: Path, key: str) -> None:
    mk = k(key, "t" * 64, "n" * 64)
    await cold.set(mk, rec(key))
    assert val(await cold.get(mk)) == key
    assert await cold.exists(mk)
    assert [m async for m in cold.scan("t" * 64)] == [mk]
    for path in files_under(cold_root):
        assert all(len(part.encode()) <= 255 for part in path.relative_to(cold_root).parts)
    await cold.delete(mk)
    assert await cold.get(mk) is None


async def test_file_keys_differing_only_by_case_are_different_files(
    cold: FileColdMemory, cold_root: Path
) -> None:
    variants = ["key", "Key", "KEY", "kEy"]
    for i, key in enumerate(variants):
        await cold.set(k(key), rec(i))
    for i, key in enumerate(variants):
        assert val(await cold.get(k(key))) == i
    names = [str(p.relative_to(cold_root)) for p in files_under(cold_root)]
    assert len(names) == len(variants)
    assert len({n.casefold() for n in names}) == len(variants)  # distinct on case-insensitive file systems


async def test_file_tenants_differing_only_by_case(cold: FileColdMemory, cold_root: Path) -> None:
    await cold.set(k("x", "Tenant"), rec(1))
    await cold.set(k("x", "tenant"), rec(2))
    assert val(await cold.get(k("x", "Tenant"))) == 1
    assert val(await cold.get(k("x", "tenant"))) == 2
    assert [mk.tenant async for mk in cold.scan("Tenant")] == ["Tenant"]
    assert len({name.casefold() for name in names_in(cold_root)}) == 2


LONG_FORM_KEY = "é" * 62 + "a"  # 125 bytes: too long to percent-encode in one segment


@pytest.mark.parametrize("first_short", [True, False])
async def test_file_key_and_its_extension_coexist(cold: FileColdMemory, first_short: bool) -> None:
    short, longer = k(LONG_FORM_KEY), k(LONG_FORM_KEY + "tail")
    order = [short, longer] if first_short else [longer, short]
    for mk in order:
        await cold.set(mk, rec(mk.key))
    assert val(await cold.get(short)) == short.key
    assert val(await cold.get(longer)) == longer.key
    assert {mk async for mk in cold.scan("t")} == {short, longer}


async def test_file_etag_changes_on_every_write(cold: FileColdMemory, cold_root: Path) -> None:
    mk = k("versioned")
    first = await cold.set(mk, rec("aaaa"))
    (path,) = files_under(cold_root)
    stamp = path.stat().st_mtime_ns
    second = await cold.set(mk, rec("bbbb"))  # same size
    # File systems with coarse timestamps (1-2 s on FAT/HFS+, a jiffy on many Linux kernels) give two
    # quick writes the same mtime; model that, so the ETag cannot lean on the clock alone.
    os.utime(path, ns=(stamp, stamp))
    current = await cold.get(mk)
    assert current is not None
    assert current.etag != first
    with pytest.raises(ConflictError):
        await cold.set(mk, rec("cccc"), if_match=first)
    assert val(await cold.get(mk)) == "bbbb"
    assert second


async def test_file_if_match_and_if_absent(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    store = FileColdMemory(tmp_path / "c", fsync=False, clock=clock)
    first = await store.set(k("a"), rec(1), if_absent=True)
    assert first
    with pytest.raises(ConflictError):
        await store.set(k("a"), rec(2), if_absent=True)
    record = await store.get(k("a"))
    assert record is not None
    assert record.etag == first
    second = await store.set(k("a"), rec(22), if_match=first)
    assert val(await store.get(k("a"))) == 22
    with pytest.raises(ConflictError):
        await store.set(k("a"), rec(3), if_match="stale")
    with pytest.raises(ConflictError):
        await store.set(k("missing"), rec(3), if_match=second)
    await store.set(k("old"), rec(1, expires_at=999.0))
    await store.set(k("old"), rec(2), if_absent=True)
    assert val(await store.get(k("old"))) == 2
    await store.mset([(k("a"), rec(9)), (k("new"), rec(9))], if_absent=True)
    assert val(await store.get(k("a"))) == 22
    assert val(await store.get(k("new"))) == 9


async def test_file_sweep_deletes_only_expired_files(tmp_path: Path) -> None:
    root = tmp_path / "c"
    clock = FakeClock(1000.0)
    store = FileColdMemory(root, fsync=False, clock=clock)
    await store.set(k("past"), rec(1, expires_at=900.0))
    await store.set(k("now"), rec(1, expires_at=1000.0))
    await store.set(k("future"), rec(1, expires_at=1100.0))
    await store.set(k("never"), rec(1))
    await store.set(k("gone", "other", "ns"), rec(1, expires_at=1.0))
    namespace_dir = next(p.parent for p in files_under(root) if p.parent.parent.parent == root)
    foreign = {
        root / "README.txt": b"an operator's note",
        root / "foreign-dir" / "data.bin": b"xy",
        namespace_dir / "notes.txt": b"x" * 100,
        namespace_dir / "sub" / "deeper.bin": os.urandom(64),
    }
    for path, data in foreign.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert await store.sweep() == 3
    assert await store.get(k("past")) is None
    assert await store.get(k("now")) is None
    assert await store.get(k("gone", "other", "ns")) is None
    assert val(await store.get(k("future"))) == 1
    assert val(await store.get(k("never"))) == 1
    for path, data in foreign.items():
        assert path.read_bytes() == data
    assert await store.sweep() == 0
    assert await store.sweep(now=2000.0) == 1
    assert await FileColdMemory(tmp_path / "absent").sweep() == 0


async def test_file_scan_is_per_tenant(cold: FileColdMemory, cold_root: Path) -> None:
    layout = {("t1", "n1"): 3, ("t1", "n2"): 2, ("t2", "n1"): 4, ("t10", "n1"): 1, ("T1", "n1"): 1}
    for (tenant, ns), count in layout.items():
        await cold.mset([(k(f"k{i}", tenant, ns), rec(i)) for i in range(count)])
    # A write that crashed half-way leaves a temp file behind; it is not a key.
    (path,) = [p for p in files_under(cold_root) if p.name == "k0"][:1]
    (path.parent / ".tmp-0123456789abcdef").write_bytes(b"partial")

    async def keys_of(tenant: str, ns: str | None = None) -> set[MemoryKey]:
        return {mk async for mk in cold.scan(tenant, ns)}

    assert await keys_of("t1") == {k(f"k{i}", "t1", ns) for ns, c in (("n1", 3), ("n2", 2)) for i in range(c)}
    assert await keys_of("t1", "n2") == {k("k0", "t1", "n2"), k("k1", "t1", "n2")}
    assert len(await keys_of("t2")) == 4
    assert await keys_of("t10") == {k("k0", "t10", "n1")}
    assert await keys_of("T1") == {k("k0", "T1", "n1")}
    assert await keys_of("nobody") == set()
    assert await keys_of("t1", "nothing") == set()
    with pytest.raises(InvalidScopeError):
        await keys_of("../t1")


async def test_file_exists_delete_and_mget(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    store = FileColdMemory(tmp_path / "c", fsync=False, clock=clock)
    await store.set(k("live"), rec("l", expires_at=2000.0))
    await store.set(k("dead"), rec("d", expires_at=500.0))
    assert await store.exists(k("live"))
    assert not await store.exists(k("dead"))
    assert not await store.exists(k("missing"))
    result = await store.mget([k("live"), k("missing"), k("live")])
    assert [None if r is None else val(r) for r in result] == ["l", None, "l"]
    await store.delete(k("live"))
    await store.delete(k("live"))
    await store.delete(k("never-existed"))
    assert await store.get(k("live")) is None


async def test_file_use_after_close(cold: FileColdMemory) -> None:
    await cold.set(k("a"), rec(1))
    await cold.aclose()
    await cold.aclose()
    for call in (cold.get(k("a")), cold.set(k("a"), rec(1)), cold.delete(k("a")), cold.exists(k("a"))):
        with pytest.raises(ClientClosedError):
            await call
