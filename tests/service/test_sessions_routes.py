"""``/v1/sessions``: append, load (with limit), metadata, archive, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.conftest import TENANT_A, IdentityProvider, Service, running
from tiermem import LocalHotMemory, MemoryBuilder, SqliteWarmMemory
from tiermem.service import build_service_app
from tiermem.sessions import ConversationStore


async def test_session_lifecycle(service: Service) -> None:
    h = service.auth()
    for i in range(5):
        response = await service.client.post(
            "/v1/sessions/chat-1/turns", json={"role": "user", "n": i}, headers=h
        )
        assert response.status_code == 201
        assert response.json() == {"session_id": "chat-1", "index": i}

    turns = await service.client.get("/v1/sessions/chat-1/turns", headers=h)
    assert turns.status_code == 200
    assert [t["n"] for t in turns.json()["turns"]] == [0, 1, 2, 3, 4]
    last2 = await service.client.get("/v1/sessions/chat-1/turns", params={"limit": 2}, headers=h)
    assert [t["n"] for t in last2.json()["turns"]] == [3, 4]
    none = await service.client.get("/v1/sessions/chat-1/turns", params={"limit": 0}, headers=h)
    assert none.json()["turns"] == []

    meta = await service.client.get("/v1/sessions/chat-1", headers=h)
    assert meta.status_code == 200
    data = meta.json()
    assert data["session_id"] == "chat-1"
    assert data["turn_count"] == 5
    assert data["archived"] is False
    assert data["updated_at"] >= data["created_at"] > 0

    archived = await service.client.post("/v1/sessions/chat-1:archive", headers=h)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert archived.json()["turn_count"] == 5
    after = await service.client.get("/v1/sessions/chat-1/turns", headers=h)
    assert [t["n"] for t in after.json()["turns"]] == [0, 1, 2, 3, 4]
    more = await service.client.post("/v1/sessions/chat-1/turns", json={"n": 5}, headers=h)
    assert more.json()["index"] == 5

    assert (await service.client.delete("/v1/sessions/chat-1", headers=h)).status_code == 204
    assert (await service.client.delete("/v1/sessions/chat-1", headers=h)).status_code == 204
    assert (await service.client.get("/v1/sessions/chat-1", headers=h)).status_code == 404
    assert (await service.client.get("/v1/sessions/chat-1/turns", headers=h)).json()["turns"] == []
    store = ConversationStore(service.memory.scoped(tenant=TENANT_A))
    assert not await store.session_exists("chat-1")


async def test_missing_sessions(service: Service) -> None:
    h = service.auth()
    missing = await service.client.get("/v1/sessions/nope", headers=h)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await service.client.post("/v1/sessions/nope:archive", headers=h)).status_code == 404
    assert (await service.client.get("/v1/sessions/nope/turns", headers=h)).json() == {
        "session_id": "nope",
        "turns": [],
    }


async def test_session_ids_with_colons_and_the_archive_route(service: Service) -> None:
    h = service.auth()
    await service.client.post("/v1/sessions/user:42:chat/turns", json={"n": 0}, headers=h)
    meta = await service.client.get("/v1/sessions/user:42:chat", headers=h)
    assert meta.json()["session_id"] == "user:42:chat"
    archived = await service.client.post("/v1/sessions/user:42:chat:archive", headers=h)
    assert archived.status_code == 200
    assert archived.json()["session_id"] == "user:42:chat"
    assert (await service.client.post("/v1/sessions/user:42:chat:unknown", headers=h)).status_code == 405


@pytest.mark.parametrize("session_id", ["bad%00id", "tab%09", "x" * 257, "%C3%A9" * 129])
async def test_invalid_session_ids(service: Service, session_id: str) -> None:
    h = service.auth()
    for response in (
        await service.client.post(f"/v1/sessions/{session_id}/turns", json={"n": 1}, headers=h),
        await service.client.get(f"/v1/sessions/{session_id}", headers=h),
        await service.client.get(f"/v1/sessions/{session_id}/turns", headers=h),
        await service.client.delete(f"/v1/sessions/{session_id}", headers=h),
    ):
        assert response.status_code in (400, 422), response.text


async def test_bad_turns_and_limits(service: Service) -> None:
    h = service.auth()
    for body in ([1, 2], "text", 3, None):
        response = await service.client.post("/v1/sessions/s/turns", json=body, headers=h)
        assert response.status_code == 422, body
    for limit in (-1, "x", 10_001):
        response = await service.client.get("/v1/sessions/s/turns", params={"limit": limit}, headers=h)
        assert response.status_code == 422, limit


async def test_sessions_without_a_durable_tier_are_501(tmp_path: Path, idp: IdentityProvider) -> None:
    memory = MemoryBuilder().with_hot(LocalHotMemory()).build()
    app = build_service_app(memory, settings=idp.settings())
    async with running(app, memory, idp) as svc:
        response = await svc.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=svc.auth())
        assert response.status_code == 501
        assert response.json()["error"]["code"] == "not_supported"
        # Memory routes still work on a hot-only service.
        put = await svc.client.put("/v1/memory/ns/k", json={"value": 1}, headers=svc.auth())
        assert put.status_code == 200
    await memory.aclose()


async def test_archive_without_a_cold_tier_is_501(tmp_path: Path, idp: IdentityProvider) -> None:
    memory = MemoryBuilder().with_hot(LocalHotMemory()).with_warm(SqliteWarmMemory(tmp_path / "w.db")).build()
    app = build_service_app(memory, settings=idp.settings())
    async with running(app, memory, idp) as svc:
        h = svc.auth()
        assert (await svc.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=h)).status_code == 201
        response = await svc.client.post("/v1/sessions/s:archive", headers=h)
        assert response.status_code == 501
        assert (await svc.client.get("/v1/sessions/s", headers=h)).json()["archived"] is False
    await memory.aclose()


async def test_a_custom_store_factory(tmp_path: Path, idp: IdentityProvider) -> None:
    from tests.service.conftest import make_memory

    memory = make_memory(tmp_path)
    await memory.setup()
    made: list[str] = []

    def factory(scoped):  # type: ignore[no-untyped-def]
        made.append(scoped.tenant)
        return ConversationStore(scoped, namespace="chats", recent_turns=2)

    app = build_service_app(memory, settings=idp.settings(), sessions=factory)
    async with running(app, memory, idp) as svc:
        for _ in range(3):
            await svc.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=svc.auth())
    # One store per tenant (cached), plus the probe at build time.
    assert made.count(TENANT_A) == 1
    assert (
        await ConversationStore(memory.scoped(tenant=TENANT_A), namespace="chats").load_turns("s")
        == [{"n": 1}] * 3
    )
    await memory.aclose()


async def test_concurrent_appends_get_distinct_indices(service: Service) -> None:
    import asyncio

    h = service.auth()
    responses = await asyncio.gather(
        *(service.client.post("/v1/sessions/busy/turns", json={"n": i}, headers=h) for i in range(20))
    )
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["index"] for r in responses) == list(range(20))
    turns = (await service.client.get("/v1/sessions/busy/turns", headers=h)).json()["turns"]
    assert sorted(t["n"] for t in turns) == list(range(20))
