"""BlobColdMemory against real Azurite processes: shared key over HTTP, and Entra ID over HTTPS.

Every test uses its own container. The OAuth tests run the real azure-identity code paths
(``ManagedIdentityCredential`` and ``DefaultAzureCredential`` from ``azure.identity.aio``) against
the local App Service managed-identity endpoint, and Azurite checks the token's issuer, audience
and lifetime (not its signature: see tests/services/azurite.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from pydantic import SecretStr

from tests.records import CODEC, k, rec
from tests.services._process import ServiceUnavailableError
from tests.services.azurite import Azurite
from tests.services.fixtures import BlobService, service_missing
from tests.services.identity import STORAGE_RESOURCE, VAULT_RESOURCE, ManagedIdentityEndpoint
from tests.services.tls import TlsMaterial
from tiermem import (
    AuthenticationError,
    BatchWriteError,
    ClientClosedError,
    ColdMemory,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    MemoryBuilder,
    NotProvisionedError,
    SqliteWarmMemory,
    Tier,
    TierError,
    TierUnavailableError,
    make_key,
)
from tiermem._codec import RecordKind, make_record
from tiermem._keys import blob_name
from tiermem.tiers.blob import BlobColdMemory

pytestmark = [pytest.mark.blob, pytest.mark.timeout(120)]

MiB = 1024 * 1024


def container_name() -> str:
    return f"t-{uuid.uuid4().hex[:24]}"


class CountingTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core's transport is untyped here
    """The real aiohttp transport, counting requests and how many were in flight at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def send(self, request: Any, **config: Any) -> Any:
        self.requests.append(request.method)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().send(request, **config)
        finally:
            self.in_flight -= 1

    def reset(self) -> None:
        self.requests.clear()
        self.peak = 0


class InterleavingTransport(CountingTransport):
    """Runs ``between`` once, right after the first response that matches ``when``: a real
    concurrent writer acting between two requests of one adapter call."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.when: Callable[[Any], bool] | None = None
        self.between: Callable[[], Awaitable[None]] | None = None

    async def send(self, request: Any, **config: Any) -> Any:
        response = await super().send(request, **config)
        if self.when is not None and self.between is not None and self.when(request):
            between, self.between = self.between, None
            await between()
        return response


class TrackingCredential:
    """Delegates to a real async credential and records whether anyone closed it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = await self.inner.get_token(*scopes, **kwargs)
        return token

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> TrackingCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def raw(azurite: BlobService) -> AsyncIterator[BlobServiceClient]:
    """A plain SDK client on the same account, to look at what the adapter wrote."""
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    async with client:
        yield client


@pytest.fixture
async def store(azurite: BlobService) -> AsyncIterator[BlobColdMemory]:
    memory = BlobColdMemory(
        container=container_name(),
        connection_string=SecretStr(azurite.connection_string),
        retry_total=1,
        retry_backoff=0.05,
    )
    await memory.setup()
    async with memory:
        yield memory


def container_of(raw: BlobServiceClient, store: BlobColdMemory) -> ContainerClient:
    return raw.get_container_client(store.container)


async def names(container: ContainerClient) -> list[str]:
    return [name async for name in container.list_blob_names()]


@pytest.fixture
def private_azurite() -> Iterator[Azurite]:
    """An Azurite this test may stop or pause (never the shared session one)."""
    try:
        service = Azurite.start()
    except ServiceUnavailableError as exc:
        service_missing(f"azurite is unavailable: {exc}")
    try:
        yield service
    finally:
        service.stop()


# -- construction (no I/O) ----------------------------------------------------------------------


