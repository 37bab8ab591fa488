"""``/v1/collections``: items of a collection (put/get/delete/list) and the collections of a namespace.

As for ``/v1/memory``, every handler works on ``memory.scoped(tenant=<the caller's token claim>,
namespace=<path>, lock_tenant=True)``. Listing is capped (``limit`` <= 1000) and paged with an
opaque ``page_token`` (the last key served, so a page never repeats or skips an item).
"""

import base64
import binascii
import json
from collections.abc import Awaitable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tiermem._client import MemoryClient
from tiermem._codec import Value
from tiermem._collection import Collection, Item
from tiermem.service._auth import Principal
from tiermem.service._conditional import PUT_RESPONSES, IfMatch, IfNoneMatch, conditional_put
from tiermem.service._errors import ApiError
from tiermem.service._guards import Guards
from tiermem.service._memory_routes import ERROR_RESPONSES
from tiermem.service._models import (
    NAMESPACE_PATTERN,
    Encoding,
    ErrorBody,
    encode_value,
    to_http_etag,
)

__all__ = ["MAX_LIST_LIMIT", "collections_router"]

MAX_LIST_LIMIT: Final = 1000

_Namespace = Annotated[
    str, Path(pattern=NAMESPACE_PATTERN, description="Namespace: [A-Za-z0-9._-]{1,64}, not only dots")
]
_Name = Annotated[
    str, Path(description="Collection name: 1..128 UTF-8 bytes without control characters or '/'")
]
_Key = Annotated[str, Path(description="Item key: 1..512 UTF-8 bytes without control characters")]
_ITEM_PATH = "/{namespace}/{collection}/items/{key:tiermem_key}"


class ItemPutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="Any JSON value; with encoding=base64, a base64 string of raw bytes")
    attrs: dict[str, str | int | float | bool] | None = Field(
        None, description="Flat attributes (str/int/float/bool, at most 2 KiB as JSON) to filter on"
    )
    ttl: float | None = Field(None, gt=0, description="Seconds until the item expires; null keeps it")
    encoding: Encoding = Field("json", description="json (default) or base64 for a bytes value")


class ItemPutResponse(BaseModel):
    namespace: str
    collection: str
    key: str
    etag: str | None = Field(description="Opaque ETag for If-Match, when the durable tier returns one")


class ItemResponse(BaseModel):
    key: str
    value: Any = Field(description="The value; a base64 string when encoding is base64")
    encoding: Encoding
    attrs: dict[str, str | int | float | bool]
    etag: str | None = Field(description="Opaque ETag of the item (for If-Match)")
    expires_at: float | None = Field(description="Expiry (Unix seconds), null for none")


class ItemListResponse(BaseModel):
    items: list[ItemResponse]
    next_page_token: str | None = Field(description="Pass as page_token for the next page; null at the end")


class CollectionListResponse(BaseModel):
    collections: list[str]
    next_page_token: str | None = Field(description="Pass as page_token for the next page; null at the end")


class DropResponse(BaseModel):
    dropped: int = Field(description="How many items were deleted")


def _item(item: Item) -> ItemResponse:
    value, encoding = encode_value(item.value)
    return ItemResponse(
        key=item.key,
        value=value,
        encoding=encoding,
        attrs=dict(item.attrs),
        etag=to_http_etag(item.etag),
        expires_at=item.expires_at,
    )


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).rstrip(b"=").decode("ascii")


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_input", "page_token is not one this service issued") from None


