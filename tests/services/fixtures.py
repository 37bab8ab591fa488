"""pytest plugin: session-scoped test services and per-test isolation helpers.

Enable it in ``tests/conftest.py``::

    pytest_plugins = ["tests.services.fixtures"]

Each service is resolved in this order:

1. an endpoint from the environment (``TIERMEM_TEST_REDIS_URL``,
   ``TIERMEM_TEST_REDIS_CLUSTER_NODES`` = ``host:port,host:port``,
   ``TIERMEM_TEST_BLOB_CONNECTION_STRING``, ``TIERMEM_TEST_COSMOS_ENDPOINT`` +
   ``TIERMEM_TEST_COSMOS_KEY``), wrapped in an object with the same attributes but no process
   control; per-test cleanup (``FLUSHALL``) runs against it, so point it at a dedicated server;
2. a local process (``redis-server``; Azurite and the Cosmos stand-in from ``node_modules``);
3. a container through testcontainers when a Docker engine answers (untested here);

and when none is available the test is skipped, or fails when ``CI=true``. Services that only
exist as local fakes (the managed-identity endpoint, the Key Vault fake, OAuth Azurite, Entra
Redis) have no environment override.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar

import pytest
import redis

from tests.services import containers
from tests.services._process import ServiceUnavailableError
from tests.services._service import StopOnExit
from tests.services.azurite import Azurite
from tests.services.cosmos import CosmosServer
from tests.services.entra_redis import EntraRedis
from tests.services.external import (
    ExternalBlob,
    ExternalCosmos,
    ExternalRedis,
    ExternalRedisCluster,
    parse_host_ports,
)
from tests.services.identity import ManagedIdentityEndpoint
from tests.services.keyvault import KeyVaultFake
from tests.services.redis import RedisCluster, RedisServer
from tests.services.tls import TlsMaterial, make_tls_material

__all__ = [
    "ENV_BLOB_CONNECTION_STRING",
    "ENV_COSMOS_ENDPOINT",
    "ENV_COSMOS_KEY",
    "ENV_REDIS_CLUSTER_NODES",
    "ENV_REDIS_URL",
    "BlobService",
    "CosmosService",
    "RedisClusterService",
    "RedisService",
    "in_ci",
    "require_local",
    "service_missing",
]

ENV_REDIS_URL = "TIERMEM_TEST_REDIS_URL"
ENV_REDIS_CLUSTER_NODES = "TIERMEM_TEST_REDIS_CLUSTER_NODES"
ENV_BLOB_CONNECTION_STRING = "TIERMEM_TEST_BLOB_CONNECTION_STRING"
ENV_COSMOS_ENDPOINT = "TIERMEM_TEST_COSMOS_ENDPOINT"
ENV_COSMOS_KEY = "TIERMEM_TEST_COSMOS_KEY"

RedisService = RedisServer | ExternalRedis
RedisClusterService = RedisCluster | ExternalRedisCluster
BlobService = Azurite | ExternalBlob
CosmosService = CosmosServer | ExternalCosmos

T = TypeVar("T")
L = TypeVar("L")
S = TypeVar("S", bound=StopOnExit)

_STARTUP_TIMES = pytest.StashKey[dict[str, float]]()

_Resolved = tuple[T, Callable[[], None] | None]


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def service_missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true`` (CI must never silently skip a service)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing test service fails the run)", pytrace=False)
    pytest.skip(reason)


def require_local(service: object, kind: type[L]) -> L:
    """Return ``service`` if it is a locally started ``kind`` (so it can be stopped/restarted).

    Fault-injection tests call this; with an external endpoint the test is skipped (failed in CI).
    """
    if isinstance(service, kind):
        return service
    service_missing(f"needs a local {kind.__name__} it can stop and restart; got {service!r}")


def _started(config: pytest.Config, name: str, start: Callable[[], T]) -> T:
    """``start()``, recording how long it took for the end-of-run summary."""
    started = time.perf_counter()
    service = start()
    config.stash.setdefault(_STARTUP_TIMES, {})[name] = time.perf_counter() - started
    return service


@dataclass(frozen=True)
class _Source(Generic[T]):
    """Where a resolved service can come from, tried in this order."""

    name: str
    from_env: Callable[[], T | None]
    local: Callable[[], T]
    container: Callable[[], tuple[T, Callable[[], None]]] | None


def _resolve(config: pytest.Config, source: _Source[T]) -> _Resolved[T]:
    """Environment, then local process, then container; ``(service, stop or None)``."""
    external = source.from_env()
    if external is not None:
        return external, None
    reasons: list[str] = []
    try:
        service = _started(config, source.name, source.local)
    except ServiceUnavailableError as exc:
        reasons.append(f"local: {exc}")
    else:
        stop = getattr(service, "stop", None)
        return service, stop
    if source.container is not None:
        if containers.docker_available():
            try:
                return source.container()
            except ServiceUnavailableError as exc:
                reasons.append(f"container: {exc}")
        else:
            reasons.append("container: no Docker engine answers `docker info`")
    service_missing(f"{source.name} is unavailable: " + "; ".join(reasons))


def _provide(config: pytest.Config, source: _Source[T]) -> Iterator[T]:
    """The body of a resolved session fixture: yield :func:`_resolve`'s service, then stop what
    it started (a local process or a container)."""
    service, stop = _resolve(config, source)
    try:
        yield service
    finally:
        if stop is not None:
            stop()


def _local_only(config: pytest.Config, name: str, start: Callable[[], S]) -> Iterator[S]:
    """Yield from a session fixture: a service that exists only as a local fake; stopped at the end."""
    try:
        service = _started(config, name, start)
    except ServiceUnavailableError as exc:
        service_missing(f"{name} is unavailable: {exc}")
    with service:
        yield service


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    times = config.stash.get(_STARTUP_TIMES, {})
    if times:
        summary = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in times.items())
        terminalreporter.write_line(f"tiermem test services started: {summary}")


# -- Redis ------------------------------------------------------------------------------------


def _redis_from_env() -> ExternalRedis | None:
    url = os.environ.get(ENV_REDIS_URL)
    return ExternalRedis(url=url) if url else None


_REDIS_SOURCE: _Source[RedisService] = _Source(
    "redis", _redis_from_env, RedisServer.start, containers.redis_container
)


def _cluster_from_env() -> ExternalRedisCluster | None:
    nodes = os.environ.get(ENV_REDIS_CLUSTER_NODES)
    return ExternalRedisCluster(startup_nodes=parse_host_ports(nodes)) if nodes else None


_REDIS_CLUSTER_SOURCE: _Source[RedisClusterService] = _Source(
    "redis-cluster", _cluster_from_env, RedisCluster.start, None
)


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisService]:
    """A Redis server (``.host``, ``.port``, ``.url``); a :class:`RedisServer` when local."""
    yield from _provide(request.config, _REDIS_SOURCE)


@pytest.fixture
def redis_url(redis_server: RedisService) -> str:
    """``redis_server.url`` after ``FLUSHALL`` (every test starts from an empty server)."""
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[RedisClusterService]:
    """A Redis Cluster (``.startup_nodes``, ``.url``). No container fallback: cluster nodes in a
    container announce container-internal addresses that the client cannot reach."""
    yield from _provide(request.config, _REDIS_CLUSTER_SOURCE)


@pytest.fixture
def redis_cluster_nodes(redis_cluster: RedisClusterService) -> list[tuple[str, int]]:
    """``redis_cluster.startup_nodes`` after ``FLUSHALL`` on every primary."""
    from redis.cluster import ClusterNode
    from redis.cluster import RedisCluster as SyncRedisCluster

    # ClusterNode.__init__ has no annotations in redis-py 8.
    nodes = [ClusterNode(host, port) for host, port in redis_cluster.startup_nodes]  # type: ignore[no-untyped-call]
    with SyncRedisCluster(startup_nodes=nodes, socket_timeout=5) as client:
        client.flushall(target_nodes=SyncRedisCluster.PRIMARIES)
    return redis_cluster.startup_nodes


# -- identity, TLS, Key Vault, Entra Redis ------------------------------------------------------


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """Session CA + loopback server certificate (``.ca_bundle``, ``.cert``, ``.key``)."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def managed_identity() -> Iterator[ManagedIdentityEndpoint]:
    """The local managed-identity endpoint. It does not touch ``os.environ``: use the
    ``managed_identity_env`` fixture or ``with managed_identity.activated():``."""
    with ManagedIdentityEndpoint.start() as endpoint:
        yield endpoint


