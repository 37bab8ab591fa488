"""The collection contract: one suite over every client configuration that can hold collections."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import FakeClock
from tiermem import ConfigurationError, ConflictError, InvalidInputError, InvalidKeyError, Item
from tiermem._collection._model import matches, validate_where

from .collection_clients import CLIENTS, Setup, client_params

pytestmark = pytest.mark.timeout(180)

ALL = client_params()


@pytest.fixture
def policy() -> dict[str, Any]:
    """Policy changes for the client (a test overrides it with ``parametrize("policy", ...)``)."""
    return {}


@pytest.fixture
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path, policy: dict[str, Any]
) -> AsyncIterator[Setup]:
    factory, _, _ = CLIENTS[request.param]
    clock = FakeClock(time.time())
    made = factory(request, tmp_path, clock, policy)
    made.extras["name"] = request.param
    async with made.memory:
        await made.memory.setup()
        yield made


async def keys_of(source: AsyncIterator[Item]) -> list[str]:
    return [item.key async for item in source]


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_issue_example_runs_as_written(setup: Setup) -> None:
    memory = setup.memory
    v1, v2 = {"a": 1}, ["b", 2]
    coll = memory.collection("thread-42")
    for step in range(1, 20):
        await coll.put(
            f"c|{step:05d}", {"step": step}, attrs={"step": step, "source": "loop" if step % 2 else "x"}
        )
    etag = await coll.put(
        "c|00017", "value", attrs={"step": 17, "source": "loop"}, ttl=None, if_match=None, if_absent=False
    )
    if "etag" in CLIENTS[setup.extras["name"]][2]:
        assert isinstance(etag, str)
    await coll.put_many([("w|a", v1), ("w|b", v2, {"task": "t1"})], ttl=None)
    assert await coll.get("c|00017") == "value"
    item = await coll.get_item("c|00017")
    assert item is not None
    assert (item.key, item.value, dict(item.attrs), item.etag, item.expires_at) == (
        "c|00017",
        "value",
        {"step": 17, "source": "loop"},
        etag,
        None,
    )
    assert await coll.get_many(["w|a", "w|b"]) == {"w|a": v1, "w|b": v2}
    assert await coll.count(prefix="w|", where=None) == 2
    await coll.delete("w|a")
    await coll.delete_many(["w|b"])
    assert await coll.get_many(["w|a", "w|b"]) == {"w|a": None, "w|b": None}
    listed = [
        (i.key, i.attrs["step"])
        async for i in coll.list(
            prefix="c|",
            after=None,
            before="c|00017",
            reverse=True,
            limit=10,
            where={"source": "loop", "step": {"$gte": 3}},
        )
    ]
    assert listed == [(f"c|{s:05d}", s) for s in (15, 13, 11, 9, 7, 5, 3)]
    assert await coll.count(prefix="w|", where=None) == 0
    assert [name async for name in memory.collections(prefix="thread-")] == ["thread-42"]
    assert await coll.drop() == 19
    assert [name async for name in memory.collections(prefix="thread-")] == []
    assert await coll.get("c|00017") is None


# -- ordering ---------------------------------------------------------------------------------------

KEY_CHARS = "aAbB|/~%.-_09 éü鍵🔑\ufffd\U0010fffd\u00a0\u07ff\u0800\uffef"


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(KEY_CHARS) for _ in range(rng.randint(1, 8)))


def byte_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_order_is_utf8_byte_order_with_bounds_and_prefix(setup: Setup) -> None:
    coll = setup.memory.collection("order")
    keys = [
        "a",
        "a|",
        "a|b",
        "b",
        "B",
        "é",
        "鍵",
        "🔑",
        "\ufffd",
        "\U0010fffd",
        "a\U0010fffd",
        "~",
        "%",
        "ab",
    ]
    await coll.put_many([(k, k) for k in keys])
    expected = byte_order(keys)
    assert await keys_of(coll.list()) == expected
    assert await keys_of(coll.list(reverse=True)) == expected[::-1]
    assert await keys_of(coll.list(prefix="a")) == [k for k in expected if k.startswith("a")]
    assert await keys_of(coll.list(after="a|", before="é")) == [
        k for k in expected if b"a|" < k.encode() < "é".encode()
    ]
    assert await keys_of(coll.list(reverse=True, limit=3)) == expected[::-1][:3]
    assert await keys_of(coll.list(limit=0)) == []


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_order_property_random_keys(setup: Setup) -> None:
    """Random keys (non-ASCII, astral, U+FFFx) list in UTF-8 byte order with any bounds and prefix."""
    coll = setup.memory.collection("prop")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(12):
        keys = list({random_key(rng) for _ in range(rng.randint(1, 30))})
        after = rng.choice([None, random_key(rng)])
        before = rng.choice([None, random_key(rng)])
        prefix = rng.choice(["", "a", "é", "|", "🔑"])
        reverse = rng.random() < 0.5
        await coll.drop()
        await coll.put_many([(k, None) for k in keys])
        got = await keys_of(coll.list(prefix=prefix, after=after, before=before, reverse=reverse))
        want = [
            k
            for k in byte_order(keys)
            if k.startswith(prefix)
            and (after is None or k.encode() > after.encode())
            and (before is None or k.encode() < before.encode())
        ]
        assert got == (want[::-1] if reverse else want), f"seed {seed}"
        assert await coll.count(prefix=prefix) == len([k for k in keys if k.startswith(prefix)]), (
            f"seed {seed}"
        )


# -- filters ----------------------------------------------------------------------------------------

ATTR_VALUES: list[Any] = [-2, -1, 0, 1, 2, 3, 0.5, -1.5, 2.0, "", "a", "b", "é", "A", True, False]


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_where_matches_the_reference(setup: Setup) -> None:
    coll = setup.memory.collection("filters")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rows: dict[str, dict[str, Any]] = {}
    for i in range(60):
        rows[f"k{i:03d}"] = {n: rng.choice(ATTR_VALUES) for n in ("x", "y") if rng.random() < 0.8}
    await coll.put_many([(k, i, a) for i, (k, a) in enumerate(rows.items())])
    cases: list[dict[str, Any]] = [
        {"x": 1},
        {"x": True},
        {"x": "a"},
        {"x": {"$ne": 1}},
        {"x": {"$gt": 0}},
        {"x": {"$gte": 0, "$lt": 3}},
        {"x": {"$lte": "b"}},
        {"x": {"$gt": "a"}, "y": {"$ne": False}},
        {"y": {"$eq": 0.5}},
        {"x": 2.0},
    ]
    for where in cases:
        conditions = validate_where(where)
        want = [k for k, a in rows.items() if matches(a, conditions)]
        assert await keys_of(coll.list(where=where)) == want, (where, seed)
        assert await coll.count(where=where) == len(want), (where, seed)


# -- writes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_if_absent_race_has_exactly_one_winner(setup: Setup) -> None:
    coll = setup.memory.collection("race")

    async def attempt(i: int) -> int | None:
        try:
            await coll.put("only", i, if_absent=True)
        except ConflictError:
            return None
        return i

    results = await asyncio.gather(*(attempt(i) for i in range(25)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await coll.get("only") == winners[0]


@pytest.mark.parametrize("setup", client_params("etag"), indirect=True)
async def test_if_match(setup: Setup) -> None:
    coll = setup.memory.collection("cas")
    etag = await coll.put("k", 1)
    new = await coll.put("k", 2, if_match=etag)
    with pytest.raises(ConflictError):
        await coll.put("k", 3, if_match=etag)
    item = await coll.get_item("k")
    assert item is not None
    assert (item.value, item.etag) == (2, new)


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_ttl_is_checked_by_the_client(setup: Setup) -> None:
    coll = setup.memory.collection("ttl")
    await coll.put("short", 1, ttl=10)
    await coll.put_many([("a", 1), ("b", 2)], ttl=20)
    await coll.put("long", 2)
    item = await coll.get_item("short")
    assert item is not None
    assert item.expires_at == pytest.approx(setup.clock.now + 10)
    setup.clock.advance(15)
    assert await coll.get("short") is None
    assert await coll.get_item("short") is None
    assert await keys_of(coll.list()) == ["a", "b", "long"]
    assert await coll.count() == 3
    await coll.put("short", 3, if_absent=True)  # an expired item does not block a create
    setup.clock.advance(10)
    assert await keys_of(coll.list()) == ["long", "short"]


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_invalid_input_is_rejected_before_io(setup: Setup) -> None:
    coll = setup.memory.collection("bad")
    with pytest.raises(InvalidKeyError):
        setup.memory.collection("")
    with pytest.raises(InvalidKeyError):
        setup.memory.collection("x" * 129)
    with pytest.raises(InvalidKeyError):
        await coll.put("a\x00b", 1)
    bad_attrs: list[Any] = [{"a b": 1}, {"x": [1]}, {"x": float("nan")}, {"x": "y" * 3000}, [("x", 1)]]
    for attrs in bad_attrs:
        with pytest.raises(InvalidInputError):
            await coll.put("k", 1, attrs=attrs)
    with pytest.raises(InvalidInputError):
        await coll.put("k", 1, if_match="e", if_absent=True)
    with pytest.raises(InvalidInputError):
        await coll.put_many([("ok", 1), ("bad\x01", 2)])
    bad_where: list[Any] = [{"x": {"$regex": "a"}}, {"x": {"$gt": True}}, {"x": None}, {"x": {}}, "x"]
    for where in bad_where:
        with pytest.raises(InvalidInputError):
            coll.list(where=where)
    with pytest.raises(InvalidInputError):
        coll.list(limit=-1)
    with pytest.raises(InvalidInputError):
        await coll.get_many("ab")
    assert await coll.count() == 0  # nothing of the above was written


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_tenants_namespaces_and_key_value_keys_are_isolated(setup: Setup) -> None:
    memory = setup.memory
    other = memory.scoped(tenant="other")
    other_ns = memory.scoped(namespace="ns2")
    await memory.collection("c").put("k", "mine")
    await other.collection("c").put("k", "theirs")
    await memory.set("c", "a key-value item named like the collection")
    assert await other.collection("c").get("k") == "theirs"
    assert await other_ns.collection("c").get("k") is None
    assert [n async for n in other_ns.collections()] == []
    assert await keys_of(memory.collection("c").list()) == ["k"]
    await other.collection("c").drop()
    assert await memory.collection("c").get("k") == "mine"
    assert await memory.get("c") == "a key-value item named like the collection"
    if setup.warm is not None or setup.cold is not None:
        assert [k async for k in memory.keys()] == ["c"]  # noqa: SIM118 - MemoryClient.keys, not a dict
        assert [k async for k in memory.keys(prefix="x")] == []
    else:
        with pytest.raises(ConfigurationError):
            memory.keys()


@pytest.mark.parametrize("setup", client_params("large"), indirect=True)
@pytest.mark.parametrize(
    "policy", [{"warm_max_bytes": 2048, "hot_max_bytes": 1024, "compress_min_bytes": 1 << 30}]
)
async def test_large_values_live_in_cold_and_go_with_delete_and_drop(setup: Setup) -> None:
    coll = setup.memory.collection("large")
    big, bigger = "x" * 5000, "y" * 6000
    await coll.put("big", big, attrs={"n": 1})
    await coll.put_many([("b2", bigger), ("small", "s")])
    assert await coll.get("big") == big
    assert await coll.get_many(["big", "b2", "small"]) == {"big": big, "b2": bigger, "small": "s"}
    assert [(i.key, len(i.value)) async for i in coll.list()] == [("b2", 6000), ("big", 5000), ("small", 1)]
    await coll.put("big", "z" * 7000)  # a new version; the old one is removed
    assert await coll.get("big") == "z" * 7000
    assert (
        len([k async for k in setup.cold.scan(setup.memory.tenant)]) == 0
    )  # collection objects: not KV keys
    assert await cold_objects(setup) == 2
    await coll.delete("big")
    assert await cold_objects(setup) == 1
    await coll.drop()
    assert await cold_objects(setup) == 0


async def cold_objects(setup: Setup) -> int:
    """Objects in the cold tier's raw store (files under the root, or blobs in the container)."""
    count: int = await setup.extras["count_cold"]()
    return count


