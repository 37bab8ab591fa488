"""RedisHotMemory against real redis-server processes: single node, TLS, ACL/password, Entra ID, cluster.

Services come from ``tests.services.fixtures``; tests that stop, pause or reconfigure a server start
their own so the shared session server is never disturbed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.crc import key_slot

from tests.records import hot_bytes, k, rec
from tests.services._process import ServiceUnavailableError, free_port
from tests.services.entra_redis import EntraRedis
from tests.services.fixtures import service_missing
from tests.services.identity import REDIS_RESOURCE, ManagedIdentityEndpoint
from tests.services.keyvault import KeyVaultFake
from tests.services.redis import RedisServer
from tests.services.tls import TlsMaterial
from tiermem import (
    AuthenticationError,
    BatchWriteError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    HotMemory,
    MemoryBuilder,
    MemoryClient,
    RecordKind,
    SqliteWarmMemory,
    Tier,
    TierError,
    TierUnavailableError,
    make_key,
)
from tiermem._errors import key_digest
from tiermem._keys import parse_redis_key
from tiermem._seal import HotSeal
from tiermem.tiers.redis import RedisHotMemory

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def fast_failing(url: str, **options: Any) -> RedisHotMemory:
    """A store that gives up quickly: short timeouts, one retry."""
    return RedisHotMemory.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, retries=1, **options)


def stats(client: redis.Redis, command: str) -> dict[str, int]:
    """``INFO commandstats`` counters of one command (zeros when it never ran)."""
    entry = client.info("commandstats").get(f"cmdstat_{command}", {})
    return {name: int(entry.get(name, 0)) for name in ("calls", "failed_calls", "rejected_calls")}


async def eventually(check: Callable[[], bool], *, what: str, within: float = 20.0) -> None:
    """Poll ``check`` on the event loop (background work keeps running) until true or the deadline."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting until {what}"
        await asyncio.sleep(0.05)


def start_server(*extra_args: str) -> RedisServer:
    try:
        return RedisServer.start(extra_args=extra_args)
    except ServiceUnavailableError as exc:
        service_missing(f"redis-server is unavailable: {exc}")


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A private server that a test may stop, pause or reconfigure."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the (flushed) shared server, to look at what the adapter stored."""
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        yield client


@pytest.fixture
async def hot(redis_url: str) -> AsyncIterator[RedisHotMemory]:
    store = RedisHotMemory.from_url(redis_url)
    await store.setup()
    try:
        yield store
    finally:
        await store.aclose()


# -- basics --------------------------------------------------------------------------------------


async def test_round_trip_exists_delete(hot: RedisHotMemory) -> None:
    assert isinstance(hot, HotMemory)
    assert hot.info.db_system == "redis"
    assert hot.info.native_ttl is True
    assert hot.info.max_record_bytes == 512 * 1024 * 1024
    assert hot.info.server_address == "127.0.0.1"
    record = rec({"a": [1, 2, 3], "text": "x" * 5000}, ttl=60)
    assert record.compressed
    assert await hot.get(k("doc")) is None
    assert await hot.set(k("doc"), record) is None
    got = await hot.get(k("doc"))
    assert got == record
    assert await hot.exists(k("doc")) is True
    await hot.delete(k("doc"))
    await hot.delete(k("doc"))  # idempotent
    assert await hot.exists(k("doc")) is False
    assert await hot.get(k("doc")) is None


async def test_native_ttl_matches_the_envelope(hot: RedisHotMemory, raw: redis.Redis) -> None:
    await hot.set(k("ttl"), rec("v", ttl=30))
    pttl = raw.pttl(hot.raw_key(k("ttl")))
    assert 28_000 < pttl <= 30_000
    await hot.set(k("forever"), rec("v"))
    assert raw.pttl(hot.raw_key(k("forever"))) == -1
    await hot.mset([(k("m1"), rec("v", ttl=10)), (k("m2"), rec("v"))])
    assert 8_000 < raw.pttl(hot.raw_key(k("m1"))) <= 10_000
    assert raw.pttl(hot.raw_key(k("m2"))) == -1


