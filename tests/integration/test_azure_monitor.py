"""End to end to Azure Monitor's wire format, without Azure: a loopback ingestion endpoint receives
what the real ``azure-monitor-opentelemetry-exporter`` sends for tiermem operations."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, SqliteWarmMemory
from tiermem._errors import key_digest
from tiermem.telemetry import configure_azure_monitor

SECRET_KEY = "customer:4711:email"


class _Ingestion(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode("utf-8")
        # The track endpoint takes a JSON array (or newline-delimited envelopes).
        items = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(x) for x in text.splitlines() if x]
        )
        self.server.received.extend(  # type: ignore[attr-defined]
            {"path": self.path, **item} for item in items
        )
        reply = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the test reads what arrived
        pass


@pytest.fixture
def ingestion() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingestion)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_exporter_delivers_dependencies_and_metrics(
    ingestion: ThreadingHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    port = ingestion.server_address[1]
    connection_string = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;"
        f"IngestionEndpoint=http://127.0.0.1:{port}/;LiveEndpoint=http://127.0.0.1:{port}/"
    )
    handle = configure_azure_monitor(
        connection_string, set_global=False, disable_offline_storage=True, enable_azure_sdk_tracing=False
    )
    assert handle is not None
    memory = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(tmp_path / "w.db"))
        .with_cold(FileColdMemory(tmp_path / "cold"))
        .with_telemetry(
            tracer_provider=handle.tracer_provider,
            meter_provider=handle.meter_provider,
            detailed_spans=True,  # the hot calls as dependencies of their own (ADR 0016)
        )
        .build()
    )
    async with memory:
        await memory.set(SECRET_KEY, {"email": "x@example.com"})
        await memory.get(SECRET_KEY)
        await memory.mget([SECRET_KEY, "missing"])
    assert handle.force_flush(10_000)
    handle.shutdown()

    received: list[dict[str, Any]] = ingestion.received  # type: ignore[attr-defined]
    assert received, "the exporter sent nothing"
    assert all(item["path"].startswith("/v2.1/track") for item in received)
    kinds = {item["data"]["baseType"] for item in received}
    assert "RemoteDependencyData" in kinds and "MetricData" in kinds

    dependencies = [
        i["data"]["baseData"] for i in received if i["data"]["baseType"] == "RemoteDependencyData"
    ]
    names = {d["name"] for d in dependencies}
    assert {"tiermem.set", "tiermem.get", "tiermem.mget", "tiermem.hot.get", "tiermem.warm.set"} <= names
    hot_get = next(d for d in dependencies if d["name"] == "tiermem.hot.get")
    assert hot_get["properties"]["tiermem.tier"] == "hot"
    assert hot_get["success"] is True

    metric_names = {
        m["name"]
        for i in received
        if i["data"]["baseType"] == "MetricData"
        for m in i["data"]["baseData"]["metrics"]
    }
    assert {"tiermem.operations", "tiermem.operation.duration"} <= metric_names

    wire = json.dumps(received)
    assert SECRET_KEY not in wire  # raw keys never leave the process by default
    assert key_digest(SECRET_KEY) in wire


def test_no_connection_string_means_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    assert configure_azure_monitor() is None


def test_a_test_run_does_not_end_with_exporter_retries() -> None:
    """Issue 13 item 19: the exporter's own usage reporting used to retry against the stopped loopback
    ingestion server at interpreter exit, ending every run with "Retrying due to server request error"."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).relative_to(repo)}::test_exporter_delivers_dependencies_and_metrics",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Retrying due to server request error" not in out.stdout + out.stderr
