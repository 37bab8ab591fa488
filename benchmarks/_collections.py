"""Collection scenarios: ``put`` and a newest-first ``list(limit=10)`` on a 10,000-item collection.

* embedded: tiermem on ``SqliteWarmMemory`` against raw ``sqlite3`` on the same database file and the
  same table and primary-key index (``ORDER BY key DESC LIMIT 10``; ``INSERT OR REPLACE`` + commit),
  run on one dedicated worker thread as the adapter does, with the same ``synchronous=FULL``.
* stand-ins: tiermem on Redis + the Cosmos DB stand-in against a raw ``query_items("SELECT TOP 10 ...
  ORDER BY c.s DESC", partition_key=...)`` in the collection's partition, and a raw ``upsert_item``.

Both sides decode the ten values they list (the raw side skips the envelope header and parses JSON).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import sqlite3
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Variant, timer
from benchmarks._hot import PREFIX_TIERMEM
from benchmarks._payloads import small_message
from benchmarks._services import Endpoints
from tiermem import MemoryBuilder, SqliteWarmMemory
from tiermem._codec import Record

__all__ = ["collection_scenarios", "unavailable_rows"]

ITEMS = 10_000
QUICK_ITEMS = 300
NAME = "bench-thread"
DATABASE = "tiermem-bench"


def _key(i: int) -> str:
    return f"c|{i:07d}"


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


def unavailable_rows(endpoints: Endpoints) -> list[Row]:
    if endpoints.redis_url and endpoints.cosmos_endpoint and endpoints.cosmos_key:
        return []
    reason = "embedded default; use --start-services or endpoints"
    return [
        Row(
            "coll.list.cosmos",
            "collections",
            "list newest 10 vs TOP 10 ORDER BY",
            None,
            None,
            na_reason=reason,
        ),
        Row("coll.put.cosmos", "collections", "put vs upsert_item", None, None, na_reason=reason),
    ]


async def _fill(coll: Any, items: int, batch: int, concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(start: int) -> None:
        async with limit:
            await coll.put_many(
                [(_key(i), small_message(i), {"step": i}) for i in range(start, min(items, start + batch))]
            )

    await asyncio.gather(*(one(start) for start in range(0, items, batch)))


def _scenario(
    group_id: str, coll: Any, raw_list: Any, raw_put: Any, baseline: str, put_baseline: str, items: int
) -> list[Scenario]:
    newest = [_key(i) for i in range(items - 1, items - 11, -1)]
    counter = iter(range(10**9))

    async def tiermem_list(n: int) -> float:
        got: list[str] = []
        start = timer()
        for _ in range(n):
            got = [item.key async for item in coll.list(reverse=True, limit=10)]
        elapsed = timer() - start
        _expect(got == newest, "tiermem list did not return the newest ten")
        return elapsed

    async def raw_list_run(n: int) -> float:
        keys: list[str] = []
        start = timer()
        for _ in range(n):
            keys = await raw_list()
        elapsed = timer() - start
        _expect(keys == newest, "raw query did not return the newest ten")
        return elapsed

    async def tiermem_put(n: int) -> float:
        start = timer()
        for _ in range(n):
            i = next(counter)
            await coll.put(f"w|{i:09d}", small_message(i), attrs={"step": i})
        return timer() - start

    async def raw_put_run(n: int) -> float:
        start = timer()
        for _ in range(n):
            i = next(counter)
            await raw_put(f"r|{i:09d}", small_message(i), {"step": i})
        return timer() - start

    return [
        Scenario(
            f"coll.list.{group_id}",
            "collections",
            [Variant("tiermem", tiermem_list), Variant(baseline, raw_list_run)],
            [
                Comparison(
                    f"coll.list.{group_id}",
                    f"list(reverse=True, limit=10) of {items} items vs {baseline}",
                    "tiermem",
                    baseline,
                    note="tiermem also filters expired items, follows pointers and builds Items",
                )
            ],
        ),
        Scenario(
            f"coll.put.{group_id}",
            "collections",
            [Variant("tiermem", tiermem_put), Variant(put_baseline, raw_put_run)],
            [
                Comparison(
                    f"coll.put.{group_id}",
                    f"put with attrs vs {put_baseline}",
                    "tiermem",
                    put_baseline,
                    note="tiermem validates, encodes the envelope and writes hot through where there is one",
                )
            ],
        ),
    ]


async def _embedded(stack: AsyncExitStack, items: int) -> list[Scenario]:
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tiermem-bench-coll-")))
    path = root / "warm.db"
    client = MemoryBuilder().with_warm(SqliteWarmMemory(path)).build()
    stack.push_async_callback(client.aclose)
    await client.setup()
    coll = client.collection(NAME)
    await _fill(coll, items, batch=1000, concurrency=1)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sqlite")
    stack.callback(executor.shutdown)
    loop = asyncio.get_running_loop()
    conn = await loop.run_in_executor(executor, lambda: sqlite3.connect(path, check_same_thread=False))
    await loop.run_in_executor(executor, lambda: conn.execute("PRAGMA synchronous=FULL"))
    stack.callback(conn.close)
    scope = (client.tenant, client.namespace, NAME)
    select = (
        "SELECT key, data FROM tiermem_collection_items WHERE tenant=? AND ns=? AND coll=? "
        "ORDER BY key DESC LIMIT 10"
    )

    def query() -> list[str]:
        rows = conn.execute(select, scope).fetchall()
        for _, data in rows:
            orjson.loads(Record.from_bytes(data).payload)  # the envelope's header has a variable size
        return [key.decode("utf-8") for key, _ in rows]

    def insert(key: str, value: Any, attrs: dict[str, Any]) -> None:
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO tiermem_collection_items VALUES (?,?,?,?,?,?,?,?,?)",
                (*scope[:2], "raw", key.encode(), orjson.dumps(value), orjson.dumps(attrs), None, "e", 0),
            )

    async def raw_list() -> list[str]:
        return await loop.run_in_executor(executor, query)

    async def raw_put(key: str, value: Any, attrs: dict[str, Any]) -> None:
        await loop.run_in_executor(executor, insert, key, value, attrs)

    return _scenario("sqlite", coll, raw_list, raw_put, "sqlite3 ORDER BY LIMIT 10", "sqlite3 INSERT", items)


async def _stand_ins(stack: AsyncExitStack, endpoints: Endpoints, items: int) -> list[Scenario]:
    from azure.cosmos.aio import CosmosClient

    from tiermem._collection import Scope
    from tiermem.tiers.cosmos_collections import partition_key

    assert endpoints.redis_url
    assert endpoints.cosmos_endpoint
    assert endpoints.cosmos_key
    container_name = f"bench-coll-{uuid.uuid4().hex[:12]}"
    client = (
        MemoryBuilder()
        .with_redis(endpoints.redis_url, prefix=PREFIX_TIERMEM)
        .with_cosmos(endpoints.cosmos_endpoint, DATABASE, container_name, key=SecretStr(endpoints.cosmos_key))
        .build()
    )
    stack.push_async_callback(client.aclose)
    await client.setup()
    cosmos = CosmosClient(endpoints.cosmos_endpoint, credential=endpoints.cosmos_key)
    await stack.enter_async_context(cosmos)
    database = cosmos.get_database_client(DATABASE)

    async def drop_container() -> None:
        await database.delete_container(container_name)

    stack.push_async_callback(drop_container)
    container = database.get_container_client(container_name)
    coll = client.collection(NAME)
    await _fill(coll, items, batch=100, concurrency=8)
    pk = partition_key(Scope(client.tenant, client.namespace, NAME))
    raw_pk = f"raw-{secrets.token_hex(4)}"

    async def raw_list() -> list[str]:
        rows = [
            row
            async for row in container.query_items(
                "SELECT TOP 10 c.k, c.v FROM c ORDER BY c.s DESC", partition_key=pk
            )
        ]
        for row in rows:
            orjson.loads(Record.from_bytes(base64.b64decode(row["v"])).payload)
        return [row["k"] for row in rows]

    async def raw_put(key: str, value: Any, attrs: dict[str, Any]) -> None:
        item = {
            "id": key.replace("|", "-"),
            "pk": raw_pk,
            "k": key,
            "a": attrs,
            "v": orjson.dumps(value).decode(),
        }
        await container.upsert_item(item, no_response=True)

    return _scenario("cosmos", coll, raw_list, raw_put, "Cosmos TOP 10 ORDER BY", "Cosmos upsert_item", items)


async def collection_scenarios(stack: AsyncExitStack, endpoints: Endpoints, *, quick: bool) -> list[Scenario]:
    """The embedded scenarios always; the stand-in ones when Redis and Cosmos endpoints are given."""
    items = QUICK_ITEMS if quick else ITEMS
    scenarios = await _embedded(stack, items)
    if endpoints.redis_url and endpoints.cosmos_endpoint and endpoints.cosmos_key:
        scenarios += await _stand_ins(stack, endpoints, items)
    return scenarios
