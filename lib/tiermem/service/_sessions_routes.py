"""``/v1/sessions``: conversation sessions (:class:`tiermem.sessions.ConversationStore`) per tenant.

Each tenant gets its own store over ``memory.scoped(tenant=<token claim>)``; stores are kept in a
small LRU so that appends to one session from this process queue on the store's local lock
instead of spending optimistic-concurrency retries on each other.
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query

from tiermem._client import MemoryClient
from tiermem._errors import ConfigurationError
from tiermem._protocols import Tier
from tiermem.service._auth import Principal
from tiermem.service._errors import ApiError, logger
from tiermem.service._guards import Guards
from tiermem.service._memory_routes import ERROR_RESPONSES
from tiermem.service._models import ErrorBody, SessionResponse, TurnAppended, TurnsResponse
from tiermem.sessions import MAX_SESSION_ID_BYTES, ConversationStore, SessionMetadata

__all__ = ["SessionStoreFactory", "sessions_router"]

SessionStoreFactory = Callable[[MemoryClient], ConversationStore]
"""Makes the store for one tenant from a client scoped to it (``ConversationStore`` itself is one)."""

_MAX_STORES: Final = 1024
_MAX_LIMIT: Final = 10_000

_SessionId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SESSION_ID_BYTES,
        description=f"Session id: 1..{MAX_SESSION_ID_BYTES} UTF-8 bytes, no control characters, no '/'",
    ),
]
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ErrorBody, "description": "No such session"}
}


class _Stores:
    """One store per tenant (bounded LRU); ``None`` stores when the client cannot hold sessions."""

    def __init__(self, memory: MemoryClient, factory: SessionStoreFactory) -> None:
        self._memory = memory
        self._factory = factory
        self._stores: OrderedDict[str, ConversationStore] = OrderedDict()
        try:
            factory(memory)
        except ConfigurationError as exc:
            logger.warning("session routes are disabled: %s", exc)
            self._unsupported: str | None = "sessions need a durable tier, which this service does not have"
        else:
            self._unsupported = None

    def get(self, tenant: str) -> ConversationStore:
        if self._unsupported is not None:
            raise ApiError(501, "not_supported", self._unsupported)
        store = self._stores.get(tenant)
        if store is None:
            store = self._factory(self._memory.scoped(tenant=tenant, lock_tenant=True))
            self._stores[tenant] = store
            if len(self._stores) > _MAX_STORES:
                self._stores.popitem(last=False)
        else:
            self._stores.move_to_end(tenant)
        return store


def _metadata(meta: SessionMetadata) -> SessionResponse:
    return SessionResponse(
        session_id=meta.session_id,
        turn_count=meta.turn_count,
        created_at=meta.created_at,
        updated_at=meta.updated_at,
        archived=meta.archived,
    )


def sessions_router(memory: MemoryClient, factory: SessionStoreFactory, guards: Guards) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERROR_RESPONSES)
    stores = _Stores(memory, factory)
    has_cold = Tier.COLD in memory.tiers

    @router.post(
        "/{session_id}:archive",
        summary="Move every turn of the session to the cold tier",
        response_model=SessionResponse,
        responses={**_NOT_FOUND, 501: {"model": ErrorBody, "description": "No cold tier configured"}},
    )
    async def archive_session(
        session_id: _SessionId, principal: Annotated[Principal, Depends(guards.write)]
    ) -> SessionResponse:
        store = stores.get(principal.tenant)
        if not has_cold:
            raise ApiError(
                501, "not_supported", "archiving needs a cold tier, which this service does not have"
            )
        await store.archive_session(session_id)
        meta = await store.session_metadata(session_id, consistent=True)
        if meta is None:
            raise ApiError(404, "not_found", "no such session")
        return _metadata(meta)

    @router.post(
        "/{session_id}/turns",
        summary="Append a turn (any JSON object); creates the session on its first turn",
        status_code=201,
        response_model=TurnAppended,
        responses={409: {"model": ErrorBody, "description": "The session kept changing; retry"}},
    )
    async def append_turn(
        session_id: _SessionId,
        turn: dict[str, Any],
        principal: Annotated[Principal, Depends(guards.write)],
    ) -> TurnAppended:
        index = await stores.get(principal.tenant).append_turn(session_id, turn)
        return TurnAppended(session_id=session_id, index=index)

    @router.get(
        "/{session_id}/turns",
        summary="The session's turns in order (the last N with limit); empty if there is no session",
        response_model=TurnsResponse,
    )
    async def load_turns(
        session_id: _SessionId,
        principal: Annotated[Principal, Depends(guards.read)],
        limit: Annotated[int | None, Query(ge=0, le=_MAX_LIMIT, description="Only the last N turns")] = None,
    ) -> TurnsResponse:
        turns = await stores.get(principal.tenant).load_turns(session_id, limit)
        return TurnsResponse(session_id=session_id, turns=turns)

    @router.get(
        "/{session_id}",
        summary="Session metadata",
        response_model=SessionResponse,
        responses=_NOT_FOUND,
    )
    async def session_metadata(
        session_id: _SessionId, principal: Annotated[Principal, Depends(guards.read)]
    ) -> SessionResponse:
        meta = await stores.get(principal.tenant).session_metadata(session_id)
        if meta is None:
            raise ApiError(404, "not_found", "no such session")
        return _metadata(meta)

    @router.delete(
        "/{session_id}",
        summary="Delete the session and every turn (idempotent)",
        status_code=204,
        response_model=None,
    )
    async def clear_session(
        session_id: _SessionId, principal: Annotated[Principal, Depends(guards.write)]
    ) -> None:
        await stores.get(principal.tenant).clear_session(session_id)

    return router
