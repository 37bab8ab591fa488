"""Who may send a body at all: the bearer token is checked before any byte of the body is read.

FastAPI dependencies run after the body is parsed, so an unauthenticated 16 MiB ``:mget`` used to
cost the server hundreds of MB before its 401 (issue 13 item 3). :class:`AuthGateMiddleware` sits
outside the body limit and the app: for every ``/v1/`` request it authenticates the token from
the headers, answers a refusal with ``Connection: close`` without calling ``receive()``, and hands
the :class:`Principal` to the route's guard through the ASGI scope.

Without tokens (``--auth none``) it instead allows only loopback ``Host`` names, so a web page
cannot reach the local service through DNS rebinding (item 9).
"""

from __future__ import annotations

import ipaddress
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from tiermem.service._auth import Authenticator, Principal
from tiermem.service._errors import ApiError, error_response

__all__ = ["PRINCIPAL_SCOPE_KEY", "AuthGateMiddleware", "is_loopback_host_header", "principal_from_scope"]

PRINCIPAL_SCOPE_KEY: Final = "tiermem.principal"
_PROTECTED_PREFIX: Final = "/v1/"


def principal_from_scope(scope: Scope) -> Principal | None:
    """The caller the gate authenticated for this request, if it did."""
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def is_loopback_host_header(value: str) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost``, 127.0.0.0/8 or ``[::1]``, any port."""
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthGateMiddleware:
    """Authenticate ``/v1/`` requests from their headers alone; loopback ``Host`` only without tokens."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if not self.authenticator.requires_token:
                _check_loopback_host(scope)
            elif scope["path"].startswith(_PROTECTED_PREFIX):
                principal = await self.authenticator.authenticate(_bearer(scope))
                scope[PRINCIPAL_SCOPE_KEY] = principal  # in place, as Starlette's router sets "route"
        except ApiError as exc:
            # The body is never read: Connection: close so the server drops the rest of it.
            response = error_response(
                exc.status, exc.code, exc.message, headers={**exc.headers, "Connection": "close"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _check_loopback_host(scope: Scope) -> None:
    hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
    if len(hosts) != 1 or not is_loopback_host_header(hosts[0]):
        raise ApiError(
            400,
            "bad_request",
            "without authentication this service answers only loopback host names "
            "(localhost, 127.0.0.1, [::1])",
        )