async def test_already_expired_records_are_not_written(hot: RedisHotMemory, raw: redis.Redis) -> None:
    expired = rec("old", ttl=-1)
    await hot.set(k("gone"), expired)
    assert raw.exists(hot.raw_key(k("gone"))) == 0
    # Writing an expired record over a live value leaves the key absent, as SET + expiry would.
    await hot.set(k("live"), rec("live"))
    await hot.set(k("live"), expired)
    assert await hot.get(k("live")) is None
    await hot.mset([(k("live"), rec("again")), (k("x"), expired)])
    await hot.mset([(k("live"), expired)])
    assert raw.exists(hot.raw_key(k("live")), hot.raw_key(k("x"))) == 0
    # With if_absent an expired record is a no-op, and still conflicts with a live value.
    await hot.set(k("nx"), expired, if_absent=True)
    assert raw.exists(hot.raw_key(k("nx"))) == 0
    await hot.set(k("nx"), rec("live"))
    with pytest.raises(ConflictError):
        await hot.set(k("nx"), expired, if_absent=True)


async def test_raw_key_layout_is_literal_and_tenant_scoped(redis_url: str, raw: redis.Redis) -> None:
    keys = ["../x", "a/b", "%2F", "..", "key with spaces", "Ünïcödé/鍵", "tm:acme:ns:y", "*"]
    store = RedisHotMemory.from_url(redis_url)
    custom = RedisHotMemory.from_url(redis_url, prefix="app.v2")
    try:
        await store.mset([(k(key), rec(key)) for key in keys])
        await store.set(k("../x", tenant="other"), rec("other"))
        await custom.set(k("../x"), rec("custom"))
        found = {name.decode() for name in raw.scan_iter(match="tm:acme:*", count=1000)}
        assert found == {f"tm:acme:ns:{{}}{key}" for key in keys}
        assert {parse_redis_key(name) for name in found} == {k(key) for key in keys}
        assert raw.get("tm:acme:ns:{}../x") == hot_bytes("tm:acme:ns:{}../x", rec("../x"))
        assert raw.get("tm:other:ns:{}../x") == hot_bytes("tm:other:ns:{}../x", rec("other"))
        assert raw.get("app.v2:acme:ns:{}../x") == hot_bytes("app.v2:acme:ns:{}../x", rec("custom"))
        assert (await custom.get(k("../x"))) == rec("custom")
        assert (await store.get(k("*"))) == rec("*")  # glob characters are data, not patterns
    finally:
        await store.aclose()
        await custom.aclose()


async def test_mget_and_mset_of_1000_keys_are_one_command_each(hot: RedisHotMemory, raw: redis.Redis) -> None:
    items = [(k(f"key-{i}"), rec({"i": i})) for i in range(1000)]
    set_before, mget_before, get_before = stats(raw, "set"), stats(raw, "mget"), stats(raw, "get")
    conns_before = int(raw.info("stats")["total_connections_received"])
    await hot.mset(items)
    assert stats(raw, "set")["calls"] - set_before["calls"] == 1000
    wanted = [mk for mk, _ in items] + [k(f"missing-{i}") for i in range(200)]
    random.Random(7).shuffle(wanted)
    found = await hot.mget(wanted)
    assert stats(raw, "mget")["calls"] - mget_before["calls"] == 1  # one MGET for 1200 keys
    assert stats(raw, "get")["calls"] == get_before["calls"]
    # The pipeline and the MGET reused one pooled connection (the pool was warmed by setup()).
    assert int(raw.info("stats")["total_connections_received"]) == conns_before
    expected = dict(items)
    assert found == [expected.get(mk) for mk in wanted]
    await hot.mdelete([mk for mk, _ in items[:500]] + [k("missing-0")])
    after = await hot.mget([mk for mk, _ in items])
    assert after == [None] * 500 + [record for _, record in items[500:]]
    assert await hot.mget([]) == []
    await hot.mset([])
    await hot.mdelete([])


async def test_if_absent(hot: RedisHotMemory, raw: redis.Redis) -> None:
    await hot.set(k("a"), rec(1), if_absent=True)
    with pytest.raises(ConflictError) as info:
        await hot.set(k("a"), rec(2), if_absent=True)
    assert info.value.tier is Tier.HOT
    assert info.value.operation == "set"
    assert info.value.key_hash == key_digest("a")
    assert await hot.get(k("a")) == rec(1)
    # A value that expired (Redis dropped it natively) does not block a create-only write.
    await hot.set(k("short"), rec("short", ttl=0.2))
    await eventually(lambda: raw.exists(hot.raw_key(k("short"))) == 0, what="the short-lived key expires")
    await hot.set(k("short"), rec("new"), if_absent=True)
    assert await hot.get(k("short")) == rec("new")
    # mset(if_absent) keeps live values and fills the rest (promotion semantics).
    await hot.mset([(k("a"), rec("promoted")), (k("b"), rec("promoted"))], if_absent=True)
    assert await hot.mget([k("a"), k("b")]) == [rec(1), rec("promoted")]


