"""CosmosWarmMemory against a real Cosmos DB endpoint (the patched ``@vercel/cosmosdb-server`` locally).

Every test gets its own container (dropped afterwards). What the stand-in does not do, these tests
do not claim: it never expires items (``ttl`` is stored and ignored), never enforces the 2 MB item
limit, accepts any key or token, and never throttles. Size limits asserted here are tiermem's own
checks; 401/403/408/413/429/503 answers come from ``FaultProxy``, an HTTPS proxy in front of the
stand-in that answers chosen requests with the status a real account would send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosResourceNotFoundError
from pydantic import SecretStr
from yarl import URL

from tests.records import CODEC, k, rec
from tests.services._process import ServiceUnavailableError
from tests.services.cosmos import EMULATOR_KEY, CosmosServer
from tests.services.fixtures import CosmosService, service_missing
from tests.services.identity import ManagedIdentityEndpoint
from tests.services.tls import TlsMaterial
from tiermem import (
    AuthenticationError,
    BatchWriteError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    LocalHotMemory,
    MemoryBuilder,
    NotProvisionedError,
    ThrottledError,
    Tier,
    TierError,
    TierUnavailableError,
    ValueTooLargeError,
    WarmMemory,
    make_key,
)
from tiermem._codec import Record, RecordKind, make_record
from tiermem._keys import cosmos_id
from tiermem.tiers.cosmos import MAX_RECORD_BYTES, CosmosWarmMemory

pytestmark = [pytest.mark.cosmos, pytest.mark.timeout(120)]

ITEM_LIMIT = 2 * 1024 * 1024
TRICKY_KEYS = ["../x", "a/b", "%2F", "?#\\", "..", "key with spaces", "Ünïcödé/ключ/🔑", "k" * 512]
# aiohttp warns (ResourceWarning) when a request body over 1 MiB is sent as raw bytes, which is how
# azure-core sends Cosmos item bodies; pyproject turns warnings into errors.
LARGE_BODY_WARNING = "ignore:Sending a large body directly:ResourceWarning"


def value_of(record: Record | None) -> Any:
    assert record is not None
    return CODEC.decode(record)


def make_store(server: CosmosService, database: str, container: str, **options: Any) -> CosmosWarmMemory:
    options.setdefault("retry_total", 2)
    options.setdefault("retry_backoff_max", 2)
    options.setdefault("connection_timeout", 2)
    options.setdefault("read_timeout", 10)
    return CosmosWarmMemory(server.endpoint, database, container, key=SecretStr(server.key), **options)


@pytest.fixture
async def sdk_client(cosmos_server: CosmosService) -> AsyncIterator[CosmosClient]:
    """A plain SDK client for reading and planting raw items behind the adapter's back."""
    async with CosmosClient(cosmos_server.endpoint, cosmos_server.key) as client:
        yield client


@pytest.fixture
async def drop_container(
    sdk_client: CosmosClient, cosmos_database_name: str, cosmos_container_name: str
) -> AsyncIterator[str]:
    """The test's container name; the container is deleted afterwards (containers cost RU/s on Azure)."""
    yield cosmos_container_name
    with contextlib.suppress(CosmosResourceNotFoundError):  # the test never created it
        await sdk_client.get_database_client(cosmos_database_name).delete_container(cosmos_container_name)


@pytest.fixture
async def store(
    cosmos_server: CosmosService, cosmos_database_name: str, drop_container: str
) -> AsyncIterator[CosmosWarmMemory]:
    instance = make_store(cosmos_server, cosmos_database_name, drop_container)
    await instance.setup()
    try:
        yield instance
    finally:
        await instance.aclose()


@pytest.fixture
def raw(
    sdk_client: CosmosClient, cosmos_database_name: str, cosmos_container_name: str, store: CosmosWarmMemory
) -> ContainerProxy:
    """The same container as ``store``, through the SDK directly."""
    return sdk_client.get_database_client(cosmos_database_name).get_container_client(cosmos_container_name)


