"""The OpenAPI document: what it declares, and a schemathesis fuzz of every operation (no 5xx, ever).

The fuzzed app runs in schemathesis's own ASGI client (its event loop runs in a helper thread), so
it gets its own memory client, owned by the app and set up and closed by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi

from tests.service.conftest import TENANT_A, IdentityProvider, Service, make_memory
from tiermem import LocalHotMemory, MemoryBuilder
from tiermem.service import ServiceSettings, build_service_app
from tiermem.service._app import create_app

FUZZ_EXAMPLES = 30
FUZZ_CALLS: dict[str, int] = {}  # operation -> cases sent (printed with -s by the report below)

EXPECTED_OPERATIONS = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/stats"),
    ("post", "/v1/memory/{namespace}:mget"),
    ("post", "/v1/memory/{namespace}:mset"),
    ("get", "/v1/memory/{namespace}/{key}"),
    ("head", "/v1/memory/{namespace}/{key}"),
    ("put", "/v1/memory/{namespace}/{key}"),
    ("delete", "/v1/memory/{namespace}/{key}"),
    ("get", "/v1/collections/{namespace}"),
    ("get", "/v1/collections/{namespace}/{collection}/items"),
    ("get", "/v1/collections/{namespace}/{collection}/items/{key}"),
    ("put", "/v1/collections/{namespace}/{collection}/items/{key}"),
    ("delete", "/v1/collections/{namespace}/{collection}/items/{key}"),
    ("delete", "/v1/collections/{namespace}/{collection}"),
    ("post", "/v1/sessions/{session_id}:archive"),
    ("post", "/v1/sessions/{session_id}/turns"),
    ("get", "/v1/sessions/{session_id}/turns"),
    ("get", "/v1/sessions/{session_id}"),
    ("delete", "/v1/sessions/{session_id}"),
    ("post", "/v1/admin/forget"),
    ("get", "/v1/admin/usage"),
}


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in doc["paths"].items() for method in ops}


async def test_openapi_document(service: Service) -> None:
    response = await service.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "tiermem"
    assert _operations(doc) == EXPECTED_OPERATIONS
    schemas = doc["components"]["schemas"]
    for name in ("PutRequest", "GetResponse", "MgetRequest", "MgetResponse", "MsetRequest", "ErrorBody"):
        assert name in schemas
    assert "HTTPValidationError" not in schemas  # 422s use our ErrorBody too
    put = doc["paths"]["/v1/memory/{namespace}/{key}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PutRequest"
    }
    assert put["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert {p["name"] for p in put["parameters"]} == {"namespace", "key", "if-match", "if-none-match"}
    assert set(schemas["PutRequest"]["required"]) == {"value"}
    assert schemas["PutRequest"]["additionalProperties"] is False
    assert schemas["MgetRequest"]["properties"]["keys"]["maxItems"] == 1000
    # Entra mode: a bearer scheme, required by everything except the probes.
    assert doc["components"]["securitySchemes"]["EntraID"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An Entra ID access token for the service's audience, with app roles.",
    }
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("security" in op) is (path not in ("/healthz", "/readyz")), path


def test_openapi_without_auth_has_no_security_scheme(tmp_path: Path) -> None:
    app = build_service_app(make_memory(tmp_path), settings=ServiceSettings(auth_mode="none"))
    doc = app.openapi()
    assert _operations(doc) == EXPECTED_OPERATIONS
    assert "securitySchemes" not in doc.get("components", {})
    assert all("security" not in op for ops in doc["paths"].values() for op in ops.values())


# -- fuzzing ------------------------------------------------------------------------------------------
# schemathesis's lazy ``from_fixture`` schemas do not work with pytest 9 (they set ``node._nodeid``),
# so the schema is loaded at import from a document-only app (no I/O: the authenticator fetches
# nothing until a request comes), and each case is sent to the fixture's app with ``app=``.


def _document() -> dict[str, Any]:
    memory = MemoryBuilder().with_hot(LocalHotMemory()).build()
    settings = ServiceSettings(
        auth_mode="entra",
        auth_tenant_id=TENANT_A,
        auth_audience="api://doc",
        auth_jwks_url="http://127.0.0.1:9/k",
    )
    return build_service_app(memory, settings=settings).openapi()


fuzz_schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture(scope="module")
def fuzz_auth(idp: IdentityProvider) -> dict[str, str]:
    return idp.auth(TENANT_A, lifetime=3600)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_report() -> Iterator[None]:
    yield
    if FUZZ_CALLS:
        total = sum(FUZZ_CALLS.values())
        print(
            f"\nschemathesis: {len(FUZZ_CALLS)} operations, {total} cases: {dict(sorted(FUZZ_CALLS.items()))}"
        )


@pytest.fixture
def fuzz_app(idp: IdentityProvider, tmp_path: Path) -> Iterator[Any]:
    """A fresh app per operation: schemathesis ends ASGI lifespans when each test item ends."""
    memory = make_memory(tmp_path)
    app = create_app(memory, settings=idp.settings(), owns_memory=True, setup_embedded=True)
    yield app
    # Idempotent: runs the lifespan shutdown (closing memory) on schemathesis's loop if its own
    # teardown hook has not yet; if no request ever started the lifespan, close memory here.
    schemathesis_asgi.shutdown_lifespans()
    if not memory.closed:
        closer = threading.Thread(target=asyncio.run, args=(memory.aclose(),))
        closer.start()
        closer.join()


@fuzz_schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # One app per operation (fuzz_app) is intended: it is the state a running service accumulates.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_fuzz_no_server_errors(case: Any, fuzz_app: Any, fuzz_auth: dict[str, str]) -> None:
    FUZZ_CALLS[f"{case.method} {case.path}"] = FUZZ_CALLS.get(f"{case.method} {case.path}", 0) + 1
    case.call_and_validate(app=fuzz_app, headers=fuzz_auth, checks=[not_a_server_error])
