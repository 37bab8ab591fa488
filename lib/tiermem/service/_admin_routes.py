"""``/v1/admin``: erasure and usage of the caller's own tenant (the admin app role).

The tenant is the token's, as everywhere: an admin can erase or measure only its own tenant. Erasure
answers with what was deleted per tier and is idempotent (repeat the call after an error to finish);
every erasure emits ``forget`` audit events carrying the token's subject (docs/observability.md).
"""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tiermem._client import MemoryClient
from tiermem.service._auth import Principal
from tiermem.service._guards import Guards
from tiermem.service._memory_routes import ERROR_RESPONSES
from tiermem.service._models import NAMESPACE_PATTERN

__all__ = ["admin_router"]


class ForgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(
        None, pattern=NAMESPACE_PATTERN, description="Erase only this namespace (default: the whole tenant)"
    )
    dry_run: bool = Field(False, description="Count what would be erased; delete nothing")


class ForgetResponse(BaseModel):
    tenant: str
    namespace: str | None
    dry_run: bool
    deleted: dict[str, int] = Field(description="Objects deleted (dry run: found) per tier")
    total: int


class TierUsageModel(BaseModel):
    items: int
    bytes: int


class ScopeUsageModel(BaseModel):
    tenant: str
    namespace: str
    tiers: dict[str, TierUsageModel]
    collections: int
    collection_items: int
    oldest_write: float | None
    newest_write: float | None


class UsageResponse(BaseModel):
    scopes: list[ScopeUsageModel]


def admin_router(memory: MemoryClient, guards: Guards) -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"])
    errors = {k: v for k, v in ERROR_RESPONSES.items() if k != 413}

    @router.post(
        "/forget",
        summary="Erase the caller's tenant (or one namespace) from every tier",
        response_model=ForgetResponse,
        responses=errors,
    )
    async def forget(
        body: ForgetRequest, principal: Annotated[Principal, Depends(guards.admin)]
    ) -> ForgetResponse:
        view = memory.scoped(tenant=principal.tenant, lock_tenant=True)
        report = await view.forget(tenant=principal.tenant, namespace=body.namespace, dry_run=body.dry_run)
        return ForgetResponse.model_validate(report.as_dict())

    @router.get(
        "/usage",
        summary="Items and bytes per namespace and tier of the caller's tenant",
        response_model=UsageResponse,
        responses=errors,
    )
    async def usage(principal: Annotated[Principal, Depends(guards.admin)]) -> UsageResponse:
        view = memory.scoped(tenant=principal.tenant, lock_tenant=True)
        report = await view.usage()
        return UsageResponse.model_validate(report.as_dict())

    return router
