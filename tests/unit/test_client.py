"""MemoryClient semantics on the embedded tiers: cascade, promotion, write-through, races, bad input."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import FakeClock, WrappedStore
from tiermem import (
    BatchWriteError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    FileColdMemory,
    InvalidInputError,
    InvalidKeyError,
    InvalidScopeError,
    InvalidTTLError,
    InvalidValueError,
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    RecordKind,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
    ValueTooLargeError,
    make_key,
)
from tiermem._engine.epoch import EPOCH_KEY
from tiermem._pointers import pointer_target as _pointer_meta


@dataclass
class Rig:
    memory: MemoryClient
    hot: WrappedStore
    warm: WrappedStore
    cold: WrappedStore
    clock: FakeClock
    path: Path

    def mk(self, key: str, tenant: str = "default", namespace: str = "default") -> Any:
        return make_key(tenant, namespace, key)


def build(
    tmp_path: Path, clock: FakeClock, *, tiers: str = "hwc", failure_threshold: int = 3, **policy: Any
) -> Rig:
    hot = WrappedStore(LocalHotMemory(max_items=10_000, clock=clock), Tier.HOT)
    warm = WrappedStore(SqliteWarmMemory(tmp_path / "warm.db", clock=clock), Tier.WARM)
    cold = WrappedStore(FileColdMemory(tmp_path / "cold", clock=clock), Tier.COLD)
    policy.setdefault("coherence_interval", 3600)  # one epoch read per test: gates see only data reads
    builder = MemoryBuilder().with_clock(clock).with_policy(**policy)
    if "h" in tiers:
        builder.with_hot(hot)  # type: ignore[arg-type]
    if "w" in tiers:
        builder.with_warm(warm)  # type: ignore[arg-type]
    if "c" in tiers:
        builder.with_cold(cold)  # type: ignore[arg-type]
    builder.with_resilience(Tier.HOT, failure_threshold=failure_threshold, reset_timeout=60)
    return Rig(builder.build(), hot, warm, cold, clock, tmp_path)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = build(tmp_path, FakeClock(), hot_ttl=300, compress_min_bytes=1024)
    async with r.memory:
        assert await r.memory._core.epoch.fresh()  # read the hot epoch before any test gates a tier
        r.warm.calls.clear()
        yield r


def _fenced_or_absent(record: Any) -> bool:
    return record is None or record.kind is RecordKind.FENCE


async def test_write_reaches_durable_and_invalidates_hot_then_a_read_fills_it(rig: Rig) -> None:
    await rig.memory.get("profile:42")  # a lease is left in hot by this miss
    await rig.memory.set("profile:42", {"name": "Ada"}, ttl=3600)
    warm_rec = await rig.warm.inner.get(rig.mk("profile:42"))
    assert warm_rec is not None and warm_rec.kind is RecordKind.JSON
    assert len(warm_rec.wid) == 8  # the write id that confirms an unknown outcome (ADR 0006)
    assert warm_rec.expires_at == pytest.approx(rig.clock.now + 3600)
    assert await rig.hot.inner.get(rig.mk("profile:42")) is None  # writers invalidate, never fill
    first = await rig.memory.get_entry("profile:42")
    assert first is not None and first.tier is Tier.WARM and first.value == {"name": "Ada"}
    hot_rec = await rig.hot.inner.get(rig.mk("profile:42"))
    assert hot_rec is not None and hot_rec.kind is RecordKind.JSON
    assert hot_rec.expires_at == pytest.approx(rig.clock.now + 300)  # capped by hot_ttl
    entry = await rig.memory.get_entry("profile:42")
    assert entry is not None and entry.tier is Tier.HOT and entry.value == {"name": "Ada"}
    assert rig.cold.calls["set"] == 0


async def test_cascade_promotes_to_hot(rig: Rig) -> None:
    await rig.memory.set("k", [1, 2, 3])
    await rig.hot.inner.delete(rig.mk("k"))
    first = await rig.memory.get_entry("k")
    second = await rig.memory.get_entry("k")
    assert first is not None and first.tier is Tier.WARM and first.value == [1, 2, 3]
    assert second is not None and second.tier is Tier.HOT
    assert rig.memory.stats().promotions == 1


async def test_promotion_never_outlives_value_ttl(rig: Rig) -> None:
    await rig.memory.set("short", "v", ttl=10)
    await rig.hot.inner.delete(rig.mk("short"))
    assert await rig.memory.get("short") == "v"
    hot_rec = await rig.hot.inner.get(rig.mk("short"))
    assert hot_rec is not None and hot_rec.expires_at == pytest.approx(rig.clock.now + 10)


async def test_client_side_expiry_on_every_tier(rig: Rig) -> None:
    await rig.memory.set("t", "v", ttl=5)
    await rig.memory.set("c", "archived", ttl=5, tier=Tier.COLD)
    rig.clock.advance(6)
    # SQLite and files never expire by themselves: the client must.
    assert await rig.warm.inner.get(rig.mk("t")) is not None
    assert await rig.memory.get("t") is None
    assert await rig.memory.get("c") is None
    assert await rig.memory.exists("t") is False
    assert await rig.memory.mget(["t", "c"]) == {"t": None, "c": None}


async def test_large_value_goes_to_cold_with_pointer(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), warm_max_bytes=64 * 1024, hot_max_bytes=32 * 1024)
    big = os.urandom(200 * 1024)  # incompressible: stays large after the codec
    async with r.memory:
        await r.memory.set("blob", big, ttl=60)
        pointer = await r.warm.inner.get(r.mk("blob"))
        assert pointer is not None and pointer.kind is RecordKind.POINTER
        stored = await r.cold.inner.get(_pointer_meta(r.mk("blob"), pointer)[0])
        assert stored is not None and stored.kind is RecordKind.BYTES
        assert _fenced_or_absent(await r.hot.inner.get(r.mk("blob")))  # above hot_max_bytes: not cached
        entry = await r.memory.get_entry("blob")
        assert entry is not None and entry.tier is Tier.COLD and entry.value == big


async def test_large_value_without_cold_is_rejected_before_any_write(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), tiers="hw", warm_max_bytes=64 * 1024)
    async with r.memory:
        with pytest.raises(ValueTooLargeError) as info:
            await r.memory.set("blob", os.urandom(100 * 1024))
        assert info.value.limit == 64 * 1024
        assert r.warm.calls["set"] == 0 and r.hot.calls["set"] == 0


async def test_gzip_for_large_compressible_values(rig: Rig) -> None:
    text = "the agent said hello " * 400
    await rig.memory.set("chat", text)
    stored = await rig.warm.inner.get(rig.mk("chat"))
    assert stored is not None and stored.compressed and len(stored.payload) < len(text) / 5
    assert await rig.memory.get("chat") == text
    stats = rig.memory.stats()
    assert stats.bytes_in == len(text.encode()) and stats.bytes_out == len(stored.payload)


async def test_pinned_tiers(rig: Rig) -> None:
    with pytest.raises(InvalidTTLError):
        await rig.memory.set("session", {"s": 1}, tier=Tier.HOT)
    await rig.memory.set("session", {"s": 1}, tier=Tier.HOT, ttl=30)
    assert await rig.warm.inner.get(rig.mk("session")) is None
    assert await rig.memory.get("session") == {"s": 1}

    await rig.memory.set("w", "warm only", tier=Tier.WARM)
    assert _fenced_or_absent(await rig.hot.inner.get(rig.mk("w")))
    assert await rig.memory.get("w") == "warm only"

    await rig.memory.set("archive", "cold only", tier=Tier.COLD)
    assert _fenced_or_absent(await rig.hot.inner.get(rig.mk("archive")))
    ptr = await rig.warm.inner.get(rig.mk("archive"))
    assert ptr is not None and ptr.kind is RecordKind.POINTER
    rig.clock.advance(6)  # past the fence the pinned write left in hot
    entry = await rig.memory.get_entry("archive")
    assert entry is not None and entry.tier is Tier.COLD and entry.value == "cold only"
    again = await rig.memory.get_entry("archive")
    assert again is not None and again.tier is Tier.HOT  # reads still cascade and promote


async def test_pinning_replaces_an_older_value_everywhere(rig: Rig) -> None:
    await rig.memory.set("k", "v1")
    await rig.memory.set("k", "v2", tier=Tier.COLD)
    assert await rig.memory.get("k") == "v2"
    await rig.memory.set("k", "v3", tier=Tier.WARM)
    assert await rig.memory.get("k") == "v3"


async def test_delete_everywhere_and_invalidates_hot(rig: Rig) -> None:
    await rig.memory.set("d", "v")
    assert await rig.memory.get("d") == "v"  # now cached in hot
    await rig.memory.set("d2", "archive", tier=Tier.COLD)
    await rig.memory.delete("d")
    await rig.memory.delete("d2")
    await rig.memory.delete("never")  # idempotent
    assert await rig.hot.inner.get(rig.mk("d")) is None
    assert await rig.warm.inner.get(rig.mk("d")) is None
    assert await rig.cold.inner.get(rig.mk("d2")) is None
    assert await rig.memory.get("d") is None and await rig.memory.exists("d") is False


@pytest.mark.parametrize("racing", ["delete", "set"])
async def test_a_fill_racing_a_write_cannot_resurrect_or_overwrite(rig: Rig, racing: str) -> None:
    await rig.memory.set("k", "old")
    await rig.hot.inner.delete(rig.mk("k"))  # force the read to go to warm
    reached, release = rig.warm.gate("get")
    reader = asyncio.create_task(rig.memory.get("k"))
    await reached.wait()  # the reader holds "old" from warm and has not promoted yet
    await (rig.memory.delete("k") if racing == "delete" else rig.memory.set("k", "new"))
    release.set()
    assert await reader == "old"  # it read before the write: a valid linearization
    assert await rig.hot.inner.get(rig.mk("k")) is None  # the write removed its lease: no fill
    if racing == "delete":
        assert await rig.memory.get("k") is None
    else:
        assert await rig.memory.get("k") == "new"
        left = await rig.hot.inner.get(rig.mk("k"))
        assert left is not None and left.kind is RecordKind.STR and left.payload == b"new"


async def test_concurrent_writers_leave_hot_and_warm_in_agreement(rig: Rig) -> None:
    # Writer A is paused inside its durable write while B writes and returns; A lands last. Both
    # invalidate hot after their durable writes, so hot can only ever be filled with what warm holds.
    reached, release = rig.warm.gate("set")
    a = asyncio.create_task(rig.memory.set("k", "A"))
    await reached.wait()
    b = asyncio.create_task(rig.memory.set("k", "B"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(a, b)
    warm = await rig.warm.inner.get(rig.mk("k"))
    assert warm is not None and warm.payload == b"A"  # A landed last: no lock serializes writers now
    assert await rig.hot.inner.get(rig.mk("k")) is None  # both writers invalidated
    assert await rig.memory.get("k") == "A"
    hot = await rig.hot.inner.get(rig.mk("k"))
    assert hot is not None and hot.payload == warm.payload


async def test_mget_one_call_per_tier_and_input_order(rig: Rig) -> None:
    await rig.memory.mset({"h1": 1, "h2": 2, "w1": 3, "c1": 4})
    await rig.memory.set("c1", "cold", tier=Tier.COLD)
    await rig.memory.mget(["h1", "h2"])  # fills hot with h1 and h2
    rig.hot.calls.clear()
    rig.warm.calls.clear()
    rig.cold.calls.clear()
    result = await rig.memory.mget(["w1", "missing", "h1", "c1", "h2"])
    assert list(result) == ["w1", "missing", "h1", "c1", "h2"]
    assert result == {"w1": 3, "missing": None, "h1": 1, "c1": "cold", "h2": 2}
    assert rig.hot.calls["mget"] == 1 and rig.hot.calls["get"] == 0
    assert rig.warm.calls["mget"] == 1 and rig.warm.calls["get"] == 0
    assert rig.cold.calls["get"] + rig.cold.calls["mget"] == 1
    assert rig.hot.calls["swap"] == 2  # one batch of leases on the misses, one batch of fills
    again = await rig.memory.mget(["w1", "c1"])
    assert again == {"w1": 3, "c1": "cold"} and rig.warm.calls["mget"] == 1


async def test_mset_validates_whole_batch_before_writing(rig: Rig) -> None:
    with pytest.raises(InvalidValueError):
        await rig.memory.mset({"a": 1, "b": {1, 2}, "c": 3})
    with pytest.raises(InvalidKeyError):
        await rig.memory.mset([("ok", 1), ("", 2)])
    assert rig.warm.calls["mset"] == 0 and rig.hot.calls["mset"] == 0
    assert await rig.memory.mget(["a", "c", "ok"]) == {"a": None, "c": None, "ok": None}


async def test_mset_partial_failure_lists_written_and_failed(rig: Rig) -> None:
    rig.warm.fail_keys = {"bad"}
    with pytest.raises(BatchWriteError) as info:
        await rig.memory.mset({"good": 1, "bad": 2, "fine": 3})
    assert set(info.value.failed) == {"bad"}
    assert set(info.value.written) == {"good", "fine"}
    rig.warm.fail_keys = set()
    assert await rig.memory.mget(["good", "bad", "fine"]) == {"good": 1, "bad": None, "fine": 3}


@pytest.mark.parametrize(
    ("key", "value", "ttl", "error"),
    [
        ("", 1, None, InvalidKeyError),
        ("k" * 513, 1, None, InvalidKeyError),
        ("é" * 257, 1, None, InvalidKeyError),
        ("bad\x00key", 1, None, InvalidKeyError),
        ("bad\nkey", 1, None, InvalidKeyError),
        ("k", {1, 2}, None, InvalidValueError),
        ("k", float("nan"), None, InvalidValueError),
        ("k", {"deep": [float("inf")]}, None, InvalidValueError),
        ("k", object(), None, InvalidValueError),
        ("k", 1, -1, InvalidTTLError),
        ("k", 1, 0, InvalidTTLError),
        ("k", 1, float("nan"), InvalidTTLError),
    ],
)
async def test_bad_input_raises_typed_error_and_writes_nothing(
    rig: Rig, key: str, value: Any, ttl: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        await rig.memory.set(key, value, ttl=ttl)
    assert isinstance(info.value, ValueError)
    assert sum(rig.warm.calls.values()) == 0 and sum(rig.hot.calls.values()) == 0


async def test_bad_tenant_and_namespace(rig: Rig) -> None:
    for tenant in ("a/b", "..", "", "x" * 65, "ü", "a:b"):
        with pytest.raises(InvalidScopeError):
            rig.memory.scoped(tenant=tenant)
    with pytest.raises(InvalidScopeError):
        rig.memory.scoped(namespace="a/b")


async def test_corrupt_durable_payload_raises(rig: Rig) -> None:
    await rig.memory.set("c", {"important": True})
    await rig.hot.inner.delete(rig.mk("c"))
    conn = sqlite3.connect(rig.path / "warm.db")
    with conn:
        (data,) = conn.execute("SELECT data FROM tiermem_items WHERE key='c'").fetchone()
        damaged = data[:-3] + bytes(b ^ 0xFF for b in data[-3:])
        conn.execute("UPDATE tiermem_items SET data=? WHERE key='c'", (damaged,))
    conn.close()
    with pytest.raises(CorruptValueError) as info:
        await rig.memory.get("c")
    assert info.value.tier is Tier.WARM and info.value.key_hash


async def test_tenant_locked_views_cannot_switch_tenant(rig: Rig) -> None:
    locked = rig.memory.scoped(tenant="acme", lock_tenant=True)
    assert locked.tenant_locked
    with pytest.raises(InvalidScopeError):
        locked.scoped(tenant="globex")
    inner = locked.scoped(namespace="notes")  # namespaces are still free
    assert (inner.tenant, inner.namespace, inner.tenant_locked) == ("acme", "notes", True)
    with pytest.raises(InvalidScopeError):
        inner.scoped(tenant="globex")
    assert locked.scoped(tenant="acme").tenant == "acme"


async def test_tenant_isolation(rig: Rig) -> None:
    acme = rig.memory.scoped(tenant="acme", namespace="notes")
    globex = rig.memory.scoped(tenant="globex", namespace="notes")
    await acme.set("../globex/notes/x", "acme data")
    await acme.set("x", "acme x")
    assert await globex.get("x") is None
    assert await globex.get("../globex/notes/x") is None
    assert await globex.mget(["x"]) == {"x": None}
    await globex.delete("x")
    assert await acme.get("x") == "acme x"
    warm: Any = rig.warm.inner
    assert {mk.key async for mk in warm.scan("globex")} == set()
    assert {mk.key async for mk in warm.scan("acme")} == {"../globex/notes/x", "x"}


async def test_hot_outage_falls_through_and_recovers_without_stale_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = build(tmp_path, FakeClock(), failure_threshold=100)
    await rig.memory.set("k", "v1")
    assert await rig.memory.get("k") == "v1"  # cached in hot
    rig.hot.down = True
    await rig.memory.set("k", "v2")  # durable write succeeds; hot still holds v1
    with caplog.at_level("WARNING", logger="tiermem"):
        assert await rig.memory.get("k") == "v2"
    assert any("falling through" in r.message for r in caplog.records)
    assert rig.memory.stats().dirty_keys == 1
    epoch = await rig.warm.inner.get(EPOCH_KEY)
    assert epoch is not None and epoch.payload == b"1"  # the durable trace other processes honour
    rig.hot.down = False
    stale = await rig.hot.inner.get(rig.mk("k"))
    assert stale is not None and stale.payload == b"v1" and stale.epoch == 0
    assert await rig.memory.get("k") == "v2"  # dirty key flushed before hot is read
    assert rig.memory.stats().dirty_keys == 0
    await rig.memory.aclose()


async def test_another_client_ignores_hot_copies_older_than_the_epoch(tmp_path: Path) -> None:
    # Process B cannot reach hot while it writes; process A keeps serving hot. A must stop serving
    # the old value within coherence_interval, without B ever reaching hot (ADR 0006, V1).
    clock = FakeClock()
    shared_hot = LocalHotMemory(clock=clock)
    a_warm = SqliteWarmMemory(tmp_path / "w.db", clock=clock)
    b_warm = SqliteWarmMemory(tmp_path / "w.db", clock=clock)
    b_hot = WrappedStore(shared_hot, Tier.HOT)
    a = MemoryBuilder().with_clock(clock).with_policy(coherence_interval=0.05).with_hot(shared_hot)
    b = MemoryBuilder().with_clock(clock).with_hot(b_hot).with_warm(b_warm)  # type: ignore[arg-type]
    async with a.with_warm(a_warm).build() as ma, b.build() as mb:
        await ma.set("k", "v1")
        assert await ma.get("k") == "v1" and await ma.get("k") == "v1"  # filled, then a hot hit
        b_hot.down = True
        await mb.set("k", "v2")  # B's invalidation fails: it raises the durable epoch instead
        b_hot.down = False
        await asyncio.sleep(0.06)  # one coherence interval
        await ma.get("k")  # may still be served from the interval being refreshed
        await asyncio.sleep(0.06)
        assert await ma.get("k") == "v2"
        assert await mb.get("k") == "v2"


async def test_circuit_opens_then_probes(rig: Rig) -> None:
    await rig.memory.set("k", "v")
    rig.hot.down = True
    for _ in range(3):
        assert await rig.memory.get("k") == "v"
    assert rig.memory.stats().tiers["hot"]["circuit"] == "open"
    before = rig.hot.calls["get"]
    assert await rig.memory.get("k") == "v"
    assert rig.hot.calls["get"] == before  # open: hot not even tried


async def test_durable_outage_raises_typed_error(rig: Rig) -> None:
    rig.warm.down = True
    with pytest.raises(TierUnavailableError) as info:
        await rig.memory.set("k", "v")
    assert info.value.tier is Tier.WARM
    rig.warm.down = False
    assert await rig.memory.get("k") is None  # nothing reported written was written


async def test_unknown_durable_outcome_invalidates_hot(rig: Rig) -> None:
    await rig.memory.set("k", "v1")
    rig.warm.down = True  # the durable write fails as "unreachable": it may or may not have landed
    with pytest.raises(TierUnavailableError):
        await rig.memory.set("k", "v2")
    rig.warm.down = False
    assert _fenced_or_absent(await rig.hot.inner.get(rig.mk("k")))  # hot no longer vouches for v1
    assert await rig.memory.get("k") == "v1"  # read through to the durable tier's truth


async def test_if_match_with_consistent_read(rig: Rig) -> None:
    await rig.memory.set("doc", {"v": 1})
    entry = await rig.memory.get_entry("doc", consistent=True)
    assert entry is not None and entry.etag
    await rig.memory.set("doc", {"v": 2}, if_match=entry.etag)
    with pytest.raises(ConflictError):
        await rig.memory.set("doc", {"v": 3}, if_match=entry.etag)
    assert await rig.memory.get("doc") == {"v": 2}


async def test_if_absent_is_create_only(rig: Rig) -> None:
    await rig.memory.set("once", 1, if_absent=True)
    with pytest.raises(ConflictError):
        await rig.memory.set("once", 2, if_absent=True)
    assert await rig.memory.get("once") == 1
    await rig.memory.set("short", 1, ttl=5)
    rig.clock.advance(6)
    await rig.memory.set("short", 2, if_absent=True)  # an expired value does not block creation
    assert await rig.memory.get("short") == 2
    with pytest.raises(InvalidInputError):
        await rig.memory.set("x", 1, if_absent=True, if_match="etag")


async def test_negative_cache(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), negative_ttl=30)
    async with r.memory:
        assert await r.memory.get("nope") is None
        calls = r.warm.calls["get"]
        assert await r.memory.get("nope") is None
        assert r.warm.calls["get"] == calls
        await r.memory.set("nope", "now here")
        assert await r.memory.get("nope") == "now here"


async def test_dirty_overflow_bypasses_hot(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), dirty_max_keys=2)
    async with r.memory:
        r.hot.down = True
        await r.memory.mset({"a": 1, "b": 2, "c": 3})
        r.hot.down = False
        assert r.memory.stats().dirty_overflows == 1
        calls = r.hot.calls["get"]
        assert await r.memory.get("a") == 1
        assert r.hot.calls["get"] == calls  # hot bypassed: it may hold stale values


async def test_hot_only_and_cold_only_clients(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), tiers="h")
    async with r.memory:
        await r.memory.set("x", 1)
        assert await r.memory.get("x") == 1
        await r.memory.delete("x")
        assert await r.memory.get("x") is None
    c = build(tmp_path / "c", FakeClock(), tiers="c")
    async with c.memory:
        await c.memory.set("y", "cold")
        assert await c.memory.get("y") == "cold"


async def test_builder_validation() -> None:
    with pytest.raises(ConfigurationError, match="at least one tier"):
        MemoryBuilder().build()
    with pytest.raises(ConfigurationError, match="unknown policy"):
        MemoryBuilder().with_policy(hot_tll=5)
    with pytest.raises(ConfigurationError):
        MemoryBuilder().with_policy(hot_ttl=-1)
    with pytest.raises(ConfigurationError):
        MemoryBuilder().with_warm(LocalHotMemory())  # type: ignore[arg-type]


async def test_lifecycle(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock())
    view = r.memory.scoped(tenant="t")
    async with r.memory:
        await view.aclose()  # closing a view leaves the client open
        await view.set("k", 1)
    with pytest.raises(ClientClosedError):
        await r.memory.get("k")
    await r.memory.aclose()  # idempotent


async def _cold_objects(r: Rig) -> list[Any]:
    root = r.path / "cold"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_conditional_large_write_that_loses_keeps_the_committed_value(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), warm_max_bytes=16 * 1024)
    a, b = os.urandom(40 * 1024), os.urandom(40 * 1024)
    async with r.memory:
        etag = await r.memory.set("big", a)
        await r.memory.set("big", os.urandom(40 * 1024), if_match=etag)  # now etag is stale
        committed = await r.memory.get_entry("big", consistent=True)
        assert committed is not None
        with pytest.raises(ConflictError):
            await r.memory.set("big", b, if_match=etag)
        with pytest.raises(ConflictError):
            await r.memory.set("big", b, if_absent=True)
        again = await r.memory.get_entry("big", consistent=True)
        assert again is not None and again.value == committed.value  # the loser never became visible
        assert len(await _cold_objects(r)) == 1  # refused versions and the overwritten one are gone


async def test_large_overwrite_and_delete_leave_no_cold_objects(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), warm_max_bytes=16 * 1024)
    async with r.memory:
        for _ in range(3):
            await r.memory.set("big", os.urandom(40 * 1024))
        assert len(await _cold_objects(r)) == 1
        await r.memory.mset({"m1": os.urandom(40 * 1024), "m2": os.urandom(40 * 1024)})
        assert await r.memory.get("m1") is not None
        await r.memory.delete("big")
        await r.memory.delete("m1")
        await r.memory.delete("m2")
        assert await _cold_objects(r) == []


async def test_damaged_cold_object_is_corrupt_not_served(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), warm_max_bytes=16 * 1024)
    async with r.memory:
        await r.memory.set("big", os.urandom(40 * 1024))
        await r.hot.inner.delete(r.mk("big"))
        pointer = await r.warm.inner.get(r.mk("big"))
        assert pointer is not None
        target = _pointer_meta(r.mk("big"), pointer)[0]
        other, _ = r.memory._core.codec.encode(os.urandom(40 * 1024))
        await r.cold.inner.set(target, other)  # a valid record, but not the one the pointer names
        with pytest.raises(CorruptValueError):
            await r.memory.get("big")


async def test_invalidation_fences_hot_against_a_racing_promotion(rig: Rig) -> None:
    await rig.memory.set("k", "v1")
    await rig.hot.inner.delete(rig.mk("k"))
    reached, release = rig.warm.gate("get")
    reader = asyncio.create_task(rig.memory.get("k"))
    await reached.wait()  # the reader holds v1 and is about to promote it
    await rig.memory.set("k", "v2", tier=Tier.WARM)  # no write-through: hot is invalidated, not filled
    release.set()
    assert await reader == "v1"
    assert await rig.hot.inner.get(rig.mk("k")) is None  # the invalidation removed the reader's lease
    assert await rig.memory.get("k") == "v2"


async def test_hot_refusing_a_value_never_leaves_the_old_one(tmp_path: Path) -> None:
    clock = FakeClock()
    hot = LocalHotMemory(max_bytes=4096, clock=clock)
    memory = (
        MemoryBuilder().with_clock(clock).with_hot(hot).with_warm(SqliteWarmMemory(tmp_path / "w.db")).build()
    )
    async with memory:
        await memory.set("k", "small")
        await memory.set("k", os.urandom(8 * 1024))  # fits the policy's hot_max_bytes, not this hot tier
        assert await memory.get("k") != "small"


async def test_cancelled_write_does_not_leave_hot_vouching_for_the_old_value(rig: Rig) -> None:
    await rig.memory.set("k", "v1")
    reached, release = rig.warm.gate("set")
    writer = asyncio.create_task(rig.memory.set("k", "v2"))
    await reached.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)  # the invalidation runs in the background, safe from the cancellation
    assert await rig.hot.inner.get(rig.mk("k")) is None
    value = await rig.memory.get("k")
    durable = await rig.memory.get_entry("k", consistent=True)
    assert durable is not None and value == durable.value


async def test_hot_only_client_raises_on_outage_instead_of_missing(tmp_path: Path) -> None:
    r = build(tmp_path, FakeClock(), tiers="h")
    async with r.memory:
        await r.memory.set("k", 1)
        r.hot.down = True
        with pytest.raises(TierUnavailableError):
            await r.memory.get("k")
        with pytest.raises(TierUnavailableError):
            await r.memory.exists("k")
        with pytest.raises(TierUnavailableError):
            await r.memory.mget(["k"])


async def test_slow_read_does_not_promote(rig: Rig) -> None:
    await rig.memory.set("k", "v")
    await rig.hot.inner.delete(rig.mk("k"))
    reached, release = rig.warm.gate("get")
    reader = asyncio.create_task(rig.memory.get("k"))
    await reached.wait()
    rig.clock.advance(10)  # longer than the tombstone TTL: a delete meanwhile could be forgotten
    release.set()
    assert await reader == "v"
    assert await rig.hot.inner.get(rig.mk("k")) is None
