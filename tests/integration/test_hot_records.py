"""Issue 13 items 1-2 against a real redis-server: whoever can write Redis cannot make a client return
a planted, copied, edited or immortal hot record, and hot reads cannot be made to allocate gigabytes.

Each test plants bytes with a plain redis-py client, as an attacker with Redis access (or a leaked
access key) would, and reads through a ``MemoryClient`` over Redis + an embedded SQLite warm tier.
"""

from __future__ import annotations

import os
import struct
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from tests.records import rec
from tiermem import MemoryBuilder, MemoryClient, RecordKind, ResultTooLargeError, SqliteWarmMemory, Tier
from tiermem._codec import Record, lease, make_record, tombstone
from tiermem._engine.hot import PINNED_EPOCH
from tiermem._keys import make_key
from tiermem._seal import HotSeal
from tiermem.tiers.files import FileColdMemory
from tiermem.tiers.redis import RedisHotMemory

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

MAC = "a-hot-mac-key-of-32-bytes-length"
_MIB = 1024 * 1024


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        yield client


@asynccontextmanager
async def client(
    redis_url: str, root: Path, *, tenant: str, mac_key: str | None = None, **policy: Any
) -> AsyncIterator[MemoryClient]:
    """Redis hot + SQLite warm (+ files cold) under ``root``, scoped to ``tenant``."""
    options: dict[str, Any] = {} if mac_key is None else {"mac_key": mac_key}
    builder = (
        MemoryBuilder()
        .with_redis(redis_url, **options)
        .with_warm(SqliteWarmMemory(root / "warm.db"))
        .with_cold(FileColdMemory(root / "cold", fsync=False))
        .with_scope(tenant=tenant, namespace="ns")
    )
    if policy:
        builder.with_policy(**policy)
    async with builder.build() as memory:
        await memory.setup()
        yield memory


def name(memory: MemoryClient, key: str) -> str:
    store = memory.tier_store(Tier.HOT)
    assert isinstance(store, RedisHotMemory)
    return store.raw_key(make_key(memory.tenant, memory.namespace, key))


async def warm_only(memory: MemoryClient, key: str, value: str) -> None:
    """Change the durable value without telling hot (so a hot answer is told apart from a durable one)."""
    warm = memory.tier_store(Tier.WARM)
    assert isinstance(warm, SqliteWarmMemory)
    await warm.set(make_key(memory.tenant, memory.namespace, key), rec(value))


async def filled(memory: MemoryClient, raw: redis.Redis, key: str) -> bytes:
    """Read ``key`` until hot holds its copy; the stored bytes."""
    for _ in range(20):
        await memory.get(key)
        data = raw.get(name(memory, key))
        if data is not None:
            return bytes(data)
    raise AssertionError("the read never filled hot")


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


KEYED = pytest.mark.parametrize("mac_key", [MAC, None], ids=["keyed", "unkeyed"])


# -- item 1: forged, copied, edited, immortal ---------------------------------------------------------


@KEYED
async def test_a_planted_record_with_a_valid_crc_reads_through(
    redis_url: str, tmp_path: Path, raw: redis.Redis, mac_key: str | None
) -> None:
    async with client(redis_url, tmp_path, tenant=tenant(), mac_key=mac_key) as memory:
        await memory.set("doc", "real")
        planted = rec("planted", ttl=60).for_hot(None, 0)
        raw.set(name(memory, "doc"), planted.to_bytes())  # what a hot record was before seals
        assert await memory.get("doc") == "real"
        raw.set(name(memory, "doc"), planted.to_bytes())
        assert await memory.mget(["doc"]) == {"doc": "real"}
        if mac_key is not None:  # keyed: an attacker who knows the algorithm but not the key
            forged = HotSeal().seal(name(memory, "doc").encode(), planted)
            raw.set(name(memory, "doc"), forged)
            assert await memory.get("doc") == "real"
            raw.set(name(memory, "doc"), forged)
            assert await memory.mget(["doc"]) == {"doc": "real"}


@KEYED
async def test_a_record_copied_from_another_tenant_reads_through(
    redis_url: str, tmp_path: Path, raw: redis.Redis, mac_key: str | None
) -> None:
    async with (
        client(redis_url, tmp_path / "a", tenant=tenant(), mac_key=mac_key) as a,
        client(redis_url, tmp_path / "b", tenant=tenant(), mac_key=mac_key) as b,
    ):
        await b.set("doc", "tenant B's secret")
        stolen = await filled(b, raw, "doc")
        await a.set("doc", "tenant A's value")
        raw.set(name(a, "doc"), stolen)
        assert await a.get("doc") == "tenant A's value"
        raw.set(name(a, "doc"), stolen)
        assert await a.mget(["doc"]) == {"doc": "tenant A's value"}
        entry = await a.get_entry("doc")
        assert entry is not None and entry.tier is Tier.HOT  # A's own copy was filled again
        assert await b.get("doc") == "tenant B's secret"


