"""What the Azure SDK adapters (Cosmos, Blob) share: the failures they translate into tiermem errors."""

from __future__ import annotations

__all__ = ["SDK_FAILURES"]

try:
    import aiohttp
    from azure.core.exceptions import AzureError
except ImportError:  # pragma: no cover - without the extras the adapters refuse to construct
    SDK_FAILURES: tuple[type[Exception], ...] = ()
else:
    # What the SDKs and their transport raise for service and network failures. Anything else is a
    # bug (ours or the SDK's) and propagates as itself rather than posing as a tier error.
    SDK_FAILURES = (AzureError, aiohttp.ClientError, OSError, TimeoutError)
