"""Group commit in the SQLite warm tier: shared transactions, per-caller failures, reads beside writes.

The writer is held on a gate (a blocking step queued first) so that the writes under test are all
waiting when it resumes: which writes share a transaction is then fixed, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tiermem import (
    BatchWriteError,
    ClientClosedError,
    Codec,
    ConfigurationError,
    MemoryKey,
    SqliteWarmMemory,
    Tier,
    TierError,
    TierUnavailableError,
    make_key,
)
from tiermem.tiers._sqlite_writer import GroupCommitWriter

CODEC = Codec()
pytestmark = pytest.mark.timeout(60)


def k(key: str) -> MemoryKey:
    return make_key("t", "n", key)


class Rig:
    """A GroupCommitWriter on a real file, counting the COMMITs it issues."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0
        self.gate = threading.Event()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE items (key TEXT PRIMARY KEY, parent TEXT)")
            conn.execute("CREATE TABLE parents (key TEXT PRIMARY KEY)")
        self.writer = GroupCommitWriter(self._connect, name="test-writer")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.set_trace_callback(self._trace)
        return conn

    def _trace(self, statement: str) -> None:
        if statement == "COMMIT":
            self.commits += 1

    def hold(self) -> asyncio.Future[None]:
        """Queue a step that blocks the writer thread until ``gate`` is set."""
        self.gate.clear()

        def wait(conn: sqlite3.Connection) -> None:
            assert self.gate.wait(30), "the test never opened the gate"

        return self.writer.call(wait)

    def insert(self, key: str, *, savepoint: bool = True) -> asyncio.Future[int]:
        return self.writer.submit(
            lambda conn: conn.execute("INSERT INTO items (key) VALUES (?)", (key,)).rowcount,
            savepoint=savepoint,
        )

    def keys(self) -> list[str]:
        with closing(sqlite3.connect(self.path)) as conn:
            return sorted(row[0] for row in conn.execute("SELECT key FROM items"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path / "g.db")
    yield rig
    rig.gate.set()
    await rig.writer.aclose()


async def test_writes_waiting_together_share_one_commit(rig: Rig) -> None:
    await rig.writer.call(lambda conn: None)  # connection open
    held = rig.hold()
    futures = [rig.insert(f"k{i:02d}") for i in range(64)]
    rig.gate.set()
    await held
    assert await asyncio.gather(*futures) == [1] * 64
    assert rig.commits == 1
    assert rig.keys() == [f"k{i:02d}" for i in range(64)]


@pytest.mark.parametrize("savepoint", [True, False])
async def test_a_failing_statement_fails_only_its_caller(rig: Rig, savepoint: bool) -> None:
    await rig.insert("taken")
    held = rig.hold()
    futures = [rig.insert("taken" if i == 5 else f"k{i}", savepoint=savepoint) for i in range(10)]
    rig.gate.set()
    await held
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[5], sqlite3.IntegrityError)
    assert [r for i, r in enumerate(results) if i != 5] == [1] * 9
    assert rig.commits == 2  # "taken", then the group
    assert rig.keys() == sorted(["taken", *(f"k{i}" for i in range(10) if i != 5)])


@pytest.mark.parametrize("savepoint", [True, False])
async def test_a_write_that_ends_the_transaction_does_not_take_the_others_down(
    rig: Rig, savepoint: bool
) -> None:
    with closing(sqlite3.connect(rig.path)) as conn:
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON items WHEN NEW.key = 'poison' "
            "BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END"
        )
        conn.commit()
    held = rig.hold()
    futures = [rig.insert("poison" if i == 3 else f"k{i}", savepoint=savepoint) for i in range(8)]
    rig.gate.set()
    await held
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert "poisoned" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [1] * 7
    assert rig.keys() == [f"k{i}" for i in range(8) if i != 3]