@pytest.fixture
def private_server() -> Iterator[CosmosServer]:
    """A stand-in of our own, so the test may stop or pause it without disturbing the others."""
    try:
        server = CosmosServer.start()
    except ServiceUnavailableError as exc:
        service_missing(f"cosmos stand-in is unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


class CountingTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core ships it untyped
    """The real aiohttp transport, recording (method, path) of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    async def send(self, request: Any, **kwargs: Any) -> Any:
        path = request.url.split("://", 1)[-1].split("/", 1)[-1]
        self.requests.append((request.method, path))
        return await super().send(request, **kwargs)


class CloseRecordingCredential:
    """Delegates to a real credential and records whether anyone closed it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await self.inner.get_token(*scopes, **kwargs)

    async def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return await self.inner.get_token_info(*scopes, options=options)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> CloseRecordingCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


@dataclass
class Fault:
    method: str
    path: str  # substring of the request path
    status: int
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0


_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class FaultProxy:
    """An HTTPS reverse proxy in front of the stand-in that answers chosen requests with an error.

    The stand-in never throttles, never rejects credentials and never refuses large items; the SDK
    and the adapter still talk real HTTPS to a real server, only the listed requests are answered
    here with the status a real Cosmos DB account would send. The stand-in's account document
    advertises its own port; requests still come here only because the adapter turns endpoint
    discovery off for loopback endpoints (so these tests also check that).
    """

    def __init__(self, upstream: str, tls: TlsMaterial) -> None:
        self.upstream = upstream.rstrip("/")
        self.tls = tls
        self.faults: list[Fault] = []
        self.endpoint = ""
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    def fail(self, method: str, path: str, status: int, *, times: int = 1000, **headers: str) -> Fault:
        fault = Fault(method, path, status, times, {k.replace("_", "-"): v for k, v in headers.items()})
        self.faults.append(fault)
        return fault

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.endpoint = f"https://{host}:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        for fault in self.faults:
            if fault.remaining > 0 and request.method == fault.method and fault.path in request.path:
                fault.remaining -= 1
                fault.hits += 1
                await request.read()
                error = json.dumps(
                    {"code": f"Injected{fault.status}", "message": "injected by the test proxy"}
                )
                return web.Response(
                    status=fault.status, text=error, content_type="application/json", headers=fault.headers
                )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        url = URL(self.upstream + request.raw_path, encoded=True)
        body = await request.read()
        async with self._session.request(
            request.method, url, headers=headers, data=body, ssl=False
        ) as upstream:
            data = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=upstream.status, body=data, headers=out)


@pytest.fixture
async def fault_proxy(cosmos_server: CosmosService, tls_material: TlsMaterial) -> AsyncIterator[FaultProxy]:
    if urlsplit(cosmos_server.endpoint).hostname != "127.0.0.1":
        service_missing("fault injection proxies the local stand-in only")
    proxy = FaultProxy(cosmos_server.endpoint, tls_material)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


# -- basics -------------------------------------------------------------------------------------


async def test_round_trip_etag_exists_delete(store: CosmosWarmMemory) -> None:
    assert isinstance(store, WarmMemory)
    record = rec({"name": "Ada", "n": [1, 2.5, None]})
    etag = await store.set(k("doc"), record)
    got = await store.get(k("doc"))
    assert got is not None
    assert (got.kind, got.payload, got.checksum, got.expires_at) == (
        record.kind,
        record.payload,
        record.checksum,
        None,
    )
    assert etag and got.etag == etag
    assert await store.exists(k("doc")) is True
    await store.delete(k("doc"))
    assert await store.get(k("doc")) is None
    assert await store.exists(k("doc")) is False
    await store.delete(k("doc"))  # idempotent
    await store.ping()


async def test_info_and_repr_hide_the_key(cosmos_server: CosmosService, store: CosmosWarmMemory) -> None:
    info = store.info
    assert info.db_system == "cosmosdb"
    assert info.native_ttl is True
    assert info.server_address == urlsplit(cosmos_server.endpoint).hostname
    assert info.max_record_bytes == MAX_RECORD_BYTES
    assert cosmos_server.key not in repr(store)
    assert cosmos_server.key not in str(vars(store))


