"""Services that the test run did not start: endpoints from the environment or containers.

They expose the same connection attributes as the local launchers (``host``/``port``/``url``,
``connection_string``/``blob_endpoint``, ``endpoint``/``key``) but no ``stop``/``restart``: fault
tests that need process control use :func:`tests.services.fixtures.require_local`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "ExternalBlob",
    "ExternalCosmos",
    "ExternalRedis",
    "ExternalRedisCluster",
    "parse_connection_string",
    "parse_host_ports",
]


@dataclass(frozen=True)
class ExternalRedis:
    """A Redis server given by URL (``redis://`` or ``rediss://``)."""

    url: str
    origin: str = "environment"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379


@dataclass(frozen=True)
class ExternalRedisCluster:
    """A Redis Cluster given by some of its nodes."""

    startup_nodes: list[tuple[str, int]]
    origin: str = "environment"

    @property
    def url(self) -> str:
        host, port = self.startup_nodes[0]
        return f"redis://{host}:{port}/0"


@dataclass(frozen=True)
class ExternalBlob:
    """A Blob endpoint given by a storage connection string."""

    connection_string: str
    origin: str = "environment"
    _fields: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fields", parse_connection_string(self.connection_string))

    @property
    def account_name(self) -> str:
        return self._fields.get("AccountName", "devstoreaccount1")

    @property
    def account_key(self) -> str:
        """The ``AccountKey`` field; empty when the connection string has none (SAS)."""
        return self._fields.get("AccountKey", "")

    @property
    def blob_endpoint(self) -> str:
        explicit = self._fields.get("BlobEndpoint")
        if explicit:
            return explicit.rstrip("/")
        protocol = self._fields.get("DefaultEndpointsProtocol", "https")
        suffix = self._fields.get("EndpointSuffix", "core.windows.net")
        return f"{protocol}://{self.account_name}.blob.{suffix}"

    @property
    def account_url(self) -> str:
        return self.blob_endpoint

    def __repr__(self) -> str:
        # The connection string holds the account key: never print it.
        return f"ExternalBlob(blob_endpoint={self.blob_endpoint!r}, origin={self.origin!r})"


@dataclass(frozen=True)
class ExternalCosmos:
    """A Cosmos DB endpoint and key."""

    endpoint: str
    key: str = field(repr=False)
    origin: str = "environment"


def parse_connection_string(value: str) -> dict[str, str]:
    """``"A=1;B=2;"`` -> ``{"A": "1", "B": "2"}`` (values may contain ``=``)."""
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        name, sep, rest = part.partition("=")
        if not sep:
            raise ValueError(f"malformed connection string segment {name.strip()!r} (expected Name=Value)")
        fields[name.strip()] = rest.strip()
    return fields


def parse_host_ports(value: str) -> list[tuple[str, int]]:
    """``"h1:7000,h2:7001"`` -> ``[("h1", 7000), ("h2", 7001)]``."""
    nodes: list[tuple[str, int]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("no host:port given")
    return nodes
