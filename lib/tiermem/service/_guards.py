"""FastAPI dependencies that authenticate a request and check the role its route needs.

No ``from __future__ import annotations`` here or in the route modules: FastAPI reads the
``Annotated`` metadata at import time and the dependencies live in closures.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tiermem.lifecycle._audit import set_principal
from tiermem.service._auth import Authenticator, Permission, Principal, require
from tiermem.service._gate import principal_from_scope

__all__ = ["Guard", "Guards", "make_guards"]

Guard = Callable[..., Awaitable[Principal]]


@dataclass(frozen=True, slots=True)
class Guards:
    """One dependency per permission; routes declare ``Annotated[Principal, Depends(guards.read)]``."""

    read: Guard
    write: Guard
    stats: Guard
    admin: Guard


def make_guards(authenticator: Authenticator, roles: Mapping[Permission, str]) -> Guards:
    """Dependencies for ``authenticator``; OpenAPI shows the bearer scheme only when a token is needed."""
    if authenticator.requires_token:
        bearer = HTTPBearer(
            auto_error=False,
            bearerFormat="JWT",
            scheme_name="EntraID",
            description="An Entra ID access token for the service's audience, with app roles.",
        )

        def guard(permission: Permission) -> Guard:
            async def check(
                request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
            ) -> Principal:
                # The gate middleware authenticated the headers before the body was read.
                principal = principal_from_scope(request.scope)
                if principal is None:
                    token = credentials.credentials if credentials is not None else None
                    principal = await authenticator.authenticate(token)
                set_principal(principal.subject or f"tenant:{principal.tenant}")  # audit attribution
                return require(principal, permission, roles)

            return check

    else:

        def guard(permission: Permission) -> Guard:
            async def check() -> Principal:
                principal = await authenticator.authenticate(None)
                set_principal(principal.subject or f"tenant:{principal.tenant}")  # audit attribution
                return require(principal, permission, roles)

            return check

    return Guards(
        read=guard(Permission.READ),
        write=guard(Permission.WRITE),
        stats=guard(Permission.STATS),
        admin=guard(Permission.ADMIN),
    )
