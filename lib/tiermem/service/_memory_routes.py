"""``/v1/memory``: single values (``/{namespace}/{key}``) and batches (``/{namespace}:mget``, ``:mset``).

Every handler works on ``memory.scoped(tenant=<the caller's token claim>, namespace=<path>)``, so
a caller can only ever reach its own tenant. The key route
(``/{namespace}/{key}``, any characters) matches only after ``/{namespace}/``; the batch routes are
``/{namespace}:mget`` (no slash), so the two never overlap.
"""

import json
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.convertors import Convertor, register_url_convertor

from tiermem._client import MemoryClient
from tiermem._codec import Value
from tiermem._errors import ResultTooLargeError
from tiermem._protocols import Tier
from tiermem.service._auth import Principal
from tiermem.service._conditional import PUT_RESPONSES, IfMatch, IfNoneMatch, conditional_put
from tiermem.service._errors import ApiError
from tiermem.service._guards import Guards
from tiermem.service._models import (
    NAMESPACE_PATTERN,
    ErrorBody,
    GetResponse,
    MgetRequest,
    MgetResponse,
    MsetRequest,
    MsetResponse,
    PutRequest,
    PutResponse,
    encode_value,
    to_http_etag,
)

__all__ = ["ERROR_RESPONSES", "memory_router"]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input (key, namespace, value, ttl)"},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "The token lacks the role this operation needs"},
    413: {"model": ErrorBody, "description": "Request body, value, or :mget response too large"},
    422: {"model": ErrorBody, "description": "The request does not match the schema"},
    500: {"model": ErrorBody, "description": "Internal error (details are logged, never returned)"},
    503: {"model": ErrorBody, "description": "Storage temporarily unavailable (see Retry-After)"},
}


