"""One error shape for every edge: ``{"error": {"code": "...", "message": "...", ...}}``.

The HTTP API answers with it and ``tiermem --json`` prints it, so a script handles both the same
way. :func:`error_code` is the one table from exception class to stable code.
"""

from __future__ import annotations

from typing import Any, Final

from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    QuotaExceededError,
    ResultTooLargeError,
    ThrottledError,
    TierUnavailableError,
    ValueTooLargeError,
)

__all__ = ["error_body", "error_code"]

_CODES: Final[tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...]] = (
    (QuotaExceededError, "quota_exceeded"),
    (ValueTooLargeError, "value_too_large"),
    (ResultTooLargeError, "result_too_large"),
    (InvalidInputError, "invalid_input"),
    (ConflictError, "conflict"),
    (AuthenticationError, "storage_auth_failed"),
    (BatchWriteError, "partial_write"),
    ((TierUnavailableError, ThrottledError, ClientClosedError), "unavailable"),
    (CorruptValueError, "corrupt_value"),
    (ConfigurationError, "configuration_error"),
    (ImportError, "missing_extra"),
)


def error_code(exc: BaseException) -> str:
    """The stable code of an exception (most specific class first); ``internal_error`` otherwise."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return "internal_error"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error document: ``code`` and ``message`` plus optional fields (``details``, ``written``...)."""
    return {"error": {"code": code, "message": message, **extra}}
