"""What the Azure SDK adapters (Cosmos, Blob) share: the failures they translate, and SDK names both use."""

from __future__ import annotations

import errno
import socket
from typing import Final

__all__ = [
    "SDK_FAILURES",
    "TRANSPORT_FAILURES",
    "ClientAuthenticationError",
    "MatchConditions",
    "refused_at_connect",
]

try:
    import aiohttp
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        ServiceRequestError,
        ServiceResponseError,
    )
except ImportError:  # pragma: no cover - without the extras the adapters refuse to construct
    SDK_FAILURES: tuple[type[Exception], ...] = ()
    TRANSPORT_FAILURES: tuple[type[Exception], ...] = ()
else:
    # What the SDKs and their transport raise for service and network failures. Anything else is a
    # bug (ours or the SDK's) and propagates as itself rather than posing as a tier error.
    SDK_FAILURES = (AzureError, aiohttp.ClientError, OSError, TimeoutError)
    # The request never got an answer: refused/reset connections, TLS failures, client-side timeouts
    # (after the SDK's retries). OSError also covers TimeoutError and socket errors that escape
    # azure-core's wrapping.
    TRANSPORT_FAILURES = (ServiceRequestError, ServiceResponseError, aiohttp.ClientError, OSError)

# getaddrinfo answers that are final: the name does not exist (a transient resolver failure,
# EAI_AGAIN, is not among them and stays retried).
_NO_SUCH_NAME: Final = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code
)


def refused_at_connect(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the connection could not even be opened
    because nothing listens there or the host name does not exist.

    Those answers come back at once and waiting does not change them: on the first contact they mean
    a wrong endpoint or a service that is not running, so they are not worth the SDK's retry
    backoff. Resets, timeouts and TLS failures are not included (they can be transient).
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return True
        if isinstance(current, socket.gaierror) and current.errno in _NO_SUCH_NAME:
            return True
        inner = getattr(current, "inner_exception", None)  # azure-core's wrapped transport error
        os_error = getattr(current, "os_error", None)  # aiohttp.ClientConnectorError
        pending.extend(
            e
            for e in (inner, os_error, current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        )
    return False