async def test_item_layout(
    cosmos_server: CosmosService, cosmos_database_name: str, store: CosmosWarmMemory, raw: ContainerProxy
) -> None:
    now = 1_900_000_000.0
    async with make_store(cosmos_server, cosmos_database_name, raw.id, clock=lambda: now) as fixed:
        with_ttl = rec("hello", expires_at=now + 100.2)
        await fixed.set(k("t"), with_ttl)
        await fixed.set(k("forever"), rec("stays"))

    item_id = cosmos_id(k("t"))
    item = await raw.read_item(item_id, partition_key=item_id)
    assert item["id"] == item["pk"] == item_id
    assert (item["tenant"], item["ns"]) == ("acme", "ns")
    assert base64.b64decode(item["v"]) == with_ttl.to_bytes()
    assert item["exp"] == pytest.approx(now + 100.2)
    assert item["ttl"] == 101  # seconds left, rounded up so Cosmos never deletes early

    forever_id = cosmos_id(k("forever"))
    forever = await raw.read_item(forever_id, partition_key=forever_id)
    assert forever["exp"] is None
    assert "ttl" not in forever  # inherits defaultTtl -1: never expires


async def test_tricky_keys_make_valid_ids_and_stay_in_their_tenant(
    store: CosmosWarmMemory, raw: ContainerProxy
) -> None:
    for i, key in enumerate(TRICKY_KEYS):
        await store.set(k(key), rec(i))
        await store.set(k(key, tenant="other"), rec(-i - 1))
    for i, key in enumerate(TRICKY_KEYS):
        item_id = cosmos_id(k(key))
        assert not set(item_id) & set("/\\?#"), item_id
        assert item_id.isascii()
        item = await raw.read_item(item_id, partition_key=item_id)  # addressable by its id
        assert (item["tenant"], item["pk"]) == ("acme", item_id)
        assert value_of(await store.get(k(key))) == i
        assert value_of(await store.get(k(key, tenant="other"))) == -i - 1
    assert {mk async for mk in store.scan("acme")} == {k(key) for key in TRICKY_KEYS}
    assert {mk async for mk in store.scan("other")} == {k(key, tenant="other") for key in TRICKY_KEYS}


# -- optimistic concurrency -------------------------------------------------------------------------


async def test_if_match(store: CosmosWarmMemory, raw: ContainerProxy) -> None:
    etag = await store.set(k("doc"), rec({"v": 1}))
    assert etag is not None
    new_etag = await store.set(k("doc"), rec({"v": 2}), if_match=etag)
    assert new_etag and new_etag != etag
    with pytest.raises(ConflictError) as info:
        await store.set(k("doc"), rec({"v": 3}), if_match=etag)  # stale
    assert info.value.tier is Tier.WARM and info.value.operation == "set"
    assert value_of(await store.get(k("doc"))) == {"v": 2}

    # Someone else writes behind our back: our ETag is stale now.
    item_id = cosmos_id(k("doc"))
    item = await raw.read_item(item_id, partition_key=item_id)
    await raw.upsert_item({key: value for key, value in item.items() if not key.startswith("_")})
    with pytest.raises(ConflictError):
        await store.set(k("doc"), rec({"v": 4}), if_match=new_etag)

    with pytest.raises(ConflictError):
        await store.set(k("absent"), rec(1), if_match=etag)
    assert await store.get(k("absent")) is None


async def test_if_absent_live_and_expired(store: CosmosWarmMemory, raw: ContainerProxy) -> None:
    assert await store.set(k("a"), rec(1), if_absent=True)
    with pytest.raises(ConflictError):
        await store.set(k("a"), rec(2), if_absent=True)
    assert value_of(await store.get(k("a"))) == 1

    # An expired item still in the container (the stand-in never deletes it; Cosmos might not have
    # yet) must not block a create-only write.
    await store.set(k("b"), make_record(RecordKind.STR, b"old", expires_at=time.time() - 5))
    item_id = cosmos_id(k("b"))
    stale = await raw.read_item(item_id, partition_key=item_id)
    assert stale["ttl"] == 1
    etag = await store.set(k("b"), rec("new"), if_absent=True)
    got = await store.get(k("b"))
    assert value_of(got) == "new"
    assert got is not None and got.etag == etag and got.expires_at is None

    await store.mset([(k("a"), rec("lost")), (k("c"), rec("fresh"))], if_absent=True)
    assert [value_of(r) for r in await store.mget([k("a"), k("c")])] == [1, "fresh"]


# -- batches ----------------------------------------------------------------------------------------


