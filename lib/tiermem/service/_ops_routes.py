"""Operations: ``/healthz`` (liveness, no I/O), ``/readyz`` (every tier pinged), ``/v1/stats``.

Readiness follows the degraded-mode design: the replica stays ready (``degraded``, 200) while the
durable tier answers, because reads fall through a failed hot tier and writes still commit. Only a
durable-tier failure makes it ``not_ready`` (503); otherwise a Redis outage would take every replica
out of rotation and turn degraded mode into a full outage.
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from tiermem._client import MemoryClient
from tiermem._errors import AuthenticationError, TierUnavailableError
from tiermem.service._auth import Principal
from tiermem.service._errors import logger
from tiermem.service._guards import Guards
from tiermem.service._memory_routes import ERROR_RESPONSES
from tiermem.service._models import HealthResponse, ReadyResponse, StatsResponse, TierReadiness

__all__ = ["ops_router"]


def _readiness(exc: BaseException | None) -> TierReadiness:
    if exc is None:
        return TierReadiness(status="ok")
    if isinstance(exc, AuthenticationError):
        return TierReadiness(status="auth_failed")
    if isinstance(exc, TierUnavailableError):
        return TierReadiness(status="unavailable")
    return TierReadiness(status="error")


def ops_router(memory: MemoryClient, guards: Guards, *, ready_timeout: float) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers (no I/O)", response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        return HealthResponse(status="ok")

    @router.get(
        "/readyz",
        summary="Readiness: 200 ready/degraded while the durable tier answers, else 503",
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "Some tier did not answer"}},
    )
    async def readyz() -> JSONResponse:
        try:
            async with asyncio.timeout(ready_timeout):
                results = await memory.ping()
        except TimeoutError:
            tiers = {t.value: TierReadiness(status="timeout") for t in memory.tiers}
        else:
            tiers = {t.value: _readiness(exc) for t, exc in results.items()}
        durable = "warm" if "warm" in tiers else "cold" if "cold" in tiers else "hot"
        if all(t.status == "ok" for t in tiers.values()):
            status = "ready"
        elif tiers[durable].status == "ok":
            status = "degraded"
        else:
            status = "not_ready"
        if status != "ready":
            logger.warning("%s: %s", status, {name: t.status for name, t in tiers.items()})
        body = ReadyResponse(status=status, tiers=tiers)
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if status == "not_ready" else 200)

    @router.get(
        "/v1/stats",
        summary="Counters of this service instance (all tenants together)",
        response_model=StatsResponse,
        responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 500, 503)},
    )
    async def stats(principal: Annotated[Principal, Depends(guards.stats)]) -> StatsResponse:
        return StatsResponse.model_validate(memory.stats().as_dict())

    return router
