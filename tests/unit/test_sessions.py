"""ConversationStore on the embedded tiers: order, limits, metadata, archive, size, concurrency, crashes."""

from __future__ import annotations

import asyncio
import base64
import math
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import FakeClock, WrappedStore
from tiermem import (
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    FileColdMemory,
    InvalidInputError,
    InvalidKeyError,
    InvalidValueError,
    LocalHotMemory,
    MemoryBuilder,
    MemoryClient,
    MemoryKey,
    Record,
    RecordKind,
    SqliteWarmMemory,
    Tier,
    TierUnavailableError,
    ValueTooLargeError,
    make_key,
)
from tiermem.sessions import MAX_SESSION_ID_BYTES, ConversationStore, SessionMetadata

COSMOS_ITEM_LIMIT = 2 * 1024 * 1024


class CrashingStore(WrappedStore):
    """A warm tier whose next conditional head write fails as if the process died before it."""

    crash_head_writes = 0

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        if self.crash_head_writes and key.key.startswith("h:") and if_match is not None:
            self.crash_head_writes -= 1
            raise TierUnavailableError("simulated crash before the head write", tier=Tier.WARM)
        return await super().set(key, record, if_match=if_match, if_absent=if_absent)


@dataclass
class Rig:
    memory: MemoryClient
    hot: WrappedStore
    warm: CrashingStore
    cold: WrappedStore
    clock: FakeClock

    async def records(self, tier: Tier, namespace: str = "sessions") -> dict[str, Record]:
        """Every record a durable tier stores in ``namespace`` (read from the tier, not the client)."""
        inner: Any = (self.warm if tier is Tier.WARM else self.cold).inner
        keys = [mk async for mk in inner.scan(self.memory.tenant, namespace)]
        found: list[Record | None] = await inner.mget(keys)
        return {mk.key: rec for mk, rec in zip(keys, found, strict=True) if rec is not None}


def build(
    tmp_path: Path,
    clock: FakeClock | None = None,
    *,
    tiers: str = "hwc",
    hot: Any = None,
    **policy: Any,
) -> Rig:
    clock = clock or FakeClock()
    hot_store = WrappedStore(hot or LocalHotMemory(max_items=100_000, clock=clock), Tier.HOT)
    warm = CrashingStore(SqliteWarmMemory(tmp_path / "warm.db", clock=clock), Tier.WARM)
    cold = WrappedStore(FileColdMemory(tmp_path / "cold", fsync=False, clock=clock), Tier.COLD)
    builder = MemoryBuilder().with_clock(clock).with_policy(**policy)
    if "h" in tiers:
        builder.with_hot(hot_store, owned=hot is None)
    if "w" in tiers:
        builder.with_warm(warm)
    if "c" in tiers:
        builder.with_cold(cold)
    return Rig(builder.with_scope(tenant="acme").build(), hot_store, warm, cold, clock)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = build(tmp_path)
    async with r.memory:
        yield r


def store_for(rig: Rig, **options: Any) -> ConversationStore:
    options.setdefault("clock", rig.clock)
    return ConversationStore(rig.memory, **options)


def turns(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 else "assistant", "text": f"turn {i}", "i": i} for i in range(start, n)]