async def test_if_match_is_rejected_because_hot_has_no_etags(hot: RedisHotMemory) -> None:
    with pytest.raises(TierError) as info:
        await hot.set(k("a"), rec(1), if_match="etag")
    assert not isinstance(info.value, ConflictError)
    assert "ETag" in str(info.value)
    assert await hot.exists(k("a")) is False


async def test_corrupt_raw_bytes_raise_corrupt_value_error(hot: RedisHotMemory, raw: redis.Redis) -> None:
    raw.set(hot.raw_key(k("bad")), b"not a tiermem envelope")
    await hot.set(k("good"), rec("good"))
    with pytest.raises(CorruptValueError) as info:
        await hot.get(k("bad"))
    assert (info.value.tier, info.value.operation, info.value.key_hash) == (
        Tier.HOT,
        "get",
        key_digest("bad"),
    )
    assert "bad" not in str(info.value).split("(")[0]  # the raw key is never in the message
    with pytest.raises(CorruptValueError) as info:
        await hot.mget([k("good"), k("bad")])
    assert (info.value.operation, info.value.key_hash) == ("mget", key_digest("bad"))
    # Any other error reply is a plain TierError (here WRONGTYPE: someone stored a list there).
    raw.rpush(hot.raw_key(k("list")), b"x")
    with pytest.raises(TierError, match="WRONGTYPE") as error:
        await hot.get(k("list"))
    assert type(error.value) is TierError


async def test_use_after_close_and_injected_client_stays_open(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisHotMemory(client, prefix="inj")
        async with store:
            await store.set(k("a"), rec(1))
        with pytest.raises(ClientClosedError):
            await store.get(k("a"))
        await store.aclose()  # idempotent
        # still usable: not ours to close
        assert await client.get("inj:acme:ns:{}a") == hot_bytes("inj:acme:ns:{}a", rec(1))
    finally:
        await client.aclose()


async def test_builder_client_promotes_into_redis_and_invalidates(
    hot: RedisHotMemory, raw: redis.Redis, tmp_path: Any
) -> None:
    warm = SqliteWarmMemory(tmp_path / "warm.db")
    async with MemoryBuilder().with_hot(hot, owned=False).with_warm(warm).build() as memory:
        await memory.setup()
        raw_k = hot.raw_key(make_key("default", "default", "k"))
        assert await memory.get("k") is None  # the miss leaves this reader's lease in Redis
        leased = await hot.get(make_key("default", "default", "k"))
        assert leased is not None and leased.kind is RecordKind.LEASE
        await memory.set("k", {"v": 1}, tier=Tier.WARM)  # the write deletes value and lease alike
        assert raw.exists(raw_k) == 0
        assert await memory.get("k") == {"v": 1}  # warm hit, filled over a fresh lease by the script
        filled = await hot.get(make_key("default", "default", "k"))
        assert filled is not None and filled.kind is RecordKind.JSON
        assert 0 < raw.pttl(raw_k) <= 300_000  # capped by hot_ttl
        entry = await memory.get_entry("k")
        assert entry is not None
        assert entry.tier is Tier.HOT
        await memory.mset({"k": {"v": 2}, "j": {"v": 3}})
        assert await memory.mget(["k", "j", "none"]) == {"k": {"v": 2}, "j": {"v": 3}, "none": None}


# -- errors and failure modes ----------------------------------------------------------------------


async def test_out_of_memory_is_a_tier_error_with_the_runbook(own_server: RedisServer) -> None:
    with redis.Redis(host=own_server.host, port=own_server.port) as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        async with RedisHotMemory.from_url(own_server.url) as store:
            with pytest.raises(TierError) as info:
                await store.set(k("a"), rec("x"))
            assert type(info.value) is TierError
            assert "runbooks/redis-out-of-memory.md" in str(info.value)
            with pytest.raises(BatchWriteError) as batch:
                await store.mset([(k("a"), rec(1)), (k("b"), rec(2))])
            assert batch.value.written == ()
            assert set(batch.value.failed) == {"a", "b"}
            assert all("out of memory" in str(e) for e in batch.value.failed.values())
            assert await store.get(k("a")) is None  # reads still work


async def test_server_down_or_hung_raises_tier_unavailable(own_server: RedisServer) -> None:
    async with fast_failing(own_server.url) as store:
        await store.set(k("a"), rec(1))
        own_server.kill()
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.get(k("a")),
            lambda: store.set(k("a"), rec(2)),
            lambda: store.mget([k("a"), k("b")]),
            lambda: store.mset([(k("a"), rec(2))]),
            lambda: store.mdelete([k("a")]),
            lambda: store.exists(k("a")),
            store.ping,
            store.setup,
        ]
        for call in calls:
            with pytest.raises(TierUnavailableError) as info:
                await call()
            assert info.value.tier is Tier.HOT
            assert isinstance(info.value.__cause__, redis.RedisError | OSError)
        own_server.restart()
        await store.set(k("a"), rec(3))  # reconnects by itself
        assert await store.get(k("a")) == rec(3)
        own_server.pause()  # connections stay open, nothing answers: the socket timeout fires
        try:
            with pytest.raises(TierUnavailableError, match=r"[Tt]imeout"):
                await store.get(k("a"))
        finally:
            own_server.resume()