async def test_mget_250_keys_uses_read_many_in_input_order(
    cosmos_server: CosmosService, cosmos_database_name: str, drop_container: str
) -> None:
    transport = CountingTransport()
    async with CosmosClient(cosmos_server.endpoint, cosmos_server.key, transport=transport) as client:
        async with CosmosWarmMemory(
            cosmos_server.endpoint, cosmos_database_name, drop_container, client=client
        ) as store:
            await store.setup()
            present = [k(f"m{i}") for i in range(0, 250, 2)]
            await store.mset([(mk, rec({"i": int(mk.key[1:])})) for mk in present])
            wanted = [k(f"m{i}") for i in range(250)]
            random.Random(7).shuffle(wanted)
            transport.requests.clear()

            got = await store.mget(wanted)

            assert [None if r is None else value_of(r)["i"] for r in got] == [
                int(mk.key[1:]) if int(mk.key[1:]) % 2 == 0 else None for mk in wanted
            ]
            point_reads = [
                p for m, p in transport.requests if m == "GET" and "/docs/" in p and not p.endswith("/docs/")
            ]
            queries = [p for m, p in transport.requests if m == "POST" and p.rstrip("/").endswith("/docs")]
            assert point_reads == []
            assert 1 <= len(queries) <= 2, transport.requests
        # The injected client was not closed by the adapter: it still works.
        await client.get_database_client(cosmos_database_name).get_container_client(drop_container).read()


async def test_one_client_shared_between_containers(
    cosmos_server: CosmosService, cosmos_database_name: str
) -> None:
    async with CosmosClient(cosmos_server.endpoint, cosmos_server.key) as client:
        names = [f"shared-{os.urandom(6).hex()}" for _ in range(2)]
        stores = [
            CosmosWarmMemory(cosmos_server.endpoint, cosmos_database_name, n, client=client) for n in names
        ]
        for i, s in enumerate(stores):
            await s.setup()
            await s.set(k("x"), rec(i))
        assert [value_of(await s.get(k("x"))) for s in stores] == [0, 1]
        for s in stores:
            await s.aclose()
        database = client.get_database_client(cosmos_database_name)
        for n in names:
            await database.get_container_client(n).read()  # the shared client is still open
            await database.delete_container(n)


async def test_mset_partial_failure_reports_written_and_failed(store: CosmosWarmMemory) -> None:
    too_big = make_record(RecordKind.BYTES, os.urandom(MAX_RECORD_BYTES))  # + 17-byte header: one too many
    items = [(k("ok1"), rec(1)), (k("big"), too_big), (k("ok2"), rec(2))]
    with pytest.raises(BatchWriteError) as info:
        await store.mset(items)
    error = info.value
    assert sorted(error.written) == ["ok1", "ok2"]
    assert list(error.failed) == ["big"]
    failure = error.failed["big"]
    assert isinstance(failure, ValueTooLargeError)
    assert (failure.size, failure.limit) == (too_big.size, MAX_RECORD_BYTES)
    assert [value_of(r) if r else None for r in await store.mget([k("ok1"), k("big"), k("ok2")])] == [
        1,
        None,
        2,
    ]


async def test_set_rejects_a_record_that_cannot_fit_before_any_io(store: CosmosWarmMemory) -> None:
    too_big = make_record(RecordKind.BYTES, b"\0" * (MAX_RECORD_BYTES - 16))
    with pytest.raises(ValueTooLargeError) as info:
        await store.set(k("big"), too_big)
    assert info.value.limit == MAX_RECORD_BYTES and info.value.tier is Tier.WARM
    assert await store.get(k("big")) is None


@pytest.mark.filterwarnings(LARGE_BODY_WARNING)
async def test_largest_record_leaves_headroom_under_the_item_limit(
    store: CosmosWarmMemory, raw: ContainerProxy
) -> None:
    # The stand-in does not enforce 2 MB, so this checks our arithmetic, not the service: the stored
    # JSON of the largest record under the longest possible id stays >= 2 KiB below the limit.
    longest = make_key("t" * 64, "n" * 64, "é" * 256)
    largest = make_record(RecordKind.BYTES, os.urandom(MAX_RECORD_BYTES - 17), expires_at=time.time() + 3600)
    assert largest.size == MAX_RECORD_BYTES
    await store.set(longest, largest)
    item_id = cosmos_id(longest)
    item = await raw.read_item(item_id, partition_key=item_id)
    stored = len(json.dumps(dict(item), separators=(",", ":")).encode())
    assert stored <= ITEM_LIMIT - 2048
    assert stored >= ITEM_LIMIT - 6 * 1024  # and the budget is not wasted either
    got = await store.get(longest)
    assert got is not None and got.payload == largest.payload


