"""What a :class:`~tiermem.tiers.cosmos.CosmosWarmMemory` connects with, validated before any I/O.

One of an Entra ID credential, an emulator account key or a ``CosmosClient`` the caller already
holds, and the SDK settings (retries, timeouts, consistency) for a client the adapter creates.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypedDict
from urllib.parse import urlsplit

from pydantic import SecretStr

from tiermem._errors import ConfigurationError
from tiermem._net import is_loopback
from tiermem._types import Clock

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.cosmos.aio import CosmosClient

__all__ = ["Connection", "CosmosOptions", "connection"]

# Defaults for a client this adapter creates: within MemoryClient's default 15 s warm deadline
# (the SDK's own are 9 throttling retries over up to 30 s, and a 65 s read timeout).
_CLIENT_DEFAULTS: Final[dict[str, Any]] = {
    "retry_total": 5,
    "retry_backoff_max": 10,
    "connection_timeout": 5,
    "read_timeout": 10,
}


class CosmosOptions(TypedDict, total=False):
    """The keyword arguments of :class:`CosmosWarmMemory` (and :meth:`tiermem.MemoryBuilder.with_cosmos`)."""

    credential: AsyncTokenCredential | None
    key: SecretStr | str | None
    client: CosmosClient | None
    max_concurrency: int
    retry_total: int | None
    retry_backoff_max: float | None
    retry_fixed_interval: float | None
    connection_timeout: float | None
    read_timeout: float | None
    connection_verify: bool | None
    consistency_level: str | None
    preferred_locations: Sequence[str] | None
    clock: Clock


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the account: exactly one of ``credential``, ``key`` and ``client``."""

    credential: AsyncTokenCredential | None
    key: SecretStr | None
    client: CosmosClient | None
    client_options: dict[str, Any]
    host: str
    max_concurrency: int


def connection(endpoint: str, database: str, container: str, options: CosmosOptions) -> Connection:
    """Validate the arguments of a ``CosmosWarmMemory``; the message of every refusal says what to change."""
    credential = options.get("credential")
    key = options.get("key")
    client = options.get("client")
    max_concurrency = options.get("max_concurrency", 16)
    retry_total = options.get("retry_total")
    retry_backoff_max = options.get("retry_backoff_max")
    retry_fixed_interval = options.get("retry_fixed_interval")
    connection_timeout = options.get("connection_timeout")
    read_timeout = options.get("read_timeout")
    connection_verify = options.get("connection_verify")
    consistency_level = options.get("consistency_level")
    preferred_locations = options.get("preferred_locations")
    given = [n for n, v in (("credential", credential), ("key", key), ("client", client)) if v is not None]
    if len(given) != 1:
        raise ConfigurationError(
            "give exactly one of credential= (Entra ID), key= (emulator account key) or client= "
            f"(a shared CosmosClient); got {given or 'none'}"
        )
    if isinstance(key, str):
        key = SecretStr(key)  # from here on never printed, logged or put in repr
    if key is not None:
        if not isinstance(key, SecretStr):
            raise ConfigurationError(
                "key must be a str or a pydantic.SecretStr (account keys are for emulators only)"
            )
        try:
            base64.b64decode(key.get_secret_value(), validate=True)
        except (ValueError, binascii.Error) as exc:
            # Otherwise the SDK fails on every request while signing it ("Incorrect padding").
            raise ConfigurationError("key is not a base64 Cosmos DB account key") from exc
    if credential is not None and isinstance(credential, str | SecretStr):
        raise ConfigurationError("credential must be an AsyncTokenCredential; pass account keys as key=")
    parts = urlsplit(endpoint)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ConfigurationError(f"endpoint must be an https:// URL, got {endpoint!r:.120}")
    loopback = is_loopback(endpoint)
    if parts.scheme != "https" and not loopback:
        raise ConfigurationError("endpoint must use https (plain http is accepted only for loopback)")
    if key is not None and not loopback:
        raise ConfigurationError(
            "key= is for a local emulator on loopback; use credential= (managed identity) for Azure"
        )
    if connection_verify is False and not loopback:
        raise ConfigurationError("connection_verify=False is accepted only for loopback endpoints")
    for what, name in (("database", database), ("container", container)):
        if not isinstance(name, str) or not name or any(c in name for c in "/\\?#"):
            raise ConfigurationError(f"{what} must be a non-empty name without / \\ ? #")
    if max_concurrency < 1:
        raise ConfigurationError("max_concurrency must be >= 1")
    if retry_total is not None and retry_total < 1:
        # azure-cosmos reads 0 as "unset" and falls back to its default of 9 throttling retries.
        raise ConfigurationError("retry_total must be >= 1 (azure-cosmos treats 0 as its default, 9)")
    for what, seconds in (
        ("retry_backoff_max", retry_backoff_max),
        ("retry_fixed_interval", retry_fixed_interval),
        ("connection_timeout", connection_timeout),
        ("read_timeout", read_timeout),
    ):
        if seconds is not None and not seconds > 0:
            raise ConfigurationError(f"{what} must be > 0 seconds")
    sdk: dict[str, Any] = {
        "retry_total": retry_total,
        "retry_backoff_max": retry_backoff_max,
        # The SDK takes this one in milliseconds; every duration here is in seconds.
        "retry_fixed_interval": None if retry_fixed_interval is None else round(retry_fixed_interval * 1000),
        "connection_timeout": connection_timeout,
        "read_timeout": read_timeout,
        "connection_verify": connection_verify,
        "consistency_level": consistency_level,
        "preferred_locations": list(preferred_locations) if preferred_locations is not None else None,
    }
    sdk = {name: value for name, value in sdk.items() if value is not None}
    if client is not None and sdk:
        raise ConfigurationError(
            f"{sorted(sdk)} configure a CosmosClient this adapter creates; with client= set them "
            "on that client instead"
        )
    client_options = {**_CLIENT_DEFAULTS, **sdk}
    if loopback:
        # An emulator or stand-in is one node that advertises its own address (a container IP, its
        # real port): talk to the endpoint we were given, so port mappings and proxies keep working.
        client_options["enable_endpoint_discovery"] = False
    return Connection(credential, key, client, client_options, parts.hostname, max_concurrency)
