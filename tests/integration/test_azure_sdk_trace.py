"""One trace from the client method through the tier span into the Azure SDK's own spans (azure-core
native OpenTelemetry tracing), against Azurite. Runs in a subprocess: it installs a *global*
TracerProvider (which azure-core uses), and that must not leak into the rest of the test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.blob, pytest.mark.timeout(120)]

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from azure.core.settings import settings
    from pydantic import SecretStr
    from tiermem import MemoryBuilder, SqliteWarmMemory, Tier
    from tiermem.tiers.blob import BlobColdMemory

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    settings.tracing_enabled = True  # what configure_azure_monitor() switches on

    async def main() -> None:
        cold = BlobColdMemory(container="trace", connection_string=SecretStr(os.environ["CS"]), retry_total=1)
        memory = MemoryBuilder().with_warm(SqliteWarmMemory(sys.argv[1])).with_cold(cold).build()
        async with memory:
            await memory.setup()
            await memory.set("doc", "archived", tier=Tier.COLD)
            exporter.clear()
            assert await memory.get("doc") == "archived"

    asyncio.run(main())
    print(json.dumps([
        {"name": s.name, "id": s.context.span_id, "trace": s.context.trace_id,
         "parent": s.parent.span_id if s.parent else None,
         "attrs": {k: str(v) for k, v in (s.attributes or {}).items()}}
        for s in exporter.get_finished_spans()
    ]))
    """
)


def test_one_trace_from_client_to_the_sdk_http_call(azurite: Any, tmp_path: Path) -> None:
    env = {**os.environ, "CS": azurite.connection_string, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "warm.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=True,
    )
    spans = json.loads(out.stdout.strip().splitlines()[-1])
    by_id = {s["id"]: s for s in spans}

    def ancestors(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            names.append(span["name"])
        return names

    root = next(s for s in spans if s["name"] == "tiermem.get")
    cold_get = next(s for s in spans if s["name"] == "tiermem.cold.get")
    assert ancestors(cold_get) == ["tiermem.get"]
    # Everything azure-core recorded for the download sits under the cold tier span, in one trace.
    sdk = [s for s in spans if not s["name"].startswith("tiermem.")]
    assert sdk, f"azure-core emitted no spans: {[s['name'] for s in spans]}"
    assert all(s["trace"] == root["trace"] for s in spans)
    under_cold = [s for s in sdk if "tiermem.cold.get" in ancestors(s)]
    assert under_cold, f"no SDK span under tiermem.cold.get: {[(s['name'], ancestors(s)) for s in sdk]}"
    http = [s for s in under_cold if any(k.startswith(("http.", "url.")) for k in s["attrs"])]
    assert http, "no HTTP-level span (http.* / url.* attributes) under the cold tier span"
