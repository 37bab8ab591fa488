"""Hostile input against the real stack (Redis + Cosmos stand-in + Azurite), driven by hypothesis.

Random keys (unicode, control characters, separators, ``..``, ``%2F``, very long, lone surrogates),
tenants and namespaces, and values (deep nesting, huge strings, NaN, non-JSON types) either succeed
and read back equal, or raise a typed ``InvalidInputError`` having written nothing. Afterwards the
raw Redis keys, Cosmos items and blob names are listed: every one belongs to an accepted
(tenant, namespace, key) and sits under that tenant. Corrupt stored payloads raise (or, in the hot
cache, are dropped and read through), never return garbage.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from azure.cosmos.aio import CosmosClient
from azure.storage.blob.aio import BlobServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import FIGURES, StackFactory
from tiermem import CorruptValueError, InvalidInputError, MemoryKey, Record, RecordKind, Tier, make_key
from tiermem._keys import parse_blob_name, parse_cosmos_id, parse_redis_key

pytestmark = [
    pytest.mark.redis,
    pytest.mark.cosmos,
    pytest.mark.blob,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

EXAMPLES = int(os.environ.get("TIERMEM_HOSTILE_EXAMPLES", "150"))

_tricky = st.sampled_from(
    [
        "..",
        "../..",
        "a/b",
        "%2F",
        "%2e%2e",
        "/",
        "\\",
        "?#",
        "~",
        ".",
        "tm:x:y",
        "{tag}",
        "\u202e",
        "\ud800",
        "",
    ]
)
keys = st.one_of(
    st.text(min_size=0, max_size=40),
    st.text(min_size=1, max_size=40),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=10), _tricky, st.text(max_size=10)),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=500, max_size=530),
    st.text(alphabet=st.sampled_from(["\x00", "\x1f", "\x7f", "\x85", "a", "/"]), min_size=1, max_size=5),
)
_valid_scope = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
scopes = st.one_of(  # mostly valid, so that enough examples get past scope validation to stress the tiers
    _valid_scope,
    _valid_scope,
    st.sampled_from(["acme", "globex", "t.1", "-_-"]),
    st.sampled_from(["..", ".", "a/b", "", "x" * 65, "ü", "a:b"]),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _deep(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = [value]
    return value


hostile_values = st.one_of(
    json_values,
    st.binary(max_size=200),
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            {"a": [1, float("-inf")]},
            {1, 2},
            object(),
            complex(1, 2),
            2**70,
            {1: "non-str key"},
            _deep(300),
            "x" * (3 * 1024 * 1024),  # huge but compressible: accepted (gzip), stored in warm
        ]
    ),
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


async def test_hostile_input_only_typed_errors_and_nothing_escapes(make_stack: StackFactory) -> None:
    stack = await make_stack()
    memory = stack.memory
    loop = asyncio.get_running_loop()
    accepted: dict[MemoryKey, Any] = {}
    outcomes = {"accepted": 0, "rejected": 0}
    unexpected: list[str] = []

    async def attempt(tenant: Any, namespace: Any, key: Any, value: Any) -> None:
        try:
            view = memory.scoped(tenant=tenant, namespace=namespace)
            await view.set(key, value)
        except InvalidInputError:
            outcomes["rejected"] += 1
            return
        except Exception as exc:  # anything else is a bug: collect and fail at the end
            unexpected.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        outcomes["accepted"] += 1
        mk = make_key(tenant, namespace, key)
        accepted[mk] = value
        got = await view.get(key)
        if not _same(got, list(value) if isinstance(value, tuple) else value):
            unexpected.append(f"read back differs for key#{key[:20]!r}")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: a CI failure reproduces locally
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(tenant=scopes, namespace=scopes, key=keys, value=hostile_values)
    def run(tenant: Any, namespace: Any, key: Any, value: Any) -> None:
        asyncio.run_coroutine_threadsafe(attempt(tenant, namespace, key, value), loop).result()

    await asyncio.to_thread(run)
    assert unexpected == []
    assert outcomes["accepted"] > 0 and outcomes["rejected"] > 0, outcomes
    FIGURES["bad_inputs_tried"] += outcomes["rejected"]
    FIGURES["hostile_inputs_tried"] += outcomes["accepted"] + outcomes["rejected"]

    # Raw Redis keys: every one is ours, parses back, and belongs to an accepted key.
    raw = aioredis.Redis.from_url(stack.redis.url)
    try:
        redis_keys = [k.decode("utf-8", "surrogatepass") async for k in raw.scan_iter(count=500)]
    finally:
        await raw.aclose()
    for name in redis_keys:
        assert name.startswith(f"{stack.redis_prefix}:"), name[:80]
        assert parse_redis_key(name, stack.redis_prefix) in accepted

    # Cosmos items: id == pk, tenant/ns fields match the id, and the key was accepted.
    async with CosmosClient(stack.warm_endpoint, credential=stack.warm_key) as client:
        container = client.get_database_client(stack.warm.database).get_container_client(stack.warm.container)
        items = [i async for i in container.query_items("SELECT c.id, c.pk, c.tenant, c.ns FROM c")]
    assert items
    for item in items:
        mk = parse_cosmos_id(item["id"])
        assert item["pk"] == item["id"]
        assert (item["tenant"], item["ns"]) == (mk.tenant, mk.namespace)
        assert mk in accepted

    # Blob names: under {tenant}/{namespace}/ of an accepted key.
    async with BlobServiceClient.from_connection_string(stack.blob_connection_string) as service:
        names = [n async for n in service.get_container_client(stack.cold.container).list_blob_names()]
    for name in names:
        mk = parse_blob_name(name)
        assert name.startswith(f"{mk.tenant}/{mk.namespace}/")
        assert mk in accepted


async def test_corrupt_payloads_raise_or_self_heal(make_stack: StackFactory) -> None:
    stack = await make_stack()
    memory = stack.memory
    mk = make_key("default", "default", "victim")
    await memory.set("victim", {"precious": True})

    # Hot is a cache: garbage there is dropped and the durable copy served.
    raw = aioredis.Redis.from_url(stack.redis.url)
    try:
        await raw.set(stack.hot.raw_key(mk), b"TM\x01garbage-that-is-not-an-envelope")
        assert await memory.get("victim") == {"precious": True}
        assert await memory.get("victim") == {"precious": True}
        after = await raw.get(stack.hot.raw_key(mk))
        assert after is None or b"precious" in after or Record.from_bytes(after).kind is RecordKind.FENCE
    finally:
        await raw.aclose()

    # Warm is the truth: a damaged item raises CorruptValueError (typed), never garbage.
    await stack.hot.mdelete([mk])
    async with CosmosClient(stack.warm_endpoint, credential=stack.warm_key) as client:
        container = client.get_database_client(stack.warm.database).get_container_client(stack.warm.container)
        item = await container.read_item(
            item="default:default:dmljdGlt", partition_key="default:default:dmljdGlt"
        )
        data = bytearray(base64.b64decode(item["v"]))
        data[-2] ^= 0xFF
        item["v"] = base64.b64encode(bytes(data)).decode()
        await container.upsert_item(item)
    with pytest.raises(CorruptValueError) as info:
        await memory.get("victim")
    assert info.value.tier is Tier.WARM

    # Cold: a large value whose blob body is damaged raises too.
    big = os.urandom(100 * 1024)
    await memory.set("big", big)
    await stack.hot.mdelete([make_key("default", "default", "big")])
    async with BlobServiceClient.from_connection_string(stack.blob_connection_string) as service:
        container = service.get_container_client(stack.cold.container)
        (name,) = [n async for n in container.list_blob_names(name_starts_with="default/default/big%00")]
        blob = container.get_blob_client(name)  # the large value's versioned object
        props = await blob.get_blob_properties()
        await blob.upload_blob(b"\x00" * 1024, overwrite=True, metadata=props.metadata)
    with pytest.raises(CorruptValueError):
        await memory.get("big")
    FIGURES["corrupt_payloads_detected"] += 3