def test_constructor_validates_sources_and_tls(azurite: BlobService) -> None:
    conn = SecretStr(azurite.connection_string)
    with pytest.raises(ConfigurationError, match="exactly one"):
        BlobColdMemory()
    with pytest.raises(ConfigurationError, match="exactly one"):
        BlobColdMemory("https://acct.blob.core.windows.net", connection_string=conn)
    with pytest.raises(ConfigurationError, match="needs credential"):
        BlobColdMemory("https://acct.blob.core.windows.net")
    with pytest.raises(ConfigurationError, match="https"):
        BlobColdMemory("http://acct.blob.core.windows.net", credential=DefaultAzureCredential())
    with pytest.raises(ConfigurationError, match="AsyncTokenCredential"):
        BlobColdMemory("https://acct.blob.core.windows.net", credential="account-key")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="SecretStr"):
        BlobColdMemory(connection_string=azurite.connection_string.encode())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pass it as connection_string="):
        BlobColdMemory(azurite.connection_string)
    real_account = (
        "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
    )
    with pytest.raises(ConfigurationError, match="local emulator"):
        BlobColdMemory(connection_string=SecretStr(real_account))
    with pytest.raises(ConfigurationError, match="container"):
        BlobColdMemory(container="Bad_Name", connection_string=conn)
    with pytest.raises(ConfigurationError, match="cannot be switched off"):
        BlobColdMemory(connection_string=conn, connection_verify=False)  # type: ignore[arg-type]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with pytest.raises(ConfigurationError, match="retry_total"):
        BlobColdMemory(service_client=service, retry_total=1)

    memory = BlobColdMemory(container="abc", connection_string=conn)
    assert memory.info.db_system == "azure_blob"
    assert memory.info.native_ttl is False and memory.info.max_record_bytes is None
    assert memory.info.server_address == "127.0.0.1"
    assert azurite.account_key not in repr(memory) and "abc" in repr(memory)
    assert isinstance(memory, ColdMemory)


