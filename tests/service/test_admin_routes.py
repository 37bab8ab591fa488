"""``/v1/admin``: erasure and usage of the caller's own tenant (admin role), quota refusals as 507,
and audit events attributed to the token's subject."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.service.conftest import ALL_ROLES, TENANT_A, TENANT_B, IdentityProvider, Service, running
from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, Quota, QuotaPolicy, SqliteWarmMemory
from tiermem.lifecycle import AUDIT_LOGGER
from tiermem.service import build_service_app

ADMIN = (*ALL_ROLES, "Memory.Admin")
SUBJECT = "5f0c0c0c-0000-4000-8000-0000000000a1"


async def test_admin_forgets_only_its_own_tenant(service: Service) -> None:
    for tenant in (TENANT_A, TENANT_B):
        for ns in ("notes", "chat"):
            r = await service.client.put(
                f"/v1/memory/{ns}/k1", json={"value": tenant}, headers=service.auth(tenant)
            )
            assert r.status_code == 200
    refused = await service.client.post("/v1/admin/forget", json={}, headers=service.auth(TENANT_A))
    assert refused.status_code == 403  # write is not enough: erasure needs the admin role

    admin = service.auth(TENANT_A, ADMIN)
    counted = await service.client.post("/v1/admin/forget", json={"dry_run": True}, headers=admin)
    assert counted.status_code == 200 and counted.json()["dry_run"] and counted.json()["deleted"]["warm"] == 2
    one = await service.client.post("/v1/admin/forget", json={"namespace": "chat"}, headers=admin)
    assert one.json()["namespace"] == "chat" and one.json()["deleted"]["warm"] == 1
    usage = (await service.client.get("/v1/admin/usage", headers=admin)).json()
    assert [(s["tenant"], s["namespace"]) for s in usage["scopes"]] == [(TENANT_A, "notes")]

    whole = await service.client.post("/v1/admin/forget", json={}, headers=admin)
    assert whole.json()["tenant"] == TENANT_A and whole.json()["deleted"]["warm"] == 1
    assert (
        await service.client.get("/v1/memory/notes/k1", headers=service.auth(TENANT_A))
    ).status_code == 404
    kept = await service.client.get("/v1/memory/chat/k1", headers=service.auth(TENANT_B))
    assert kept.json()["value"] == TENANT_B  # the other tenant is untouched
    assert (await service.client.get("/v1/admin/usage", headers=admin)).json() == {"scopes": []}


async def test_forget_validates_its_body(service: Service) -> None:
    admin = service.auth(TENANT_A, ADMIN)
    bad = await service.client.post("/v1/admin/forget", json={"namespace": "../x"}, headers=admin)
    assert bad.status_code == 422
    extra = await service.client.post("/v1/admin/forget", json={"tenant": TENANT_B}, headers=admin)
    assert extra.status_code == 422  # the tenant comes from the token, never from the body


async def test_quota_refusal_is_507_and_audited_with_the_principal(
    tmp_path: Path, idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    memory = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
        .with_cold(FileColdMemory(tmp_path / "cold"))
        .with_quotas(QuotaPolicy(Quota(max_items=2)))
        .build()
    )
    await memory.setup()
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    async with memory, running(build_service_app(memory, settings=idp.settings()), memory, idp) as svc:
        auth = svc.auth(TENANT_A, oid=SUBJECT)
        for key in ("a", "b"):
            assert (
                await svc.client.put(f"/v1/memory/n/{key}", json={"value": 1}, headers=auth)
            ).status_code == 200
        over = await svc.client.put("/v1/memory/n/c", json={"value": 1}, headers=auth)
        assert over.status_code == 507
        assert over.json()["error"]["code"] == "quota_exceeded"
        assert (over.json()["error"]["resource"], over.json()["error"]["limit"]) == ("items", 2)
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]
    refusals = [e for e in events if e["tiermem.audit.outcome"] == "quota_exceeded"]
    assert len(refusals) == 1 and refusals[0]["tiermem.tenant"] == TENANT_A
    writes = [
        e for e in events if e["tiermem.audit.operation"] == "set" and e["tiermem.audit.outcome"] == "ok"
    ]
    assert len(writes) == 2
    assert {e["tiermem.audit.principal"] for e in events} == {SUBJECT}
    assert all("tiermem.key_hash" in e and "tiermem.key" not in e for e in events)  # keys hashed
