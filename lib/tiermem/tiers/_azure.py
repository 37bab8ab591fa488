"""What the Azure SDK adapters (Cosmos, Blob) share: the failures they translate, and SDK names both use."""

from __future__ import annotations

__all__ = ["SDK_FAILURES", "TRANSPORT_FAILURES", "ClientAuthenticationError", "MatchConditions"]

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
