"""A loopback TCP proxy that injects faults between a client and a real service.

Modes: ``PASS`` forwards bytes; ``LATENCY`` delays every chunk; ``DROP`` resets existing
connections and refuses new ones; ``STALL`` accepts and reads but never forwards (a hung peer);
``SWALLOW_REPLY`` forwards requests but black-holes every reply on the first connection that sends a
chunk of at least ``swallow_min_bytes`` (a write that lands while its answer is lost), then behaves
like ``PASS``.
Runs in the test's event loop; only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
from dataclasses import dataclass, field


class Mode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    DROP = "drop"
    STALL = "stall"
    SWALLOW_REPLY = "swallow-reply"


@dataclass
class _Connection:
    swallowed: bool = False


@dataclass
class FaultProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port> with injectable faults."""

    target_port: int
    mode: Mode = Mode.PASS
    latency: float = 0.05
    port: int = 0
    faults_injected: int = 0
    swallow_min_bytes: int = 4096
    held: int = 0  # chunks waiting for a STALL to end
    swallowed: int = 0  # connections whose replies were black-holed
    _server: asyncio.Server | None = None
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._flowing.set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def set_mode(self, mode: Mode, *, latency: float | None = None) -> None:
        """Switch mode; DROP resets every open connection at once."""
        self.mode = mode
        if mode is Mode.STALL:
            self._flowing.clear()
        else:
            self._flowing.set()
        if latency is not None:
            self.latency = latency
        if mode is not Mode.PASS:
            self.faults_injected += 1
        if mode is Mode.DROP:
            self._reset_all()

    def _reset_all(self) -> None:
        for writer in list(self._conns):
            transport = writer.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN: the peer sees "connection reset"
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self._conns.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is Mode.DROP:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._conns.update((client_w, server_w))
        conn = _Connection()
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, conn, upstream=True),
                self._pipe(server_r, client_w, conn, upstream=False),
            )
        finally:
            for w in (client_w, server_w):
                self._conns.discard(w)
                w.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection, *, upstream: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if not self._flowing.is_set():
                    self.held += 1
                    try:
                        await self._flowing.wait()  # STALL: hold every byte until the mode changes
                    finally:
                        self.held -= 1
                if self.mode is Mode.DROP:
                    break
                if upstream and self.mode is Mode.SWALLOW_REPLY and len(chunk) >= self.swallow_min_bytes:
                    conn.swallowed = True
                    self.swallowed += 1
                    self.mode = Mode.PASS  # one connection only
                if conn.swallowed and not upstream:
                    continue  # the reply is lost; the client times out
                if self.mode is Mode.LATENCY:
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.transport.abort()
