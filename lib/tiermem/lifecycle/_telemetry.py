"""Metrics of data lifecycle (OpenTelemetry API, global meter provider): what the runbooks watch.

- ``tiermem.quota.refusals`` (counter; ``tiermem.tenant``, ``tiermem.quota.resource``)
- ``tiermem.erasure.objects`` (counter; ``tiermem.tier``): objects deleted by ``forget``
- ``tiermem.retention.items`` (counter; ``tiermem.retention.action`` = archive | expire)
- ``tiermem.retention.bytes`` (counter, By; same attribute)
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["LifecycleMetrics", "lifecycle_metrics"]

try:
    from opentelemetry import metrics as _otel_metrics

    _OTEL = True
except ImportError:  # pragma: no cover - exercised in the no-extras install
    _OTEL = False


class LifecycleMetrics:
    """Counters through the OTel API (no-ops until an SDK is configured)."""

    def __init__(self) -> None:
        self._refusals: Any = None
        self._erased: Any = None
        self._items: Any = None
        self._bytes: Any = None
        if _OTEL:
            meter = _otel_metrics.get_meter("tiermem")
            self._refusals = meter.create_counter("tiermem.quota.refusals", unit="{write}")
            self._erased = meter.create_counter("tiermem.erasure.objects", unit="{object}")
            self._items = meter.create_counter("tiermem.retention.items", unit="{item}")
            self._bytes = meter.create_counter("tiermem.retention.bytes", unit="By")

    def quota_refused(self, tenant: str, resource: str) -> None:
        if self._refusals is not None:
            self._refusals.add(1, {"tiermem.tenant": tenant, "tiermem.quota.resource": resource})

    def erased(self, tier: str, count: int) -> None:
        if self._erased is not None and count:
            self._erased.add(count, {"tiermem.tier": tier})

    def retention(self, action: str, items: int, nbytes: int) -> None:
        if self._items is not None and items:
            self._items.add(items, {"tiermem.retention.action": action})
            self._bytes.add(nbytes, {"tiermem.retention.action": action})


@functools.cache
def lifecycle_metrics() -> LifecycleMetrics:
    """The process's lifecycle instruments (the OTel API's proxies follow a provider set later)."""
    return LifecycleMetrics()
