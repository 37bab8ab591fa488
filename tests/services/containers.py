"""Third resort: stand-ins in containers through ``testcontainers`` (lazily imported).

Used only when neither an endpoint from the environment nor a local process is available and a
Docker engine answers ``docker info``. UNTESTED on the development machine (it has no Docker
engine); written against testcontainers-python 4.x (``pip install "testcontainers[redis,azurite,
cosmosdb]"``). Containers must publish on loopback: a Docker host elsewhere is refused, because
test traffic must never leave the machine.
"""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from tests.services._process import ServiceUnavailableError
from tests.services.external import ExternalBlob, ExternalCosmos, ExternalRedis

__all__ = ["azurite_container", "cosmos_container", "docker_available", "redis_container"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Stop = Callable[[], None]


@functools.cache
def docker_available() -> bool:
    """True when a ``docker`` CLI exists and ``docker info`` succeeds within 5 seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ServiceUnavailableError(
            f"testcontainers is not installed (pip install 'testcontainers[{extra}]')"
        ) from exc


def _loopback_host(container: Any) -> str:
    host = str(container.get_container_host_ip())
    if host not in _LOOPBACK_NAMES:
        container.stop()
        raise ServiceUnavailableError(
            f"the Docker host publishes on {host}, not on loopback; refusing to use it"
        )
    return "127.0.0.1" if host == "localhost" else host


def redis_container() -> tuple[ExternalRedis, Stop]:
    module = _import("testcontainers.redis", "redis")
    container = module.RedisContainer("redis:7.4")
    container.start()
    host = _loopback_host(container)
    port = int(container.get_exposed_port(6379))
    return ExternalRedis(url=f"redis://{host}:{port}/0", origin="testcontainers"), container.stop


def azurite_container() -> tuple[ExternalBlob, Stop]:
    module = _import("testcontainers.azurite", "azurite")
    container = module.AzuriteContainer()
    container.start()
    _loopback_host(container)
    service = ExternalBlob(connection_string=container.get_connection_string(), origin="testcontainers")
    return service, container.stop


def cosmos_container() -> tuple[ExternalCosmos, Stop]:
    module = _import("testcontainers.cosmosdb", "cosmosdb")
    container = module.CosmosDBNoSQLEndpointContainer()
    container.start()
    _loopback_host(container)
    service = ExternalCosmos(endpoint=str(container.url), key=str(container.key), origin="testcontainers")
    return service, container.stop