@KEYED
async def test_a_record_with_an_edited_expiry_reads_through(
    redis_url: str, tmp_path: Path, raw: redis.Redis, mac_key: str | None
) -> None:
    async with client(redis_url, tmp_path, tenant=tenant(), mac_key=mac_key) as memory:
        await memory.set("doc", "v1")
        stored = bytearray(await filled(memory, raw, "doc"))
        served = await memory.get_entry("doc")
        assert served is not None and served.tier is Tier.HOT and served.value == "v1"
        await warm_only(memory, "doc", "v2")  # a later value hot was never told about
        struct.pack_into(">d", stored, 5, 4e9)  # expiry: the year 2096
        raw.set(name(memory, "doc"), bytes(stored))  # and no Redis expiry either
        assert await memory.get("doc") == "v2"


def _planted(kind: str, now: float) -> Record:
    far = now + 10 * 300
    return {
        "value-without-expiry": rec("planted").for_hot(None, 0),
        "value-beyond-hot-ttl": rec("planted").for_hot(far, 0),
        "tombstone-without-expiry": make_record(RecordKind.TOMBSTONE, b""),
        "tombstone-beyond-its-ttl": tombstone(far),
        "lease-without-expiry": make_record(RecordKind.LEASE, b"t"),
        "lease-beyond-its-ttl": lease(far, b"t"),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "value-without-expiry",
        "value-beyond-hot-ttl",
        "tombstone-without-expiry",
        "tombstone-beyond-its-ttl",
        "lease-without-expiry",
        "lease-beyond-its-ttl",
    ],
)
@KEYED
async def test_records_that_outlive_their_lifetime_are_misses(
    redis_url: str, tmp_path: Path, raw: redis.Redis, mac_key: str | None, kind: str
) -> None:
    """Sealed with the right key (an unkeyed seal anyone can make, or a misconfigured key holder):
    the seal holds, but no process of this configuration gives a record such an expiry."""
    import time

    seal = HotSeal.from_secrets(None if mac_key is None else SecretStr(mac_key))
    async with client(redis_url, tmp_path, tenant=tenant(), mac_key=mac_key, hot_ttl=300) as memory:
        await memory.set("doc", "real")
        key = name(memory, "doc")
        raw.set(key, seal.seal(key.encode(), _planted(kind, time.time())))
        assert await memory.get("doc") == "real"
        raw.set(key, seal.seal(key.encode(), _planted(kind, time.time())))
        assert await memory.mget(["doc"]) == {"doc": "real"}
        # The planted record was leased over and replaced by a copy with a bounded expiry.
        assert 0 < raw.pttl(key) <= 301_000
        # Control: the same kind of record with a lifetime this configuration gives is trusted.
        raw.set(key, seal.seal(key.encode(), rec("planted").for_hot(time.time() + 60, 0)))
        assert await memory.get("doc") == "planted"


@pytest.mark.parametrize("how", ["unsealed", "unkeyed-seal", "another-key"])
async def test_a_forged_pinned_epoch_reads_through_with_a_mac_key(
    redis_url: str, tmp_path: Path, raw: redis.Redis, how: str
) -> None:
    async with client(redis_url, tmp_path, tenant=tenant(), mac_key=MAC) as memory:
        await memory.set("doc", "real")
        key = name(memory, "doc")
        forged = rec("forged").for_hot(None, PINNED_EPOCH)  # "stored only in hot", never expires
        data = {
            "unsealed": forged.to_bytes(),
            "unkeyed-seal": HotSeal().seal(key.encode(), forged),
            "another-key": HotSeal.from_secrets(SecretStr("x" * 32)).seal(key.encode(), forged),
        }[how]
        raw.set(key, data)
        assert await memory.get("doc") == "real"
        raw.set(key, data)
        assert await memory.mget(["doc"]) == {"doc": "real"}
        # Values stored only in hot keep working, with their own TTL.
        await memory.set("pinned", "in hot", tier=Tier.HOT, ttl=3600)
        assert await memory.get("pinned") == "in hot"
        assert 3_000_000 < raw.pttl(name(memory, "pinned")) <= 3_600_000


async def test_one_bad_record_in_an_mget_does_not_fail_the_others(
    redis_url: str, tmp_path: Path, raw: redis.Redis
) -> None:
    async with client(redis_url, tmp_path, tenant=tenant(), mac_key=MAC) as memory:
        keys = ["a", "b", "c"]
        for key in keys:
            await memory.set(key, f"{key}1")
            await filled(memory, raw, key)
            await warm_only(memory, key, f"{key}2")  # hot still answers {key}1
        raw.set(name(memory, "b"), b"garbage")
        assert await memory.mget(keys) == {"a": "a1", "b": "b2", "c": "c1"}  # a and c from hot
        assert await memory.mget(keys) == {"a": "a1", "b": "b2", "c": "c1"}


