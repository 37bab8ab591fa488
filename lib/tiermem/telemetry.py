"""Public: wire tiermem's OpenTelemetry traces and metrics to Azure Monitor (Application Insights).

What the library records lives in the private ``tiermem._instrumentation``.

The library itself uses only the OpenTelemetry API; this module is for the edges (CLI, service,
your application's startup). It needs ``pip install 'tiermem[monitor]'``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["MonitorHandle", "configure_azure_monitor"]

logger = logging.getLogger("tiermem")


@dataclass
class MonitorHandle:
    """The providers ``configure_azure_monitor`` made; flush or shut them down on exit."""

    tracer_provider: Any
    meter_provider: Any

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        traced = bool(self.tracer_provider.force_flush(timeout_millis))
        measured = bool(self.meter_provider.force_flush(timeout_millis))
        return traced and measured

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure_azure_monitor(
    connection_string: str | None = None,
    *,
    service_name: str = "tiermem",
    set_global: bool = True,
    export_interval_millis: int = 60_000,
    disable_offline_storage: bool = False,
    enable_azure_sdk_tracing: bool = True,
    credential: Any = None,
) -> MonitorHandle | None:
    """Export traces and metrics to Application Insights when a connection string is available.

    Uses ``connection_string`` or ``APPLICATIONINSIGHTS_CONNECTION_STRING``; with neither it does
    nothing and returns ``None``, so edges can call it unconditionally.

    Args:
        connection_string: the Application Insights connection string (not a secret credential,
            but keep it out of logs anyway).
        service_name: ``service.name`` resource attribute (cloud role name in App Insights).
        set_global: install the providers globally (what applications want). Tests pass ``False``
            and hand the providers to ``MemoryBuilder.with_telemetry`` instead.
        export_interval_millis: how often metrics are exported.
        disable_offline_storage: do not keep failed telemetry on disk for retry.
        enable_azure_sdk_tracing: let the Azure SDKs (Cosmos, Blob, Identity) emit their HTTP spans
            into the same trace (azure-core native OpenTelemetry tracing).
        credential: an ``azure.identity`` credential for Entra-authenticated ingestion (needed when
            the component disables local auth; the identity needs Monitoring Metrics Publisher).
            Not closed here: the caller owns it.

    Returns:
        A handle with the providers (for ``force_flush`` / ``shutdown``), or ``None``.
    """
    connection_string = connection_string or os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not connection_string:
        return None
    try:
        from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter, AzureMonitorTraceExporter
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError("Azure Monitor export needs: pip install 'tiermem[monitor]'") from exc

    resource = Resource.create({"service.name": service_name})
    exporter_options: dict[str, Any] = {
        "connection_string": connection_string,
        "disable_offline_storage": disable_offline_storage,
    }
    if credential is not None:
        exporter_options["credential"] = credential
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(AzureMonitorTraceExporter(**exporter_options)))
    reader = PeriodicExportingMetricReader(
        AzureMonitorMetricExporter(**exporter_options), export_interval_millis=export_interval_millis
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    if enable_azure_sdk_tracing:
        from azure.core.settings import settings

        settings.tracing_enabled = True
    logger.info("exporting traces and metrics to Azure Monitor (service.name=%s)", service_name)
    return MonitorHandle(tracer_provider, meter_provider)