async def test_a_write_in_a_savepoint_is_undone_whole(rig: Rig) -> None:
    await rig.insert("taken")
    held = rig.hold()

    def two(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items (key) VALUES ('first-half')")
        conn.execute("INSERT INTO items (key) VALUES ('taken')")  # fails after the first insert ran

    futures = [rig.insert("before"), rig.writer.submit(two), rig.insert("after")]
    rig.gate.set()
    await held
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == results[2] == 1
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert rig.keys() == ["after", "before", "taken"]  # no "first-half"


async def test_a_failed_commit_fails_every_caller_and_writes_nothing(rig: Rig) -> None:
    with closing(sqlite3.connect(rig.path)) as conn:
        conn.executescript(
            "DROP TABLE items; CREATE TABLE items (key TEXT PRIMARY KEY, "
            "parent TEXT REFERENCES parents(key) DEFERRABLE INITIALLY DEFERRED);"
        )
    held = rig.hold()
    futures = [rig.insert(f"k{i}") for i in range(5)]
    # A deferred foreign key is checked at COMMIT: this write makes the whole group's commit fail.
    futures.append(
        rig.writer.submit(lambda conn: conn.execute("INSERT INTO items VALUES ('orphan', 'nobody')").rowcount)
    )
    rig.gate.set()
    await held
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert len({id(r) for r in results}) == len(results)  # each caller has its own exception
    assert rig.keys() == []
    assert await rig.insert("after") == 1  # the connection is usable again
    assert rig.keys() == ["after"]


async def test_a_write_cancelled_before_it_started_is_skipped(rig: Rig) -> None:
    held = rig.hold()
    kept, cancelled = rig.insert("kept"), rig.insert("cancelled")
    cancelled.cancel()
    rig.gate.set()
    await held
    assert await kept == 1
    assert rig.keys() == ["kept"]


async def test_close_finishes_queued_writes_then_refuses(rig: Rig) -> None:
    held = rig.hold()
    futures = [rig.insert(f"k{i}") for i in range(5)]
    closing_task = asyncio.ensure_future(rig.writer.aclose())
    rig.gate.set()
    await held
    await closing_task
    assert await asyncio.gather(*futures) == [1] * 5
    assert rig.keys() == [f"k{i}" for i in range(5)]
    with pytest.raises(ClientClosedError):
        rig.insert("late")
    await rig.writer.aclose()  # idempotent


# --- the adapter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["sometimes", "FSYNC", "", None, "full"])
def test_bad_durability_is_a_configuration_error(tmp_path: Path, durability: Any) -> None:
    with pytest.raises(ConfigurationError, match="durability"):
        SqliteWarmMemory(tmp_path / "w.db", durability=durability)


def test_negative_busy_timeout_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SqliteWarmMemory(tmp_path / "w.db", busy_timeout=-1)


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding the write lock until the block ends."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        data = CODEC.encode("other")[0].to_bytes()
        conn.execute("INSERT INTO tiermem_items VALUES ('t', 'n', 'other', ?, NULL, 'e')", (data,))
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")


def record(value: Any) -> Any:
    return CODEC.encode(value)[0]


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_reads_do_not_wait_for_a_held_write_lock(tmp_path: Path, durability: Any) -> None:
    path = tmp_path / "w.db"
    async with SqliteWarmMemory(path, durability=durability) as store:
        await store.set(k("big"), record(b"x" * 200_000))  # above the inline size: read on a thread
        await store.set(k("a"), record(1))
        with write_locked(path) as other:
            pending = asyncio.ensure_future(store.set(k("a"), record(2)))
            assert CODEC.decode(await store.get(k("a"))) == 1  # type: ignore[arg-type]
            assert await store.exists(k("a"))
            assert [r is not None for r in await store.mget([k("a"), k("big"), k("other")])] == [
                True,
                True,
                False,
            ]
            big = await store.get(k("big"))
            assert big is not None and CODEC.decode(big) == b"x" * 200_000
            assert {mk.key async for mk in store.scan("t")} == {"a", "big"}
            await asyncio.sleep(0.05)
            assert not pending.done()  # the write waits for the lock (busy_timeout), the loop does not
            other.execute("ROLLBACK")
        assert await pending
        assert CODEC.decode(await store.get(k("a"))) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_a_lock_held_past_busy_timeout_fails_the_write(tmp_path: Path, durability: Any) -> None:
    path = tmp_path / "w.db"
    async with SqliteWarmMemory(path, durability=durability, busy_timeout=0.2) as store:
        await store.set(k("a"), record(1))
        with write_locked(path):
            with pytest.raises(TierUnavailableError) as info:
                await store.set(k("a"), record(2))
            with pytest.raises(BatchWriteError) as batch:
                await store.mset([(k("b"), record(1))])
        assert batch.value.written == ()
        assert isinstance(batch.value.failed["b"], TierUnavailableError)
        assert info.value.tier is Tier.WARM and info.value.operation == "set"
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert CODEC.decode(await store.get(k("a"))) == 1  # type: ignore[arg-type]
        assert await store.get(k("b")) is None


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_a_poisoned_write_fails_alone_among_concurrent_writes(tmp_path: Path, durability: Any) -> None:
    path = tmp_path / "w.db"
    async with SqliteWarmMemory(path, durability=durability) as store:
        await store.setup()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON tiermem_items WHEN NEW.key = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
            conn.commit()
        names = [f"k{i}" for i in range(30)]
        names[17] = "poison"
        results = await asyncio.gather(*(store.set(k(n), record(n)) for n in names), return_exceptions=True)
        assert isinstance(results[17], TierError)
        assert results[17].tier is Tier.WARM and "poisoned" in str(results[17])
        assert all(isinstance(r, str) for i, r in enumerate(results) if i != 17)
        stored = await store.mget([k(n) for n in names])
        assert [r is not None for r in stored] == [n != "poison" for n in names]


async def test_os_durability_never_blocks_the_loop_on_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with SqliteWarmMemory(path, durability="os") as store:
        await store.set(k("a"), record(1))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        try:
            with write_locked(path) as other:
                pending = asyncio.ensure_future(store.set(k("a"), record(2)))
                before = ticks
                await asyncio.sleep(0.1)
                assert ticks - before >= 20  # the loop kept running while the write waited
                assert not pending.done()
                other.execute("COMMIT")
            assert await pending
        finally:
            task.cancel()
        assert CODEC.decode(await store.get(k("a"))) == 2  # type: ignore[arg-type]
        assert await store.get(k("other")) is not None  # the other connection's commit is visible


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_many_writes_across_both_paths_all_land(tmp_path: Path, durability: Any) -> None:
    async with SqliteWarmMemory(tmp_path / "w.db", durability=durability) as store:
        small = [(k(f"s{i}"), record(i)) for i in range(300)]
        large = [(k(f"l{i}"), record(bytes([i]) * 70_000)) for i in range(10)]
        etags = await asyncio.gather(
            *(store.set(mk, rec) for mk, rec in small + large),
            store.mset([(k(f"m{i}"), record(i)) for i in range(50)]),
            *(store.delete(k(f"s{i}")) for i in range(0, 300, 10)),
        )
        assert len({e for e in etags if e is not None}) == 310
        got = await store.mget([mk for mk, _ in small + large] + [k(f"m{i}") for i in range(50)])
        assert sum(r is not None for r in got) >= 310 + 50 - 30  # a delete may run before or after its set
        for mk, rec in large:
            assert (await store.get(mk)) is not None
            assert CODEC.decode(await store.get(mk)) == CODEC.decode(rec)  # type: ignore[arg-type]


async def test_memory_database_keeps_everything_on_one_connection() -> None:
    async with SqliteWarmMemory(":memory:") as store:
        await store.set(k("a"), record(1))
        assert CODEC.decode(await store.get(k("a"))) == 1  # type: ignore[arg-type]
        assert await store.exists(k("a"))
        assert [mk.key async for mk in store.scan("t")] == ["a"]


@pytest.mark.parametrize(("env", "expected"), [(None, "fsync"), ("os", "os"), ("fsync", "fsync")])
async def test_durability_comes_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str
) -> None:
    from tiermem import MemoryBuilder
    from tiermem._settings import MemorySettings

    for name in ("TIERMEM_REDIS_URL", "TIERMEM_COSMOS_ENDPOINT", "TIERMEM_BLOB_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIERMEM_LOCAL_DIR", str(tmp_path))
    if env is None:
        monkeypatch.delenv("TIERMEM_SQLITE_DURABILITY", raising=False)
    else:
        monkeypatch.setenv("TIERMEM_SQLITE_DURABILITY", env)
    async with MemoryBuilder.from_settings(MemorySettings()).build() as memory:
        warm = memory.tier_store(Tier.WARM)
        assert isinstance(warm, SqliteWarmMemory)
        assert warm.durability == expected
        await memory.set("k", 1)
        assert await memory.get("k") == 1


def test_a_bad_durability_setting_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiermem._settings import MemorySettings

    monkeypatch.setenv("TIERMEM_SQLITE_DURABILITY", "sometimes")
    with pytest.raises(ConfigurationError, match="SQLITE_DURABILITY"):
        MemorySettings()
