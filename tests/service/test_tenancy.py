"""Tenant isolation: tenant B, with a perfectly valid token, can neither read nor change tenant A's data.

The tenant comes from the token; nothing in the URL, the body or a header can choose another one.
Each test verifies the outcome both through tenant A's HTTP view and directly through the client.
"""

from __future__ import annotations

from tests.service.conftest import TENANT_A, TENANT_B, Service

NS = "shared-name"
KEY = "profile/settings"
URL = f"/v1/memory/{NS}/{KEY}"


async def _seed(svc: Service) -> str:
    response = await svc.client.put(URL, json={"value": {"owner": "A"}}, headers=svc.auth(TENANT_A))
    assert response.status_code == 200
    etag: str = response.headers["etag"]
    return etag


async def _a_is_intact(svc: Service) -> None:
    got = await svc.client.get(URL + "?consistent=true", headers=svc.auth(TENANT_A))
    assert got.status_code == 200
    assert got.json()["value"] == {"owner": "A"}
    direct = svc.memory.scoped(tenant=TENANT_A, namespace=NS)
    assert await direct.get(KEY) == {"owner": "A"}
    entry = await direct.get_entry(KEY, consistent=True)
    assert entry is not None
    assert entry.value == {"owner": "A"}


async def test_b_cannot_read_a(service: Service) -> None:
    await _seed(service)
    b = service.auth(TENANT_B)
    assert (await service.client.get(URL, headers=b)).status_code == 404
    assert (await service.client.get(URL + "?consistent=true", headers=b)).status_code == 404
    assert (await service.client.head(URL, headers=b)).status_code == 404
    mget = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": [KEY]}, headers=b)
    assert mget.json()["values"] == {KEY: None}
    await _a_is_intact(service)


async def test_b_overwriting_writes_only_its_own_tenant(service: Service) -> None:
    await _seed(service)
    b = service.auth(TENANT_B)
    put = await service.client.put(URL, json={"value": {"owner": "B"}}, headers=b)
    assert put.status_code == 200
    mset = await service.client.post(
        f"/v1/memory/{NS}:mset", json={"items": {KEY: {"owner": "B2"}}}, headers=b
    )
    assert mset.status_code == 200
    await _a_is_intact(service)
    assert await service.memory.scoped(tenant=TENANT_B, namespace=NS).get(KEY) == {"owner": "B2"}


async def test_b_cannot_use_a_etag_or_create_only_against_a(service: Service) -> None:
    etag = await _seed(service)
    b = service.auth(TENANT_B)
    conditional = await service.client.put(
        URL, json={"value": {"owner": "B"}}, headers={**b, "If-Match": etag}
    )
    assert conditional.status_code == 412  # B has no such value; A's ETag means nothing in B's tenant
    create = await service.client.put(
        URL, json={"value": {"owner": "B"}}, headers={**b, "If-None-Match": "*"}
    )
    assert create.status_code == 200  # created in B, because B has nothing there
    await _a_is_intact(service)


async def test_b_deleting_deletes_nothing_of_a(service: Service) -> None:
    await _seed(service)
    b = service.auth(TENANT_B)
    assert (await service.client.delete(URL, headers=b)).status_code == 204
    await _a_is_intact(service)


async def test_no_request_part_can_choose_the_tenant(service: Service) -> None:
    await _seed(service)
    b = service.auth(TENANT_B)
    attempts = [
        service.client.get(URL, headers={**b, "X-Tenant": TENANT_A, "X-Ms-Client-Tenant-Id": TENANT_A}),
        service.client.get(URL, params={"tenant": TENANT_A}, headers=b),
        service.client.get(f"/v1/memory/{TENANT_A}/{NS}/{KEY}", headers=b),
        service.client.put(URL, json={"value": 1, "tenant": TENANT_A}, headers=b),  # unknown field: 422
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code in (404, 422), response.text
    await _a_is_intact(service)


async def test_sessions_are_per_tenant(service: Service) -> None:
    a, b = service.auth(TENANT_A), service.auth(TENANT_B)
    assert (
        await service.client.post("/v1/sessions/chat-1/turns", json={"who": "A"}, headers=a)
    ).status_code == 201
    assert (await service.client.get("/v1/sessions/chat-1", headers=b)).status_code == 404
    assert (await service.client.get("/v1/sessions/chat-1/turns", headers=b)).json()["turns"] == []
    assert (await service.client.post("/v1/sessions/chat-1:archive", headers=b)).status_code == 404
    assert (await service.client.delete("/v1/sessions/chat-1", headers=b)).status_code == 204
    appended = await service.client.post("/v1/sessions/chat-1/turns", json={"who": "B"}, headers=b)
    assert appended.json()["index"] == 0  # B's own new session

    turns = await service.client.get("/v1/sessions/chat-1/turns", headers=a)
    assert turns.json()["turns"] == [{"who": "A"}]
    meta = (await service.client.get("/v1/sessions/chat-1", headers=a)).json()
    assert meta["turn_count"] == 1
    assert meta["archived"] is False
    from tiermem.sessions import ConversationStore

    direct = ConversationStore(service.memory.scoped(tenant=TENANT_A))
    assert await direct.load_turns("chat-1") == [{"who": "A"}]


async def test_the_same_names_in_two_tenants_are_two_values(service: Service) -> None:
    a, b = service.auth(TENANT_A), service.auth(TENANT_B)
    await service.client.post(f"/v1/memory/{NS}:mset", json={"items": {"x": "a", "y": "a"}}, headers=a)
    await service.client.post(f"/v1/memory/{NS}:mset", json={"items": {"x": "b"}}, headers=b)
    a_values = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": ["x", "y"]}, headers=a)
    b_values = await service.client.post(f"/v1/memory/{NS}:mget", json={"keys": ["x", "y"]}, headers=b)
    assert a_values.json()["values"] == {"x": "a", "y": "a"}
    assert b_values.json()["values"] == {"x": "b", "y": None}