def random_text(nbytes: int) -> str:
    """ASCII text from os.urandom (base64): gzip saves little, and it never repeats."""
    return base64.b64encode(os.urandom(nbytes * 3 // 4)).decode("ascii")[:nbytes]


async def append_all(store: ConversationStore, session: str, items: Sequence[dict[str, Any]]) -> list[int]:
    return [await store.append_turn(session, t) for t in items]


# -- order, limit, metadata --------------------------------------------------------------------------


async def test_appends_return_indices_and_load_keeps_order_across_chunks(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=8, recent_turns=4)
    items = turns(100)
    assert await append_all(store, "s1", items) == list(range(100))
    assert await store.load_turns("s1") == items
    assert await store.load_turns("s1", consistent=True) == items
    chunks = [k for k in await rig.records(Tier.WARM) if k.startswith("c:")]
    assert len(chunks) == math.floor(99 / 8)  # sealed when a 9th turn arrives; the rest is in the head


async def test_limit_returns_the_last_n_in_order(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=8, recent_turns=4)
    items = turns(100)
    await append_all(store, "limits", items)
    # Inside the recent window, at its edge, at chunk boundaries, across many chunks, past the end.
    for limit in (1, 3, 4, 5, 8, 9, 37, 96, 99, 100, 101, 10_000):
        assert await store.load_turns("limits", limit) == items[-limit:], limit
        assert await store.load_turns("limits", limit, consistent=True) == items[-limit:], limit


async def test_limit_zero_missing_session_and_bad_limits(rig: Rig) -> None:
    store = store_for(rig)
    await store.append_turn("s", {"text": "hi"})
    assert await store.load_turns("s", 0) == []
    assert await store.load_turns("nobody") == []
    assert await store.load_turns("nobody", 5) == []
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(InvalidInputError):
            await store.load_turns("s", bad)  # type: ignore[arg-type]


async def test_recent_turns_are_one_hot_read(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=8, recent_turns=6)
    items = turns(50)
    await append_all(store, "recent", items)
    assert await store.load_turns("recent", 30) == items[-30:]  # the first read fills hot
    rig.hot.calls.clear()
    rig.warm.calls.clear()
    assert await store.load_turns("recent", 6) == items[-6:]
    assert rig.hot.calls == {"get": 1}  # the head, from hot: no chunk read at all
    assert sum(rig.warm.calls.values()) == 0
    rig.hot.calls.clear()
    assert await store.load_turns("recent", 30) == items[-30:]
    assert rig.hot.calls["mget"] == 1  # older turns: the chunks they need, in one batch
    assert sum(rig.warm.calls.values()) == 0  # chunks were filled into hot by the first read


async def test_metadata_counts_and_timestamps(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=4)
    assert await store.session_metadata("m") is None
    t0 = rig.clock.now
    await store.append_turn("m", {"text": "first"})
    rig.clock.advance(30)
    await append_all(store, "m", turns(9))
    meta = await store.session_metadata("m")
    assert meta == SessionMetadata(
        session_id="m", turn_count=10, created_at=t0, updated_at=t0 + 30, archived=False
    )
    assert await store.session_metadata("m", consistent=True) == meta
    with pytest.raises(AttributeError):
        meta.turn_count = 3  # type: ignore[misc]


async def test_exists_and_clear_remove_everything(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=4, inline_turn_bytes=1024)
    assert await store.session_exists("c") is False
    await append_all(store, "c", turns(20))
    await store.append_turn("c", {"blob": random_text(5000)})  # stored as its own item
    await append_all(store, "keep", turns(3))
    assert await store.session_exists("c") is True
    assert await store.session_exists("c", consistent=True) is True
    await store.clear_session("c")
    assert await store.session_exists("c") is False
    assert await store.session_exists("c", consistent=True) is False
    assert await store.load_turns("c") == []
    assert await store.session_metadata("c") is None
    remaining = await rig.records(Tier.WARM)
    assert remaining and all(k.endswith(":keep") for k in remaining)  # only the other session
    await store.clear_session("c")  # idempotent
    await store.clear_session("never-existed")
    assert await store.append_turn("c", {"text": "again"}) == 0  # a new session starts at 0
    assert await store.load_turns("c") == [{"text": "again"}]
    assert await store.load_turns("keep") == turns(3)


# -- archive -------------------------------------------------------------------------------------------


async def test_archive_moves_the_session_to_cold_and_loads_from_there(tmp_path: Path) -> None:
    r = build(tmp_path)
    async with r.memory:
        store = store_for(r, chunk_turns=8, recent_turns=4)
        items = turns(50)
        await append_all(store, "old", items)
        await store.archive_session("old")

        meta = await store.session_metadata("old")
        assert meta is not None and meta.archived and meta.turn_count == 50
        warm = await r.records(Tier.WARM)
        assert sorted(k[:2] for k in warm) == ["a:", "h:"]  # the head and the archive's pointer
        assert next(rec for k, rec in warm.items() if k.startswith("a:")).kind is RecordKind.POINTER
        cold = await r.records(Tier.COLD)
        assert len(cold) == 1 and next(iter(cold)).startswith("a:")

        r.clock.advance(6)  # past the fence the archive write left in hot, so the read may promote
        r.cold.calls.clear()
        assert await store.load_turns("old") == items
        assert await store.load_turns("old", 5) == items[-5:]
        assert r.cold.calls["get"] == 1  # served from the cold archive (then promoted to hot)
        await store.archive_session("old")  # already archived: nothing to do
        assert len(await r.records(Tier.COLD)) == 1

        # An archived session stays appendable; archiving again folds everything into one archive.
        assert await store.append_turn("old", {"text": "back"}) == 50
        meta = await store.session_metadata("old")
        assert meta is not None and not meta.archived and meta.turn_count == 51
        assert await store.load_turns("old") == [*items, {"text": "back"}]
        assert await store.load_turns("old", 3) == [*items[-2:], {"text": "back"}]
        await store.archive_session("old")
        assert await store.load_turns("old") == [*items, {"text": "back"}]
        assert len(await r.records(Tier.COLD)) == 1  # the previous archive was removed
        await store.archive_session("missing")  # nothing to archive
        await store.clear_session("old")
        assert await r.records(Tier.COLD) == {}
        assert await r.records(Tier.WARM) == {}


async def test_archive_needs_a_cold_tier(tmp_path: Path) -> None:
    r = build(tmp_path, tiers="hw")
    async with r.memory:
        store = store_for(r)
        await store.append_turn("s", {"text": "hi"})
        with pytest.raises(ConfigurationError, match="cold tier"):
            await store.archive_session("s")
        assert await store.load_turns("s") == [{"text": "hi"}]


async def test_stale_hot_head_after_an_archive_falls_back_to_the_durable_head(rig: Rig) -> None:
    # Another process archives; this process's hot copy of the head still names the old chunks.
    store = store_for(rig, chunk_turns=4, recent_turns=2)
    items = turns(30)
    await append_all(store, "stale", items)
    head_key = make_key("acme", "sessions", "h:stale")
    assert await store.load_turns("stale") == items  # fills hot with the head
    stale = await rig.hot.inner.get(head_key)
    assert stale is not None
    await store.archive_session("stale")
    await rig.hot.inner.set(head_key, stale)  # what a lagging hot tier could hold
    assert await store.load_turns("stale") == items
    assert await store.load_turns("stale", 10) == items[-10:]


# -- size limits -----------------------------------------------------------------------------------------


async def test_a_five_megabyte_session_never_stores_an_item_above_the_warm_limit(rig: Rig) -> None:
    store = store_for(rig)
    items: list[dict[str, Any]] = [{"role": "user", "i": i, "text": random_text(8192)} for i in range(600)]
    for t in items:
        await store.append_turn("big", t)
    assert sum(len(t["text"]) for t in items) > 2 * COSMOS_ITEM_LIMIT  # ~4.9 MB of turns

    warm = await rig.records(Tier.WARM)
    limit = rig.memory.policy.warm_max_bytes
    assert max(rec.size for rec in warm.values()) <= store.max_chunk_bytes + 1024 + 64
    assert all(rec.size <= limit < COSMOS_ITEM_LIMIT for rec in warm.values())
    assert all(rec.kind is RecordKind.JSON for rec in warm.values())  # nothing spilled to cold
    assert sum(rec.size for rec in warm.values()) > COSMOS_ITEM_LIMIT  # it really is stored in pieces
    assert len(warm) > 50
    assert await rig.records(Tier.COLD) == {}
    assert await store.load_turns("big") == items
    assert await store.load_turns("big", 77) == items[-77:]


async def test_a_turn_larger_than_a_chunk_is_stored_on_its_own(rig: Rig) -> None:
    store = store_for(rig)
    huge = {"role": "tool", "text": random_text(3 * 1024 * 1024)}  # above warm_max_bytes (1 MiB)
    medium = {"role": "tool", "text": random_text(40 * 1024)}  # above inline_turn_bytes (16 KiB)
    items = [*turns(3), huge, medium, *turns(6, 3)]
    await append_all(store, "mixed", items)
    assert await store.load_turns("mixed") == items
    assert await store.load_turns("mixed", 8) == items[-8:]
    warm = await rig.records(Tier.WARM)
    assert all(rec.size <= rig.memory.policy.warm_max_bytes for rec in warm.values())
    pointers = [k for k, rec in warm.items() if rec.kind is RecordKind.POINTER]
    assert len(pointers) == 1 and pointers[0].startswith("t:")  # the huge turn lives in cold
    assert [k[:2] for k in await rig.records(Tier.COLD)] == ["t:"]
    await store.clear_session("mixed")
    assert await rig.records(Tier.WARM) == {}
    assert await rig.records(Tier.COLD) == {}


async def test_a_turn_no_tier_can_hold_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    r = build(tmp_path, tiers="hw")
    async with r.memory:
        store = store_for(r)
        await append_all(store, "s", turns(2))
        before = await r.records(Tier.WARM)
        with pytest.raises(ValueTooLargeError):
            await store.append_turn("s", {"text": random_text(2 * 1024 * 1024)})
        assert (await r.records(Tier.WARM)).keys() == before.keys()
        assert await store.load_turns("s") == turns(2)
        assert await store.append_turn("s", {"text": "next"}) == 2


# -- concurrency ----------------------------------------------------------------------------------------


async def test_200_concurrent_appends_lose_no_turn(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=16, recent_turns=8)
    items = [{"writer": i} for i in range(200)]
    indices = await asyncio.gather(*(store.append_turn("busy", t) for t in items))
    assert sorted(indices) == list(range(200))
    loaded = await store.load_turns("busy")
    assert len(loaded) == 200
    assert loaded == [items[i] for i in sorted(range(200), key=lambda i: indices[i])]
    meta = await store.session_metadata("busy")
    assert meta is not None and meta.turn_count == 200


async def test_concurrent_appends_from_independent_clients_lose_no_turn(tmp_path: Path) -> None:
    # Four "processes": own SQLite connections, own locks, own stores; one shared hot (like Redis).
    shared_hot = LocalHotMemory(max_items=100_000)
    rigs = [build(tmp_path, hot=shared_hot) for _ in range(4)]
    stores = [store_for(r, chunk_turns=8, recent_turns=4) for r in rigs]
    try:
        items = [{"writer": i % 4, "n": i} for i in range(200)]
        indices = await asyncio.gather(*(stores[i % 4].append_turn("shared", t) for i, t in enumerate(items)))
        assert sorted(indices) == list(range(200))
        expected = [items[i] for i in sorted(range(200), key=lambda i: indices[i])]
        # Durable reads: across processes a hot copy may briefly lag (docs/adr/0003-write-ordering.md).
        for store in stores:
            assert await store.load_turns("shared", consistent=True) == expected
        head_writes = sum(r.warm.calls["set"] for r in rigs)
        chunks = [k for k in await rigs[0].records(Tier.WARM) if k.startswith("c:")]
        assert head_writes > 200 + len(chunks)  # writers did collide, and retried
    finally:
        for r in rigs:
            await r.memory.aclose()
        await shared_hot.aclose()


async def test_a_lost_head_race_is_retried_not_lost(rig: Rig) -> None:
    a = store_for(rig)
    b = store_for(rig)  # its own local lock: the two only meet at the head's ETag
    await a.append_turn("race", {"who": "first"})
    reached, release = rig.warm.gate("get")
    pending = asyncio.create_task(a.append_turn("race", {"who": "a"}))
    async with asyncio.timeout(5):
        await reached.wait()  # a has read the head and holds its ETag
        assert await b.append_turn("race", {"who": "b"}) == 1
        release.set()
        assert await pending == 2
    assert await a.load_turns("race") == [{"who": "first"}, {"who": "b"}, {"who": "a"}]


async def test_two_first_turns_both_land(rig: Rig) -> None:
    a, b = store_for(rig), store_for(rig)
    reached, release = rig.warm.gate("get")
    pending = asyncio.create_task(a.append_turn("new", {"who": "a"}))
    async with asyncio.timeout(5):
        await reached.wait()  # a saw no session and is about to create it
        assert await b.append_turn("new", {"who": "b"}) == 0
        release.set()
        assert await pending == 1  # a's create-only write failed; it appended instead
    assert await a.load_turns("new") == [{"who": "b"}, {"who": "a"}]


async def test_giving_up_raises_conflict_and_appends_nothing(rig: Rig) -> None:
    a = store_for(rig, max_attempts=1, inline_turn_bytes=1024)
    b = store_for(rig)
    await a.append_turn("race", {"who": "first"})
    reached, release = rig.warm.gate("get")
    pending = asyncio.create_task(a.append_turn("race", {"who": "a", "blob": random_text(4000)}))
    async with asyncio.timeout(5):
        await reached.wait()
        await b.append_turn("race", {"who": "b"})
        release.set()
        with pytest.raises(ConflictError):
            await pending
    assert await a.load_turns("race") == [{"who": "first"}, {"who": "b"}]
    assert not [k for k in await rig.records(Tier.WARM) if k.startswith("t:")]  # its item was removed


# -- crash windows ---------------------------------------------------------------------------------------


async def test_crash_between_chunk_and_head_write_is_invisible_and_healed(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=4, recent_turns=2)
    items = turns(4)
    await append_all(store, "crash", items)
    rig.warm.crash_head_writes = 1
    with pytest.raises(TierUnavailableError):
        await store.append_turn("crash", {"text": "lost with the process"})  # chunk 0 written, head not
    orphans = [k for k in await rig.records(Tier.WARM) if k.startswith("c:")]
    assert len(orphans) == 1
    assert await store.load_turns("crash") == items  # no gap, no duplicate, no phantom turn
    meta = await store.session_metadata("crash", consistent=True)
    assert meta is not None and meta.turn_count == 4

    more = turns(20, 4)
    assert await append_all(store, "crash", more) == list(range(4, 20))  # the chunk is adopted
    assert await store.load_turns("crash") == items + more
    assert await store.load_turns("crash", 7, consistent=True) == (items + more)[-7:]
    chunks = [k for k in await rig.records(Tier.WARM) if k.startswith("c:")]
    assert orphans[0] in chunks and len(chunks) == len(set(chunks))


async def test_an_orphan_chunk_shorter_than_the_unsealed_turns_is_adopted_as_a_prefix(rig: Rig) -> None:
    # Sealing by bytes: the crashed append sealed 3 turns; a small turn then fits without sealing,
    # so the next seal finds a chunk holding only a prefix of the (now 4) unsealed turns.
    store = store_for(rig, chunk_turns=100, recent_turns=0, max_chunk_bytes=1024, inline_turn_bytes=1024)
    first = [{"i": i, "text": "x" * 300} for i in range(3)]
    await append_all(store, "prefix", first)
    rig.warm.crash_head_writes = 1
    with pytest.raises(TierUnavailableError):
        await store.append_turn("prefix", {"text": "y" * 300})
    small = {"i": 3}
    rest = [{"i": i, "text": "z" * 300} for i in range(4, 12)]
    assert await append_all(store, "prefix", [small, *rest]) == list(range(3, 12))
    assert await store.load_turns("prefix", consistent=True) == [*first, small, *rest]
    assert await store.load_turns("prefix", 6) == [small, *rest][-6:]


async def test_archive_after_a_crash_never_reuses_the_orphan_chunk(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=4, recent_turns=1)
    await append_all(store, "arc", turns(4))
    rig.warm.crash_head_writes = 1
    with pytest.raises(TierUnavailableError):
        await store.append_turn("arc", {"text": "lost"})  # leaves chunk ck behind, unreferenced
    await store.archive_session("arc")
    after = turns(14, 4)
    assert await append_all(store, "arc", after) == list(range(4, 14))  # seals new chunks
    assert await store.load_turns("arc") == turns(4) + after
    assert await store.load_turns("arc", 9, consistent=True) == (turns(4) + after)[-9:]


async def test_a_slow_sealer_racing_an_archive_cannot_corrupt_later_chunks(tmp_path: Path) -> None:
    shared_hot = LocalHotMemory(max_items=10_000)
    ra, rb = build(tmp_path, hot=shared_hot), build(tmp_path, hot=shared_hot)  # two "processes"
    a = store_for(ra, chunk_turns=4, recent_turns=1)
    b = store_for(rb, chunk_turns=4, recent_turns=1)
    try:
        await append_all(a, "slow", turns(4))
        reached, release = ra.warm.gate("set")
        pending = asyncio.create_task(a.append_turn("slow", {"who": "a"}))  # must seal chunk 0 first
        async with asyncio.timeout(5):
            await reached.wait()  # a's create of chunk 0 is in flight
            await b.archive_session("slow")  # b archives (and cleans up) before that create lands
            release.set()
            assert await pending == 4  # a's head write lost; its retry appends after the archive
        assert any(k.startswith("c:") for k in await ra.records(Tier.WARM))  # a's late chunk 0
        after = turns(14, 5)
        await append_all(b, "slow", after)  # seals new chunks: never a's late chunk 0
        assert await b.load_turns("slow", consistent=True) == [*turns(4), {"who": "a"}, *after]
    finally:
        await ra.memory.aclose()
        await rb.memory.aclose()
        await shared_hot.aclose()


async def test_crash_after_writing_a_large_turn_leaves_only_unreachable_garbage(rig: Rig) -> None:
    store = store_for(rig, inline_turn_bytes=1024)
    await append_all(store, "big-crash", turns(2))
    rig.warm.crash_head_writes = 1
    with pytest.raises(TierUnavailableError):
        await store.append_turn("big-crash", {"text": random_text(4096)})
    assert await store.load_turns("big-crash") == turns(2)
    assert await store.append_turn("big-crash", {"text": "next"}) == 2  # the index was never taken


async def test_a_missing_chunk_is_reported_not_skipped(rig: Rig) -> None:
    store = store_for(rig, chunk_turns=4, recent_turns=2)
    await append_all(store, "damaged", turns(20))
    chunk = next(k for k in await rig.records(Tier.WARM) if k.startswith("c:"))
    await rig.memory.scoped(namespace="sessions").delete(chunk)
    with pytest.raises(CorruptValueError):
        await store.load_turns("damaged")
    assert await store.load_turns("damaged", 2) == turns(20)[-2:]  # the head alone still answers


# -- validation and scoping -----------------------------------------------------------------------------


async def test_session_ids_follow_the_key_rules(rig: Rig) -> None:
    store = store_for(rig)
    for bad in ("", "a\x00b", "x" * (MAX_SESSION_ID_BYTES + 1), 42):
        with pytest.raises(InvalidKeyError):
            await store.append_turn(bad, {"text": "hi"})  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            await store.load_turns(bad)  # type: ignore[arg-type]
    tricky = ["x", "h:x", "x:1", "c:0:x", "../x", "a/b", "%2F", "é" * 128]
    for i, session in enumerate(tricky):
        await store.append_turn(session, {"i": i})
    for i, session in enumerate(tricky):
        assert await store.load_turns(session) == [{"i": i}]
    keys = [mk async for mk in rig.warm.inner.scan("acme")]
    assert keys and {mk.namespace for mk in keys} == {"sessions"}


async def test_turns_must_be_json_objects(rig: Rig) -> None:
    store = store_for(rig)
    for bad in (["list"], "text", None, {"x": {1, 2}}, {"x": float("nan")}, {1: "int key"}):
        with pytest.raises(InvalidValueError):
            await store.append_turn("s", bad)  # type: ignore[arg-type]
    assert await store.session_exists("s") is False


async def test_tenants_and_namespaces_do_not_share_sessions(rig: Rig) -> None:
    acme = store_for(rig)
    globex = ConversationStore(rig.memory.scoped(tenant="globex"), clock=rig.clock)
    other_ns = store_for(rig, namespace="chats")
    await acme.append_turn("s", {"who": "acme"})
    await globex.append_turn("s", {"who": "globex"})
    assert await acme.load_turns("s") == [{"who": "acme"}]
    assert await globex.load_turns("s") == [{"who": "globex"}]
    assert await other_ns.load_turns("s") == []
    assert acme.memory.tenant == "acme" and acme.memory.namespace == "sessions"


async def test_configuration_is_validated(tmp_path: Path) -> None:
    hot_only = build(tmp_path, tiers="h")
    async with hot_only.memory:
        with pytest.raises(ConfigurationError, match="durable tier"):
            ConversationStore(hot_only.memory)
    small = build(tmp_path / "small", warm_max_bytes=16 * 1024)
    async with small.memory:
        assert ConversationStore(small.memory).max_chunk_bytes == 15 * 1024  # fits the warm limit
        with pytest.raises(ConfigurationError, match="max_chunk_bytes"):
            ConversationStore(small.memory, max_chunk_bytes=64 * 1024)
        bad_options: list[dict[str, Any]] = [
            {"chunk_turns": 0},
            {"recent_turns": -1},
            {"max_attempts": 0},
            {"inline_turn_bytes": 0},
            {"backoff_base": 1.0, "backoff_cap": 0.5},
        ]
        for bad in bad_options:
            with pytest.raises(ConfigurationError):
                ConversationStore(small.memory, **bad)
        with pytest.raises(ConfigurationError):
            ConversationStore(object())  # type: ignore[arg-type]
