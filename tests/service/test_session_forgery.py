"""Issue 13 item 5: a forged session head must not be a (cross-tenant) denial of service.

The attack: a caller writes ``PUT /v1/memory/sessions/h:x`` with counters claiming a million
chunks; one session read then asked the warm tier for ~31,000 chunks at once, took seconds and
hundreds of MB, and opened the warm breaker every tenant shares. Now the plain routes cannot write
the sessions namespace, a head's counters are checked against each other, chunk reads are paged,
and a head planted below the API (a compromised writer) costs one page per attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.doubles import WrappedStore
from tests.service.conftest import TENANT_A, TENANT_B, IdentityProvider, Service, running
from tiermem import (
    CircuitState,
    FileColdMemory,
    LocalHotMemory,
    MemoryBuilder,
    MemoryKey,
    Record,
    SqliteWarmMemory,
    Tier,
)
from tiermem._client import internal_view
from tiermem.service import build_service_app

_PAGE = 64  # sessions._PAGE_KEYS


class CountingWarm(WrappedStore):
    """The real SQLite tier, recording how many keys each batch read asks for."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, Tier.WARM)
        self.mget_sizes: list[int] = []

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        self.mget_sizes.append(len(keys))
        return await super().mget(keys)


@pytest.fixture
async def counted(tmp_path: Path, idp: IdentityProvider) -> AsyncIterator[tuple[Service, CountingWarm]]:
    warm = CountingWarm(SqliteWarmMemory(tmp_path / "warm.db"))
    memory = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(warm)
        .with_cold(FileColdMemory(tmp_path / "cold", fsync=False))
        .with_resilience(Tier.WARM, failure_threshold=2)
        .build()
    )
    await memory.setup()
    async with memory:
        app = build_service_app(memory, settings=idp.settings())
        async with running(app, memory, idp) as svc:
            yield svc, warm


def _forged(*, turns: int, chunks: int) -> dict[str, Any]:
    return {
        "v": 1,
        "gen": "000000000000",
        "n": turns,
        "sealed": turns,
        "archived": 0,
        "archive": None,
        "c0": 0,
        "ck": chunks,
        "created": 0.0,
        "updated": 0.0,
        "held": [],
    }


@pytest.mark.parametrize("namespace", ["sessions", "_tiermem", "_coherence"])
async def test_the_memory_routes_cannot_write_internal_namespaces(service: Service, namespace: str) -> None:
    forged = _forged(turns=10**6, chunks=10**6)
    put = await service.client.put(
        f"/v1/memory/{namespace}/h:x", json={"value": forged}, headers=service.auth()
    )
    assert put.status_code == 400, put.text
    assert "reserved" in put.json()["error"]["message"]
    got = await service.client.get(f"/v1/memory/{namespace}/h:x", headers=service.auth())
    assert got.status_code == 400
    # The session route never saw a head: the session does not exist.
    assert (await service.client.get("/v1/sessions/x", headers=service.auth())).status_code == 404


@pytest.mark.parametrize(
    ("turns", "chunks", "most_keys"),
    [
        (10**6, 10**6, 3 * _PAGE),  # consistent counters, chunks that do not exist: one page per attempt
        (10, 10**9, 0),  # more chunks than turns: refused before any chunk is read
    ],
    ids=["million-chunks", "chunks-beyond-turns"],
)
async def test_a_planted_head_costs_a_page_and_never_opens_the_shared_breaker(
    counted: tuple[Service, CountingWarm], turns: int, chunks: int, most_keys: int
) -> None:
    svc, warm = counted
    # Planted below the API, as a writer with tier access could: the routes refuse it (above).
    tenant_a = internal_view(svc.memory.scoped(tenant=TENANT_A), "sessions")
    await tenant_a.set("h:x", _forged(turns=turns, chunks=chunks))
    for _ in range(4):  # more than the breaker's threshold of 2
        before = sum(warm.mget_sizes)
        read = await svc.client.get("/v1/sessions/x/turns", headers=svc.auth())
        assert read.status_code == 500  # a damaged session, reported (CorruptValueError)
        assert max(warm.mget_sizes, default=0) <= _PAGE
        assert sum(warm.mget_sizes) - before <= most_keys
    deleted = await svc.client.delete("/v1/sessions/x", headers=svc.auth())
    assert deleted.status_code == 204
    assert warm.calls["delete"] <= 2 * _PAGE
    assert svc.memory.circuit_state(Tier.WARM) is CircuitState.CLOSED
    # Another tenant's healthy calls go through.
    put = await svc.client.put("/v1/memory/notes/k", json={"value": 1}, headers=svc.auth(TENANT_B))
    assert put.status_code == 200
    got = await svc.client.get("/v1/memory/notes/k?consistent=true", headers=svc.auth(TENANT_B))
    assert got.status_code == 200 and got.json()["value"] == 1
