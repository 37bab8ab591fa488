"""Fakes that answer JSON over HTTP(S) on 127.0.0.1 from a server thread of their own.

Used by the managed-identity endpoint and the Key Vault fake. The server runs in a thread rather
than on the test's event loop, so a client that blocks its loop while it waits for an answer
(redis-entraid does: msal is synchronous) still gets one.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from abc import abstractmethod
from collections.abc import Mapping
from email.message import Message
from http import HTTPStatus
from typing import Any, ClassVar

from tests.services._process import LOOPBACK
from tests.services._service import StopOnExit

__all__ = ["LoopbackHttpService", "Response"]

Response = tuple[int, Any, Mapping[str, str]]
"""``(status, JSON-serialisable body, extra response headers)``."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: LoopbackHttpService, context: ssl.SSLContext | None) -> None:
        self.service = service
        self._context = context
        super().__init__((LOOPBACK, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self._context is None:
            return sock, address
        # The TLS handshake happens on first read in the handler thread, not in the accept loop.
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        service = self.server.service
        if self.command not in service._methods:
            # What BaseHTTPRequestHandler answers for a method it has no do_* for.
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, extra_headers = service._respond(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", service._content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging (each fake keeps its own record of what it served)."""


class LoopbackHttpService(StopOnExit):
    """A fake serving JSON on ``127.0.0.1:<free port>`` (HTTPS when given a TLS context).

    Subclasses implement :meth:`_respond` and call :meth:`_serve` once constructed.
    """

    _methods: ClassVar[frozenset[str]] = frozenset({"GET"})
    """Methods passed to :meth:`_respond`; any other gets ``501`` like from the stdlib server."""
    _content_type: ClassVar[str] = "application/json"
    _thread_name: ClassVar[str]
    _noun: ClassVar[str]
    """What the service is called in "the <noun> is not running"."""

    _server: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self._noun} is not running")
        port: int = self._server.server_address[1]
        return port

    def stop(self) -> None:
        """Stop serving and join the server thread. Idempotent."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def _serve(self, context: ssl.SSLContext | None = None) -> None:
        """Bind a free loopback port and serve from a daemon thread (TLS with ``context``)."""
        server = self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()

    @abstractmethod
    def _respond(self, method: str, path: str, headers: Message[str, str], body: bytes) -> Response:
        """Answer one request; runs on a handler thread."""
