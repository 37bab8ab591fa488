"""Where the benchmark's services come from: given endpoints, or local ones it starts itself.

``--start-services`` uses the launchers in ``tests/services`` (plain classes, no pytest needed):
``redis-server`` from PATH, the patched Cosmos DB stand-in and Azurite from ``node_modules``. They
are stopped when the run ends, whatever happens.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._harness import BenchmarkError

__all__ = ["Endpoints", "describe_machine", "local_services", "redis_address"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The services to measure against; ``None`` means the embedded tier for that role."""

    redis_url: str | None = None
    cosmos_endpoint: str | None = None
    cosmos_key: str | None = None
    blob_connection_string: str | None = None
    started: bool = False  # local processes started by this run (--start-services)
    versions: tuple[tuple[str, str], ...] = ()

    @property
    def embedded(self) -> bool:
        return not (self.redis_url or self.cosmos_endpoint or self.blob_connection_string)

    def describe(self) -> dict[str, Any]:
        """Which service plays each role (never a key or connection string)."""
        blob = None
        if self.blob_connection_string:
            endpoint = next(
                (
                    part.split("=", 1)[1]
                    for part in self.blob_connection_string.split(";")
                    if part.startswith("BlobEndpoint=")
                ),
                "(connection string)",
            )
            blob = endpoint
        return {
            "mode": "embedded" if self.embedded else ("started" if self.started else "given"),
            "hot": self.redis_url or "LocalHotMemory (in-process)",
            "warm": self.cosmos_endpoint or "none (embedded default: SQLite)",
            "cold": blob or "none (embedded default: local files)",
            "versions": dict(self.versions),
        }


def redis_address(url: str) -> tuple[str, int, int]:
    """(host, port, db) of a ``redis://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise BenchmarkError(f"not a redis:// URL: {url!r:.80}")
    path = parts.path.strip("/")
    return parts.hostname, parts.port or 6379, int(path) if path else 0


def _npm_version(package: str) -> str:
    path = Path(__file__).resolve().parents[1] / "node_modules" / package / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def _redis_server_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    for word in out.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


@contextmanager
def local_services(endpoints: Endpoints) -> Iterator[Endpoints]:
    """Start redis-server, the Cosmos DB stand-in and Azurite; stop them on exit."""
    try:
        from tests.services._process import ServiceStartupError, ServiceUnavailableError
        from tests.services.azurite import Azurite
        from tests.services.cosmos import CosmosServer
        from tests.services.redis import RedisServer
    except ImportError as exc:
        raise BenchmarkError(
            "--start-services needs the repository checkout (tests/services): run it from the repository root"
        ) from exc
    with ExitStack() as stack:
        try:
            redis = RedisServer.start()
            stack.callback(redis.stop)
            cosmos = CosmosServer.start()
            stack.callback(cosmos.stop)
            azurite = Azurite.start()
            stack.callback(azurite.stop)
        except (ServiceUnavailableError, ServiceStartupError) as exc:
            raise BenchmarkError(f"could not start the local services: {exc}") from exc
        yield replace(
            endpoints,
            redis_url=redis.url,
            cosmos_endpoint=cosmos.endpoint,
            cosmos_key=cosmos.key,
            blob_connection_string=azurite.connection_string,
            started=True,
            versions=(
                ("redis-server", _redis_server_version(redis.binary)),
                ("@vercel/cosmosdb-server", _npm_version("@vercel/cosmosdb-server")),
                ("azurite", _npm_version("azurite")),
            ),
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine() -> dict[str, Any]:
    """The facts that make two runs comparable (or not)."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    packages = (
        "tiermem",
        "redis",
        "hiredis",
        "orjson",
        "azure-cosmos",
        "azure-storage-blob",
        "aiohttp",
        "aiocache",
        "cashews",
        "opentelemetry-sdk",
    )
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "packages": {name: version(name) for name in packages},
    }
