"""Warm (Cosmos DB) and cold (Blob) scenarios on a full three-tier client.

* warm hit with promotion: tiermem ``get`` of a key that is in Cosmos DB but not in Redis (hot
  ``GET`` misses, Cosmos point read, ``SET NX`` promotion) against a raw ``read_item`` followed by a
  raw Redis ``SET``. The hot copies are removed (untimed) before every batch.
* warm ``mget`` of 100: hot ``MGET`` (all miss), Cosmos ReadMany, one promotion pipeline, against a
  raw ``read_items`` of the same number of items.
* cold 1 MiB and 10 MiB of incompressible bytes with ``tier=Tier.COLD`` (blob + Cosmos pointer)
  against raw ``upload_blob``/``download_blob`` with the same transfer settings tiermem uses.

The raw Cosmos and Blob clients are separate SDK clients against the same account and container.
"""

from __future__ import annotations

import os
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Target, Variant, timer
from benchmarks._hot import PREFIX_RAW, PREFIX_TIERMEM, raw_redis
from benchmarks._payloads import small_message
from benchmarks._services import Endpoints
from tiermem import MemoryBuilder, MemoryClient, Tier, make_key

__all__ = ["DurableBench", "cold_scenarios", "open_durable", "unavailable_rows", "warm_scenarios"]

DATABASE = "tiermem-bench"
MiB = 1024 * 1024


@dataclass(slots=True)
class DurableBench:
    client: MemoryClient
    redis: Any  # raw redis-py client
    hot: Any  # the RedisHotMemory inside the client (raw_key only)
    container: Any  # raw azure.cosmos.aio ContainerProxy
    blobs: Any | None  # raw azure.storage.blob.aio ContainerClient
    warm_keys: list[str]
    warm_batch: int
    cold_sizes: tuple[int, ...]

    def hot_raw_key(self, key: str) -> str:
        return str(self.hot.raw_key(make_key(self.client.tenant, self.client.namespace, key)))


def unavailable_rows(endpoints: Endpoints) -> list[Row]:
    """The warm/cold rows, marked n/a with what is missing to measure them."""
    rows: list[Row] = []
    embedded = "embedded default; use --start-services or endpoints"
    need_warm = [
        name
        for name, value in (
            ("--redis", endpoints.redis_url),
            ("--cosmos", endpoints.cosmos_endpoint),
            ("--cosmos-key", endpoints.cosmos_key),
        )
        if not value
    ]
    if need_warm:
        reason = embedded if endpoints.embedded else f"needs {' and '.join(need_warm)}"
        rows += [
            Row(
                "warm.get.raw",
                "warm",
                "warm hit + promotion vs read_item + SET",
                None,
                None,
                na_reason=reason,
            ),
            Row("warm.mget.raw", "warm", "warm mget 100 vs read_items", None, None, na_reason=reason),
        ]
    if need_warm or not endpoints.blob_connection_string:
        reason = embedded if endpoints.embedded else "needs --redis, --cosmos and --blob-connection-string"
        for label in _cold_labels():
            for op in ("set", "get"):
                rows.append(
                    Row(f"cold.{op}.{label}", "cold", f"cold {op} {label}", None, None, na_reason=reason)
                )
    return rows


def _cold_labels() -> tuple[str, ...]:
    # Row ids name the full-run sizes; --quick uses smaller values and says so in the label.
    return ("1MiB", "10MiB")


