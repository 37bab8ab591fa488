"""The Cosmos DB stand-in: ``@vercel/cosmosdb-server`` started through ``cosmos_launcher.js``.

The launcher patches the stand-in's known defects (see the header of ``cosmos_launcher.js`` and
``README.md`` in this directory) and turns keep-alive on. It serves HTTPS on 127.0.0.1; with
``tls=None`` it uses the certificate bundled in the npm package, otherwise the session
certificate. ``azure-cosmos`` does not verify certificates for ``localhost``/``127.0.0.1``
endpoints, so no ``connection_verify`` is needed either way.

What it does *not* do (tests must not claim these): enforce TTL (``default_ttl``/``ttl`` are stored
and ignored), the 2 MB item limit, authentication (any key works), RU throttling (never 429),
partitioned scale-out (one partition key range), consistency levels, or change feed semantics.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import TracebackType

from tests.services._process import (
    LOOPBACK,
    ManagedProcess,
    ServiceUnavailableError,
    make_workdir,
    remove_workdir,
    repo_root,
)
from tests.services.tls import TlsMaterial

__all__ = ["EMULATOR_KEY", "CosmosServer"]

# The documented, public Cosmos DB Emulator key; the stand-in accepts any key.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU9DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

_LAUNCHER = Path(__file__).with_name("cosmos_launcher.js")
_READY = re.compile(r"^COSMOS_READY (\{.*\})$", re.MULTILINE)


class CosmosServer:
    """A patched ``@vercel/cosmosdb-server`` process on 127.0.0.1 (HTTPS, keep-alive)."""

    def __init__(self, *, workdir: Path, tls: TlsMaterial | None) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.key = EMULATOR_KEY
        self.tls = tls
        self.workdir = workdir
        self._process: ManagedProcess | None = None

    @classmethod
    def start(
        cls, *, tls: TlsMaterial | None = None, port: int | None = None, timeout: float = 30.0
    ) -> CosmosServer:
        """Start the stand-in and wait until it listens.

        Args:
            tls: Certificate to serve; the package's bundled self-signed one when None.
            port: Port on 127.0.0.1; chosen by the server when None.
            timeout: Seconds to wait for readiness.

        Raises:
            ServiceUnavailableError: Node or the npm package is missing (run ``npm ci``).
            ServiceStartupError: It did not start in time (the message has the log tail).
        """
        if shutil.which("node") is None:
            raise ServiceUnavailableError("node is not on PATH (Node.js 20 is needed for the npm stand-ins)")
        package = repo_root() / "node_modules" / "@vercel" / "cosmosdb-server" / "package.json"
        if not package.exists():
            raise ServiceUnavailableError(f"{package} is missing: run `npm ci` at the repository root")
        server = cls(workdir=make_workdir("cosmos"), tls=tls)
        server._launch(port or 0, timeout)
        return server

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "cosmos.log"

    def stop(self) -> None:
        """Terminate the server and remove its directory. Idempotent."""
        if self._process is not None:
            self._process.stop()
        remove_workdir(self.workdir)

    def kill(self) -> None:
        """SIGKILL (a crash); :meth:`restart` brings it back on the same port, empty."""
        if self._process is not None:
            self._process.kill()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start again on the same port. All databases and items are gone afterwards."""
        if self._process is not None:
            self._process.stop()
        self._launch(self.port, timeout)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but never answered."""
        if self._process is not None:
            self._process.pause()

    def resume(self) -> None:
        if self._process is not None:
            self._process.resume()

    def __enter__(self) -> CosmosServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CosmosServer(endpoint={self.endpoint!r}, pid={self.pid})"

    def _launch(self, port: int, timeout: float) -> None:
        argv = ["node", str(_LAUNCHER), "--host", self.host, "--port", str(port)]
        if self.tls is not None:
            argv += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        process = ManagedProcess(
            f"cosmosdb-server:{port or 'auto'}",
            argv,
            cwd=repo_root(),  # so that require() finds <repo>/node_modules
            log_path=self.log_path,
        )
        self._process = process
        process.start()
        try:
            match = process.wait_for_output(
                _READY, timeout=timeout, what="cosmosdb-server reports COSMOS_READY"
            )
        except BaseException:
            process.stop()
            raise
        self.port = int(json.loads(match.group(1))["port"])
