"""``/v1/collections``: items put/get/delete/list with paging and filters, drop, names, tenant isolation."""

from __future__ import annotations

from tests.service.conftest import READ, TENANT_A, TENANT_B, Service

NS = "agents"


def item_url(name: str, key: str, ns: str = NS) -> str:
    return f"/v1/collections/{ns}/{name}/items/{key}"


async def test_put_get_list_delete_drop(service: Service) -> None:
    h = service.auth()
    client = service.client
    for step in range(1, 8):
        put = await client.put(
            item_url("thread-42", f"c|{step:05d}"),
            json={"value": {"step": step}, "attrs": {"step": step, "source": "loop" if step % 2 else "x"}},
            headers=h,
        )
        assert put.status_code == 200, put.text
        assert put.json()["etag"] == put.headers["etag"]
    got = await client.get(item_url("thread-42", "c|00003"), headers=h)
    assert got.status_code == 200
    body = got.json()
    assert (body["value"], body["attrs"], body["encoding"]) == (
        {"step": 3},
        {"step": 3, "source": "loop"},
        "json",
    )

    # Newest first, two per page, filtered: every page continues where the last ended.
    seen: list[str] = []
    params: dict[str, str] = {"reverse": "true", "limit": "2", "where": '{"source": "loop"}', "prefix": "c|"}
    while True:
        page = await client.get("/v1/collections/agents/thread-42/items", params=params, headers=h)
        assert page.status_code == 200, page.text
        data = page.json()
        seen += [i["key"] for i in data["items"]]
        if data["next_page_token"] is None:
            break
        params["page_token"] = data["next_page_token"]
    assert seen == ["c|00007", "c|00005", "c|00003", "c|00001"]

    names = await client.get(f"/v1/collections/{NS}", headers=h)
    assert names.json() == {"collections": ["thread-42"], "next_page_token": None}

    # Preconditions as on /v1/memory.
    etag = got.headers["etag"]
    ok = await client.put(
        item_url("thread-42", "c|00003"), json={"value": 1}, headers={**h, "If-Match": etag}
    )
    assert ok.status_code == 200
    stale = await client.put(
        item_url("thread-42", "c|00003"), json={"value": 2}, headers={**h, "If-Match": etag}
    )
    assert stale.status_code == 412
    exists = await client.put(
        item_url("thread-42", "c|00003"), json={"value": 3}, headers={**h, "If-None-Match": "*"}
    )
    assert exists.status_code == 412

    assert (await client.delete(item_url("thread-42", "c|00003"), headers=h)).status_code == 204
    assert (await client.get(item_url("thread-42", "c|00003"), headers=h)).status_code == 404
    dropped = await client.delete(f"/v1/collections/{NS}/thread-42", headers=h)
    assert dropped.json() == {"dropped": 6}
    assert (await client.get(f"/v1/collections/{NS}", headers=h)).json()["collections"] == []


async def test_bad_input_is_400_and_limit_is_capped(service: Service) -> None:
    h = service.auth()
    client = service.client
    bad_attrs = await client.put(item_url("c", "k"), json={"value": 1, "attrs": {"a b": 1}}, headers=h)
    assert bad_attrs.status_code == 400
    for params in ({"where": "{"}, {"where": '{"x": {"$regex": "a"}}'}, {"page_token": "%%%"}):
        listed = await client.get("/v1/collections/agents/c/items", params=params, headers=h)
        assert listed.status_code == 400, (params, listed.text)
    too_many = await client.get("/v1/collections/agents/c/items", params={"limit": "1001"}, headers=h)
    assert too_many.status_code == 422


async def test_tenants_are_isolated_and_reads_need_the_read_role(service: Service) -> None:
    client = service.client
    await client.put(item_url("c", "k"), json={"value": "a"}, headers=service.auth(TENANT_A))
    other = await client.get(item_url("c", "k"), headers=service.auth(TENANT_B))
    assert other.status_code == 404
    assert (await client.get(f"/v1/collections/{NS}", headers=service.auth(TENANT_B))).json()[
        "collections"
    ] == []
    read_only = service.auth(TENANT_A, roles=[READ])
    assert (await client.get(item_url("c", "k"), headers=read_only)).status_code == 200
    assert (await client.put(item_url("c", "k"), json={"value": "b"}, headers=read_only)).status_code == 403
    assert (await client.delete(f"/v1/collections/{NS}/c", headers=read_only)).status_code == 403