def _size_text(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // 1024} KiB"


async def open_durable(stack: AsyncExitStack, endpoints: Endpoints, *, quick: bool) -> DurableBench:
    """A full client (Redis + Cosmos + Blob if given) on fresh containers, and the raw SDK clients."""
    from azure.cosmos.aio import CosmosClient

    assert endpoints.redis_url
    assert endpoints.cosmos_endpoint
    assert endpoints.cosmos_key
    suffix = uuid.uuid4().hex[:12]
    container_name = f"bench-{suffix}"
    builder = (
        MemoryBuilder()
        .with_redis(endpoints.redis_url, prefix=PREFIX_TIERMEM)
        .with_cosmos(endpoints.cosmos_endpoint, DATABASE, container_name, key=SecretStr(endpoints.cosmos_key))
    )
    blob_cs = endpoints.blob_connection_string
    if blob_cs:
        builder.with_blob(container=container_name, connection_string=SecretStr(blob_cs))
    client = builder.build()
    stack.push_async_callback(client.aclose)

    cosmos = CosmosClient(endpoints.cosmos_endpoint, credential=endpoints.cosmos_key)
    await stack.enter_async_context(cosmos)
    database = cosmos.get_database_client(DATABASE)
    await client.setup()  # database, container (and blob container)

    async def drop_container() -> None:
        await database.delete_container(container_name)

    stack.push_async_callback(drop_container)
    container = database.get_container_client(container_name)

    blobs = None
    if blob_cs:
        from azure.storage.blob.aio import BlobServiceClient

        from tiermem.tiers import blob as blob_tier

        # The transfer settings BlobColdMemory gives the client it creates: only the library differs.
        service = BlobServiceClient.from_connection_string(
            blob_cs,
            max_single_put_size=blob_tier.DEFAULT_MAX_SINGLE_PUT_SIZE,
            max_block_size=blob_tier.DEFAULT_MAX_BLOCK_SIZE,
            min_large_block_upload_threshold=blob_tier.DEFAULT_MAX_BLOCK_SIZE,
            max_single_get_size=blob_tier.DEFAULT_MAX_SINGLE_GET_SIZE,
            max_chunk_get_size=blob_tier.DEFAULT_MAX_CHUNK_GET_SIZE,
        )
        await stack.enter_async_context(service)
        blobs = service.get_container_client(container_name)

        async def drop_blobs() -> None:
            await blobs.delete_container()

        stack.push_async_callback(drop_blobs)

    redis = raw_redis(endpoints.redis_url)
    stack.push_async_callback(redis.aclose, close_connection_pool=True)
    pool = 8 if quick else 400
    bench = DurableBench(
        client=client,
        redis=redis,
        hot=client.tier_store(Tier.HOT),
        container=container,
        blobs=blobs,
        warm_keys=[f"warm{i:05d}" for i in range(pool)],
        warm_batch=8 if quick else 100,
        cold_sizes=(64 * 1024, 256 * 1024) if quick else (MiB, 10 * MiB),
    )
    await client.mset({key: small_message(i) for i, key in enumerate(bench.warm_keys)})
    for i in range(pool):
        raw_id = f"rawwarm{i:05d}"
        await container.upsert_item({"id": raw_id, "pk": raw_id, "v": small_message(i)})
    return bench


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


def warm_scenarios(bench: DurableBench) -> list[Scenario]:
    client = bench.client
    redis = bench.redis
    container = bench.container
    keys = bench.warm_keys
    hot_keys = [bench.hot_raw_key(k) for k in keys]
    raw_ids = [f"rawwarm{i:05d}" for i in range(len(keys))]
    raw_hot = [f"{PREFIX_RAW}:warm:{i}" for i in range(len(keys))]

    async def tiermem_get(n: int) -> float:
        await redis.unlink(*hot_keys[:n])  # untimed: every get below misses hot
        before = client.stats().promotions
        value: Any = None
        start = timer()
        for key in keys[:n]:
            value = await client.get(key)
        elapsed = timer() - start
        _expect(value is not None, "tiermem warm get missed")
        _expect(client.stats().promotions - before == n, "tiermem warm get did not promote every key")
        return elapsed

    async def raw_get(n: int) -> float:
        item: Any = None
        start = timer()
        for i in range(n):
            item = await container.read_item(raw_ids[i], partition_key=raw_ids[i])
            await redis.set(raw_hot[i], orjson.dumps(item["v"]), ex=300)
        elapsed = timer() - start
        _expect(item is not None, "raw read_item missed")
        return elapsed

    batch = bench.warm_batch
    mget_keys = keys[:batch]
    mget_hot = hot_keys[:batch]
    pairs = [(raw_id, raw_id) for raw_id in raw_ids[:batch]]

    async def tiermem_mget(n: int) -> float:
        elapsed = 0.0
        for _ in range(n):
            await redis.unlink(*mget_hot)  # untimed
            before = client.stats().promotions
            start = timer()
            values = await client.mget(mget_keys)
            elapsed += timer() - start
            _expect(all(v is not None for v in values.values()), "tiermem warm mget missed")
            _expect(client.stats().promotions - before == batch, "tiermem warm mget did not promote")
        return elapsed

    async def raw_mget(n: int) -> float:
        items: list[Any] = []
        start = timer()
        for _ in range(n):
            items = await container.read_items(pairs)
        elapsed = timer() - start
        _expect(len(items) == batch, "raw read_items missed")
        return elapsed

    note = "tiermem also pays the hot GET miss (raw does not) and promotes with SET NX"
    raw_name = "read_item + redis SET"
    return [
        Scenario(
            "warm.get",
            "warm",
            [
                Variant("tiermem", tiermem_get, max_ops=len(keys)),
                Variant(raw_name, raw_get, max_ops=len(keys)),
            ],
            [
                Comparison(
                    "warm.get.raw",
                    "warm hit + promotion vs raw read_item + raw SET",
                    "tiermem",
                    raw_name,
                    Target("max_ratio", 1.3, "<= 1.3x"),
                    note=note,
                )
            ],
        ),
        Scenario(
            "warm.mget",
            "warm",
            [Variant("tiermem", tiermem_mget), Variant("read_items", raw_mget)],
            [
                Comparison(
                    "warm.mget.raw",
                    f"warm mget {batch} (+ promotion) vs raw read_items",
                    "tiermem",
                    "read_items",
                    None,
                    note="tiermem adds a hot MGET (all miss) and one promotion pipeline",
                )
            ],
        ),
    ]


async def cold_scenarios(bench: DurableBench, *, quick: bool) -> list[Scenario]:
    scenarios: list[Scenario] = []
    for label, size in zip(_cold_labels(), bench.cold_sizes, strict=True):
        scenarios += await _cold_pair(bench, label, size, quick=quick)
    return scenarios


async def _cold_pair(bench: DurableBench, label: str, size: int, *, quick: bool) -> list[Scenario]:
    """The set and get scenarios of one value size (values for the get scenario written first)."""
    blobs = bench.blobs
    assert blobs is not None
    client = bench.client
    redis = bench.redis
    data = os.urandom(size)  # incompressible: the codec tries gzip, then keeps the raw bytes
    keys = [f"cold-{label}-{i}" for i in range(2)]
    hot_keys = [bench.hot_raw_key(k) for k in keys]
    raw_blobs = [blobs.get_blob_client(f"raw/{label}/{i}") for i in range(2)]
    for key, blob in zip(keys, raw_blobs, strict=True):
        await client.set(key, data, tier=Tier.COLD)
        await blob.upload_blob(data, overwrite=True, max_concurrency=4)
    text = _size_text(size) + (" (quick)" if quick else "")

    async def tiermem_set(n: int) -> float:
        start = timer()
        for i in range(n):
            await client.set(keys[i % 2], data, tier=Tier.COLD)
        return timer() - start

    async def raw_set(n: int) -> float:
        start = timer()
        for i in range(n):
            await raw_blobs[i % 2].upload_blob(data, overwrite=True, max_concurrency=4)
        return timer() - start

    async def tiermem_get(n: int) -> float:
        elapsed = 0.0
        value: Any = None
        for i in range(n):
            # Untimed: a value <= hot_max_bytes (the quick sizes) is promoted by a read and would
            # be served from hot next time; every measured get reads cold.
            await redis.unlink(hot_keys[i % 2])
            start = timer()
            value = await client.get(keys[i % 2])
            elapsed += timer() - start
        _expect(isinstance(value, bytes) and len(value) == size, "tiermem cold get missed")
        return elapsed

    async def raw_get(n: int) -> float:
        body = b""
        start = timer()
        for i in range(n):
            stream = await raw_blobs[i % 2].download_blob(max_concurrency=4)
            body = await stream.readall()
        elapsed = timer() - start
        _expect(len(body) == size, "raw download missed")
        return elapsed

    return [
        Scenario(
            f"cold.set.{label}",
            "cold",
            [Variant("tiermem", tiermem_set), Variant("upload_blob", raw_set)],
            [
                Comparison(
                    f"cold.set.{label}",
                    f"cold set {text}, incompressible, tier=COLD",
                    "tiermem",
                    "upload_blob",
                    None,
                    note="tiermem: gzip attempt + blob upload + Cosmos pointer upsert + hot invalidation",
                )
            ],
        ),
        Scenario(
            f"cold.get.{label}",
            "cold",
            [Variant("tiermem", tiermem_get), Variant("download_blob", raw_get)],
            [
                Comparison(
                    f"cold.get.{label}",
                    f"cold get {text}",
                    "tiermem",
                    "download_blob",
                    None,
                    note="tiermem: hot GET miss + Cosmos pointer read + blob download + sha256/CRC32",
                )
            ],
        ),
    ]