@pytest.mark.parametrize("setup", client_params("hot"), indirect=True)
async def test_hot_cache_follows_writes_and_deletes(setup: Setup) -> None:
    coll = setup.memory.collection("hot")
    await coll.put("k", 1)
    assert await coll.get("k") == 1
    await coll.put("k", 2)
    assert await coll.get("k") == 2
    await coll.delete("k")
    assert await coll.get("k") is None
    await coll.put("k", 3)
    assert await coll.get("k") == 3
    await coll.drop()
    assert await coll.get("k") is None


@pytest.mark.parametrize("setup", ALL, indirect=True)
async def test_drop_leaves_nothing_behind(setup: Setup) -> None:
    coll = setup.memory.collection("gone")
    keys = [f"k{i:04d}" for i in range(250)]
    for start in range(0, 250, 50):
        await coll.put_many([(k, i, {"i": i}) for i, k in enumerate(keys[start : start + 50])])
    assert await coll.get_many(keys[:20]) == {k: i for i, k in enumerate(keys[:20])}  # promoted to hot
    assert await raw_leftovers(setup, "gone", keys) >= 250
    assert await coll.drop() == 250
    assert await coll.count() == 0
    assert await keys_of(coll.list()) == []
    assert await raw_leftovers(setup, "gone", keys) == 0


async def raw_leftovers(setup: Setup, name: str, keys: list[str]) -> int:
    """Items of a collection still in the raw stores: warm rows/items, and hot copies other than
    the short-lived tombstones a delete leaves."""
    from tiermem import MemoryKey, RecordKind
    from tiermem._collection import Scope

    memory = setup.memory
    durable = setup.warm or setup.cold or setup.hot
    scope = Scope(memory.tenant, memory.namespace, name)
    left = len([k async for k in durable.collection_store().keys(scope, None, 1000)])
    if setup.hot is not None and durable is not setup.hot:
        raw = await setup.hot.mget(
            [MemoryKey(memory.tenant, memory.namespace, f"{name}\x1f{k}") for k in keys]
        )
        left += sum(1 for rec in raw if rec is not None and rec.kind is not RecordKind.TOMBSTONE)
    return left