async def test_builder_accepts_default_warm_max_bytes_and_rejects_more_than_an_item_holds(
    store: CosmosWarmMemory,
) -> None:
    client = MemoryBuilder().with_warm(store, owned=False).build()
    assert client.policy.warm_max_bytes <= MAX_RECORD_BYTES
    await client.aclose()
    with pytest.raises(ConfigurationError, match="warm_max_bytes"):
        MemoryBuilder().with_warm(store, owned=False).with_policy(warm_max_bytes=1536 * 1024).build()


async def test_behind_memory_client(store: CosmosWarmMemory) -> None:
    memory = MemoryBuilder().with_hot(LocalHotMemory()).with_warm(store, owned=False).build()
    async with memory:
        await memory.set("a", {"x": 1}, ttl=60)
        entry = await memory.get_entry("a", consistent=True)
        assert entry is not None and entry.tier is Tier.WARM and entry.etag
        await memory.set("a", {"x": 2}, if_match=entry.etag)
        with pytest.raises(ConflictError):
            await memory.set("a", {"x": 3}, if_match=entry.etag)
        assert await memory.mget(["a", "missing"]) == {"a": {"x": 2}, "missing": None}
        await memory.delete("a")
        assert await memory.get("a") is None
    assert await store.get(k("a", tenant="default", namespace="default")) is None


# -- tenant-wide operations -------------------------------------------------------------------------


async def test_scan_and_purge_stay_in_their_tenant(store: CosmosWarmMemory) -> None:
    await store.mset(
        [(k(f"a{i}", namespace="ns1"), rec(i)) for i in range(5)]
        + [(k(f"b{i}", namespace="ns2"), rec(i)) for i in range(3)]
        + [(k(f"a{i}", tenant="other", namespace="ns1"), rec(i)) for i in range(4)]
    )
    assert {mk async for mk in store.scan("acme", "ns1")} == {k(f"a{i}", namespace="ns1") for i in range(5)}
    assert len({mk async for mk in store.scan("acme")}) == 8

    assert await store.purge("acme", "ns1") == 5
    assert {mk async for mk in store.scan("acme")} == {k(f"b{i}", namespace="ns2") for i in range(3)}
    assert await store.purge("acme") == 3
    assert [mk async for mk in store.scan("acme")] == []
    assert await store.purge("acme") == 0

    others = {mk async for mk in store.scan("other")}
    assert others == {k(f"a{i}", tenant="other", namespace="ns1") for i in range(4)}
    assert value_of(await store.get(k("a3", tenant="other", namespace="ns1"))) == 3


async def test_purge_runs_several_rounds(store: CosmosWarmMemory) -> None:
    keys = [k(f"p{i}") for i in range(650)]  # a purge round takes 500 ids: this needs two
    await store.mset([(mk, rec(i)) for i, mk in enumerate(keys)])
    await store.set(k("keep", tenant="other"), rec("kept"))
    assert await store.purge("acme") == 650
    assert [mk async for mk in store.scan("acme")] == []
    assert value_of(await store.get(k("keep", tenant="other"))) == "kept"


# -- damage and failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "v",
    [
        pytest.param("%%% not base64 %%%", id="not-base64"),
        pytest.param(base64.b64encode(b"XX" + bytes(40)).decode(), id="bad-magic"),
        pytest.param(base64.b64encode(b"TM").decode(), id="truncated"),
        pytest.param(None, id="missing"),
    ],
)
async def test_corrupt_v_raises_corrupt_value_error(
    store: CosmosWarmMemory, raw: ContainerProxy, v: str | None
) -> None:
    mk = k("damaged")
    item_id = cosmos_id(mk)
    item: dict[str, Any] = {"id": item_id, "pk": item_id, "tenant": "acme", "ns": "ns", "exp": None}
    if v is not None:
        item["v"] = v
    await raw.upsert_item(item)
    with pytest.raises(CorruptValueError) as info:
        await store.get(mk)
    assert info.value.tier is Tier.WARM and info.value.operation == "get" and info.value.key_hash
    with pytest.raises(CorruptValueError):
        await store.mget([k("fine"), mk])


