"""The audit trail: one structured event per write, delete, erasure, archival and quota refusal.

Events go to the Python logger ``tiermem.audit`` at INFO when that logger is enabled for INFO (the
message is the event as JSON and every field is also a record attribute), and, when an OpenTelemetry
SDK ``LoggerProvider`` is set, to an OTel log record with the same attributes, which Azure Monitor
stores in ``AppTraces``. If Python logging is also bridged into OTel, leave ``tiermem.audit`` below
INFO so events are not exported twice. Keys are
recorded as a stable hash unless the client was built with ``record_keys=True``. The principal is
whatever the caller set with :func:`acting_as` (the service sets the token's subject).
See docs/observability.md ("Audit trail") for the fields and the KQL.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import orjson

from tiermem._errors import key_digest

__all__ = ["AUDIT_LOGGER", "Audit", "acting_as", "current_principal"]

AUDIT_LOGGER: Final = "tiermem.audit"
_logger = logging.getLogger(AUDIT_LOGGER)
_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("tiermem_principal", default=None)
_MAX_KEYS_PER_EVENT: Final = 100
_RECHECK_SECONDS: Final = 1.0

try:  # the logs API ships with opentelemetry-api; without it only Python logging is used
    from opentelemetry import _logs as _otel_logs
    from opentelemetry._logs import SeverityNumber
    from opentelemetry._logs._internal import NoOpLoggerProvider, ProxyLoggerProvider

    _OTEL = True
except ImportError:  # pragma: no cover - exercised in the no-extras install
    _OTEL = False


def current_principal() -> str | None:
    """The principal audit events are attributed to in this context (``None``: not set)."""
    return _principal.get()


@contextmanager
def acting_as(principal: str | None) -> Iterator[None]:
    """Attribute the audit events of this block (and tasks it starts) to ``principal``."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


def set_principal(principal: str | None) -> None:
    """Attribute the rest of this context's audit events to ``principal`` (request-scoped contexts)."""
    _principal.set(principal)


class Audit:
    """Emits audit events. Cheap when nobody listens: one level check and one provider check."""

    def __init__(self, *, record_keys: bool = False, logger_provider: object = None) -> None:
        self.record_keys = record_keys
        self._provider: Any = logger_provider
        self._otel_logger: Any = None
        self._next_check = 0.0

    def _otel(self) -> Any:
        if not _OTEL:
            return None
        if self._provider is None and self._otel_logger is None:
            # Looking the global provider up reads the environment (a microsecond per write): the
            # answer "none installed" is kept for a second, as for tracing (docs/observability.md).
            now = time.monotonic()
            if now < self._next_check:
                return None
            self._next_check = now + _RECHECK_SECONDS
        provider = self._provider if self._provider is not None else _otel_logs.get_logger_provider()
        if isinstance(provider, NoOpLoggerProvider | ProxyLoggerProvider):
            return None
        if self._otel_logger is None or self._otel_logger[0] is not provider:
            self._otel_logger = (provider, provider.get_logger("tiermem.audit"))
        return self._otel_logger[1]

    @property
    def enabled(self) -> bool:
        """Whether anyone receives audit events (a Python handler at INFO, or an OTel SDK)."""
        return _logger.isEnabledFor(logging.INFO) or self._otel() is not None

    def emit(
        self,
        operation: str,
        outcome: str,
        *,
        tenant: str,
        namespace: str | None,
        keys: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit one event. ``keys`` are hashed unless ``record_keys``; at most 100 are listed."""
        otel = self._otel()
        if otel is None and not _logger.isEnabledFor(logging.INFO):
            return
        shown = [k if self.record_keys else key_digest(k) for k in keys[:_MAX_KEYS_PER_EVENT]]
        event: dict[str, Any] = {
            "tiermem.audit.time": time.time(),
            "tiermem.audit.operation": operation,
            "tiermem.audit.outcome": outcome,
            "tiermem.tenant": tenant,
            "tiermem.namespace": namespace or "*",
            "tiermem.audit.principal": current_principal() or "",
            "tiermem.audit.keys": len(keys),
        }
        if shown:
            event["tiermem.key" if self.record_keys else "tiermem.key_hash"] = (
                shown[0] if len(shown) == 1 else ",".join(shown)
            )
        for name, value in (extra or {}).items():
            event[f"tiermem.audit.{name}"] = value
        if _logger.isEnabledFor(logging.INFO):
            _logger.info("%s", orjson.dumps(event).decode("utf-8"), extra=event)
        if otel is not None:
            otel.emit(
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=f"tiermem audit: {operation} {outcome}",
                event_name="tiermem.audit",
                attributes=event,
            )
