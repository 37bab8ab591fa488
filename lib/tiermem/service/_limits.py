"""Request body limits, enforced before the application sees a byte.

The declared ``Content-Length`` is checked first (a 413 without reading anything); otherwise the
body is read chunk by chunk and the request is refused as soon as the running total passes the
limit, which also covers chunked uploads that declare no length. Every route buffers its whole
body anyway (JSON), so reading it here first costs no extra memory beyond the limit.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiermem.service._errors import error_response

__all__ = ["BodyLimitMiddleware"]

_BATCH_SUFFIXES: Final = (":mget", ":mset")


class BodyLimitMiddleware:
    """Refuse request bodies above ``max_body_bytes`` (``max_batch_body_bytes`` for batch routes) with 413."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_batch_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_batch_body_bytes = max_batch_body_bytes

    def _limit(self, path: str) -> int:
        return self.max_batch_body_bytes if path.endswith(_BATCH_SUFFIXES) else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared: list[bytes] = [v for k, v in scope["headers"] if k == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length < 0 or len(set(declared)) > 1:
                await self._reject(scope, receive, send, 400, "bad_request", "invalid Content-Length")
                return
            if length > limit:
                await self._too_large(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending the whole body: nothing to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await self._reject(
            scope, receive, send, 413, "payload_too_large", f"request body is larger than {limit} bytes"
        )

    @staticmethod
    async def _reject(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        # Connection: close, so the server does not try to read the rest of an unread body.
        response = error_response(status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)