async def test_a_rotated_mac_key_keeps_records_of_the_previous_one(
    redis_url: str, tmp_path: Path, raw: redis.Redis
) -> None:
    who = tenant()
    new = "a-new-hot-mac-key-of-32-bytes-ok"
    async with client(redis_url, tmp_path, tenant=who, mac_key=MAC) as old:
        await old.set("doc", "v1")
        await filled(old, raw, "doc")
        await warm_only(old, "doc", "v2")
    rotated_store = RedisHotMemory.from_url(redis_url, mac_key=new, mac_previous_keys=[MAC])
    builder = MemoryBuilder().with_hot(rotated_store).with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
    async with builder.with_scope(tenant=who, namespace="ns").build() as rotated:
        assert await rotated.get("doc") == "v1"  # the previous key's record, still trusted
    async with client(redis_url, tmp_path, tenant=who, mac_key=new) as only_new:
        assert await only_new.get("doc") == "v2"  # without the previous key: a miss


# -- item 2: decompression amplification and the mget budget ----------------------------------------


async def test_gzip_bombs_in_hot_are_not_inflated(redis_url: str, tmp_path: Path, raw: redis.Redis) -> None:
    """Hot records that inflate far beyond hot_max_bytes (about 100 KiB in Redis each), written by a
    process with a larger hot_max_bytes (or planted, when unkeyed): reads distrust them without
    allocating their size, and read through."""
    who = tenant()
    keys = [f"bomb{i}" for i in range(4)]
    async with client(redis_url, tmp_path, tenant=who, hot_max_bytes=64 * _MIB) as writer:
        for key in keys:
            await writer.set(key, "real")
            await writer.set(key, bytes(24 * _MIB), tier=Tier.HOT, ttl=600)
            assert len(raw.get(name(writer, key)) or b"") < 256 * 1024
    async with client(redis_url, tmp_path, tenant=who) as memory:
        tracemalloc.start()
        try:
            found = await memory.mget(keys)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert found == dict.fromkeys(keys, "real")
        assert peak < 8 * _MIB, f"an mget of 4 gzip bombs allocated {peak / _MIB:.0f} MiB"
    async with client(redis_url, tmp_path, tenant=who, hot_max_bytes=64 * _MIB) as writer:
        await writer.set("one", bytes(24 * _MIB), tier=Tier.HOT, ttl=600)
    async with client(redis_url, tmp_path, tenant=who) as memory:
        tracemalloc.start()
        try:
            assert await memory.get("one") is None  # stored only in hot: nothing to read through to
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * _MIB, f"a get of a gzip bomb allocated {peak / _MIB:.0f} MiB"


async def test_a_pinned_value_decoding_past_hot_max_bytes_is_refused_at_write(
    redis_url: str, tmp_path: Path
) -> None:
    from tiermem import ValueTooLargeError

    async with client(redis_url, tmp_path, tenant=tenant()) as memory:
        with pytest.raises(ValueTooLargeError, match="hot_max_bytes"):
            await memory.set("big", bytes(4 * _MIB), tier=Tier.HOT, ttl=60)  # 4 KiB once gzipped


@pytest.mark.parametrize("where", ["hot", "warm", "cold"])
async def test_an_mget_past_its_budget_fails_typed_before_spending_the_memory(
    redis_url: str, tmp_path: Path, where: str
) -> None:
    size = {"hot": 400 * 1024, "warm": 900 * 1024, "cold": 1200 * 1024}[where]
    keys = [f"k{i}" for i in range(12)]
    async with client(redis_url, tmp_path, tenant=tenant(), mget_max_bytes=3 * _MIB) as memory:
        for i, key in enumerate(keys):
            if where == "cold":  # incompressible: refused from the pointers' sizes, never downloaded
                value = os.urandom(size)
            else:  # compressible: what a tier returns is small, what it decodes to is not
                value = bytes([i]) * 16 + bytes(range(256)) * (size // 256)
            if where == "hot":
                await memory.set(key, value, tier=Tier.HOT, ttl=60)
            else:
                await memory.set(key, value)
        tracemalloc.start()
        try:
            with pytest.raises(ResultTooLargeError, match="fewer keys") as info:
                await memory.mget(keys)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.limit == 3 * _MIB
        assert peak < 3 * _MIB + 2 * size, f"peak {peak / _MIB:.1f} MiB"
        page = await memory.mget(keys[:2])  # what fits is read as usual
        assert all(isinstance(v, bytes) and len(v) >= size for v in page.values())
        with pytest.raises(ResultTooLargeError):
            await memory.mget(keys[:2], max_bytes=size)  # a smaller budget for one call
