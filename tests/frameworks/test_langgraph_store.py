"""TierMemStore against LangGraph's InMemoryStore on a scripted sequence, plus TTL and edge cases.

Namespaces and keys are inserted in sorted order, so InMemoryStore's insertion order equals
TierMemStore's documented (namespace, key) order and results can be compared exactly.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.store.base import BaseStore, GetOp, PutOp
from langgraph.store.memory import InMemoryStore

from tests.doubles import FakeClock, clocked_memory
from tests.frameworks.conftest import CONFIGS, MakeMemory
from tiermem import InvalidInputError, MemoryBuilder, SqliteWarmMemory
from tiermem.langgraph import TierMemStore

FILTERS: list[dict[str, Any] | None] = [
    None,
    {"color": "red"},
    {"n": 3},
    {"n": {"$gt": 1, "$lte": 4}},
    {"n": {"$ne": 2}},
    {"deep": {"x": 1}},
    {"tags": ["a", "b"]},
    {"long": "x" * 300},
    {"weird-name": 1},
    {"color": "red", "n": {"$gte": 3}},
    {"missing": "nothing"},
]


async def _script(store: BaseStore) -> list[Any]:
    out: list[Any] = []
    await store.aput(("docs",), "d1", {"n": 4, "long": "x" * 300, "color": "green"})
    await store.aput(("users", "u1"), "a", {"n": 1, "color": "red", "deep": {"x": 1}, "tags": ["a", "b"]})
    await store.aput(("users", "u1"), "b", {"n": 2, "color": "blue", "weird-name": 1})
    await store.aput(("users", "u1", "notes"), "e", {"n": 5, "color": "red"})
    await store.aput(("users", "u2"), "c", {"n": 3, "color": "red"})
    await store.aput(("users", "u3"), "f", {"n": 6})
    out.append((await store.aget(("users", "u1"), "a")).value)  # type: ignore[union-attr]
    out.append(await store.aget(("users", "u1"), "zzz"))
    for flt in FILTERS:
        for prefix in [(), ("users",), ("users", "u1")]:
            for limit, offset in [(10, 0), (1, 1), (2, 0), (3, 2)]:
                found = await store.asearch(prefix, filter=flt, limit=limit, offset=offset)
                out.append([(i.namespace, i.key, i.value) for i in found])
    out.append(await store.alist_namespaces())
    out.append(await store.alist_namespaces(prefix=("users",)))
    out.append(await store.alist_namespaces(suffix=("u1",)))
    out.append(await store.alist_namespaces(prefix=("users", "*"), max_depth=2))
    out.append(await store.alist_namespaces(max_depth=1))
    out.append(await store.alist_namespaces(limit=2, offset=1))
    await store.aput(("users", "u1"), "b", {"n": 20, "color": "red"})  # overwrite
    await store.adelete(("users", "u3"), "f")  # empties a namespace
    out.append([(i.key, i.value) for i in await store.asearch(("users",), filter={"color": "red"})])
    out.append(await store.aget(("users", "u3"), "f"))
    out.append(await store.alist_namespaces(prefix=("users",)))
    # A batch: reads see the state before the batch's puts; the last put of an item wins.
    results = await store.abatch(
        [
            GetOp(("docs",), "d1"),
            PutOp(("docs",), "d1", {"n": 7}),
            PutOp(("docs",), "d1", {"n": 8}),
            GetOp(("docs",), "d1"),
        ]
    )
    out.append([r.value if r is not None else None for r in results])  # type: ignore[union-attr]
    out.append((await store.aget(("docs",), "d1")).value)  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_scripted_sequence_matches_in_memory_store(make_memory: MakeMemory) -> None:
    expected = await _script(InMemoryStore())
    got = await _script(TierMemStore(make_memory()))
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if i == len(expected) - 3:
            # InMemoryStore keeps listing a namespace whose last item was deleted; TierMemStore (like
            # LangGraph's Postgres store) lists only namespaces that hold items.
            assert e == [("users", "u1"), ("users", "u1", "notes"), ("users", "u2"), ("users", "u3")]
            assert g == [("users", "u1"), ("users", "u1", "notes"), ("users", "u2")]
            continue
        assert g == e, f"step {i}"


async def test_items_expire_and_reads_refresh_the_ttl(tmp_path: Any) -> None:
    clock = FakeClock()
    memory = clocked_memory(tmp_path, clock)
    async with memory:
        store = TierMemStore(memory, ttl={"default_ttl": 1.0, "refresh_on_read": True})
        await store.aput(("a",), "kept", {"v": 1})
        await store.aput(("a",), "idle", {"v": 2})
        await store.aput(("a",), "forever", {"v": 3}, ttl=None)
        for _ in range(3):
            clock.advance(40)  # 40 s steps: "kept" is read every time, "idle" never
            assert await store.aget(("a",), "kept") is not None
        assert await store.aget(("a",), "idle") is None
        assert [i.key for i in await store.asearch(("a",))] == ["forever", "kept"]
        clock.advance(61)
        assert await store.aget(("a",), "kept", refresh_ttl=False) is None
        assert await store.aget(("a",), "forever") is not None


async def test_bad_input_raises_before_anything_is_written(memory: Any) -> None:
    store = TierMemStore(memory)
    with pytest.raises(ValueError, match="periods"):
        await store.aput(("a.b",), "k", {"v": 1})  # LangGraph's own check
    with pytest.raises(InvalidInputError):
        await store.abatch([PutOp(("a.b",), "k", {"v": 1})])  # ops passed straight to abatch
    with pytest.raises(InvalidInputError):
        await store.abatch([PutOp(("a",), "k", {"v": 1}, ttl=-1)])
    with pytest.raises(ValueError, match=r"(?i)unsupported"):
        await store.asearch(("a",), filter={"n": {"$regex": "x"}})
    with pytest.raises(NotImplementedError, match="vector"):
        await store.asearch(("a",), query="similar to this")
    assert await store.alist_namespaces() == []


async def test_views_with_other_tenants_never_see_each_others_items(make_memory: MakeMemory) -> None:
    base = make_memory()
    acme, other = TierMemStore(base.scoped(tenant="acme")), TierMemStore(base.scoped(tenant="other"))
    await acme.aput(("users", "u1"), "k", {"secret": 1})
    assert await other.aget(("users", "u1"), "k") is None
    assert await other.asearch(()) == []
    assert await other.alist_namespaces() == []
    assert (await acme.aget(("users", "u1"), "k")).value == {"secret": 1}  # type: ignore[union-attr]


def test_sync_methods_run_on_the_stores_own_loop(tmp_path: Any) -> None:
    memory = MemoryBuilder().with_warm(SqliteWarmMemory(tmp_path / "w.db")).build()
    store = TierMemStore(memory)
    try:
        store.put(("a",), "k", {"v": 1})
        assert store.get(("a",), "k").value == {"v": 1}  # type: ignore[union-attr]
        assert [i.key for i in store.search(("a",))] == ["k"]
        assert store.list_namespaces() == [("a",)]
    finally:
        store._sync.run(memory.aclose())
        store.close()