async def test_missing_container_is_an_error_not_a_miss(
    cosmos_server: CosmosService, cosmos_database_name: str, store: CosmosWarmMemory
) -> None:
    async with make_store(cosmos_server, cosmos_database_name, "never-created") as ghost:
        with pytest.raises(NotProvisionedError, match="tiermem init") as info:
            await ghost.get(k("x"))
        assert not isinstance(info.value, TierUnavailableError)
        with pytest.raises(NotProvisionedError):
            await ghost.ping()


async def test_server_stopped_raises_tier_unavailable_within_the_retry_budget(
    private_server: CosmosServer,
) -> None:
    store = CosmosWarmMemory(
        private_server.endpoint,
        "db",
        "items",
        key=SecretStr(private_server.key),
        retry_total=1,
        retry_backoff_max=1,
        connection_timeout=1,
        read_timeout=1,
    )
    try:
        await store.setup()
        await store.set(k("x"), rec(1))
        private_server.stop()
        calls = {
            "get": lambda: store.get(k("x")),
            "exists": lambda: store.exists(k("x")),
            "set": lambda: store.set(k("x"), rec(2)),
            "delete": lambda: store.delete(k("x")),
            "mget": lambda: store.mget([k("x"), k("y")]),
            "ping": store.ping,
        }
        for name, call in calls.items():
            started = time.monotonic()
            async with asyncio.timeout(30):  # a hang would fail here, not block the run
                with pytest.raises(TierUnavailableError) as info:
                    await call()
            assert time.monotonic() - started < 10, name
            assert info.value.tier is Tier.WARM and info.value.__cause__ is not None
        with pytest.raises(BatchWriteError) as batch:
            await store.mset([(k("m1"), rec(1)), (k("m2"), rec(2))])
        assert batch.value.written == ()
        assert all(isinstance(e, TierUnavailableError) for e in batch.value.failed.values())
        assert set(batch.value.failed) == {"m1", "m2"}
    finally:
        await store.aclose()

    # A fresh adapter whose first use cannot reach the server: typed error, nothing leaked.
    fresh = CosmosWarmMemory(
        private_server.endpoint,
        "db",
        "items",
        key=SecretStr(private_server.key),
        retry_total=1,
        connection_timeout=1,
    )
    try:
        async with asyncio.timeout(30):
            with pytest.raises(TierUnavailableError):
                await fresh.get(k("x"))
    finally:
        await fresh.aclose()


async def test_hung_server_times_out_and_recovers(private_server: CosmosServer) -> None:
    store = CosmosWarmMemory(
        private_server.endpoint,
        "db",
        "items",
        key=SecretStr(private_server.key),
        retry_total=1,
        retry_backoff_max=1,
        connection_timeout=1,
        read_timeout=1,
    )
    try:
        await store.setup()
        await store.set(k("x"), rec("before"))
        private_server.pause()
        try:
            started = time.monotonic()
            async with asyncio.timeout(30):
                with pytest.raises(TierUnavailableError):
                    await store.get(k("x"))
            assert time.monotonic() - started < 10  # two attempts of read_timeout=1 s, plus slack
        finally:
            private_server.resume()
        assert value_of(await store.get(k("x"))) == "before"
    finally:
        await store.aclose()


# -- service errors the stand-in never sends, injected by the proxy -----------------------------------


def proxied_store(proxy: FaultProxy, database: str, container: str, **options: Any) -> CosmosWarmMemory:
    options.setdefault("retry_total", 2)
    options.setdefault("retry_backoff_max", 2)
    return CosmosWarmMemory(proxy.endpoint, database, container, key=SecretStr(EMULATOR_KEY), **options)