@pytest.fixture
def managed_identity_env(
    managed_identity: ManagedIdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> ManagedIdentityEndpoint:
    """Sets ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` for one test (and unsets variables that
    would select another managed-identity flavour)."""
    for name in ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in managed_identity.env().items():
        monkeypatch.setenv(name, value)
    return managed_identity


@pytest.fixture(scope="session")
def key_vault(
    request: pytest.FixtureRequest, tls_material: TlsMaterial, managed_identity: ManagedIdentityEndpoint
) -> Iterator[KeyVaultFake]:
    """The Key Vault secrets fake (``.vault_url``, ``.set_secret()``); trust ``tls_material.ca_bundle``."""
    yield from _local_only(
        request.config, "key-vault", lambda: KeyVaultFake.start(tls=tls_material, identity=managed_identity)
    )


@pytest.fixture(scope="session")
def entra_redis(
    request: pytest.FixtureRequest, managed_identity: ManagedIdentityEndpoint
) -> Iterator[EntraRedis]:
    """A local Redis that accepts ``AUTH <oid> <token>`` for tokens from ``managed_identity``."""
    yield from _local_only(request.config, "entra-redis", lambda: EntraRedis.start(managed_identity))


# -- Blob ---------------------------------------------------------------------------------------


def _blob_from_env() -> ExternalBlob | None:
    value = os.environ.get(ENV_BLOB_CONNECTION_STRING)
    return ExternalBlob(connection_string=value) if value else None


_AZURITE_SOURCE: _Source[BlobService] = _Source(
    "azurite", _blob_from_env, Azurite.start, containers.azurite_container
)


@pytest.fixture(scope="session")
def azurite(request: pytest.FixtureRequest) -> Iterator[BlobService]:
    """Blob storage with shared-key auth (``.connection_string``, ``.blob_endpoint``, ``.account_name``)."""
    yield from _provide(request.config, _AZURITE_SOURCE)


@pytest.fixture(scope="session")
def azurite_oauth(request: pytest.FixtureRequest, tls_material: TlsMaterial) -> Iterator[Azurite]:
    """HTTPS Azurite with ``--oauth basic``: authenticate with ``managed_identity`` tokens and
    ``connection_verify=str(tls_material.ca_bundle)``."""
    yield from _local_only(request.config, "azurite-oauth", lambda: Azurite.start_oauth(tls_material))


@pytest.fixture
def blob_container_name() -> str:
    """A container name no other test uses (create it in the test; nothing is cleaned up)."""
    return f"t-{uuid.uuid4().hex[:24]}"


# -- Cosmos -------------------------------------------------------------------------------------


def _cosmos_from_env() -> ExternalCosmos | None:
    endpoint = os.environ.get(ENV_COSMOS_ENDPOINT)
    key = os.environ.get(ENV_COSMOS_KEY)
    if endpoint and not key:
        raise pytest.UsageError(f"{ENV_COSMOS_ENDPOINT} is set but {ENV_COSMOS_KEY} is not")
    return ExternalCosmos(endpoint=endpoint, key=key) if endpoint and key else None


_COSMOS_SOURCE: _Source[CosmosService] = _Source(
    "cosmos", _cosmos_from_env, CosmosServer.start, containers.cosmos_container
)


@pytest.fixture(scope="session")
def cosmos_server(request: pytest.FixtureRequest) -> Iterator[CosmosService]:
    """Cosmos DB (``.endpoint``, ``.key``); a patched ``@vercel/cosmosdb-server`` when local."""
    yield from _provide(request.config, _COSMOS_SOURCE)


@pytest.fixture(scope="session")
def cosmos_database_name() -> str:
    """A database name unique to this session."""
    return f"tiermem-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cosmos_container_name() -> str:
    """A container name no other test uses (create it in the test)."""
    return f"c-{uuid.uuid4().hex[:24]}"