class _KeyConvertor(Convertor[str]):
    """Like ``path``, but also matches newlines (``.*`` does not), so every key reaches validation.

    A key holding a control character must get a 400 from the key rules, not a 404 from routing.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("tiermem_key", _KeyConvertor())
_KEY_PATH = "/{namespace}/{key:tiermem_key}"

_Namespace = Annotated[
    str, Path(pattern=NAMESPACE_PATTERN, description="Namespace: [A-Za-z0-9._-]{1,64}, not ending with a dot")
]
_Key = Annotated[
    str,
    Path(
        description="The key: 1..512 UTF-8 bytes without control characters; may contain '/' (a key is data)"
    ),
]


def _check_tier(memory: MemoryClient, tier: Tier | None) -> None:
    if tier is not None and tier not in memory.tiers:
        raise ApiError(400, "invalid_input", f"the {tier.value} tier is not configured on this service")


def _json(value: Any) -> bytes:
    # What FastAPI's JSONResponse renders, so the body is the same as before the cap.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


_PAGE = "the values add up to more than {} bytes; ask for fewer keys per :mget (page through them)"


def mget_body(values: dict[str, Any], max_bytes: int) -> bytes:
    """The :mget response (``MgetResponse``), refused with a 413 once it passes ``max_bytes``.

    Rendered value by value so the check happens while building, not after a huge document exists.
    """
    parts: list[bytes] = []
    encoded: list[str] = []
    total = 0
    for key, value in values.items():
        if value is None:
            rendered = b"null"
        else:
            shown, encoding = encode_value(value)
            if encoding == "base64":
                encoded.append(key)
            rendered = _json(shown)
        part = _json(key) + b":" + rendered
        total += len(part) + 1
        if total > max_bytes:
            raise ApiError(413, "response_too_large", _PAGE.format(max_bytes))
        parts.append(part)
    return b'{"values":{' + b",".join(parts) + b'},"base64":' + _json(encoded) + b"}"


def memory_router(memory: MemoryClient, guards: Guards, *, max_response_bytes: int) -> APIRouter:
    """Routes over ``memory``; ``guards`` authenticate and authorize each request.

    Args:
        max_response_bytes: the largest :mget response body (``TIERMEM_SERVICE_MAX_RESPONSE_BYTES``).
    """
    router = APIRouter(prefix="/v1/memory", tags=["memory"], responses=ERROR_RESPONSES)

    def scoped(principal: Principal, namespace: str) -> MemoryClient:
        return memory.scoped(tenant=principal.tenant, namespace=namespace, lock_tenant=True)

    @router.post("/{namespace}:mget", summary="Read many keys", response_model=MgetResponse)
    async def mget(
        namespace: _Namespace, body: MgetRequest, principal: Annotated[Principal, Depends(guards.read)]
    ) -> Response:
        # The client stops decoding once the values pass the response cap, so the server never
        # holds more than that; mget_body then caps the rendered JSON exactly. One code for both.
        try:
            values = await scoped(principal, namespace).mget(body.keys, max_bytes=max_response_bytes)
        except ResultTooLargeError as exc:
            raise ApiError(413, "response_too_large", _PAGE.format(max_response_bytes)) from exc
        return Response(mget_body(values, max_response_bytes), media_type="application/json")

    @router.post("/{namespace}:mset", summary="Write many keys", response_model=MsetResponse)
    async def mset(
        namespace: _Namespace, body: MsetRequest, principal: Annotated[Principal, Depends(guards.write)]
    ) -> MsetResponse:
        _check_tier(memory, body.tier)
        await scoped(principal, namespace).mset(body.items, ttl=body.ttl, tier=body.tier)
        return MsetResponse(stored=len(body.items))

    @router.get(
        _KEY_PATH,
        summary="Read a value",
        response_model=GetResponse,
        responses={404: {"model": ErrorBody, "description": "No live value for this key"}},
    )
    async def get_value(
        namespace: _Namespace,
        key: _Key,
        principal: Annotated[Principal, Depends(guards.read)],
        response: Response,
        consistent: Annotated[
            bool, Query(description="Read the durable tier (skip the cache) so the ETag is current")
        ] = False,
    ) -> GetResponse:
        entry = await scoped(principal, namespace).get_entry(key, consistent=consistent)
        if entry is None:
            raise ApiError(404, "not_found", "no value for this key")
        etag = to_http_etag(entry.etag)
        if etag is not None:
            response.headers["ETag"] = etag
        value, encoding = encode_value(entry.value)
        return GetResponse(
            namespace=namespace,
            key=key,
            value=value,
            encoding=encoding,
            tier=entry.tier,
            etag=etag,
            expires_at=entry.expires_at,
        )

    @router.head(
        _KEY_PATH,
        summary="Whether a live value exists",
        status_code=200,
        response_class=Response,
        responses={404: {"description": "No live value for this key"}},
    )
    async def head_value(
        namespace: _Namespace, key: _Key, principal: Annotated[Principal, Depends(guards.read)]
    ) -> Response:
        found = await scoped(principal, namespace).exists(key)
        return Response(status_code=200 if found else 404)

    @router.put(
        _KEY_PATH,
        summary="Write a value",
        response_model=PutResponse,
        responses=PUT_RESPONSES,
    )
    async def put_value(
        namespace: _Namespace,
        key: _Key,
        body: PutRequest,
        principal: Annotated[Principal, Depends(guards.write)],
        response: Response,
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> PutResponse:
        _check_tier(memory, body.tier)

        def write(value: Value, etag: str | None, if_absent: bool) -> Awaitable[str | None]:
            return scoped(principal, namespace).set(
                key, value, ttl=body.ttl, tier=body.tier, if_match=etag, if_absent=if_absent
            )

        http_etag = await conditional_put(
            body, response, write, if_match=if_match, if_none_match=if_none_match
        )
        return PutResponse(namespace=namespace, key=key, etag=http_etag)

    @router.delete(
        _KEY_PATH,
        summary="Delete a value from every tier (idempotent)",
        status_code=204,
        response_class=Response,
    )
    async def delete_value(
        namespace: _Namespace, key: _Key, principal: Annotated[Principal, Depends(guards.write)]
    ) -> Response:
        await scoped(principal, namespace).delete(key)
        return Response(status_code=204)

    return router