async def test_pool_exhaustion_waits_pool_timeout_then_raises(own_server: RedisServer) -> None:
    async with RedisHotMemory.from_url(
        own_server.url, max_connections=1, pool_timeout=0.2, socket_timeout=5
    ) as store:
        await store.set(k("a"), rec(1))
        with redis.Redis(host=own_server.host, port=own_server.port) as admin:
            # The server holds every command for 1.5 s: the first get keeps the only connection busy.
            admin.client_pause(1500)
            results = await asyncio.gather(store.get(k("a")), store.get(k("a")), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        assert isinstance(errors[0], TierUnavailableError)
        assert "pool exhausted" in str(errors[0])
        assert rec(1) in results  # the other call waited for the server and succeeded


async def test_password_and_acl_user_auth() -> None:
    password = "s3cret-" + "x" * 20
    server = start_server(
        "--requirepass", password,
        "--user", "alice", "on", ">alice-pw", "~tm:*", "+@all",
    )  # fmt: skip
    try:
        good = RedisHotMemory.from_url(server.url, password=SecretStr(password))
        alice = RedisHotMemory.from_url(
            f"redis://alice@{server.host}:{server.port}", password=SecretStr("alice-pw")
        )
        wrong = RedisHotMemory.from_url(server.url, password=SecretStr("wrong"), retries=3)
        anonymous = RedisHotMemory.from_url(server.url)
        try:
            await good.set(k("a"), rec(1))
            assert await alice.get(k("a")) == rec(1)
            assert password not in repr(good)
            with redis.Redis(host=server.host, port=server.port, password=password) as admin:
                # redis-py 8 speaks RESP3: credentials go in HELLO on connect (AUTH on re-auth).
                before = stats(admin, "hello")["failed_calls"] + stats(admin, "auth")["failed_calls"]
                with pytest.raises(AuthenticationError) as info:
                    await wrong.get(k("a"))
                assert info.value.tier is Tier.HOT
                # A rejected password is not retried (redis-py would retry it as a ConnectionError).
                after = stats(admin, "hello")["failed_calls"] + stats(admin, "auth")["failed_calls"]
                assert after - before == 1
            with pytest.raises(AuthenticationError):
                await anonymous.get(k("a"))  # NOAUTH
            alice_client = aioredis.Redis(
                host=server.host, port=server.port, username="alice", password="alice-pw"
            )
            try:
                alice_other = RedisHotMemory(alice_client, prefix="other")
                with pytest.raises(AuthenticationError, match=r"NOPERM|permission"):
                    await alice_other.get(k("a"))  # alice may only touch tm:* keys
            finally:
                await alice_client.aclose()
        finally:
            for store in (good, alice, wrong, anonymous):
                await store.aclose()
    finally:
        server.stop()


async def test_password_from_a_key_vault_secret_follows_rotation(
    key_vault: KeyVaultFake, tls_material: TlsMaterial, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity.aio import ManagedIdentityCredential

    from tiermem.secrets import KeyVaultSecret

    name = f"redis-password-{uuid.uuid4().hex[:8]}"
    key_vault.set_secret(name, "first-password")
    server = start_server("--requirepass", "first-password")
    credential = ManagedIdentityCredential()
    secret = KeyVaultSecret(
        key_vault.vault_url,
        name,
        credential=credential,
        refresh_after=0.0,
        connection_verify=str(tls_material.ca_bundle),
        verify_challenge_resource=False,
    )
    store = RedisHotMemory.from_url(server.url, password=secret)
    try:
        await store.set(k("a"), rec(1))
        # Rotation: a new secret version, the server switches password and drops every client.
        key_vault.set_secret(name, "second-password")
        with redis.Redis(host=server.host, port=server.port, password="first-password") as admin:
            admin.config_set("requirepass", "second-password")
            admin.client_kill_filter(_type="normal")
        assert await store.get(k("a")) == rec(1)  # reconnected with the new version
        assert "second-password" not in repr(store)
    finally:
        await store.aclose()
        await secret.aclose()
        await credential.close()
        server.stop()


async def _filled(memory: MemoryClient, raw: redis.Redis, key: str) -> bytes:
    """Read ``key`` until hot holds its copy; the stored bytes."""
    for _ in range(20):
        await memory.get(key)
        data = raw.get(_hot_name(memory, key))
        if data is not None:
            return bytes(data)
    raise AssertionError("the read never filled hot")


def _hot_name(memory: MemoryClient, key: str) -> str:
    store = memory.tier_store(Tier.HOT)
    assert isinstance(store, RedisHotMemory)
    return store.raw_key(make_key(memory.tenant, memory.namespace, key))


# Placed after the password rotation test: the Key Vault SDK caches the vault's auth challenge per
# process, and tests/services/test_launchers.py expects the first "redis-password" request to get it.
MAC = "a-hot-mac-key-of-32-bytes-length"


async def test_a_mac_key_from_key_vault_follows_rotation(
    redis_url: str,
    tmp_path: Path,
    raw: redis.Redis,
    key_vault: KeyVaultFake,
    tls_material: TlsMaterial,
    managed_identity_env: ManagedIdentityEndpoint,
) -> None:
    from azure.identity.aio import ManagedIdentityCredential

    from tiermem.secrets import KeyVaultSecret

    secret_name = f"hot-mac-{uuid.uuid4().hex[:8]}"
    key_vault.set_secret(secret_name, MAC)
    async with ManagedIdentityCredential() as credential:
        secret = KeyVaultSecret(
            key_vault.vault_url,
            secret_name,
            credential=credential,
            refresh_after=0.0,
            connection_verify=str(tls_material.ca_bundle),
            verify_challenge_resource=False,
        )
        store = RedisHotMemory.from_url(redis_url, mac_key=secret)
        builder = MemoryBuilder().with_hot(store).with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
        try:
            async with builder.with_scope(
                tenant=f"t{uuid.uuid4().hex[:10]}", namespace="ns"
            ).build() as memory:
                await memory.set("doc", "v1")
                first = await _filled(memory, raw, "doc")
                assert HotSeal.from_secrets(SecretStr(MAC)).open(_hot_name(memory, "doc").encode(), first)
                key_vault.set_secret(secret_name, "a-rotated-hot-mac-key-32-bytes-x")
                entry = await memory.get_entry("doc")  # sealed with the value it replaced: still a hit
                assert entry is not None and entry.tier is Tier.HOT and entry.value == "v1"
                await memory.set("other", "v2")
                data = await _filled(memory, raw, "other")
                rotated = HotSeal.from_secrets(SecretStr("a-rotated-hot-mac-key-32-bytes-x"))
                assert rotated.open(_hot_name(memory, "other").encode(), data)  # new records: the new key
        finally:
            await secret.aclose()


def _tls_server(tls: TlsMaterial) -> tuple[RedisServer, int]:
    tls_port = free_port()
    server = start_server(
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(tls.cert),
        "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca_cert),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    return server, tls_port


async def test_tls_with_private_ca(tls_material: TlsMaterial) -> None:
    server, tls_port = _tls_server(tls_material)
    try:
        ca = str(tls_material.ca_bundle)
        by_ip = RedisHotMemory.from_url(f"rediss://127.0.0.1:{tls_port}", ssl_ca_certs=ca)
        by_name = RedisHotMemory.from_host("localhost", tls_port, ssl_ca_certs=ca)
        untrusted = fast_failing(f"rediss://127.0.0.1:{tls_port}")
        try:
            await by_ip.set(k("a"), rec("over tls"))
            assert await by_name.get(k("a")) == rec("over tls")
            with pytest.raises(TierUnavailableError, match="certificate"):
                await untrusted.ping()  # the session CA is not in the system trust store
            with redis.Redis(host=server.host, port=server.port) as plain:
                assert plain.get("tm:acme:ns:{}a") == hot_bytes("tm:acme:ns:{}a", rec("over tls"))
            with redis.Redis(host=server.host, port=tls_port, socket_timeout=2) as plain_on_tls:
                with pytest.raises(redis.ConnectionError):
                    plain_on_tls.ping()  # the port speaks TLS only
        finally:
            for store in (by_ip, by_name, untrusted):
                await store.aclose()
    finally:
        server.stop()


# -- Entra ID through redis-entraid ----------------------------------------------------------------


def _password_hashes(admin: redis.Redis, user: str) -> list[str]:
    info = admin.acl_getuser(user)
    assert info is not None
    return cast(list[str], info["passwords"])


def _clients_of(admin: redis.Redis, user: str) -> dict[int, dict[str, Any]]:
    return {int(c["id"]): c for c in admin.client_list() if c.get("user") == user}


async def test_entra_id_auth_reauthenticates_across_token_refresh(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity import ManagedIdentityCredential

    identity = managed_identity_env
    _, oid = identity.identity()  # the system-assigned identity ManagedIdentityCredential uses
    admin = entra_redis.admin()
    admin.acl_log_reset()
    identity.set_lifetime(3, resource=REDIS_RESOURCE)
    credential = ManagedIdentityCredential()
    store = RedisHotMemory.from_url(entra_redis.url, credential=credential, max_connections=4)
    started = time.time()

    def tokens() -> list[str]:
        return [
            t.token
            for t in identity.issued
            if t.resource == REDIS_RESOURCE and t.object_id == oid and t.issued_at >= started
        ]

    try:
        await store.set(k("a"), rec("entra"))
        assert await store.get(k("a")) == rec("entra")
        first_token = tokens()[0]
        ours = _clients_of(admin, oid)
        assert len(ours) == 1, ours
        (conn_id,) = ours

        # The idle pooled connection receives AUTH from the background refresh: nothing else
        # sends commands on it while we wait.
        await eventually(
            lambda: _clients_of(admin, oid).get(conn_id, {}).get("cmd") == "auth",
            what="the pooled connection re-authenticates with a refreshed token",
        )
        assert len(tokens()) >= 2
        assert await store.get(k("a")) == rec("entra")
        assert set(_clients_of(admin, oid)) == {conn_id}  # re-authenticated in place, not reconnected

        # The first token expires and the server forgets it; a new connection must then
        # authenticate with a later token, fetched by the provider.
        first_hash = hashlib.sha256(first_token.encode()).hexdigest()
        await eventually(
            lambda: first_hash not in _password_hashes(admin, oid),
            what="the first token's password is pruned from the ACL user",
        )
        admin.client_kill_filter(_id=str(conn_id))
        await store.set(k("b"), rec("after refresh"))
        assert await store.mget([k("a"), k("b")]) == [rec("entra"), rec("after refresh")]
        assert conn_id not in _clients_of(admin, oid)
        assert len(set(tokens())) >= 3
        failures = [e for e in admin.acl_log() if e.get("username") == oid]
        assert failures == []  # every AUTH (connect and re-auth) was accepted
    finally:
        await store.aclose()
        credential.close()
        identity.set_lifetime(None, resource=REDIS_RESOURCE)


async def test_entra_id_token_failure_is_an_authentication_error_and_heals(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity import ManagedIdentityCredential

    identity = managed_identity_env
    _, oid = identity.identity()
    admin = entra_redis.admin()
    with ManagedIdentityCredential() as credential:
        async with RedisHotMemory.from_url(entra_redis.url, credential=credential) as store:
            identity.fail_next(4, status=400)  # the first fetch and redis-entraid's 3 retries
            with pytest.raises(AuthenticationError, match="Entra ID token") as info:
                await store.set(k("a"), rec(1))
            assert info.value.tier is Tier.HOT
            assert oid not in {c.get("user") for c in admin.client_list()}  # no half-open connection kept
            await store.set(k("a"), rec(1))  # the endpoint answers again: a fresh connection authenticates
            assert await store.get(k("a")) == rec(1)
            assert len(_clients_of(admin, oid)) == 1


async def test_entra_id_with_an_async_credential_authenticates_and_refreshes(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

    identity = managed_identity_env
    _, oid = identity.identity()
    admin = entra_redis.admin()
    identity.set_lifetime(3, resource=REDIS_RESOURCE)
    started = time.time()

    def fetched() -> int:
        return len(
            {t.token for t in identity.issued if t.resource == REDIS_RESOURCE and t.issued_at >= started}
        )

    try:
        async with AsyncManagedIdentityCredential() as credential:
            async with RedisHotMemory.from_url(
                entra_redis.url, credential=credential, max_connections=4
            ) as store:
                await store.set(k("a"), rec("aio"))
                assert await store.get(k("a")) == rec("aio")
                (conn_id,) = _clients_of(admin, oid)
                # The background refresh awaits the async credential and re-authenticates in place.
                await eventually(
                    lambda: _clients_of(admin, oid).get(conn_id, {}).get("cmd") == "auth",
                    what="the pooled connection re-authenticates",
                )
                await eventually(lambda: fetched() >= 2, what="the async credential fetches a new token")
                admin.client_kill_filter(_id=str(conn_id))
                assert await store.get(k("a")) == rec("aio")  # a new connection authenticates too
                assert set(_clients_of(admin, oid)) - {conn_id}
                assert [e for e in admin.acl_log() if e.get("username") == oid] == []
    finally:
        identity.set_lifetime(None, resource=REDIS_RESOURCE)


async def test_entra_id_async_credential_failure_is_an_authentication_error_and_heals(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

    identity = managed_identity_env
    async with AsyncManagedIdentityCredential() as credential:
        async with RedisHotMemory.from_url(entra_redis.url, credential=credential) as store:
            identity.fail_next(4, status=400)  # the first fetch and 3 retries, as with a sync credential
            with pytest.raises(AuthenticationError, match="Entra ID token") as info:
                await store.set(k("a"), rec(1))
            assert info.value.tier is Tier.HOT
            await store.set(k("a"), rec(1))  # the endpoint answers again: a fresh connection authenticates
            assert await store.get(k("a")) == rec(1)


async def test_entra_id_rejects_mixing_with_password(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    from azure.identity import ManagedIdentityCredential

    with ManagedIdentityCredential() as credential:
        with pytest.raises(ConfigurationError, match="not both"):
            RedisHotMemory.from_url(entra_redis.url, credential=credential, password=SecretStr("x"))
    # Without credentials the Entra-only server refuses us.
    async with RedisHotMemory.from_url(entra_redis.url) as anonymous:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()


# -- Redis Cluster -------------------------------------------------------------------------------


def _cluster_admins(nodes: Sequence[tuple[str, int]]) -> list[redis.Redis]:
    return [redis.Redis(host=host, port=port, socket_timeout=5) for host, port in nodes]


def _total(admins: Sequence[redis.Redis], command: str) -> int:
    return sum(stats(admin, command)["calls"] for admin in admins)


async def test_cluster_cross_slot_batches(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    host, port = redis_cluster_nodes[0]
    store = RedisHotMemory.from_url(f"redis://{host}:{port}", cluster=True)
    admins = _cluster_admins(redis_cluster_nodes)
    try:
        assert store.cluster
        items = [(k(f"user-{i}"), rec({"i": i})) for i in range(400)]
        slots = {key_slot(store.raw_key(mk).encode()) for mk, _ in items}
        assert len(slots) > 300  # the keys really are spread over many slots
        await store.setup()
        before = {cmd: _total(admins, cmd) for cmd in ("set", "mget", "unlink")}
        await store.mset(items)
        assert _total(admins, "set") - before["set"] == 400
        # Every primary holds some of the keys.
        assert all(admin.dbsize() > 0 for admin in admins)

        wanted = [mk for mk, _ in items] + [k(f"missing-{i}") for i in range(50)] + [items[3][0]]
        random.Random(11).shuffle(wanted)
        wanted_slots = {key_slot(store.raw_key(mk).encode()) for mk in wanted}
        found = await store.mget(wanted)
        expected = dict(items)
        assert found == [expected.get(mk) for mk in wanted]  # input order, duplicates, misses
        assert _total(admins, "mget") - before["mget"] == len(wanted_slots)  # one MGET per slot

        await store.mset([(items[0][0], rec("not promoted")), (k("fresh"), rec("fresh"))], if_absent=True)
        assert await store.mget([items[0][0], k("fresh")]) == [items[0][1], rec("fresh")]

        doomed = [mk for mk, _ in items[:200]]
        await store.mdelete(doomed)
        doomed_slots = {key_slot(store.raw_key(mk).encode()) for mk in doomed}
        assert _total(admins, "unlink") - before["unlink"] == len(doomed_slots)  # one UNLINK per slot
        assert await store.mget(doomed) == [None] * 200
        assert await store.mget([mk for mk, _ in items[200:]]) == [r for _, r in items[200:]]

        await store.set(k("single"), rec("s"), if_absent=True)
        with pytest.raises(ConflictError):
            await store.set(k("single"), rec("t"), if_absent=True)
        assert await store.exists(k("single"))
        await store.delete(k("single"))
        assert not await store.exists(k("single"))
    finally:
        await store.aclose()
        for admin in admins:
            admin.close()


async def test_cluster_pool_exhaustion_waits_then_raises(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    host, port = redis_cluster_nodes[0]
    store = RedisHotMemory.from_url(
        f"redis://{host}:{port}", cluster=True, max_connections=1, pool_timeout=0.2, socket_timeout=5
    )
    admins = _cluster_admins(redis_cluster_nodes)
    try:
        await store.set(k("a"), rec(1))
        for admin in admins:
            admin.client_pause(1500)
        results = await asyncio.gather(store.get(k("a")), store.get(k("a")), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        assert isinstance(errors[0], TierUnavailableError)
        assert "pool exhausted" in str(errors[0])
        assert rec(1) in results
    finally:
        for admin in admins:
            admin.client_unpause()
            admin.close()
        await store.aclose()


async def test_cluster_startup_failures_keep_their_cause(
    redis_cluster_nodes: list[tuple[str, int]], redis_url: str
) -> None:
    host, port = redis_cluster_nodes[0]
    unreachable = fast_failing(f"redis://127.0.0.1:{free_port()}", cluster=True)
    rejected = fast_failing(
        f"redis://{host}:{port}", cluster=True, username="nobody", password=SecretStr("x")
    )
    not_a_cluster = fast_failing(redis_url, cluster=True)
    try:
        with pytest.raises(TierUnavailableError, match="Connect"):
            await unreachable.get(k("a"))
        with pytest.raises(AuthenticationError):
            await rejected.get(k("a"))
        with pytest.raises(TierError, match=r"[Cc]luster mode") as info:
            await not_a_cluster.get(k("a"))
        assert not isinstance(info.value, TierUnavailableError)
    finally:
        for store in (unreachable, rejected, not_a_cluster):
            await store.aclose()


# -- configuration (no I/O) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://cache.example.com:6379", {}, "plaintext"),
        ("redis://myname.redis.azure.net:10000", {}, "rediss://"),
        ("redis://:hunter2@127.0.0.1:6379", {}, "password"),
        ("redis://127.0.0.1:6379?socket_timeout=5", {}, "keyword arguments"),
        ("http://127.0.0.1:6379", {}, "redis://"),
        ("redis://127.0.0.1:6379/x", {}, "database number"),
        ("redis://127.0.0.1:6379/1", {"cluster": True}, "database 0"),
        ("redis://127.0.0.1:6379", {"ssl_ca_certs": "/ca.pem"}, "TLS"),
        ("redis://127.0.0.1:6379", {"prefix": "a:b"}, "prefix"),
        ("redis://127.0.0.1:6379", {"max_connections": 0}, "max_connections"),
        ("redis://127.0.0.1:6379", {"pool_timeout": 0}, "pool_timeout"),
        ("redis://127.0.0.1:6379", {"credential": object()}, "TokenCredential"),
    ],
)
def test_invalid_configuration_is_rejected_before_io(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        RedisHotMemory.from_url(url, **options)
    assert "hunter2" not in str(info.value)


def test_injected_client_must_return_bytes() -> None:
    client = aioredis.Redis(host="127.0.0.1", decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisHotMemory(client)


def test_constructors_do_no_io() -> None:
    # Nothing listens on these; constructing must still succeed (connections are lazy).
    port = free_port()
    assert RedisHotMemory.from_url(f"redis://127.0.0.1:{port}").info.server_address == "127.0.0.1"
    assert RedisHotMemory.from_url(f"redis://127.0.0.1:{port}", cluster=True).cluster
    assert RedisHotMemory.from_url("rediss://myname.redis.azure.net").info.server_address == (
        "myname.redis.azure.net"
    )


def test_missing_extra_names_the_pip_extra() -> None:
    """Without redis-py, ``import tiermem.tiers.redis`` works and constructing says what to install."""
    script = textwrap.dedent(
        """
        import sys

        class BlockRedis:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("redis", "redis_entraid"):
                    raise ImportError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, BlockRedis())
        import tiermem.tiers.redis as adapter
        try:
            adapter.RedisHotMemory.from_url("redis://127.0.0.1")
        except ImportError as exc:
            print(exc, "|", type(exc.__cause__).__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert (
        result.stdout.strip() == "RedisHotMemory needs redis-py: pip install 'tiermem[redis]' | ImportError"
    )
