"""The tiermem exception tree.

Every error carries the tier, the operation and the key (as a stable hash unless the
caller opted into raw keys), and chains its cause with ``raise ... from exc``::

    TierMemError
    +-- InvalidInputError (ValueError)       bad input, rejected before any I/O
    |   +-- InvalidKeyError                  empty, >512 bytes, control characters
    |   +-- InvalidScopeError                tenant / namespace outside [A-Za-z0-9._-]{1,64}
    |   +-- InvalidValueError                not JSON-compatible, NaN, too deep
    |   +-- InvalidTTLError                  negative, zero, NaN or missing where required
    |   +-- ValueTooLargeError               larger than every tier that could hold it
    |   +-- ResultTooLargeError              a batch read would return more than mget_max_bytes
    +-- ConfigurationError                   the builder or settings cannot make a client
    |   +-- NotProvisionedError              a Blob container / Cosmos database or container is missing
    +-- ClientClosedError                    use after ``aclose()``
    +-- QuotaExceededError                   a write would take a tenant past max_items/max_bytes
    +-- TierError                            a tier was reached and answered with a failure
        +-- TierUnavailableError             the tier could not be reached (timeout, refused, open circuit)
        |   +-- CircuitOpenError             its circuit breaker is open: the call was not attempted
        |   +-- WriteOutcomeUnknownError     a write was sent and may or may not have landed
        +-- CorruptValueError                stored bytes fail their integrity check (or seal)
        +-- ConflictError                    an ``if_match`` / ``if_absent`` precondition failed
        +-- ThrottledError                   the service throttled us past its retry budget
        +-- AuthenticationError              credentials rejected (401/403, WRONGPASS, NOAUTH)
        +-- BatchWriteError                  part of an ``mset`` failed; lists failed and written keys
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiermem._types import Tier

__all__ = [
    "AuthenticationError",
    "BatchWriteError",
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "CorruptValueError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidScopeError",
    "InvalidTTLError",
    "InvalidValueError",
    "NotProvisionedError",
    "QuotaExceededError",
    "ResultTooLargeError",
    "ThrottledError",
    "TierError",
    "TierMemError",
    "TierUnavailableError",
    "ValueTooLargeError",
    "WriteOutcomeUnknownError",
    "key_digest",
]


def key_digest(key: str) -> str:
    """Stable short hash of a key, safe to put in logs, spans and error messages."""
    return hashlib.blake2s(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class TierMemError(Exception):
    """Root of every error tiermem raises.

    Attributes:
        tier: the tier involved, or ``None`` when the error is not tied to one tier.
        operation: the public or tier operation (``"get"``, ``"set"``, ...), if known.
        key_hash: a stable hash of the logical key, never the raw key.
    """

    def __init__(
        self,
        message: str,
        *,
        tier: Tier | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.tier = tier
        self.operation = operation
        self.key_hash = key_digest(key) if key is not None else None
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.tier is not None:
            where.append(f"tier={self.tier.value}")
        if self.operation is not None:
            where.append(f"op={self.operation}")
        if self.key_hash is not None:
            where.append(f"key#{self.key_hash}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class InvalidInputError(TierMemError, ValueError):
    """The caller's input is invalid; nothing was read or written."""


class InvalidKeyError(InvalidInputError):
    """The key is empty, longer than 512 UTF-8 bytes, or holds control characters."""


class InvalidScopeError(InvalidInputError):
    """A tenant or namespace is outside ``[A-Za-z0-9._-]{1,64}`` (or ends with a dot)."""


class InvalidValueError(InvalidInputError):
    """The value cannot be stored: not JSON-compatible, NaN/Infinity, or nested too deep."""


class InvalidTTLError(InvalidInputError):
    """The TTL is negative, zero, not finite, or missing where the tier requires one."""


class ValueTooLargeError(InvalidInputError):
    """The encoded value is larger than every configured tier that could hold it."""

    def __init__(
        self,
        message: str,
        *,
        size: int,
        limit: int,
        tier: Tier | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        self.size = size
        self.limit = limit
        super().__init__(message, tier=tier, operation=operation, key=key)


class ResultTooLargeError(InvalidInputError):
    """A batch read would return more decoded bytes than its budget (``Policy.mget_max_bytes``, or
    the call's ``max_bytes``): ask for fewer keys per call (page through them).

    Raised as soon as the values decoded so far, plus the next one's size, pass the budget, before
    that value is inflated; nothing is returned.
    """

    def __init__(self, message: str, *, limit: int, operation: str | None = "mget") -> None:
        self.limit = limit
        super().__init__(message, operation=operation)


class ConfigurationError(TierMemError):
    """The builder or the settings describe a client that cannot work; the message says what to change."""


class NotProvisionedError(ConfigurationError):
    """The configured Blob container or Cosmos database/container does not exist.

    A setup step is missing (``tiermem init``, :meth:`tiermem.MemoryClient.setup` or the Bicep
    deployment), not an outage: it is not retried and does not open the tier's circuit breaker
    (ADR 0017). Carries the tier and operation that found it out.
    """


class ClientClosedError(TierMemError):
    """The client or tier was used after ``aclose()``."""


class TierError(TierMemError):
    """A tier failed to perform an operation."""


class TierUnavailableError(TierError):
    """The tier could not be reached: refused, reset, timed out, or its circuit breaker is open."""


class CircuitOpenError(TierUnavailableError):
    """The tier's circuit breaker is open: the call was not attempted."""


class WriteOutcomeUnknownError(TierUnavailableError):
    """A write was sent but its outcome could not be confirmed (a timeout, a broken connection):
    it may or may not have landed. Never reported as a conflict or a success (ADR 0006)."""


class CorruptValueError(TierError):
    """Stored bytes fail their integrity check (bad header, checksum, seal or gzip stream)."""


class ConflictError(TierError):
    """An optimistic-concurrency precondition (``if_match`` ETag or create-only) failed."""


class ThrottledError(TierError):
    """The service kept throttling (429/503) after the SDK's retry budget was spent."""


class AuthenticationError(TierError):
    """The tier rejected our credentials (401/403, WRONGPASS, NOAUTH)."""


class BatchWriteError(TierError):
    """Part of a batch write failed. Batches are not atomic across keys.

    Attributes:
        written: keys whose write reached the durable tier.
        failed: key -> the exception that stopped it.
    """

    def __init__(
        self,
        message: str,
        *,
        written: Sequence[str],
        failed: Mapping[str, BaseException],
        tier: Tier | None = None,
        operation: str | None = "mset",
    ) -> None:
        self.written: tuple[str, ...] = tuple(written)
        self.failed: dict[str, BaseException] = dict(failed)
        super().__init__(
            f"{message}: {len(self.failed)} failed, {len(self.written)} written",
            tier=tier,
            operation=operation,
        )


class QuotaExceededError(TierMemError):
    """A write would take a tenant past its ``max_items`` or ``max_bytes`` quota; nothing was written.

    Attributes:
        tenant: the tenant whose quota refused the write.
        resource: ``"items"`` or ``"bytes"``.
        used: the tenant's counted usage of that resource before the write.
        limit: the quota.
    """

    def __init__(
        self, message: str, *, tenant: str, resource: str, used: int, limit: int, operation: str | None = None
    ) -> None:
        self.tenant = tenant
        self.resource = resource
        self.used = used
        self.limit = limit
        super().__init__(message, operation=operation)
