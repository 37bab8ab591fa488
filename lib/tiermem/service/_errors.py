"""Every error the service returns, in one shape: ``{"error": {"code": "...", "message": "..."}}``.

This is the one place that maps exceptions to HTTP responses (library errors, FastAPI validation
errors, Starlette's 404/405, and anything unexpected). Server-side failures are logged with their
traceback and answered with a generic message: no stack trace or internal detail ever reaches a
client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiermem._error_shape import error_body, error_code
from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    ClientClosedError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    NotProvisionedError,
    QuotaExceededError,
    ResultTooLargeError,
    ThrottledError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
)

__all__ = [
    "ApiError",
    "CatchAllMiddleware",
    "error_response",
    "install_error_handlers",
    "logger",
    "route_template",
]

logger = logging.getLogger("tiermem.service")

RETRY_AFTER_SECONDS: Final = 5
_STORAGE_AUTH_RETRY_AFTER: Final = 30
_GENERIC_500: Final = "internal error"
_VALIDATION_DETAILS_MAX: Final = 20


class ApiError(Exception):
    """An error with its HTTP status, a stable ``code`` and a message safe to show the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = error_body(code, message, **(extra or {}))
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _from_api_error(exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, extra=exc.extra)


def _operator_error(code: str, message: str) -> ApiError:
    """A 503 for what only the operator can fix (credentials, provisioning): retried slowly."""
    return ApiError(503, code, message, headers={"Retry-After": str(_STORAGE_AUTH_RETRY_AFTER)})


def translate(exc: TierMemError, *, precondition: bool = False) -> ApiError:
    """Map a library error to the response the caller sees (most specific class first).

    Args:
        precondition: the request carried ``If-Match``/``If-None-Match``, so a conflict is a 412.
    """
    if isinstance(exc, QuotaExceededError):
        # 507: the tenant's storage budget is used up; retrying will not help until it frees space.
        return ApiError(
            507,
            error_code(exc),
            exc.message,
            extra={"resource": exc.resource, "used": exc.used, "limit": exc.limit},
        )
    if isinstance(exc, ValueTooLargeError | ResultTooLargeError):
        return ApiError(413, error_code(exc), exc.message)
    if isinstance(exc, InvalidInputError):
        return ApiError(400, error_code(exc), exc.message)
    if isinstance(exc, ConflictError):
        if precondition:
            return ApiError(412, "precondition_failed", "the precondition (If-Match/If-None-Match) failed")
        return ApiError(409, "conflict", "the value was changed concurrently")
    if isinstance(exc, AuthenticationError):
        # The *service's* identity was refused by a tier: not the caller's fault, and not theirs to see.
        logger.error("a tier rejected the service's credentials: %s", exc)
        return _operator_error("storage_auth_failed", "the service could not authenticate to its storage")
    if isinstance(exc, NotProvisionedError):
        # A missing container/database is the operator's setup step (ADR 0017), not the caller's fault.
        logger.error("storage is not provisioned (run `tiermem init`): %s", exc)
        return _operator_error("storage_not_provisioned", "the service's storage is not provisioned")
    if isinstance(exc, BatchWriteError):
        logger.warning("mset partially failed: %s", exc)
        return ApiError(
            503,
            "partial_write",
            "some items were not written; retry the failed keys",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extra={"written": list(exc.written), "failed": sorted(exc.failed)},
        )
    if isinstance(exc, TierUnavailableError | ThrottledError | ClientClosedError):
        logger.warning("storage unavailable: %s", exc)
        return ApiError(
            503,
            "unavailable",
            "storage is temporarily unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, CorruptValueError):
        logger.error("corrupt stored value: %s", exc)
        return ApiError(500, "internal_error", _GENERIC_500)
    logger.error("storage error: %s", exc, exc_info=exc)
    return ApiError(500, "internal_error", _GENERIC_500)


async def _api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _from_api_error(exc)


async def _tiermem_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TierMemError)
    return _from_api_error(translate(exc))


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Location and message only: the offending input is not echoed back (it may be huge or secret).
    details = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in list(exc.errors())[:_VALIDATION_DETAILS_MAX]
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return error_response(422, "validation_error", message, extra={"details": details})


_HTTP_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions are handled by :class:`CatchAllMiddleware`."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(TierMemError, _tiermem_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)


def route_template(scope: Scope) -> str:
    """``/v1/memory/{namespace}/{key}`` for a matched route, else a placeholder: never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "(unmatched route)"


class CatchAllMiddleware:
    """Turn any exception that escaped the handlers into a generic 500, logged with its traceback.

    Starlette's own last-resort handler re-raises after answering; this one does not, so the
    server sees a finished request and the client sees ``{"error": {"code": "internal_error"}}``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # The route template, never the raw path: paths carry keys (issue 13 item 6).
            logger.exception("unhandled error in %s %s", scope.get("method"), route_template(scope))
            if started:
                return  # headers are gone; the server closes the connection
            response = error_response(500, "internal_error", _GENERIC_500)
            await response(scope, receive, send)
