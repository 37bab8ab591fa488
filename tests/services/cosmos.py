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
from pathlib import Path

from tests.services._process import ManagedProcess, make_workdir, node_modules_path, repo_root
from tests.services._service import LocalService
from tests.services.tls import TlsMaterial

__all__ = ["EMULATOR_KEY", "CosmosServer"]

# The documented, public Cosmos DB Emulator key; the stand-in accepts any key.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU9DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

_LAUNCHER = Path(__file__).with_name("cosmos_launcher.js")
_READY = re.compile(r"^COSMOS_READY (\{.*\})$", re.MULTILINE)


class CosmosServer(LocalService):
    """A patched ``@vercel/cosmosdb-server`` process on 127.0.0.1 (HTTPS, keep-alive)."""

    _program = "cosmosdb-server"
    _log_name = "cosmos.log"

    def __init__(self, *, workdir: Path, tls: TlsMaterial | None) -> None:
        super().__init__(workdir=workdir)
        self.key = EMULATOR_KEY
        self.tls = tls

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
        node_modules_path("@vercel", "cosmosdb-server", "package.json")
        server = cls(workdir=make_workdir("cosmos"), tls=tls)
        server._launch(port or 0, timeout)
        return server

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def __repr__(self) -> str:
        return f"CosmosServer(endpoint={self.endpoint!r}, pid={self.pid})"

    def _argv(self, port: int) -> list[str]:
        argv = ["node", str(_LAUNCHER), "--host", self.host, "--port", str(port)]
        if self.tls is not None:
            argv += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        return argv

    def _process_cwd(self) -> Path:
        return repo_root()  # so that require() finds <repo>/node_modules

    def _wait_ready(self, process: ManagedProcess, timeout: float) -> int:
        match = process.wait_for_output(_READY, timeout=timeout, what="cosmosdb-server reports COSMOS_READY")
        return int(json.loads(match.group(1))["port"])
