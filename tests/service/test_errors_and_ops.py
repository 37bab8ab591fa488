"""Error mapping with failing tiers, the error body shape, and the operations routes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import WrappedStore
from tests.service.conftest import READ, TENANT_A, WRITE, IdentityProvider, Service, running
from tiermem import (
    AuthenticationError,
    ConflictError,
    FileColdMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryKey,
    NotProvisionedError,
    SqliteWarmMemory,
    ThrottledError,
    Tier,
    TierError,
    TierUnavailableError,
)
from tiermem._codec import Codec
from tiermem.service import build_service_app

URL = "/v1/memory/ns/k"


class FaultyStore(WrappedStore):
    """A real tier that raises ``fault`` (any exception) on every call while it is set."""

    fault: BaseException | None = None

    async def _enter(self, operation: str, keys: Sequence[MemoryKey] = ()) -> None:
        await super()._enter(operation, keys)
        if self.fault is not None:
            raise self.fault


@dataclasses.dataclass
class Faulty:
    svc: Service
    hot: FaultyStore
    warm: FaultyStore
    cold: FaultyStore


@pytest.fixture
async def faulty(tmp_path: Path, idp: IdentityProvider) -> AsyncIterator[Faulty]:
    hot = FaultyStore(LocalHotMemory(), Tier.HOT)
    warm = FaultyStore(SqliteWarmMemory(tmp_path / "warm.db"), Tier.WARM)
    cold = FaultyStore(FileColdMemory(tmp_path / "cold", fsync=False), Tier.COLD)
    memory = (
        MemoryBuilder()
        .with_hot(hot)  # type: ignore[arg-type]
        .with_warm(warm)  # type: ignore[arg-type]
        .with_cold(cold)  # type: ignore[arg-type]
        .with_resilience(Tier.WARM, failure_threshold=1000)
        .with_resilience(Tier.HOT, failure_threshold=1000)
        .build()
    )
    await memory.setup()
    app = build_service_app(memory, settings=idp.settings(ready_timeout=0.5))
    async with running(app, memory, idp) as svc:
        yield Faulty(svc, hot, warm, cold)
    await memory.aclose()


def _assert_generic(body: dict[str, Any], text: str) -> None:
    assert set(body) == {"error"}
    assert "Traceback" not in text
    assert "File " not in text
    assert "sqlite" not in text.lower()


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        (
            TierUnavailableError("injected: connection refused to 10.0.0.7", tier=Tier.WARM),
            503,
            "unavailable",
            True,
        ),
        (ThrottledError("injected: 429", tier=Tier.WARM), 503, "unavailable", True),
        (
            AuthenticationError("injected: 403 from Cosmos, identity abc", tier=Tier.WARM),
            503,
            "storage_auth_failed",
            True,
        ),
        (
            NotProvisionedError("injected: container tm-warm not found", tier=Tier.WARM),
            503,
            "storage_not_provisioned",
            True,
        ),
        (TierError("injected: odd failure", tier=Tier.WARM), 500, "internal_error", False),
        (RuntimeError("injected: a bug with a secret path /srv/x"), 500, "internal_error", False),
        (KeyError("injected"), 500, "internal_error", False),
    ],
)
async def test_tier_failures_map_to_status_codes(
    faulty: Faulty,
    caplog: pytest.LogCaptureFixture,
    fault: BaseException,
    status: int,
    code: str,
    retry_after: bool,
) -> None:
    svc = faulty.svc
    faulty.hot.fault = TierUnavailableError("hot is down too", tier=Tier.HOT)
    faulty.warm.fault = fault
    with caplog.at_level(logging.WARNING, logger="tiermem.service"):
        for response in (
            await svc.client.get(URL, headers=svc.auth()),
            await svc.client.put(URL, json={"value": 1}, headers=svc.auth()),
            await svc.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=svc.auth()),
        ):
            assert response.status_code == status, response.text
            body = response.json()
            assert body["error"]["code"] == code
            _assert_generic(body, response.text)
            assert "injected" not in response.text  # the tier's message stays in the logs
            assert ("retry-after" in response.headers) is retry_after
    assert any("injected" in record.getMessage() or record.exc_info for record in caplog.records)


async def test_unexpected_errors_are_logged_with_a_traceback(
    faulty: Faulty, caplog: pytest.LogCaptureFixture
) -> None:
    faulty.hot.fault = ZeroDivisionError("injected")
    faulty.warm.fault = ZeroDivisionError("injected")
    with caplog.at_level(logging.ERROR, logger="tiermem.service"):
        response = await faulty.svc.client.get(URL, headers=faulty.svc.auth())
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


async def test_unexpected_errors_log_the_route_template_not_the_key(
    faulty: Faulty, caplog: pytest.LogCaptureFixture
) -> None:
    faulty.hot.fault = ZeroDivisionError("injected")
    faulty.warm.fault = ZeroDivisionError("injected")
    with caplog.at_level(logging.DEBUG):
        response = await faulty.svc.client.get(
            "/v1/memory/ns/customer-4711-secret", headers=faulty.svc.auth()
        )
    assert response.status_code == 500
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tiermem"))
    assert "customer-4711-secret" not in ours  # (the test's own httpx client logs the URL; not the server)
    assert "/v1/memory/{namespace}/{key:tiermem_key}" in ours


async def test_corrupt_values_are_500_generic_and_logged(
    faulty: Faulty, caplog: pytest.LogCaptureFixture
) -> None:
    svc = faulty.svc
    record, _ = Codec().encode({"secret": "value"})
    damaged = dataclasses.replace(record, payload=record.payload.replace(b"value", b"VALUE"))
    await faulty.warm.inner.set(MemoryKey(TENANT_A, "ns", "k"), damaged)
    with caplog.at_level(logging.ERROR, logger="tiermem.service"):
        response = await svc.client.get(URL, headers=svc.auth())
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "VALUE" not in response.text
    assert any("corrupt" in record.getMessage() for record in caplog.records)


async def test_partial_mset_failure_lists_the_keys(faulty: Faulty) -> None:
    svc = faulty.svc
    faulty.warm.fail_keys = {"bad"}
    response = await svc.client.post(
        "/v1/memory/ns:mset", json={"items": {"good": 1, "bad": 2}}, headers=svc.auth()
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "partial_write"
    assert error["written"] == ["good"]
    assert error["failed"] == ["bad"]
    assert response.headers["retry-after"]


async def test_conflict_without_precondition_is_409(faulty: Faulty) -> None:
    svc = faulty.svc
    faulty.warm.fault = ConflictError("injected", tier=Tier.WARM)
    response = await svc.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=svc.auth())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


async def test_hot_outage_is_invisible_to_callers(faulty: Faulty) -> None:
    svc = faulty.svc
    faulty.hot.fault = TierUnavailableError("hot down", tier=Tier.HOT)
    assert (await svc.client.put(URL, json={"value": 1}, headers=svc.auth())).status_code == 200
    assert (await svc.client.get(URL, headers=svc.auth())).json()["value"] == 1


async def test_unknown_routes_and_methods_use_the_error_shape(service: Service) -> None:
    for method, path, status in (
        ("GET", "/nope", 404),
        ("GET", "/v1/memory", 404),
        ("PATCH", URL, 405),
        ("POST", "/healthz", 405),
        ("GET", "/v1/sessions/s:archive/", 404),
    ):
        response = await service.client.request(method, path, headers=service.auth())
        assert response.status_code == status, path
        assert set(response.json()["error"]) == {"code", "message"}
    # Starlette names the methods of the first matching route only; the header is there, if incomplete.
    assert (await service.client.patch(URL, headers=service.auth())).headers["allow"]


# -- operations -------------------------------------------------------------------------------------


async def test_healthz_needs_no_token_and_no_io(faulty: Faulty) -> None:
    for store in (faulty.hot, faulty.warm, faulty.cold):
        store.fault = TierUnavailableError("down", tier=store.tier)
    calls = sum(sum(s.calls.values()) for s in (faulty.hot, faulty.warm, faulty.cold))
    response = await faulty.svc.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert sum(sum(s.calls.values()) for s in (faulty.hot, faulty.warm, faulty.cold)) == calls


async def test_readyz(faulty: Faulty) -> None:
    svc = faulty.svc
    ready = await svc.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "tiers": {"hot": {"status": "ok"}, "warm": {"status": "ok"}, "cold": {"status": "ok"}},
    }
    faulty.warm.fault = AuthenticationError("injected 403", tier=Tier.WARM)
    faulty.cold.fault = TierUnavailableError("injected", tier=Tier.COLD)
    response = await svc.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "tiers": {
            "hot": {"status": "ok"},
            "warm": {"status": "auth_failed"},
            "cold": {"status": "unavailable"},
        },
    }
    assert "injected" not in response.text


async def test_readyz_degraded_when_only_hot_is_down(faulty: Faulty) -> None:
    faulty.hot.fault = TierUnavailableError("injected", tier=Tier.HOT)
    response = await faulty.svc.client.get("/readyz")
    assert response.status_code == 200  # reads fall through, writes commit: keep serving
    assert response.json() == {
        "status": "degraded",
        "tiers": {"hot": {"status": "unavailable"}, "warm": {"status": "ok"}, "cold": {"status": "ok"}},
    }


async def test_readyz_times_out(faulty: Faulty) -> None:
    reached, release = faulty.warm.gate("ping")
    original = faulty.warm.inner.ping

    async def slow_ping() -> None:
        reached.set()
        await release.wait()
        await original()

    faulty.warm.inner.ping = slow_ping
    try:
        response = await faulty.svc.client.get("/readyz")
    finally:
        release.set()
        faulty.warm.inner.ping = original
    assert response.status_code == 503
    assert {t["status"] for t in response.json()["tiers"].values()} == {"timeout"}


async def test_stats(service: Service) -> None:
    h = service.auth()
    await service.client.put(URL, json={"value": 1}, headers=h)
    await service.client.get(URL, headers=h)  # from warm, filling hot
    await service.client.get(URL, headers=h)  # a hot hit
    response = await service.client.get("/v1/stats", headers=service.auth(roles=[READ]))
    assert response.status_code == 200
    stats = response.json()
    assert set(stats) == {
        "tiers",
        "promotions",
        "fallthroughs",
        "compression",
        "dirty_keys",
        "dirty_overflows",
    }
    assert stats["tiers"]["hot"]["hits"] >= 1
    assert stats["tiers"]["warm"]["circuit"] == "closed"
    assert (await service.client.get("/v1/stats")).status_code == 401
    assert (await service.client.get("/v1/stats", headers=service.auth(roles=[WRITE]))).status_code == 403


async def test_a_closed_client_is_503_not_500(tmp_path: Path, idp: IdentityProvider) -> None:
    from tests.service.conftest import make_memory

    memory = make_memory(tmp_path)
    await memory.setup()
    app = build_service_app(memory, settings=idp.settings())
    async with running(app, memory, idp) as svc:
        await memory.aclose()
        response = await svc.client.get(URL, headers=svc.auth())
        assert response.status_code == 503
        assert (await svc.client.get("/healthz")).status_code == 200
        assert (await svc.client.get("/readyz")).status_code == 503


async def test_the_app_does_not_close_memory_it_was_given(tmp_path: Path, idp: IdentityProvider) -> None:
    from tests.service.conftest import make_memory

    memory = make_memory(tmp_path)
    app = build_service_app(memory, settings=idp.settings())
    async with running(app, memory, idp):
        pass
    assert not memory.closed
    await asyncio.sleep(0)
    await memory.aclose()