async def test_throttling_uses_the_sdk_retry_budget_then_raises_throttled(
    fault_proxy: FaultProxy, cosmos_database_name: str, store: CosmosWarmMemory
) -> None:
    through = proxied_store(fault_proxy, cosmos_database_name, store.container, retry_total=3)
    try:
        await through.ping()
        throttled = fault_proxy.fail("POST", "/docs", 429, x_ms_retry_after_ms="5")  # the upsert
        with pytest.raises(ThrottledError) as info:
            await through.set(k("x"), rec(1))
        assert info.value.tier is Tier.WARM and info.value.operation == "set"
        assert throttled.hits == 4  # the first attempt plus retry_total=3 SDK retries, no loop of ours

        throttled.remaining = 2  # two 429s, then the service recovers within the budget
        throttled.hits = 0
        assert await through.set(k("x"), rec(2))
        assert throttled.hits == 2
        assert value_of(await store.get(k("x"))) == 2
    finally:
        await through.aclose()


@pytest.mark.parametrize(
    ("status", "expected", "unavailable"),
    [
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (408, TierUnavailableError, True),
        (503, TierUnavailableError, True),
        (500, TierError, False),
        (400, TierError, False),
    ],
)
async def test_service_errors_are_typed(
    fault_proxy: FaultProxy,
    cosmos_database_name: str,
    store: CosmosWarmMemory,
    status: int,
    expected: type[Exception],
    unavailable: bool,
) -> None:
    await store.set(k("x"), rec(1))
    through = proxied_store(fault_proxy, cosmos_database_name, store.container, retry_total=1)
    try:
        await through.ping()
        fault = fault_proxy.fail("GET", "/docs/", status)
        async with asyncio.timeout(30):
            with pytest.raises(expected) as info:
                await through.get(k("x"))
        assert isinstance(info.value, TierUnavailableError) is unavailable
        assert info.value.__cause__ is not None and fault.hits >= 1
        fault.remaining = 0
        assert value_of(await through.get(k("x"))) == 1  # nothing sticky once the service answers again
    finally:
        await through.aclose()


async def test_too_large_for_the_service_is_value_too_large(
    fault_proxy: FaultProxy, cosmos_database_name: str, store: CosmosWarmMemory
) -> None:
    through = proxied_store(fault_proxy, cosmos_database_name, store.container)
    try:
        await through.ping()
        fault_proxy.fail("POST", "/docs", 413)
        record = rec("x" * 1000)
        with pytest.raises(ValueTooLargeError) as info:
            await through.set(k("x"), record)
        assert (info.value.size, info.value.limit) == (record.size, MAX_RECORD_BYTES)
    finally:
        await through.aclose()


async def test_setup_forbidden_by_data_plane_rbac_says_to_use_bicep(
    fault_proxy: FaultProxy, cosmos_container_name: str
) -> None:
    # With Entra ID data-plane RBAC, creating a database is a control-plane call and answers 403.
    through = proxied_store(fault_proxy, f"rbac-{os.urandom(6).hex()}", cosmos_container_name)
    try:
        fault_proxy.fail("POST", "/dbs", 403)
        with pytest.raises(AuthenticationError, match="Bicep") as info:
            await through.setup()
        assert info.value.operation == "setup"
    finally:
        await through.aclose()


# -- setup, credentials, configuration -----------------------------------------------------------


async def test_setup_is_idempotent_and_configures_the_container(
    store: CosmosWarmMemory, raw: ContainerProxy
) -> None:
    await store.set(k("kept"), rec("kept"))
    await store.setup()
    await store.setup()
    properties = await raw.read()
    assert properties["partitionKey"]["paths"] == ["/pk"]
    assert properties["defaultTtl"] == -1
    assert value_of(await store.get(k("kept"))) == "kept"


async def test_setup_refuses_a_container_with_another_partition_key(
    cosmos_server: CosmosService,
    cosmos_database_name: str,
    drop_container: str,
    sdk_client: CosmosClient,
) -> None:
    database = await sdk_client.create_database_if_not_exists(cosmos_database_name)
    await database.create_container(drop_container, partition_key=PartitionKey(path="/id"))
    async with make_store(cosmos_server, cosmos_database_name, drop_container) as wrong:
        with pytest.raises(ConfigurationError, match="/pk"):
            await wrong.setup()


