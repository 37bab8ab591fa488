"""Embedded-default scenarios: set/get against diskcache and against raw ``sqlite3`` (issue 17).

* ``embedded.set``: the embedded default client (in-process hot + SQLite warm + files) ``set`` with
  ``durability="os"`` and ``durability="fsync"``, against diskcache ``Cache.set`` (WAL,
  ``synchronous=NORMAL``) and against a raw ``sqlite3`` ``INSERT OR REPLACE`` + ``COMMIT`` of
  already-encoded bytes into the same table under the same pragmas (WAL + ``synchronous=NORMAL`` /
  ``FULL``): the physical floor of one durable commit.
* ``embedded.get``: the embedded default ``get`` (a hot hit) against diskcache ``Cache.get`` and a raw
  ``SELECT``.
* ``warm.sqlite``: a SQLite-warm-only client (no hot tier: every ``get`` reads SQLite) against
  diskcache, plus the bare ``SqliteWarmMemory.get`` to show the client's share.
* ``embedded.concurrent``: 64 concurrent embedded ``set`` calls (``fsync``) against the same sets one
  after another: throughput from group commit.

Every store lives in a fresh temporary directory on the same file system; values are ~300 B agent
messages (diskcache pickles them, tiermem encodes them, the raw baselines store pre-encoded bytes).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import diskcache

from benchmarks._harness import BenchmarkError, Comparison, Scenario, Target, Variant, timer
from benchmarks._payloads import small_message
from tiermem import (
    Codec,
    FileColdMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    SqliteWarmMemory,
    make_key,
)
from tiermem.tiers.sqlite import Durability

__all__ = ["EmbeddedBench", "embedded_scenarios", "open_embedded"]

CONCURRENCY: Final = 64
# tiermem's own schema (table and expiry index), so the raw commit does the same physical work.
_TABLE: Final = """
CREATE TABLE IF NOT EXISTS tiermem_items (
    tenant TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
    expires_at REAL, etag TEXT NOT NULL, PRIMARY KEY (tenant, ns, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tiermem_items_expiry ON tiermem_items (expires_at) WHERE expires_at IS NOT NULL;
"""
_UPSERT: Final = "INSERT OR REPLACE INTO tiermem_items VALUES (?,?,?,?,?,?)"
_SELECT: Final = "SELECT data, etag FROM tiermem_items WHERE tenant=? AND ns=? AND key=?"


@dataclass(slots=True)
class EmbeddedBench:
    """The stores every embedded scenario shares; closed by the exit stack they were opened with."""

    root: Path
    clients: dict[Durability, MemoryClient]  # the embedded default, per durability
    warm_only: MemoryClient  # SQLite warm only (durability="os")
    warm_store: SqliteWarmMemory  # the store inside warm_only
    diskcache: Any  # diskcache.Cache (untyped)
    raw: dict[Durability, sqlite3.Connection]
    keys: list[str]
    encoded: list[bytes]  # the records tiermem stores for keys, for the raw baselines


def _embedded_client(root: Path, durability: Durability) -> MemoryClient:
    return (
        MemoryBuilder()
        .with_hot(LocalHotMemory(max_items=50_000, max_bytes=512 * 1024 * 1024))
        .with_warm(SqliteWarmMemory(root / f"warm-{durability}.db", durability=durability))
        .with_cold(FileColdMemory(root / f"cold-{durability}"))
        .build()
    )


def _raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(_TABLE)
    return conn


async def open_embedded(stack: AsyncExitStack, *, quick: bool) -> EmbeddedBench:
    """Open every store in a fresh temporary directory and load the same keys into each."""
    root = Path(tempfile.mkdtemp(prefix="tiermem-bench-"))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    clients: dict[Durability, MemoryClient] = {}
    for durability in ("os", "fsync"):
        client = _embedded_client(root, durability)
        stack.push_async_callback(client.aclose)
        clients[durability] = client
    warm_store = SqliteWarmMemory(root / "warm-only.db", durability="os")
    warm_only = MemoryBuilder().with_warm(warm_store).build()
    stack.push_async_callback(warm_only.aclose)
    raw = {
        "os": _raw_connection(root / "raw-os.db", "NORMAL"),
        "fsync": _raw_connection(root / "raw-fsync.db", "FULL"),
    }
    for conn in raw.values():
        stack.callback(conn.close)
    cache = diskcache.Cache(str(root / "diskcache"))  # its defaults: WAL, synchronous=NORMAL
    stack.callback(cache.close)
    keys = [f"k{i:05d}" for i in range(50 if quick else 1000)]
    values = {key: small_message(i) for i, key in enumerate(keys)}
    codec = Codec()
    encoded = [codec.encode(value)[0].to_bytes() for value in values.values()]
    for client in (*clients.values(), warm_only):
        await client.mset(values)
    for conn in raw.values():
        conn.execute("BEGIN")
        conn.executemany(
            _UPSERT, [("t", "n", key, data, None, "e") for key, data in zip(keys, encoded, strict=True)]
        )
        conn.execute("COMMIT")
    for key, value in values.items():
        cache.set(key, value)
    return EmbeddedBench(root, clients, warm_only, warm_store, cache, raw, keys, encoded)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


def _async_loop(
    op: Callable[[int], Awaitable[Any]], check: Callable[[Any], bool], what: str
) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        result: Any = None
        start = timer()
        for i in range(n):
            result = await op(i)
        elapsed = timer() - start
        _expect(check(result), what)
        return elapsed

    return run


def _sync_loop(
    op: Callable[[int], Any], check: Callable[[Any], bool], what: str
) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        result: Any = None
        start = timer()
        for i in range(n):
            result = op(i)
        elapsed = timer() - start
        _expect(check(result), what)
        return elapsed

    return run


def _ok(result: Any) -> bool:
    return True


def _found(result: Any) -> bool:
    return result is not None


def _set_variants(bench: EmbeddedBench, values: list[Any]) -> list[Variant]:
    keys = bench.keys
    count = len(keys)
    variants: list[Variant] = []
    for durability, client in bench.clients.items():

        async def tiermem_set(i: int, client: MemoryClient = client) -> Any:
            return await client.set(keys[i % count], values[i % count])

        variants.append(Variant(f"tiermem {durability}", _async_loop(tiermem_set, _ok, "tiermem set")))
    rows = [("t", "n", key, data, None, "e") for key, data in zip(keys, bench.encoded, strict=True)]
    for durability, conn in bench.raw.items():

        def raw_set(i: int, conn: sqlite3.Connection = conn) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_UPSERT, rows[i % count])
            conn.execute("COMMIT")

        name = f"sqlite3 commit {'NORMAL' if durability == 'os' else 'FULL'}"
        variants.append(Variant(name, _sync_loop(raw_set, _ok, "raw sqlite3 insert")))
    cache = bench.diskcache
    variants.append(
        Variant(
            "diskcache set",
            _sync_loop(lambda i: cache.set(keys[i % count], values[i % count]), bool, "dc set"),
        )
    )
    return variants


def embedded_scenarios(bench: EmbeddedBench) -> list[Scenario]:
    keys = bench.keys
    count = len(keys)
    values = [small_message(i) for i in range(count)]
    cache = bench.diskcache
    raw = bench.raw["os"]
    params = [("t", "n", key) for key in keys]

    def raw_select(i: int) -> Any:
        return raw.execute(_SELECT, params[i % count]).fetchone()

    def dc_get(i: int) -> Any:
        return cache.get(keys[i % count])

    def dc_set(i: int) -> Any:
        return cache.set(keys[i % count], values[i % count])

    set_rows = [
        Comparison(
            "embedded.set.diskcache",
            "embedded set, durability=os vs diskcache set",
            "tiermem os",
            "diskcache set",
            Target("max_ratio", 1.5, "<= 1.5x"),
            note="diskcache: WAL + synchronous=NORMAL, like durability=os",
        ),
        Comparison(
            "embedded.set.sqlite3.fsync",
            "embedded set, durability=fsync vs raw sqlite3 insert+commit (WAL, FULL)",
            "tiermem fsync",
            "sqlite3 commit FULL",
            Target("max_ratio", 1.3, "<= 1.3x"),
            note="the floor of one durable commit: one fsync of the WAL",
        ),
        Comparison(
            "embedded.set.sqlite3.os",
            "embedded set, durability=os vs raw sqlite3 insert+commit (WAL, NORMAL)",
            "tiermem os",
            "sqlite3 commit NORMAL",
            None,
        ),
        Comparison(
            "embedded.set.fsync.diskcache",
            "embedded set, durability=fsync vs diskcache set (which does not fsync)",
            "tiermem fsync",
            "diskcache set",
            None,
        ),
    ]

    client = bench.clients["os"]
    get_variants = [
        Variant("tiermem", _async_loop(lambda i: client.get(keys[i % count]), _found, "embedded get missed")),
        Variant("diskcache get", _sync_loop(dc_get, _found, "diskcache get missed")),
        Variant("sqlite3 SELECT", _sync_loop(raw_select, _found, "raw select missed")),
    ]
    get_rows = [
        Comparison(
            "embedded.get.diskcache",
            "embedded get (hot hit) vs diskcache get",
            "tiermem",
            "diskcache get",
            None,
        ),
        Comparison(
            "embedded.get.sqlite3",
            "embedded get (hot hit) vs raw sqlite3 SELECT",
            "tiermem",
            "sqlite3 SELECT",
            None,
        ),
    ]

    warm_only = bench.warm_only
    store = bench.warm_store
    mks = [make_key(warm_only.tenant, warm_only.namespace, key) for key in keys]
    warm_variants = [
        Variant(
            "warm-only get", _async_loop(lambda i: warm_only.get(keys[i % count]), _found, "warm get missed")
        ),
        Variant(
            "SqliteWarmMemory.get", _async_loop(lambda i: store.get(mks[i % count]), _found, "adapter missed")
        ),
        Variant("diskcache get", _sync_loop(dc_get, _found, "diskcache get missed")),
        Variant("sqlite3 SELECT", _sync_loop(raw_select, _found, "raw select missed")),
        Variant(
            "warm-only set",
            _async_loop(lambda i: warm_only.set(keys[i % count], values[i % count]), _ok, "set"),
        ),
        Variant("diskcache set", _sync_loop(dc_set, bool, "diskcache set failed")),
    ]
    warm_rows = [
        Comparison(
            "warm.sqlite.get.diskcache",
            "SQLite-warm-only get vs diskcache get",
            "warm-only get",
            "diskcache get",
            Target("max_ratio", 3.0, "<= 3x"),
            note="no hot tier: every get reads SQLite",
        ),
        Comparison(
            "warm.sqlite.adapter.get",
            "SqliteWarmMemory.get alone vs raw sqlite3 SELECT",
            "SqliteWarmMemory.get",
            "sqlite3 SELECT",
            None,
            note="the adapter's share; the rest of the warm-only get is the client's",
        ),
        Comparison(
            "warm.sqlite.set.diskcache",
            "SQLite-warm-only set, durability=os vs diskcache set",
            "warm-only set",
            "diskcache set",
            None,
        ),
    ]

    fsync_client = bench.clients["fsync"]

    async def concurrent(n: int) -> float:
        start = timer()
        for wave in range(0, n, CONCURRENCY):
            batch = range(wave, min(n, wave + CONCURRENCY))
            await asyncio.gather(*(fsync_client.set(keys[i % count], values[i % count]) for i in batch))
        return timer() - start

    async def sequential(n: int) -> float:
        start = timer()
        for i in range(n):
            await fsync_client.set(keys[i % count], values[i % count])
        return timer() - start

    return [
        Scenario("embedded.set", "embedded", _set_variants(bench, values), set_rows),
        Scenario("embedded.get", "embedded", get_variants, get_rows),
        Scenario("warm.sqlite", "embedded", warm_variants, warm_rows),
        Scenario(
            "embedded.concurrent",
            "embedded",
            [Variant("64 concurrent", concurrent), Variant("sequential", sequential)],
            [
                Comparison(
                    "embedded.set.concurrent64",
                    f"{CONCURRENCY} concurrent embedded sets (fsync) vs sequential: throughput",
                    "64 concurrent",
                    "sequential",
                    Target("min_speedup", 8.0, ">= 8x throughput"),
                    note="group commit: concurrent writes share one transaction and one fsync",
                )
            ],
        ),
    ]