def test_missing_extra_names_the_pip_extra() -> None:
    """Without azure-storage-blob, ``import tiermem`` works; the adapter says what to install."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["azure.storage.blob"] = None  # as if the extra were not installed
        sys.modules["azure.storage.blob.aio"] = None
        import tiermem
        from tiermem.tiers.blob import BlobColdMemory
        try:
            BlobColdMemory("https://acct.blob.core.windows.net", credential=object())
        except ImportError as exc:
            assert "pip install 'tiermem[blob]'" in str(exc), exc
            assert isinstance(exc.__cause__, ImportError), exc.__cause__
            print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- values ---------------------------------------------------------------------------------------


async def test_round_trip_json_str_bytes(store: BlobColdMemory) -> None:
    values = {"json": {"name": "Ada", "n": [1, 2.5, None, True]}, "str": "hello ✓", "bytes": b"\x00\xff" * 9}
    etags = {}
    for name, value in values.items():
        etags[name] = await store.set(k(name), rec(value))
    for name, value in values.items():
        got = await store.get(k(name))
        assert got is not None
        assert got.etag == etags[name]
        assert got.kind is {"json": RecordKind.JSON, "str": RecordKind.STR, "bytes": RecordKind.BYTES}[name]
        assert CODEC.decode(got) == value
    empty = make_record(RecordKind.BYTES, b"")
    await store.set(k("empty"), empty)
    got = await store.get(k("empty"))
    assert got is not None and got.payload == b"" and CODEC.decode(got) == b""


async def test_get_is_one_request_and_mget_is_bounded(azurite: BlobService) -> None:
    transport = CountingTransport()
    service = BlobServiceClient.from_connection_string(azurite.connection_string, transport=transport)
    async with service:
        memory = BlobColdMemory(container=container_name(), service_client=service, max_concurrency=4)
        await memory.setup()
        await memory.mset([(k(f"m{i}"), rec({"i": i})) for i in range(0, 100, 2)])
        assert 2 <= transport.peak <= 4

        transport.reset()
        got = await memory.get(k("m10"))
        assert got is not None and CODEC.decode(got) == {"i": 10}
        assert transport.requests == ["GET"]  # body, metadata and etag from one download

        transport.reset()
        records = await memory.mget([k(f"m{i}") for i in range(100)])
        assert [None if r is None else CODEC.decode(r)["i"] for r in records] == [
            i if i % 2 == 0 else None for i in range(100)
        ]
        assert len(transport.requests) == 100
        assert 2 <= transport.peak <= 4

        await memory.aclose()
        # The injected client stays open: the adapter closes only what it created.
        assert await service.get_container_client(memory.container).exists()


async def test_gzip_on_the_wire(store: BlobColdMemory, raw: BlobServiceClient) -> None:
    value = {"text": "compress me " * 2000}
    record = rec(value)
    assert record.compressed
    await store.set(k("z"), record)

    blob = container_of(raw, store).get_blob_client(blob_name(k("z")))
    props = await blob.get_blob_properties()
    assert props.content_settings.content_encoding == "gzip"
    assert props.content_settings.content_type == "application/octet-stream"
    assert props.metadata["tm_gz"] == "1"
    body = await (await blob.download_blob(decompress=False)).readall()
    assert body[:2] == b"\x1f\x8b"
    assert body == record.payload
    assert len(body) < len(str(value))

    got = await store.get(k("z"))
    assert got is not None and got.compressed and got.payload == record.payload
    assert CODEC.decode(got) == value

    await store.set(k("plain"), rec("short"))
    plain = await container_of(raw, store).get_blob_client(blob_name(k("plain"))).get_blob_properties()
    assert plain.content_settings.content_encoding is None
    assert plain.metadata["tm_gz"] == "0"


async def test_expiry_lives_in_metadata(azurite: BlobService, raw: BlobServiceClient) -> None:
    now = [1_700_000_000.0]
    memory = BlobColdMemory(
        container=container_name(),
        connection_string=SecretStr(azurite.connection_string),
        clock=lambda: now[0],
    )
    async with memory:
        await memory.setup()
        expires = now[0] + 60.25
        await memory.set(k("ttl"), rec("soon", expires_at=expires))
        await memory.set(k("forever"), rec("always"))
        container = container_of(raw, memory)
        meta = (await container.get_blob_client(blob_name(k("ttl"))).get_blob_properties()).metadata
        assert float(meta["tm_exp"]) == expires
        assert meta["tm_v"] == "1" and meta["tm_kind"] == str(int(RecordKind.STR))
        forever = (await container.get_blob_client(blob_name(k("forever"))).get_blob_properties()).metadata
        assert forever["tm_exp"] == ""

        got = await memory.get(k("ttl"))
        assert got is not None and got.expires_at == expires
        assert (await memory.get(k("forever"))).expires_at is None  # type: ignore[union-attr]
        assert await memory.exists(k("ttl")) and await memory.exists(k("forever"))

        now[0] = expires  # expiry is inclusive
        assert await memory.exists(k("ttl")) is False
        assert await memory.exists(k("forever")) is True
        # Blob Storage has no TTL: the expired blob is still there and get returns it, marked expired.
        expired = await memory.get(k("ttl"))
        assert expired is not None and expired.is_expired(now[0])


async def test_blob_names_stay_inside_tenant_and_namespace(
    store: BlobColdMemory, raw: BlobServiceClient
) -> None:
    keys = ["../x", "a/b", "%2F", "..", "~", "k" * 512, "é" * 256, "Ünï/🔑"]
    for i, key in enumerate(keys):
        await store.set(k(key), rec(i))
    await store.set(k("../x", tenant="other"), rec("other"))

    listed = await names(container_of(raw, store))
    ours = [name for name in listed if name.startswith("acme/")]
    assert len(ours) == len(keys)
    for name in ours:
        assert name.startswith("acme/ns/")
        tail = name.removeprefix("acme/ns/")
        assert "/" not in tail and ".." not in tail
        assert len(name) <= 1024
    assert blob_name(k("../x")) == "acme/ns/%2E%2E%2Fx"
    assert blob_name(k("a/b")) == "acme/ns/a%2Fb"
    assert blob_name(k("%2F")) == "acme/ns/%252F"
    assert blob_name(k("é" * 256)).startswith("acme/ns/~")  # percent-encoding would pass 1024 chars
    assert "other/ns/%2E%2E%2Fx" in listed

    for i, key in enumerate(keys):
        assert CODEC.decode(await store.get(k(key))) == i  # type: ignore[arg-type]
    assert sorted([mk.key async for mk in store.scan("acme")]) == sorted(keys)


# -- concurrency control ------------------------------------------------------------------------


async def test_if_match(store: BlobColdMemory) -> None:
    first = await store.set(k("doc"), rec({"v": 1}))
    assert first is not None and first.startswith('"')
    second = await store.set(k("doc"), rec({"v": 2}), if_match=first)
    assert second is not None and second != first
    with pytest.raises(ConflictError) as stale:
        await store.set(k("doc"), rec({"v": 3}), if_match=first)
    assert stale.value.tier is Tier.COLD and stale.value.operation == "set"
    assert isinstance(stale.value.__cause__, Exception)  # the SDK error is chained, not leaked
    assert CODEC.decode(await store.get(k("doc"))) == {"v": 2}  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        await store.set(k("missing"), rec(1), if_match=second)
    assert await store.get(k("missing")) is None


async def test_if_absent(azurite: BlobService) -> None:
    now = [1_700_000_000.0]
    memory = BlobColdMemory(
        container=container_name(),
        connection_string=SecretStr(azurite.connection_string),
        clock=lambda: now[0],
    )
    async with memory:
        await memory.setup()
        created = await memory.set(k("a"), rec(1), if_absent=True)
        assert created is not None
        with pytest.raises(ConflictError):
            await memory.set(k("a"), rec(2), if_absent=True)
        assert CODEC.decode(await memory.get(k("a"))) == 1  # type: ignore[arg-type]

        # An expired blob does not block a create-only write; a live one does.
        await memory.set(k("b"), rec("old", expires_at=now[0] + 10))
        with pytest.raises(ConflictError):
            await memory.set(k("b"), rec("new"), if_absent=True)
        now[0] += 10
        await memory.set(k("b"), rec("new"), if_absent=True)
        assert CODEC.decode(await memory.get(k("b"))) == "new"  # type: ignore[arg-type]

        # if_absent together with if_match: the etag must match and the value must be expired.
        etag = await memory.set(k("c"), rec("c1", expires_at=now[0] + 5))
        with pytest.raises(ConflictError):
            await memory.set(k("c"), rec("c2"), if_absent=True, if_match=etag)
        now[0] += 5
        with pytest.raises(ConflictError):
            await memory.set(k("c"), rec("c2"), if_absent=True, if_match='"0xBOGUS"')
        await memory.set(k("c"), rec("c2"), if_absent=True, if_match=etag)
        assert CODEC.decode(await memory.get(k("c"))) == "c2"  # type: ignore[arg-type]

        # mset(if_absent) skips live keys silently and writes the rest.
        await memory.set(k("live"), rec("keep"))
        await memory.set(k("dead"), rec("old", expires_at=now[0] - 1))
        await memory.mset(
            [(k("live"), rec("lost")), (k("dead"), rec("new")), (k("fresh"), rec("f"))], if_absent=True
        )
        got = await memory.mget([k("live"), k("dead"), k("fresh")])
        assert [CODEC.decode(r) if r else None for r in got] == ["keep", "new", "f"]


async def test_mset_partial_failure_lists_written_and_failed(
    store: BlobColdMemory, raw: BlobServiceClient
) -> None:
    await store.set(k("leased"), rec("locked"))
    blob = container_of(raw, store).get_blob_client(blob_name(k("leased")))
    lease = await blob.acquire_lease(lease_duration=-1)  # writes without the lease id now fail (412)
    try:
        items = [(k(f"w{i}"), rec(i)) for i in range(4)] + [(k("leased"), rec("overwrite"))]
        with pytest.raises(BatchWriteError) as info:
            await store.mset(items)
        assert set(info.value.failed) == {"leased"}
        assert isinstance(info.value.failed["leased"], TierError)
        assert sorted(info.value.written) == ["w0", "w1", "w2", "w3"]
        got = await store.mget([k(f"w{i}") for i in range(4)] + [k("leased")])
        assert [CODEC.decode(r) for r in got if r is not None] == [0, 1, 2, 3, "locked"]
    finally:
        await lease.release()


async def test_delete_is_idempotent(store: BlobColdMemory) -> None:
    await store.set(k("x"), rec(1))
    await store.delete(k("x"))
    assert await store.get(k("x")) is None and await store.exists(k("x")) is False
    await store.delete(k("x"))
    await store.delete(k("never"))


async def test_large_value_uses_blocks_and_parallel_ranges(
    azurite: BlobService, raw: BlobServiceClient
) -> None:
    transport = CountingTransport()
    service = BlobServiceClient.from_connection_string(
        azurite.connection_string,
        transport=transport,
        max_single_put_size=MiB,
        max_block_size=MiB,
        min_large_block_upload_threshold=MiB,
        max_single_get_size=MiB,
        max_chunk_get_size=MiB,
    )
    payload = os.urandom(10 * MiB)  # incompressible: stored as is
    record = rec(payload)
    assert not record.compressed
    async with service:
        memory = BlobColdMemory(container=container_name(), service_client=service, transfer_concurrency=4)
        await memory.setup()
        transport.reset()
        etag = await memory.set(k("big"), record)
        assert transport.requests.count("PUT") == 11  # ten staged blocks and one commit
        assert 2 <= transport.peak <= 4

        blocks, _ = await container_of(raw, memory).get_blob_client(blob_name(k("big"))).get_block_list()
        assert len(blocks) == 10

        transport.reset()
        got = await memory.get(k("big"))
        assert got is not None and got.payload == payload and got.etag == etag
        assert transport.requests.count("GET") == 10  # first range plus nine more, in parallel
        assert 2 <= transport.peak <= 4
        assert CODEC.decode(got) == payload
        await memory.aclose()


async def test_download_restarts_when_overwritten_between_ranges(azurite: BlobService) -> None:
    transport = InterleavingTransport()
    service = BlobServiceClient.from_connection_string(
        azurite.connection_string,
        transport=transport,
        max_single_put_size=MiB,
        max_block_size=MiB,
        min_large_block_upload_threshold=MiB,  # stream the blocks (see BlobColdMemory's defaults)
        max_single_get_size=MiB,
        max_chunk_get_size=MiB,
    )
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB)
    async with service:
        memory = BlobColdMemory(container=container_name(), service_client=service, transfer_concurrency=1)
        await memory.setup()
        await memory.set(k("big"), rec(old))
        writer = BlobColdMemory(
            container=memory.container, connection_string=SecretStr(azurite.connection_string)
        )
        etags: list[str | None] = []

        async def overwrite() -> None:
            etags.append(await writer.set(k("big"), rec(new)))

        async with writer:
            transport.reset()
            transport.when = lambda request: request.method == "GET"
            transport.between = overwrite
            got = await memory.get(k("big"))
        # The remaining ranges of the first attempt were pinned to the old ETag and failed (412);
        # the adapter started over and returned the new value whole, never a mix of both.
        assert etags and etags[0] is not None
        assert got is not None and got.payload == new and got.etag == etags[0]
        assert transport.requests.count("GET") >= 5  # 1 + a failed range, then 3 for the new value
        await memory.aclose()


async def test_adapter_options_reach_the_sdk(azurite: BlobService, raw: BlobServiceClient) -> None:
    payload = os.urandom(10 * MiB)
    # Defaults: 1 MiB single puts, 4 MiB blocks streamed from the body (no large byte copies, so no
    # aiohttp ResourceWarning, which filterwarnings=error would turn into a failure).
    cases: list[tuple[dict[str, Any], int]] = [({}, 3), ({"max_block_size": 2 * MiB}, 5)]
    for options, expected_blocks in cases:
        memory = BlobColdMemory(
            container=container_name(),
            connection_string=SecretStr(azurite.connection_string),
            transfer_concurrency=4,
            **options,
        )
        async with memory:
            await memory.setup()
            await memory.set(k("big"), rec(payload))
            await memory.set(k("medium"), rec(payload[: MiB + 1]))  # just over a single put: one block
            container = container_of(raw, memory)
            blocks, _ = await container.get_blob_client(blob_name(k("big"))).get_block_list()
            assert len(blocks) == expected_blocks
            medium, _ = await container.get_blob_client(blob_name(k("medium"))).get_block_list()
            assert len(medium) == 1
            got = await memory.get(k("big"))
            assert got is not None and got.payload == payload
            got = await memory.get(k("medium"))
            assert got is not None and got.payload == payload[: MiB + 1]


# -- integrity ----------------------------------------------------------------------------------

GOOD_META = {"tm_v": "1", "tm_kind": "3", "tm_gz": "0", "tm_crc": "0", "tm_exp": ""}


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({}, id="no-metadata"),
        pytest.param({**GOOD_META, "tm_v": "9"}, id="version"),
        pytest.param({**GOOD_META, "tm_kind": "99"}, id="kind"),
        pytest.param({**GOOD_META, "tm_gz": "yes"}, id="gz"),
        pytest.param({**GOOD_META, "tm_crc": "-1"}, id="crc"),
        pytest.param({**GOOD_META, "tm_exp": "nan"}, id="exp-nan"),
        pytest.param({**GOOD_META, "tm_exp": "soon"}, id="exp-text"),
    ],
)
async def test_corrupt_metadata_raises(
    store: BlobColdMemory, raw: BlobServiceClient, metadata: dict[str, str]
) -> None:
    await container_of(raw, store).get_blob_client(blob_name(k("bad"))).upload_blob(b"x", metadata=metadata)
    with pytest.raises(CorruptValueError) as info:
        await store.get(k("bad"))
    assert info.value.tier is Tier.COLD and info.value.operation == "get"
    with pytest.raises(CorruptValueError):
        await store.exists(k("bad"))
    with pytest.raises(CorruptValueError):
        await store.mget([k("bad")])
    assert await store.sweep(now=time.time() + 10**9) == 0  # never deleted blindly
    assert blob_name(k("bad")) in await names(container_of(raw, store))


async def test_damaged_body_fails_the_clients_check(store: BlobColdMemory, raw: BlobServiceClient) -> None:
    record = rec({"text": "compress me " * 2000})
    await store.set(k("z"), record)
    blob = container_of(raw, store).get_blob_client(blob_name(k("z")))
    props = await blob.get_blob_properties()
    damaged = bytearray(record.payload)
    damaged[len(damaged) // 2] ^= 0xFF
    await blob.upload_blob(bytes(damaged), overwrite=True, metadata=props.metadata)
    got = await store.get(k("z"))
    assert got is not None and got.payload == bytes(damaged)  # the adapter returns the bytes as stored
    with pytest.raises(CorruptValueError):
        CODEC.decode(got)  # ...and the CRC in metadata catches the damage


# -- listing and sweeping -----------------------------------------------------------------------


async def test_scan_per_tenant_and_namespace(store: BlobColdMemory, raw: BlobServiceClient) -> None:
    layout = {
        ("acme", "ns1"): ["a", "b/c", "../x"],
        ("acme", "ns2"): ["a"],
        ("acme2", "ns1"): ["z"],
        ("globex", "ns1"): ["g"],
    }
    for (tenant, namespace), keys in layout.items():
        for key in keys:
            await store.set(k(key, tenant, namespace), rec(key))
    await store.set(k("expired", "acme", "ns2"), rec("x", expires_at=time.time() - 60))
    await container_of(raw, store).upload_blob("acme/ns1/not%ZZvalid", b"foreign")

    acme = [mk async for mk in store.scan("acme")]
    assert sorted((mk.namespace, mk.key) for mk in acme) == [
        ("ns1", "../x"),
        ("ns1", "a"),
        ("ns1", "b/c"),
        ("ns2", "a"),
        ("ns2", "expired"),  # scan lists expired keys too (sweep is what removes them)
    ]
    assert all(mk.tenant == "acme" for mk in acme)
    assert sorted([mk.key async for mk in store.scan("acme", "ns1")]) == ["../x", "a", "b/c"]
    assert [mk async for mk in store.scan("acme2")] == [k("z", "acme2", "ns1")]
    assert [mk async for mk in store.scan("nobody")] == []


async def test_sweep_deletes_only_expired_tiermem_blobs(
    store: BlobColdMemory, raw: BlobServiceClient
) -> None:
    now = time.time()
    for i in range(12):
        await store.set(k(f"old{i}"), rec(i, expires_at=now - 1))
    await store.set(k("live"), rec("live", expires_at=now + 3600))
    await store.set(k("forever"), rec("forever"))
    container = container_of(raw, store)
    await container.upload_blob("foreign/report.csv", b"a,b", metadata={"tm_exp": "1"})
    await container.upload_blob(blob_name(k("imposter")), b"x")  # a tiermem-looking name, no metadata

    assert await store.sweep(now=now) == 12
    left = await names(container)
    assert sorted(left) == sorted(
        [blob_name(k("live")), blob_name(k("forever")), blob_name(k("imposter")), "foreign/report.csv"]
    )
    assert await store.sweep(now=now) == 0
    assert await store.sweep(now=now + 7200) == 1  # now "live" has expired too
    assert blob_name(k("forever")) in await names(container)
    assert "foreign/report.csv" in await names(container)


async def test_sweep_spares_a_blob_rewritten_after_the_listing(
    azurite: BlobService, raw: BlobServiceClient
) -> None:
    transport = InterleavingTransport()
    service = BlobServiceClient.from_connection_string(azurite.connection_string, transport=transport)
    now = time.time()
    async with service:
        memory = BlobColdMemory(container=container_name(), service_client=service)
        await memory.setup()
        await memory.set(k("stale"), rec("old", expires_at=now - 1))
        await memory.set(k("also-stale"), rec("old", expires_at=now - 1))

        async def rewrite() -> None:
            writer = BlobColdMemory(service_client=raw, container=memory.container)
            await writer.set(k("stale"), rec("fresh", expires_at=now + 3600))

        transport.when = lambda request: request.method == "GET" and "comp=list" in request.url
        transport.between = rewrite
        assert await memory.sweep(now=now) == 1  # the delete is conditional on the listed ETag
        assert transport.between is None  # the rewrite did happen between listing and deleting
        got = await memory.get(k("stale"))
        assert got is not None and CODEC.decode(got) == "fresh"
        assert await memory.get(k("also-stale")) is None
        await memory.aclose()


# -- lifecycle and failures ---------------------------------------------------------------------


async def test_missing_container_is_an_error_not_a_miss(azurite: BlobService) -> None:
    memory = BlobColdMemory(
        container=container_name(), connection_string=SecretStr(azurite.connection_string)
    )
    async with memory:
        for call in (memory.get(k("a")), memory.set(k("a"), rec(1)), memory.ping(), memory.exists(k("a"))):
            with pytest.raises(NotProvisionedError, match="tiermem init") as info:
                await call
            assert not isinstance(info.value, TierUnavailableError)
        await memory.setup()
        await memory.setup()  # idempotent
        await memory.ping()
        assert await memory.get(k("a")) is None


async def test_use_after_close(azurite: BlobService) -> None:
    memory = BlobColdMemory(
        container=container_name(), connection_string=SecretStr(azurite.connection_string)
    )
    await memory.setup()
    await memory.aclose()
    await memory.aclose()
    with pytest.raises(ClientClosedError):
        await memory.get(k("a"))
    with pytest.raises(ClientClosedError):
        [mk async for mk in memory.scan("acme")]


async def test_stopped_azurite_is_unavailable(private_azurite: Azurite) -> None:
    memory = BlobColdMemory(
        container=container_name(),
        connection_string=SecretStr(private_azurite.connection_string),
        retry_total=2,
        retry_backoff=0.05,
        retry_backoff_base=0.1,
        connection_timeout=1.0,
        read_timeout=1.0,
    )
    async with memory:
        await memory.setup()
        await memory.set(k("a"), rec(1))
        private_azurite.stop()
        started = time.monotonic()
        with pytest.raises(TierUnavailableError) as info:
            await memory.get(k("a"))
        assert time.monotonic() - started < 10
        assert info.value.tier is Tier.COLD and info.value.operation == "get"
        assert info.value.__cause__ is not None
        for call in (memory.set(k("a"), rec(2)), memory.ping(), memory.delete(k("a")), memory.sweep()):
            with pytest.raises(TierUnavailableError):
                await call
        with pytest.raises(TierUnavailableError):
            [mk async for mk in memory.scan("acme")]


async def test_hung_azurite_times_out(private_azurite: Azurite) -> None:
    memory = BlobColdMemory(
        container=container_name(),
        connection_string=SecretStr(private_azurite.connection_string),
        retry_total=0,
        read_timeout=0.5,
    )
    async with memory:
        await memory.setup()
        private_azurite.pause()
        try:
            started = time.monotonic()
            with pytest.raises(TierUnavailableError):
                await memory.get(k("a"))
            assert time.monotonic() - started < 5
        finally:
            private_azurite.resume()
        assert await memory.get(k("a")) is None  # recovers once the service answers again


async def test_through_the_client_large_values_land_in_blob(
    store: BlobColdMemory, raw: BlobServiceClient, tmp_path: Any
) -> None:
    memory = (
        MemoryBuilder()
        .with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
        .with_cold(store, owned=False)
        .with_policy(warm_max_bytes=4096, compress_min_bytes=1 << 30)
        .build()
    )
    async with memory:
        await memory.setup()
        big = os.urandom(64 * 1024)
        await memory.set("report", big)
        await memory.set("small", "in warm")
        assert await memory.get("report") == big
        assert await memory.get("small") == "in warm"
    (only,) = await names(container_of(raw, store))  # one versioned object for the large value
    assert only.startswith(blob_name(make_key("default", "default", "report")) + "%00")


# -- Entra ID over HTTPS (managed identity) -----------------------------------------------------


def oauth_memory(
    azurite_oauth: Azurite, tls_material: TlsMaterial, credential: Any, **options: Any
) -> BlobColdMemory:
    assert azurite_oauth.account_url.startswith("https://")
    return BlobColdMemory(
        azurite_oauth.account_url,
        container_name(),
        credential=credential,
        connection_verify=tls_material.ca_bundle,
        **options,
    )


async def exercise(memory: BlobColdMemory) -> None:
    await memory.setup()
    await memory.ping()
    etag = await memory.set(k("doc"), rec({"v": 1}))
    await memory.set(k("doc"), rec({"v": 2}), if_match=etag)
    await memory.set(k("zip"), rec("compress me " * 1000))
    got = await memory.mget([k("doc"), k("zip"), k("none")])
    assert [CODEC.decode(r) if r else None for r in got] == [{"v": 2}, "compress me " * 1000, None]
    assert await memory.exists(k("doc"))
    assert sorted([mk.key async for mk in memory.scan("acme")]) == ["doc", "zip"]
    await memory.set(k("old"), rec("x", expires_at=time.time() - 1))
    assert await memory.sweep() == 1
    await memory.delete(k("doc"))
    assert await memory.get(k("doc")) is None


@pytest.mark.parametrize("flavour", ["managed-identity", "default"])
async def test_managed_identity_round_trip_over_https(
    azurite_oauth: Azurite,
    tls_material: TlsMaterial,
    managed_identity_env: ManagedIdentityEndpoint,
    flavour: str,
) -> None:
    before = len(managed_identity_env.issued)
    inner = ManagedIdentityCredential() if flavour == "managed-identity" else DefaultAzureCredential()
    async with inner:
        credential = TrackingCredential(inner)
        memory = oauth_memory(azurite_oauth, tls_material, credential)
        async with memory:
            await exercise(memory)
        assert credential.closed is False  # injected: never closed by the adapter
    issued = managed_identity_env.issued[before:]
    assert issued, "the managed-identity endpoint issued no token"
    assert {token.resource for token in issued} == {STORAGE_RESOURCE}
    assert all(token.claims["iss"] == managed_identity_env.issuer for token in issued)


async def test_token_for_the_wrong_audience_is_rejected(
    azurite_oauth: Azurite, tls_material: TlsMaterial, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    before = len(managed_identity_env.issued)
    async with ManagedIdentityCredential() as credential:
        memory = oauth_memory(azurite_oauth, tls_material, credential, audience=VAULT_RESOURCE)
        async with memory:
            with pytest.raises(AuthenticationError) as info:
                await memory.ping()
            assert info.value.tier is Tier.COLD
            with pytest.raises(AuthenticationError):
                await memory.get(k("a"))
    assert {token.resource for token in managed_identity_env.issued[before:]} == {VAULT_RESOURCE}


@pytest.mark.parametrize("flavour", ["managed-identity", "default"])
async def test_no_identity_is_an_authentication_error_without_retries(
    azurite_oauth: Azurite, tls_material: TlsMaterial, flavour: str
) -> None:
    # An App Service endpoint answers 400 when the app has no identity assigned.
    with ManagedIdentityEndpoint.start() as endpoint, endpoint.activated():
        endpoint.fail_next(100, status=400)
        inner = ManagedIdentityCredential() if flavour == "managed-identity" else DefaultAzureCredential()
        async with inner:
            memory = oauth_memory(azurite_oauth, tls_material, inner)  # default (SDK) retry settings
            async with memory:
                started = time.monotonic()
                with pytest.raises(AuthenticationError) as info:
                    await memory.get(k("a"))
                elapsed = time.monotonic() - started
        assert info.value.operation == "get"
        assert endpoint.issued == []
        # A credential that cannot get a token is not retried with backoff by the storage pipeline.
        assert endpoint.request_count <= 2
        assert elapsed < 5


async def test_untrusted_certificate_is_unavailable(
    azurite_oauth: Azurite, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    async with ManagedIdentityCredential() as credential:
        memory = BlobColdMemory(
            azurite_oauth.account_url, container_name(), credential=credential, retry_total=0
        )
        async with memory:
            with pytest.raises(TierUnavailableError, match=r"(?i)certificate|ssl"):
                await memory.ping()