async def test_managed_identity_credential_path(
    cosmos_server: CosmosService,
    cosmos_database_name: str,
    cosmos_container_name: str,
    managed_identity_env: ManagedIdentityEndpoint,
    store: CosmosWarmMemory,
) -> None:
    # The stand-in does not verify tokens: this proves the Entra ID path runs end to end
    # (azure-identity fetches a token for the account and the adapter uses it), not that Cosmos checks it.
    from azure.identity.aio import ManagedIdentityCredential

    if urlsplit(cosmos_server.endpoint).hostname != "127.0.0.1":
        service_missing("the managed-identity fake only stands in for Entra ID with the local stand-in")
    async with ManagedIdentityCredential() as inner:
        credential = CloseRecordingCredential(inner)
        entra = CosmosWarmMemory(
            cosmos_server.endpoint, cosmos_database_name, cosmos_container_name, credential=credential
        )
        try:
            assert await entra.set(k("mi"), rec("via token"))
            assert value_of(await store.get(k("mi"))) == "via token"
        finally:
            await entra.aclose()
        assert credential.closed is False  # injected: the adapter never closes it
        assert any(token.resource == "https://127.0.0.1" for token in managed_identity_env.issued)

    requests = managed_identity_env.request_count
    managed_identity_env.fail_next(1, status=400)
    async with ManagedIdentityCredential() as broken:
        failing = CosmosWarmMemory(
            cosmos_server.endpoint, cosmos_database_name, cosmos_container_name, credential=broken
        )
        try:
            with pytest.raises(AuthenticationError) as info:
                await failing.get(k("mi"))
            assert info.value.tier is Tier.WARM and info.value.operation == "get"
        finally:
            await failing.aclose()
    assert managed_identity_env.request_count == requests + 1  # the injected failure was consumed


def test_constructor_validates_without_io() -> None:
    secret = SecretStr(base64.b64encode(b"not-a-real-key").decode())
    # No I/O: an endpoint nothing listens on is fine until first use.
    store = CosmosWarmMemory("https://127.0.0.1:1/", "db", "c", key=secret)
    assert secret.get_secret_value() not in repr(store)
    bad: list[dict[str, Any]] = [
        {},  # none of credential / key / client
        {"key": secret, "credential": object()},
        {"key": "plain-string-key"},
        {"credential": "plain-string-key"},
        {"key": secret, "retry_total": 0},
        {"key": secret, "max_concurrency": 0},
        {"key": secret, "connection_timeout": 0},
        {"key": SecretStr("not base64!")},
    ]
    for options in bad:
        with pytest.raises(ConfigurationError):
            CosmosWarmMemory("https://127.0.0.1:8081/", "db", "c", **options)
    with pytest.raises(ConfigurationError, match="https"):
        CosmosWarmMemory("http://acct.documents.azure.com/", "db", "c", key=secret)
    with pytest.raises(ConfigurationError, match="loopback"):
        CosmosWarmMemory("https://acct.documents.azure.com/", "db", "c", key=secret)  # keys: emulators only
    with pytest.raises(ConfigurationError, match="loopback"):
        CosmosWarmMemory(
            "https://acct.documents.azure.com/", "db", "c", credential=object(), connection_verify=False
        )
    with pytest.raises(ConfigurationError, match="database"):
        CosmosWarmMemory("https://127.0.0.1:8081/", "db/x", "c", key=secret)
    CosmosWarmMemory("http://127.0.0.1:8081/", "db", "c", key=secret, connection_verify=False)


async def test_options_for_an_injected_client_are_refused(cosmos_server: CosmosService) -> None:
    async with CosmosClient(cosmos_server.endpoint, cosmos_server.key) as client:
        with pytest.raises(ConfigurationError, match="retry_total"):
            CosmosWarmMemory(cosmos_server.endpoint, "db", "c", client=client, retry_total=3)


def test_missing_extra_raises_import_error_naming_it() -> None:
    script = (
        "import sys\n"
        "sys.modules['azure.cosmos'] = None\n"  # makes `import azure.cosmos` fail like a missing package
        "import tiermem\n"
        "from tiermem.tiers.cosmos import CosmosWarmMemory\n"
        "try:\n"
        "    CosmosWarmMemory('https://acct.documents.azure.com/', 'db', 'c', credential=object())\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc, '| cause:', type(exc.__cause__).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'tiermem[cosmos]'" in result.stdout
    assert "cause: ModuleNotFoundError" in result.stdout
