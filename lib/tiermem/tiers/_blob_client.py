"""Making the ``BlobServiceClient`` a :class:`~tiermem.tiers.blob.BlobColdMemory` talks through.

Which source (an account URL with an Entra ID credential, an emulator connection string, or a
client the caller already holds), the SDK settings for a client the adapter creates (transfer
sizes, retry policy, timeouts), and their validation: all before any I/O.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypedDict
from urllib.parse import urlsplit

from pydantic import SecretStr

from tiermem._errors import ConfigurationError
from tiermem._net import is_loopback
from tiermem._types import Clock
from tiermem.tiers._azure import refused_at_connect

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import BlobServiceClient

__all__ = ["BlobOptions", "open_service"]

# Defaults for a client this adapter creates (the SDK's own are tuned for bulk transfer: 15 s
# first backoff, 64 MiB single puts). A single put sends its body as one bytes object, which aiohttp
# writes (and TLS-encrypts) on the event loop in one go and warns about above 1 MiB; larger values go
# as staged blocks read from a stream in chunks, several in parallel.
DEFAULT_MAX_SINGLE_PUT_SIZE: Final = 1024 * 1024
DEFAULT_MAX_BLOCK_SIZE: Final = 4 * 1024 * 1024
DEFAULT_MAX_SINGLE_GET_SIZE: Final = 32 * 1024 * 1024
DEFAULT_MAX_CHUNK_GET_SIZE: Final = 4 * 1024 * 1024
DEFAULT_RETRY_TOTAL: Final = 3
DEFAULT_RETRY_BACKOFF: Final = 0.5
DEFAULT_RETRY_BACKOFF_BASE: Final = 2.0
DEFAULT_CONNECTION_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 60.0

# Settings of a client this adapter creates; with service_client= they belong on that client.
_CLIENT_TUNING: Final = (
    "max_single_put_size",
    "max_block_size",
    "max_single_get_size",
    "max_chunk_get_size",
    "retry_total",
    "retry_backoff",
    "retry_backoff_base",
    "connection_timeout",
    "read_timeout",
    "connection_verify",
    "audience",
)


def _looks_like_connection_string(text: str) -> bool:
    """``DefaultEndpointsProtocol=...;AccountKey=...``: ``key=value`` pairs separated by semicolons."""
    head = text.strip().split(";", 1)[0]
    return "=" in head and "://" not in head


class BlobOptions(TypedDict, total=False):
    """The keyword arguments of :class:`BlobColdMemory` (and :meth:`tiermem.MemoryBuilder.with_blob`)."""

    credential: AsyncTokenCredential | None
    connection_string: SecretStr | str | None
    service_client: BlobServiceClient | None
    max_concurrency: int
    transfer_concurrency: int
    max_single_put_size: int | None
    max_block_size: int | None
    max_single_get_size: int | None
    max_chunk_get_size: int | None
    retry_total: int | None
    retry_backoff: float | None
    retry_backoff_base: float | None
    connection_timeout: float | None
    read_timeout: float | None
    connection_verify: str | os.PathLike[str] | None
    audience: str | None
    clock: Clock


@functools.cache
def _retry_class() -> type[Any]:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.storage.blob.aio import ExponentialRetry

    class _Retry(ExponentialRetry):
        """The SDK's exponential retry, minus retrying what waiting does not fix.

        The storage retry policy sits before the bearer-token policy, so a ``ClientAuthenticationError``
        raised while fetching a token (``CredentialUnavailableError``, a managed-identity endpoint
        answering 400) would otherwise be retried with backoff; waiting does not fix a missing
        identity, and azure-identity already retries the endpoint's transient failures.

        A connection refused at connect, or a host name that does not exist, is not retried either
        (ADR 0017): with the defaults that took about 16 s of backoff before the error, for an
        answer the network gave at once (a wrong endpoint, a service that is not running).
        Timeouts, resets, 408/500/503 and TLS failures keep the SDK's retries.
        """

        def increment(
            self,
            settings: dict[str, Any],
            request: Any,
            response: Any = None,
            error: Any = None,
        ) -> bool:
            if isinstance(error, ClientAuthenticationError) or (
                error is not None and refused_at_connect(error)
            ):
                return False
            result: bool = super().increment(settings, request, response=response, error=error)
            return result

    return _Retry


def _retry_policy(total: int, backoff: float, base: float) -> Any:
    # ExponentialRetry annotates its backoffs as int, but only sleeps on them: sub-second floats work.
    options: dict[str, Any] = {
        "retry_total": total,
        "initial_backoff": backoff,
        "increment_base": base,
        "random_jitter_range": backoff / 2,
    }
    return _retry_class()(**options)


def _check_tls(url: str, what: str) -> None:
    if urlsplit(url).scheme != "https" and not is_loopback(url):
        raise ConfigurationError(f"{what} must use https (plain http is accepted only for loopback)")


def _client_options(options: BlobOptions) -> dict[str, Any]:
    """Keyword arguments for a ``BlobServiceClient`` this adapter creates, validated."""
    max_single_put_size = options.get("max_single_put_size")
    max_block_size = options.get("max_block_size")
    max_single_get_size = options.get("max_single_get_size")
    max_chunk_get_size = options.get("max_chunk_get_size")
    retry_total = options.get("retry_total")
    retry_backoff = options.get("retry_backoff")
    retry_backoff_base = options.get("retry_backoff_base")
    connection_timeout = options.get("connection_timeout")
    read_timeout = options.get("read_timeout")
    connection_verify = options.get("connection_verify")
    audience = options.get("audience")
    sizes = {
        "max_single_put_size": max_single_put_size or DEFAULT_MAX_SINGLE_PUT_SIZE,
        "max_block_size": max_block_size or DEFAULT_MAX_BLOCK_SIZE,
        "max_single_get_size": max_single_get_size or DEFAULT_MAX_SINGLE_GET_SIZE,
        "max_chunk_get_size": max_chunk_get_size or DEFAULT_MAX_CHUNK_GET_SIZE,
    }
    for name, explicit in (
        ("max_single_put_size", max_single_put_size),
        ("max_block_size", max_block_size),
        ("max_single_get_size", max_single_get_size),
        ("max_chunk_get_size", max_chunk_get_size),
    ):
        if explicit is not None and explicit < 1:
            raise ConfigurationError(f"{name} must be >= 1 byte")
    total = DEFAULT_RETRY_TOTAL if retry_total is None else retry_total
    if total < 0:
        raise ConfigurationError("retry_total must be >= 0")
    timings = {
        "retry_backoff": DEFAULT_RETRY_BACKOFF if retry_backoff is None else retry_backoff,
        "retry_backoff_base": DEFAULT_RETRY_BACKOFF_BASE
        if retry_backoff_base is None
        else retry_backoff_base,
    }
    for name, value in timings.items():
        if not (math.isfinite(value) and value >= 0):
            raise ConfigurationError(f"{name} must be a finite number of seconds >= 0")
    timeouts = {
        "connection_timeout": DEFAULT_CONNECTION_TIMEOUT
        if connection_timeout is None
        else connection_timeout,
        "read_timeout": DEFAULT_READ_TIMEOUT if read_timeout is None else read_timeout,
    }
    for name, value in timeouts.items():
        if not (math.isfinite(value) and value > 0):
            raise ConfigurationError(f"{name} must be > 0 seconds")
    kwargs: dict[str, Any] = {
        **sizes,
        # Stage blocks as sub-streams of the body (the SDK's "memory efficient" path), never as
        # byte copies; the SDK takes it only for blocks at least this large.
        "min_large_block_upload_threshold": sizes["max_block_size"],
        **timeouts,
        "retry_policy": _retry_policy(total, timings["retry_backoff"], timings["retry_backoff_base"]),
    }
    if connection_verify is not None:
        if isinstance(connection_verify, bool):
            raise ConfigurationError(
                "connection_verify takes a CA bundle path; TLS verification cannot be switched off"
            )
        kwargs["connection_verify"] = os.fspath(connection_verify)
    if audience is not None:
        kwargs["audience"] = audience
    return kwargs


def open_service(account_url: str | None, options: BlobOptions) -> tuple[BlobServiceClient, bool]:
    """The service client to use, and whether the adapter created it (and so must close it)."""
    from azure.storage.blob.aio import BlobServiceClient

    client_options = _client_options(options)
    credential = options.get("credential")
    connection_string = options.get("connection_string")
    service_client = options.get("service_client")
    given = [
        name
        for name, value in (
            ("account_url", account_url),
            ("connection_string", connection_string),
            ("service_client", service_client),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ConfigurationError(
            "give exactly one of account_url= with credential= (Entra ID), connection_string= "
            f"(a local emulator) or service_client= (a shared BlobServiceClient); got {given or 'none'}"
        )
    if account_url is not None and _looks_like_connection_string(account_url):
        # Never echo it: a connection string holds the account key.
        raise ConfigurationError(
            "account_url looks like a storage connection string: pass it as connection_string= "
            "(local emulators only; for Azure use account_url='https://<account>.blob.core.windows.net' "
            "with credential=)"
        )
    if isinstance(connection_string, str):
        connection_string = SecretStr(connection_string)  # from here on never printed or logged
    if credential is not None and account_url is None:
        raise ConfigurationError("credential= goes with account_url=; the other sources carry their own")

    service: BlobServiceClient
    if account_url is not None:
        if credential is None:
            raise ConfigurationError(
                "account_url needs credential=, an AsyncTokenCredential such as ManagedIdentityCredential"
            )
        if isinstance(credential, str | bytes | SecretStr | Mapping) or not hasattr(credential, "get_token"):
            raise ConfigurationError(
                "credential must be an AsyncTokenCredential; account keys are accepted only in "
                "connection_string= for a local emulator"
            )
        parts = urlsplit(account_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"account_url must be an https:// URL, got {account_url!r:.120}")
        _check_tls(account_url, "account_url")
        service = BlobServiceClient(account_url, credential=credential, **client_options)
    elif connection_string is not None:
        if not isinstance(connection_string, SecretStr):
            raise ConfigurationError(
                "connection_string must be a str or a pydantic.SecretStr (it holds an account key)"
            )
        if client_options.get("audience") is not None:
            raise ConfigurationError("audience= applies to account_url= with an Entra ID credential")
        try:
            service = BlobServiceClient.from_connection_string(
                connection_string.get_secret_value(), **client_options
            )
        except ValueError as exc:
            # The SDK's messages here are fixed texts ("... blank or malformed"), never the string.
            raise ConfigurationError("connection_string is not a valid storage connection string") from exc
        # No I/O has happened: the HTTP session is created on the first request.
        if not is_loopback(service.url):
            raise ConfigurationError(
                "connection strings are accepted only for a local emulator on a loopback address; "
                "for Azure use account_url= with a managed-identity credential"
            )
    else:
        assert service_client is not None
        explicit = {name for name in _CLIENT_TUNING if options.get(name) is not None}
        if explicit:
            raise ConfigurationError(
                f"{sorted(explicit)} configure a BlobServiceClient this adapter creates; with "
                "service_client= set them on that client instead"
            )
        _check_tls(service_client.url, "service_client")
        service = service_client
    return service, service_client is None
