"""``/v1/memory``: values, ETags and preconditions, batches, key validation, body limits."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.service.conftest import READ, TENANT_A, IdentityProvider, Service, service_over
from tiermem import Tier

NS = "notes"


def url(key: str, ns: str = NS) -> str:
    return f"/v1/memory/{ns}/{key}"


def mem(svc: Service, ns: str = NS):  # type: ignore[no-untyped-def]
    return svc.memory.scoped(tenant=TENANT_A, namespace=ns)


async def test_put_get_head_delete(service: Service) -> None:
    h = service.auth()
    put = await service.client.put(url("greeting"), json={"value": {"text": "hi", "n": [1, 2]}}, headers=h)
    assert put.status_code == 200
    body = put.json()
    assert body["namespace"] == NS
    assert body["key"] == "greeting"
    assert body["etag"] == put.headers["etag"]

    got = await service.client.get(url("greeting"), headers=h)
    assert got.status_code == 200
    data = got.json()
    assert data["value"] == {"text": "hi", "n": [1, 2]}
    assert data["encoding"] == "json"
    assert data["tier"] in ("hot", "warm")

    assert (await service.client.head(url("greeting"), headers=h)).status_code == 200
    assert (await service.client.head(url("missing"), headers=h)).status_code == 404

    deleted = await service.client.delete(url("greeting"), headers=h)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await service.client.delete(url("greeting"), headers=h)).status_code == 204  # idempotent
    missing = await service.client.get(url("greeting"), headers=h)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no value for this key"}}
    assert await mem(service).get("greeting") is None


@pytest.mark.parametrize(
    "value", [None, 0, -1.5, True, "text", "", [], {}, [1, "a", None], {"a": {"b": [{}]}}]
)
async def test_any_json_value_round_trips(service: Service, value: object) -> None:
    h = service.auth()
    assert (await service.client.put(url("v"), json={"value": value}, headers=h)).status_code == 200
    got = await service.client.get(url("v"), headers=h)
    assert got.status_code == 200
    assert got.json()["value"] == value
    assert await mem(service).get_entry("v") is not None


async def test_bytes_values_are_base64(service: Service) -> None:
    h = service.auth()
    raw = bytes(range(256))
    await mem(service).set("blob", raw)
    got = (await service.client.get(url("blob"), headers=h)).json()
    assert got["encoding"] == "base64"
    assert base64.b64decode(got["value"]) == raw

    payload = base64.b64encode(b"\x00\xffdata").decode()
    put = await service.client.put(url("up"), json={"value": payload, "encoding": "base64"}, headers=h)
    assert put.status_code == 200
    assert await mem(service).get("up") == b"\x00\xffdata"

    mget = await service.client.post(
        f"/v1/memory/{NS}:mget", json={"keys": ["blob", "up", "none"]}, headers=h
    )
    assert mget.json()["base64"] == ["blob", "up"]
    assert base64.b64decode(mget.json()["values"]["up"]) == b"\x00\xffdata"
    assert mget.json()["values"]["none"] is None

    for bad in ("not base64!", 12, {"a": 1}):
        response = await service.client.put(url("bad"), json={"value": bad, "encoding": "base64"}, headers=h)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_input"


async def test_ttl_and_tier(service: Service) -> None:
    h = service.auth()
    assert (await service.client.put(url("t"), json={"value": 1, "ttl": 60}, headers=h)).status_code == 200
    entry = await mem(service).get_entry("t", consistent=True)
    assert entry is not None
    assert entry.expires_at is not None
    got = (await service.client.get(url("t") + "?consistent=true", headers=h)).json()
    assert got["expires_at"] == pytest.approx(entry.expires_at)

    put = await service.client.put(url("cold"), json={"value": "archive", "tier": "cold"}, headers=h)
    assert put.status_code == 200
    store = service.memory.tier_store(Tier.COLD)
    assert store is not None

    pinned = await service.client.put(url("eph"), json={"value": 1, "tier": "hot", "ttl": 30}, headers=h)
    assert pinned.status_code == 200
    assert pinned.json()["etag"] is None  # hot-only writes have no durable ETag
    no_ttl = await service.client.put(url("eph2"), json={"value": 1, "tier": "hot"}, headers=h)
    assert no_ttl.status_code == 400
    assert "ttl" in no_ttl.json()["error"]["message"]

    for ttl in (0, -1):
        response = await service.client.put(url("t"), json={"value": 1, "ttl": ttl}, headers=h)
        assert response.status_code == 422
    response = await service.client.put(url("t"), json={"value": 1, "tier": "lukewarm"}, headers=h)
    assert response.status_code == 422


async def test_a_tier_the_service_does_not_have(tmp_path: Path, idp: IdentityProvider) -> None:
    from tests.service.conftest import running
    from tiermem import LocalHotMemory, MemoryBuilder, SqliteWarmMemory
    from tiermem.service import build_service_app

    memory = MemoryBuilder().with_hot(LocalHotMemory()).with_warm(SqliteWarmMemory(tmp_path / "w.db")).build()
    app = build_service_app(memory, settings=idp.settings())
    async with running(app, memory, idp) as svc:
        response = await svc.client.put(url("k"), json={"value": 1, "tier": "cold"}, headers=svc.auth())
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "the cold tier is not configured on this service"
        batch = await svc.client.post(
            f"/v1/memory/{NS}:mset", json={"items": {"k": 1}, "tier": "cold"}, headers=svc.auth()
        )
        assert batch.status_code == 400
    await memory.aclose()


async def test_if_match_and_if_none_match(service: Service) -> None:
    h = service.auth()
    created = await service.client.put(url("doc"), json={"value": 1}, headers={**h, "If-None-Match": "*"})
    assert created.status_code == 200
    again = await service.client.put(url("doc"), json={"value": 2}, headers={**h, "If-None-Match": "*"})
    assert again.status_code == 412
    assert again.json()["error"]["code"] == "precondition_failed"

    read = await service.client.get(url("doc") + "?consistent=true", headers=h)
    etag = read.headers["etag"]
    assert etag == created.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    updated = await service.client.put(url("doc"), json={"value": 3}, headers={**h, "If-Match": etag})
    assert updated.status_code == 200
    assert updated.headers["etag"] != etag
    stale = await service.client.put(url("doc"), json={"value": 4}, headers={**h, "If-Match": etag})
    assert stale.status_code == 412
    assert await mem(service).get("doc") == 3

    for header in ('"not-ours"', "unquoted", 'W/"x"', '"%%%"'):
        response = await service.client.put(url("doc"), json={"value": 5}, headers={**h, "If-Match": header})
        assert response.status_code == 412, header
    for headers in (
        {"If-Match": "*"},
        {"If-None-Match": '"abc"'},
        {"If-Match": etag, "If-None-Match": "*"},
    ):
        response = await service.client.put(url("doc"), json={"value": 6}, headers={**h, **headers})
        assert response.status_code == 400, headers
    missing = await service.client.put(url("nope"), json={"value": 1}, headers={**h, "If-Match": etag})
    assert missing.status_code == 412
    assert await mem(service).get("doc") == 3
    assert await mem(service).get("nope") is None


async def test_mget_and_mset(service: Service) -> None:
    h = service.auth()
    mset = await service.client.post(
        f"/v1/memory/{NS}:mset",
        json={"items": {"a": 1, "b/c": {"x": [1]}, "d:mget": "s"}, "ttl": 120},
        headers=h,
    )
    assert mset.status_code == 200
    assert mset.json() == {"stored": 3}
    mget = await service.client.post(
        f"/v1/memory/{NS}:mget", json={"keys": ["a", "b/c", "zz", "d:mget", "a"]}, headers=h
    )
    assert mget.status_code == 200
    assert mget.json() == {"values": {"a": 1, "b/c": {"x": [1]}, "zz": None, "d:mget": "s"}, "base64": []}
    assert list(mget.json()["values"]) == ["a", "b/c", "zz", "d:mget"]  # input order
    assert (await mem(service).get_entry("a", consistent=True)).expires_at is not None  # type: ignore[union-attr]

    empty = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": []}, headers=h)
    assert empty.json() == {"values": {}, "base64": []}
    assert (await service.client.post(f"/v1/memory/{NS}:mset", json={"items": {}}, headers=h)).json() == {
        "stored": 0
    }


async def test_colon_routes_are_not_swallowed_by_the_key_route(service: Service) -> None:
    """``/{namespace}:mget`` is its own route; a key that ends in ':mget' is still just a key."""
    h = service.auth()
    assert (await service.client.put(url("x:mget"), json={"value": "key"}, headers=h)).status_code == 200
    assert (await service.client.get(url("x:mget"), headers=h)).json()["value"] == "key"
    assert (await service.client.put(url(":mset"), json={"value": "k2"}, headers=h)).status_code == 200
    assert await mem(service).get(":mset") == "k2"
    batch = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": ["x:mget", ":mset"]}, headers=h)
    assert batch.json()["values"] == {"x:mget": "key", ":mset": "k2"}
    # POST on a key path is not a batch call.
    assert (await service.client.post(url("x:mget"), json={"keys": []}, headers=h)).status_code == 405
    # The namespace of a batch call is validated like any other.
    response = await service.client.post("/v1/memory/bad ns:mget", json={"keys": ["a"]}, headers=h)
    assert response.status_code == 422
    # An unknown verb is not a route.
    assert (await service.client.post(f"/v1/memory/{NS}:mdelete", json={}, headers=h)).status_code == 404


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "key must not be empty"),
        ("%00", "control"),
        ("a%0Ab", "control"),
        ("%1F", "control"),
        ("%7F", "control"),
        ("%C2%85", "control"),
        ("k" * 513, "513 UTF-8 bytes"),
        ("%C3%A9" * 257, "514 UTF-8 bytes"),
    ],
)
async def test_invalid_keys_are_400(service: Service, path: str, reason: str) -> None:
    h = service.auth()
    for response in (
        await service.client.get(url(path), headers=h),
        await service.client.put(url(path), json={"value": 1}, headers=h),
        await service.client.delete(url(path), headers=h),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_input"
        assert reason in response.json()["error"]["message"]
    assert (await service.client.head(url(path), headers=h)).status_code == 400


async def test_invalid_keys_in_batches_write_nothing(service: Service) -> None:
    h = service.auth()
    response = await service.client.post(
        f"/v1/memory/{NS}:mset", json={"items": {"good": 1, "bad\u0000": 2}}, headers=h
    )
    assert response.status_code == 400
    assert await mem(service).get("good") is None
    response = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": ["ok", "k" * 513]}, headers=h)
    assert response.status_code == 400


async def test_keys_are_data_not_paths(service: Service) -> None:
    h = service.auth()
    for key, encoded in (("a/b/c", "a/b/c"), ("%2F", "%252F"), ("..", "%2E%2E"), ("é ü", "%C3%A9%20%C3%BC")):
        assert (await service.client.put(url(encoded), json={"value": key}, headers=h)).status_code == 200
        assert await mem(service).get(key) == key
        assert (await service.client.get(url(encoded), headers=h)).json()["key"] == key
    long_key = "k" * 512
    assert (await service.client.put(url(long_key), json={"value": 1}, headers=h)).status_code == 200
    assert await mem(service).get(long_key) == 1


@pytest.mark.parametrize("namespace", ["bad ns", "a" * 65, "%00", "n$"])
async def test_invalid_namespaces(service: Service, namespace: str) -> None:
    response = await service.client.get(url("k", ns=namespace), headers=service.auth())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_dot_namespaces_are_rejected_by_the_library(service: Service) -> None:
    # '...' matches the path pattern but is only dots, which tiermem refuses (a 400, not a 422).
    response = await service.client.get(url("k", ns="..."), headers=service.auth())
    assert response.status_code == 400


async def test_bad_bodies_are_422_without_echoing_input(service: Service) -> None:
    h = service.auth()
    secret = "s3cr3t-value-that-must-not-be-echoed"
    cases = [
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"json": {"valu": secret}},
        {"json": {"value": 1, "ttl": "soon", "extra": secret}},
        {"json": [secret]},
        {"content": b"", "headers": {"Content-Type": "application/json"}},
    ]
    for kwargs in cases:
        response = await service.client.put(url("k"), headers={**h, **kwargs.pop("headers", {})}, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        assert secret not in response.text
    too_many = await service.client.post(
        f"/v1/memory/{NS}:mget", json={"keys": [str(i) for i in range(1001)]}, headers=h
    )
    assert too_many.status_code == 422


async def test_non_finite_numbers_are_400(service: Service) -> None:
    # JSON has no NaN; Python's json module writes it anyway, and the library refuses to store it.
    for literal in (b"NaN", b"Infinity", b"1e999"):
        body = b'{"value": [' + literal + b"]}"
        response = await service.client.put(
            url("nan"), content=body, headers={**service.auth(), "Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), literal
    assert await mem(service).get("nan") is None


@pytest.fixture
async def small(tmp_path: Path, idp: IdentityProvider) -> AsyncIterator[Service]:
    """Body limit 4 KiB (batches 8 KiB); values up to 6 KiB can reach the library."""
    async with service_over(
        tmp_path,
        idp,
        policy={"max_value_bytes": 3000, "hot_max_bytes": 2000, "warm_max_bytes": 2000},
        max_body_bytes=4096,
        max_batch_body_bytes=8192,
    ) as svc:
        yield svc


async def test_413_from_content_length(small: Service) -> None:
    h = small.auth()
    body = b'{"value": "' + b"x" * 5000 + b'"}'
    response = await small.client.put(
        url("big"), content=body, headers={**h, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await mem(small).get("big") is None
    # Batch routes have their own, larger limit.
    items = {f"k{i}": "x" * 500 for i in range(12)}
    assert (
        await small.client.post(f"/v1/memory/{NS}:mset", json={"items": items}, headers=h)
    ).status_code == 200
    items = {f"k{i}": "x" * 500 for i in range(20)}
    assert (
        await small.client.post(f"/v1/memory/{NS}:mset", json={"items": items}, headers=h)
    ).status_code == 413


async def test_413_while_streaming_without_content_length(small: Service) -> None:
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"value": "'
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 1024
        yield b'"}'

    response = await small.client.put(
        url("stream"), content=body(), headers={**small.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "content-length" not in response.request.headers
    assert chunks_sent < 10  # refused as soon as the limit was passed, not after reading it all
    assert await mem(small).get("stream") is None


async def test_streamed_bodies_under_the_limit_work(small: Service) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"value": '
        yield b'"streamed"}'

    response = await small.client.put(
        url("s"), content=body(), headers={**small.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert await mem(small).get("s") == "streamed"


async def test_value_too_large_for_the_library_is_413(small: Service) -> None:
    response = await small.client.put(url("v"), json={"value": "y" * 3500}, headers=small.auth())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "value_too_large"
    assert await mem(small).get("v") is None


async def test_invalid_content_length_is_400(service: Service) -> None:
    # httpx always sets a correct header, so talk ASGI directly.
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": url("k"),
        "raw_path": url("k").encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-length", b"-5"),
            (b"host", b"x"),
            (b"authorization", service.auth()["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await service.app(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_reads_do_not_need_write_and_stay_in_the_namespace(service: Service) -> None:
    h = service.auth()
    await service.client.put(url("k", ns="one"), json={"value": 1}, headers=h)
    assert (await service.client.get(url("k", ns="two"), headers=h)).status_code == 404
    assert (
        await service.client.get(url("k", ns="one"), headers=service.auth(roles=[READ]))
    ).status_code == 200
