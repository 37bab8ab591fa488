"""Issue 13, the service's edge: token before body, bounded responses, TTL bound, ID tokens, Host names.

In-process through the ASGI app (raw ASGI calls where the test must see what the server reads).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import (
    CLIENT_ID,
    DROP,
    IdentityProvider,
    Service,
    make_memory,
    service_over,
)
from tiermem.cli._serve import uvicorn_config
from tiermem.service import ServiceSettings, build_service_app
from tiermem.service._errors import route_template
from tiermem.service._gate import is_loopback_host_header
from tiermem.service._memory_routes import mget_body
from tiermem.service._models import MgetResponse

_MIB = 1024 * 1024


def _scope(method: str, path: str, headers: Sequence[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"tiermem.test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


class _Body:
    """An endless request body that counts every byte the app pulls through ``receive()``."""

    def __init__(self, chunk: int = 64 * 1024, total: int = 17 * _MIB) -> None:
        self.chunk = chunk
        self.total = total
        self.read = 0

    async def receive(self) -> dict[str, Any]:
        if self.read >= self.total:
            return {"type": "http.disconnect"}
        self.read += self.chunk
        return {"type": "http.request", "body": b"x" * self.chunk, "more_body": self.read < self.total}


async def _call(app: Any, scope: dict[str, Any], receive: Any) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


# -- item 3: the token is checked before any byte of the body is read --------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, b"Bearer not-a-jwt", b"Basic dXNlcjpwYXNz", b"Bearer "],
    ids=["none", "garbage", "basic", "empty"],
)
async def test_an_unauthenticated_large_body_is_never_read(
    service: Service, authorization: bytes | None
) -> None:
    body = _Body()
    headers = [(b"content-length", str(body.total).encode()), (b"content-type", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    start = await _call(service.app, _scope("POST", "/v1/memory/notes:mget", headers), body.receive)
    assert start["status"] == 401
    assert body.read == 0
    assert (b"connection", b"close") in start["headers"]


async def test_an_authenticated_body_is_read_and_the_limit_still_applies(service: Service) -> None:
    body = _Body()
    token = service.auth()["Authorization"].encode()
    headers = [(b"authorization", token), (b"content-type", b"application/json")]  # no length: chunked
    start = await _call(service.app, _scope("POST", "/v1/memory/notes:mget", headers), body.receive)
    assert start["status"] == 413
    assert 16 * _MIB < body.read <= 16 * _MIB + body.chunk


async def test_public_routes_need_no_token(service: Service) -> None:
    assert (await service.client.get("/healthz")).status_code == 200
    docs = await service.client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text  # item 19: the interactive API page
    assert "/openapi.json" in docs.text


# -- item 4: :mget responses are bounded -------------------------------------------------------------


async def test_an_mget_response_above_the_cap_is_a_413_telling_the_caller_to_page(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with service_over(tmp_path, idp, max_response_bytes=64 * 1024) as svc:
        items = {f"k{i}": "v" * 30_000 for i in range(4)}
        assert (
            await svc.client.post("/v1/memory/ns:mset", json={"items": items}, headers=svc.auth())
        ).is_success
        too_many = await svc.client.post("/v1/memory/ns:mget", json={"keys": list(items)}, headers=svc.auth())
        assert too_many.status_code == 413
        error = too_many.json()["error"]
        assert error["code"] == "response_too_large" and "fewer keys" in error["message"]
        page = await svc.client.post("/v1/memory/ns:mget", json={"keys": ["k0", "k1"]}, headers=svc.auth())
        assert page.status_code == 200 and page.json()["values"]["k1"] == "v" * 30_000


async def test_an_mget_past_the_cap_is_refused_before_the_values_are_decoded(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    """Issue 13 item 2: the client's decoded-bytes budget is the response cap, so the server refuses
    with 413 while decoding, instead of holding every value first and refusing afterwards."""
    async with service_over(tmp_path, idp, max_response_bytes=1 * _MIB) as svc:
        from tests.service.conftest import TENANT_A

        view = svc.memory.scoped(tenant=TENANT_A, namespace="ns")
        keys = [f"k{i}" for i in range(8)]
        for i, key in enumerate(keys):  # 4 MiB each once decoded, a few KiB stored (compressible)
            await view.set(key, chr(97 + i) * (4 * _MIB))
        tracemalloc.start()
        try:
            refused = await svc.client.post("/v1/memory/ns:mget", json={"keys": keys}, headers=svc.auth())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["code"] == "response_too_large" and "fewer keys" in error["message"]
        assert peak < 8 * _MIB, f"the server held {peak / _MIB:.0f} MiB before refusing"


def test_the_mget_body_is_what_the_model_describes() -> None:
    values = {"a": {"x": [1, 2.5, None]}, "b": b"\x00\xff", "c": None, "d": "ü 😀"}
    body = mget_body(values, 10_000)
    parsed = MgetResponse.model_validate_json(body)
    assert parsed.values == {"a": {"x": [1, 2.5, None]}, "b": "AP8=", "c": None, "d": "ü 😀"}
    assert parsed.base64 == ["b"]


# -- item 6: ttl has an upper bound; logs carry route templates, never raw paths ---------------------


@pytest.mark.parametrize("ttl", [1e306, 2**31 + 1])
async def test_a_huge_ttl_is_a_400_not_a_500(service: Service, ttl: float) -> None:
    response = await service.client.put(
        "/v1/memory/ns/k", json={"value": 1, "ttl": ttl}, headers=service.auth()
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    batch = await service.client.post(
        "/v1/memory/ns:mset", json={"items": {"k": 1}, "ttl": ttl, "tier": "hot"}, headers=service.auth()
    )
    assert batch.status_code == 400


def test_route_template_without_a_route() -> None:
    assert route_template({"path": "/v1/memory/ns/secret"}) == "(unmatched route)"


# -- item 8: ID tokens are not access tokens ---------------------------------------------------------


async def test_id_tokens_are_refused(service: Service) -> None:
    url = "/v1/memory/ns/k"
    with_nonce = await service.client.get(url, headers=service.auth(nonce="n-0S6_WzA2Mj"))
    assert with_nonce.status_code == 401 and "ID tokens" in with_nonce.json()["error"]["message"]
    # An ID token of a client whose id is an accepted audience: aud = client id, no azp.
    id_token = service.auth(aud=CLIENT_ID, azp=DROP)
    no_client = await service.client.get(url, headers=id_token)
    assert no_client.status_code == 401 and "azp" in no_client.json()["error"]["message"]
    v1_style = await service.client.get(url, headers=service.auth(azp=DROP, appid=CLIENT_ID))
    assert v1_style.status_code == 404  # authenticated; no value yet


# -- item 9: without authentication, only loopback Host names ----------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:8080", True),
        ("127.0.0.1:8080", True),
        ("127.9.9.9", True),
        ("[::1]:8080", True),
        ("LOCALHOST", True),
        ("evil.example", False),
        ("evil.example:8080", False),
        ("localhost.evil.example", False),
        ("10.0.0.5", False),
        ("[::ffff:10.0.0.5]", False),
        ("", False),
    ],
)
def test_loopback_host_headers(host: str, allowed: bool) -> None:
    assert is_loopback_host_header(host) is allowed


async def test_auth_none_refuses_other_host_names(tmp_path: Path) -> None:
    memory = make_memory(tmp_path)
    await memory.setup()
    try:
        app = build_service_app(memory, settings=ServiceSettings(auth_mode="none"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            for base, status in (("http://rebound.example", 400), ("http://127.0.0.1:8080", 404)):
                async with httpx.AsyncClient(transport=transport, base_url=base) as client:
                    response = await client.get("/v1/memory/ns/k")
                    assert response.status_code == status, base
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
                assert (await client.put("/v1/memory/ns/k", json={"value": 1})).status_code == 200
    finally:
        await memory.aclose()


# -- item 11: uvicorn's limits come from the settings -------------------------------------------------


def test_serve_sets_uvicorn_limits(tmp_path: Path) -> None:
    settings = ServiceSettings(
        auth_mode="none", limit_concurrency=7, keep_alive_timeout=3, max_header_bytes=4096, backlog=16
    )
    app = build_service_app(make_memory(tmp_path), settings=settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="info", access_log=False)
    assert config.limit_concurrency == 7
    assert config.timeout_keep_alive == 3
    assert config.h11_max_incomplete_event_size == 4096
    assert config.backlog == 16
    defaults = uvicorn_config(
        app, ServiceSettings(auth_mode="none"), host="::1", port=0, log_level="info", access_log=False
    )
    assert defaults.limit_concurrency == 1000 and defaults.h11_max_incomplete_event_size == 16 * 1024