def _where(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ApiError(400, "invalid_input", "where is not valid JSON") from None


def collections_router(memory: MemoryClient, guards: Guards, *, max_response_bytes: int) -> APIRouter:
    """Routes over ``memory``'s collections; ``guards`` authenticate and authorize each request.

    Args:
        max_response_bytes: the largest list page (``TIERMEM_SERVICE_MAX_RESPONSE_BYTES``): a page stops
            early (with a ``next_page_token``) before it would pass it; one item alone past it is a 413.
    """
    router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)

    def scoped(principal: Principal, namespace: str, name: str) -> Collection:
        view = memory.scoped(tenant=principal.tenant, namespace=namespace, lock_tenant=True)
        return view.collection(name)

    @router.get(
        "/{namespace}", summary="List the collections of a namespace", response_model=CollectionListResponse
    )
    async def list_collections(
        namespace: _Namespace,
        principal: Annotated[Principal, Depends(guards.read)],
        prefix: Annotated[str, Query(description="Only names with this prefix")] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
        page_token: Annotated[str | None, Query(description="From a previous page")] = None,
    ) -> CollectionListResponse:
        view = memory.scoped(tenant=principal.tenant, namespace=namespace, lock_tenant=True)
        after = None if page_token is None else _untoken(page_token)
        names: list[str] = []
        async for name in view.collections(prefix=prefix):
            if after is not None and name.encode("utf-8") <= after.encode("utf-8"):
                continue
            names.append(name)
            if len(names) > limit:
                break
        more = len(names) > limit
        names = names[:limit]
        return CollectionListResponse(collections=names, next_page_token=_token(names[-1]) if more else None)

    @router.get(
        "/{namespace}/{collection}/items", summary="List items in key order", response_model=ItemListResponse
    )
    async def list_items(
        namespace: _Namespace,
        collection: _Name,
        principal: Annotated[Principal, Depends(guards.read)],
        prefix: Annotated[str, Query(description="Only keys with this prefix")] = "",
        after: Annotated[str | None, Query(description="Only keys after this one (exclusive)")] = None,
        before: Annotated[str | None, Query(description="Only keys before this one (exclusive)")] = None,
        reverse: Annotated[bool, Query(description="Descending key order (newest first)")] = False,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
        where: Annotated[
            str | None, Query(description='JSON attribute filter, e.g. {"step": {"$gte": 3}}')
        ] = None,
        page_token: Annotated[str | None, Query(description="From a previous page")] = None,
    ) -> ItemListResponse:
        coll = scoped(principal, namespace, collection)
        if page_token is not None:
            last = _untoken(page_token)
            if reverse:
                before = last
            else:
                after = last
        source = coll.list(
            prefix=prefix, after=after, before=before, reverse=reverse, limit=limit + 1, where=_where(where)
        )
        page: list[ItemResponse] = []
        total = 0
        more = False
        async for item in source:
            if len(page) == limit:
                more = True
                break
            shown = _item(item)
            total += len(shown.model_dump_json()) + 1
            if total > max_response_bytes:
                if not page:
                    raise ApiError(
                        413, "response_too_large", f"one item is larger than {max_response_bytes} bytes"
                    )
                more = True
                break
            page.append(shown)
        return ItemListResponse(items=page, next_page_token=_token(page[-1].key) if more else None)

    @router.get(
        _ITEM_PATH,
        summary="Read an item (from the durable tier, with its attrs and ETag)",
        response_model=ItemResponse,
        responses={404: {"model": ErrorBody, "description": "No live item for this key"}},
    )
    async def get_item(
        namespace: _Namespace,
        collection: _Name,
        key: _Key,
        principal: Annotated[Principal, Depends(guards.read)],
        response: Response,
    ) -> ItemResponse:
        item = await scoped(principal, namespace, collection).get_item(key)
        if item is None:
            raise ApiError(404, "not_found", "no item for this key")
        body = _item(item)
        if body.etag is not None:
            response.headers["ETag"] = body.etag
        return body

    @router.put(
        _ITEM_PATH,
        summary="Write an item",
        response_model=ItemPutResponse,
        responses=PUT_RESPONSES,
    )
    async def put_item(
        namespace: _Namespace,
        collection: _Name,
        key: _Key,
        body: ItemPutRequest,
        principal: Annotated[Principal, Depends(guards.write)],
        response: Response,
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> ItemPutResponse:

        def write(value: Value, etag: str | None, if_absent: bool) -> Awaitable[str | None]:
            coll = scoped(principal, namespace, collection)
            return coll.put(key, value, attrs=body.attrs, ttl=body.ttl, if_match=etag, if_absent=if_absent)

        http_etag = await conditional_put(
            body, response, write, if_match=if_match, if_none_match=if_none_match
        )
        return ItemPutResponse(namespace=namespace, collection=collection, key=key, etag=http_etag)

    @router.delete(
        _ITEM_PATH, summary="Delete an item (idempotent)", status_code=204, response_class=Response
    )
    async def delete_item(
        namespace: _Namespace,
        collection: _Name,
        key: _Key,
        principal: Annotated[Principal, Depends(guards.write)],
    ) -> Response:
        await scoped(principal, namespace, collection).delete(key)
        return Response(status_code=204)

    @router.delete(
        "/{namespace}/{collection}",
        summary="Drop a collection: every item on every tier",
        response_model=DropResponse,
    )
    async def drop_collection(
        namespace: _Namespace, collection: _Name, principal: Annotated[Principal, Depends(guards.write)]
    ) -> DropResponse:
        return DropResponse(dropped=await scoped(principal, namespace, collection).drop())

    return router
