"""``build_service_app``: the FastAPI application over a :class:`~tiermem.MemoryClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tiermem._client import MemoryClient
from tiermem._version import __version__
from tiermem.service._admin_routes import admin_router
from tiermem.service._auth import Authenticator, authenticator_from_settings, role_names
from tiermem.service._collection_routes import collections_router
from tiermem.service._errors import CatchAllMiddleware, install_error_handlers, logger
from tiermem.service._gate import AuthGateMiddleware
from tiermem.service._guards import make_guards
from tiermem.service._limits import BodyLimitMiddleware
from tiermem.service._memory_routes import memory_router
from tiermem.service._ops_routes import ops_router
from tiermem.service._sessions_routes import SessionStoreFactory, sessions_router
from tiermem.service._settings import ServiceSettings
from tiermem.sessions import ConversationStore
from tiermem.tiers.local import FileColdMemory, LocalHotMemory, SqliteWarmMemory

__all__ = ["build_service_app", "create_app", "setup_embedded_tiers"]

_DESCRIPTION = """\
Three-tier memory (hot / warm / cold) and conversation sessions over HTTP.

Every request is scoped to the caller's tenant, taken from a claim of its Entra ID token (never
from the URL or the body). Reads need the read app role, writes the write role. Errors are
`{"error": {"code": "...", "message": "..."}}`. See docs/api.md and docs/auth.md.
"""


def build_service_app(
    memory: MemoryClient,
    *,
    settings: ServiceSettings | None = None,
    sessions: SessionStoreFactory | None = None,
    auth: Authenticator | None = None,
) -> FastAPI:
    """The HTTP service over ``memory``.

    The caller owns ``memory`` (the app never closes it) and any ``auth`` it passes in; an
    authenticator the app builds from ``settings`` is closed by the app's lifespan.

    Args:
        memory: the client; each request uses ``memory.scoped(tenant=<claim>, namespace=<path>)``.
        settings: service settings; default ``ServiceSettings()`` (read from the environment).
        sessions: makes the session store of one tenant from a client scoped to it; default
            :class:`~tiermem.sessions.ConversationStore`. Called once at build time with ``memory``
            to check that the client can hold sessions (else the session routes answer 501).
        auth: how requests are authenticated; default from ``settings.auth_mode``.

    Raises:
        ConfigurationError: the settings cannot authenticate anyone (for example Entra mode without
            ``TIERMEM_AUTH_TENANT_ID``/``TIERMEM_AUTH_AUDIENCE``).
    """
    return create_app(memory, settings=settings, sessions=sessions, auth=auth)


async def setup_embedded_tiers(memory: MemoryClient) -> None:
    """Run ``setup()`` on the embedded tiers only; Azure resources are made by Bicep or ``tiermem init``."""
    for tier in memory.tiers:
        store = memory.tier_store(tier)
        if isinstance(store, LocalHotMemory | SqliteWarmMemory | FileColdMemory):
            await store.setup()


def create_app(
    memory: MemoryClient,
    *,
    settings: ServiceSettings | None = None,
    sessions: SessionStoreFactory | None = None,
    auth: Authenticator | None = None,
    owns_memory: bool = False,
    setup_embedded: bool = False,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """``build_service_app`` plus what ``tiermem serve`` needs: close ``memory`` and set up embedded tiers."""
    settings = settings if settings is not None else ServiceSettings()
    owns_auth = auth is None
    authenticator = auth if auth is not None else authenticator_from_settings(settings)
    guards = make_guards(authenticator, role_names(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if setup_embedded:
                await setup_embedded_tiers(memory)
            logger.info(
                "tiermem service ready: tiers=%s auth=%s",
                ",".join(t.value for t in memory.tiers),
                settings.auth_mode if owns_auth else type(authenticator).__name__,
            )
            yield
        finally:
            # Close what this app made, in reverse order of need; never what was injected.
            try:
                if owns_auth:
                    await authenticator.aclose()
            finally:
                try:
                    if owns_memory:
                        await memory.aclose()
                finally:
                    if on_shutdown is not None:
                        on_shutdown()
                    logger.info(
                        "tiermem service stopped (memory %s)", "closed" if owns_memory else "left open"
                    )

    app = FastAPI(
        title="tiermem",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # No 307s to a trailing-slash URL: '/ns:verb/' would match the key route with an empty key.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.include_router(ops_router(memory, guards, ready_timeout=settings.ready_timeout))
    app.include_router(memory_router(memory, guards, max_response_bytes=settings.max_response_bytes))
    app.include_router(collections_router(memory, guards, max_response_bytes=settings.max_response_bytes))
    app.include_router(admin_router(memory, guards))
    app.include_router(
        sessions_router(memory, sessions if sessions is not None else ConversationStore, guards)
    )
    # Added last = outermost: the token is checked before the body limit reads a byte, and errors
    # escaping either are still caught.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_batch_body_bytes=settings.max_batch_body_bytes,
    )
    app.add_middleware(AuthGateMiddleware, authenticator=authenticator)
    app.add_middleware(CatchAllMiddleware)
    return app
