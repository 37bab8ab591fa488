"""The tier contract: every implementation, embedded or Azure, behaves the same way."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.records import CODEC, k, rec
from tiermem import (
    ClientClosedError,
    ConflictError,
    HotMemory,
    TierError,
    TierStore,
)
from tiermem._codec import Record, RecordKind, make_record, tombstone

from .conftest import ALL, COLD, DURABLE, HOT, WARM

TRICKY_KEYS = [
    "../x",
    "a/b",
    "%2F",
    "..",
    ".",
    "~",
    "?#\\",
    "key with spaces",
    "Ünïcödé/ключ/鍵/🔑",
    "A",
    "a",
    "k" * 512,
    "é" * 256,
]


def same(a: Record | None, b: Record) -> bool:
    return (
        a is not None
        and (a.kind, a.payload, a.compressed, a.checksum) == (b.kind, b.payload, b.compressed, b.checksum)
        and (a.expires_at is None) == (b.expires_at is None)
        and (a.expires_at is None or b.expires_at is None or abs(a.expires_at - b.expires_at) < 1e-3)
    )


pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_implements_protocol(store: TierStore) -> None:
    assert isinstance(store, TierStore)
    assert store.info.db_system


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_miss_is_none(store: TierStore) -> None:
    assert await store.get(k("nope")) is None
    assert await store.exists(k("nope")) is False
    assert await store.mget([k("nope"), k("nope2")]) == [None, None]


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_round_trip_every_kind(store: TierStore) -> None:
    records = {
        "json": rec({"name": "Ada", "n": [1, 2.5, None, True]}),
        "str": rec("hello ✓"),
        "bytes": rec(b"\x00\x01\xff" * 10),
        "compressed": rec("compress me " * 500),
        "ttl": rec({"a": 1}, ttl=3600),
        "tombstone": tombstone(time.time() + 60),
        "pointer": make_record(RecordKind.POINTER, b'{"size":1}', expires_at=time.time() + 60),
    }
    assert records["compressed"].compressed
    for name, record in records.items():
        await store.set(k(name), record)
    for name, record in records.items():
        got = await store.get(k(name))
        assert same(got, record), name
        assert await store.exists(k(name))


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_overwrite_and_delete_idempotent(store: TierStore) -> None:
    await store.set(k("x"), rec(1))
    await store.set(k("x"), rec(2))
    assert CODEC.decode(await store.get(k("x"))) == 2  # type: ignore[arg-type]
    await store.delete(k("x"))
    assert await store.get(k("x")) is None
    await store.delete(k("x"))  # idempotent
    await store.delete(k("never-existed"))


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_tricky_keys_are_distinct_and_isolated(store: TierStore) -> None:
    for i, key in enumerate(TRICKY_KEYS):
        await store.set(k(key), rec(i))
        await store.set(k(key, tenant="other"), rec(-i - 1))
        await store.set(k(key, namespace="ns2"), rec(1000 + i))
    for i, key in enumerate(TRICKY_KEYS):
        assert CODEC.decode(await store.get(k(key))) == i, key  # type: ignore[arg-type]
        assert CODEC.decode(await store.get(k(key, tenant="other"))) == -i - 1, key  # type: ignore[arg-type]
        assert CODEC.decode(await store.get(k(key, namespace="ns2"))) == 1000 + i, key  # type: ignore[arg-type]


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_mget_mset_order_and_misses(store: TierStore) -> None:
    items = [(k(f"m{i}"), rec({"i": i})) for i in range(120)]
    await store.mset(items)
    wanted = [k("m5"), k("missing"), k("m0"), k("m119"), k("missing2"), k("m60")]
    got = await store.mget(wanted)
    assert [None if r is None else CODEC.decode(r)["i"] for r in got] == [5, None, 0, 119, None, 60]
    assert await store.mget([]) == []
    await store.mset([])


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_expired_records_read_as_expired_or_missing(store: TierStore) -> None:
    expired = make_record(RecordKind.STR, b"old", expires_at=time.time() - 5)
    # Some services refuse to store already-expired data (Redis would need PX <= 0): either is fine,
    # but a record that comes back must still say it is expired, because the client checks expiry.
    try:
        await store.set(k("e"), expired)
    except TierError:
        pytest.fail("storing an already-expired record must not raise")
    got = await store.get(k("e"))
    assert got is None or got.is_expired(time.time())
    assert await store.exists(k("e")) is False


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_if_absent(store: TierStore) -> None:
    await store.set(k("a"), rec(1), if_absent=True)
    with pytest.raises(ConflictError) as info:
        await store.set(k("a"), rec(2), if_absent=True)
    assert info.value.operation == "set"
    assert CODEC.decode(await store.get(k("a"))) == 1  # type: ignore[arg-type]
    # An expired record does not block a create-only write.
    await store.set(k("b"), make_record(RecordKind.STR, b"old", expires_at=time.time() - 5))
    await store.set(k("b"), rec("new"), if_absent=True)
    assert CODEC.decode(await store.get(k("b"))) == "new"  # type: ignore[arg-type]


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_mset_if_absent_skips_live_keys(store: TierStore) -> None:
    await store.set(k("live"), rec("keep"))
    await store.set(k("dead"), make_record(RecordKind.STR, b"old", expires_at=time.time() - 5))
    await store.mset(
        [(k("live"), rec("lost")), (k("dead"), rec("new")), (k("fresh"), rec("f"))], if_absent=True
    )
    got = await store.mget([k("live"), k("dead"), k("fresh")])
    assert [CODEC.decode(r) if r else None for r in got] == ["keep", "new", "f"]


@pytest.mark.parametrize("store", DURABLE, indirect=True)
async def test_if_match(store: TierStore) -> None:
    etag = await store.set(k("doc"), rec({"v": 1}))
    assert etag
    current = await store.get(k("doc"))
    assert current is not None and current.etag == etag
    new_etag = await store.set(k("doc"), rec({"v": 2}), if_match=etag)
    assert new_etag and new_etag != etag
    with pytest.raises(ConflictError):
        await store.set(k("doc"), rec({"v": 3}), if_match=etag)  # stale etag
    assert CODEC.decode(await store.get(k("doc"))) == {"v": 2}  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        await store.set(k("absent"), rec(1), if_match=etag)
    assert await store.get(k("absent")) is None


@pytest.mark.parametrize("store", HOT, indirect=True)
async def test_hot_rejects_if_match_and_supports_mdelete(store: HotMemory) -> None:
    with pytest.raises(TierError):
        await store.set(k("x"), rec(1), if_match="etag")
    await store.mset([(k(f"d{i}"), rec(i)) for i in range(50)])
    await store.mdelete([k(f"d{i}") for i in range(0, 50, 2)] + [k("not-there")])
    got = await store.mget([k(f"d{i}") for i in range(50)])
    assert [r is None for r in got] == [i % 2 == 0 for i in range(50)]


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_large_record(store: TierStore) -> None:
    payload = os.urandom(1024 * 1024)  # incompressible 1 MiB
    record = rec(payload)
    assert not record.compressed
    await store.set(k("big"), record)
    got = await store.get(k("big"))
    assert got is not None and CODEC.decode(got) == payload


@pytest.mark.parametrize("store", [*WARM, *COLD], indirect=True)
async def test_scan_is_per_tenant(store: Any) -> None:
    await store.mset([(k(f"s{i}"), rec(i)) for i in range(5)] + [(k("s0", namespace="other"), rec(0))])
    await store.set(k("s0", tenant="stranger"), rec(0))
    keys = {mk async for mk in store.scan("acme")}
    assert keys == {k(f"s{i}") for i in range(5)} | {k("s0", namespace="other")}
    keys_ns = {mk async for mk in store.scan("acme", "ns")}
    assert keys_ns == {k(f"s{i}") for i in range(5)}


@pytest.mark.parametrize("store", WARM, indirect=True)
async def test_warm_purge_is_per_tenant(store: Any) -> None:
    await store.mset([(k(f"p{i}"), rec(i)) for i in range(4)] + [(k("p0", tenant="other"), rec("x"))])
    assert await store.purge("acme") == 4
    assert await store.get(k("p0")) is None
    assert await store.get(k("p0", tenant="other")) is not None


@pytest.mark.parametrize("store", COLD, indirect=True)
async def test_cold_sweep_removes_only_expired(store: Any) -> None:
    await store.set(k("old"), make_record(RecordKind.STR, b"old", expires_at=time.time() - 10))
    await store.set(k("new"), rec("new", ttl=3600))
    await store.set(k("forever"), rec("forever"))
    assert await store.sweep() == 1
    assert await store.get(k("old")) is None
    assert await store.get(k("new")) is not None
    assert await store.get(k("forever")) is not None


@pytest.mark.parametrize("store", ALL, indirect=True)
async def test_use_after_close(store: TierStore) -> None:
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(ClientClosedError):
        await store.get(k("x"))
