"""Conditional writes over HTTP: ``If-Match``/``If-None-Match`` on a PUT, shared by the memory and
collection routes.

One place decides what the headers mean (``If-None-Match: *`` only, no ``If-Match: *``, an ETag this
service did not issue fails the precondition) and how a conflict answers (412 for a failed
precondition, 409 for a concurrent change), so both kinds of PUT behave the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Protocol

from fastapi import Header, Response

from tiermem._codec import Value
from tiermem._errors import ConflictError
from tiermem.service._errors import ApiError, translate
from tiermem.service._models import Encoding, ErrorBody, decode_value, from_http_etag, to_http_etag

__all__ = ["PUT_RESPONSES", "IfMatch", "IfNoneMatch", "PutBody", "conditional_put", "precondition"]

PUT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorBody, "description": "Concurrent change"},
    412: {"model": ErrorBody, "description": "If-Match / If-None-Match precondition failed"},
}
"""The answers a conditional PUT adds to the common error responses (OpenAPI)."""

IfMatch = Annotated[str | None, Header(description="Write only if what is stored still has this ETag")]
"""The ``If-Match`` header of a conditional PUT."""
IfNoneMatch = Annotated[str | None, Header(description="'*': write only if nothing live is stored")]
"""The ``If-None-Match`` header of a conditional PUT."""


class PutBody(Protocol):
    """The part of a PUT body this module reads: the value as sent and how it is encoded."""

    @property
    def value(self) -> Any: ...

    @property
    def encoding(self) -> Encoding: ...


Write = Callable[[Value, str | None, bool], Awaitable[str | None]]
"""``write(value, if_match etag, if_absent)`` -> the stored ETag: the store call of one PUT."""


def precondition(if_match: str | None, if_none_match: str | None) -> tuple[str | None, bool]:
    """``(if_match etag, if_absent)`` from the conditional headers of a PUT."""
    if if_match is not None and if_none_match is not None:
        raise ApiError(400, "invalid_input", "use either If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise ApiError(400, "invalid_input", "PUT supports only If-None-Match: * (create only)")
        return None, True
    if if_match is None:
        return None, False
    if if_match.strip() == "*":
        raise ApiError(400, "invalid_input", "If-Match: * is not supported; send the ETag from a GET")
    etag = from_http_etag(if_match)
    if etag is None:  # not an ETag this service issued, so it cannot match the current value
        raise ApiError(412, "precondition_failed", "the precondition (If-Match/If-None-Match) failed")
    return etag, False


async def conditional_put(
    body: PutBody, response: Response, write: Write, *, if_match: str | None, if_none_match: str | None
) -> str | None:
    """Check the headers, decode ``body``'s value, ``write`` it, and set the response's ``ETag``.

    Returns:
        The HTTP ETag of what was stored (also in the ``ETag`` header), or ``None`` if the tier has none.

    Raises:
        ApiError: 400 for bad headers or a value that does not decode (before anything is written),
            412/409 when the write conflicts.
    """
    etag_in, if_absent = precondition(if_match, if_none_match)
    try:
        decoded = decode_value(body.value, body.encoding)
    except ValueError as exc:
        raise ApiError(400, "invalid_input", str(exc)) from None
    try:
        etag = await write(decoded, etag_in, if_absent)
    except ConflictError as exc:
        raise translate(exc, precondition=etag_in is not None or if_absent) from exc
    http_etag = to_http_etag(etag)
    if http_etag is not None:
        response.headers["ETag"] = http_etag
    return http_etag
