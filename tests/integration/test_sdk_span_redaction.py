"""Issue 13 item 7: Azure SDK spans exported to Application Insights carry no raw key or tier name.

With ``configure_azure_monitor`` (azure-core tracing on), azure-core's HTTP spans for Cosmos and
Blob calls put the request URL (``url.full``, ``http.url``) on the span: the blob name is the
percent-encoded key, the Cosmos item id is its base64url. The REAL Azure Monitor exporter sends to
a loopback ingestion server here, against Azurite and the Cosmos stand-in; nothing on the wire may
spell the key in any of its encodings, unless ``record_keys=True`` was asked for. Runs in a
subprocess: azure-core uses the *global* TracerProvider, which must not leak into the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.test_azure_monitor import _Ingestion
from tiermem import make_key
from tiermem._keys import b64_name, blob_name

pytestmark = [pytest.mark.blob, pytest.mark.timeout(180)]

SECRET_KEY = "customer:4711/e mail"

_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pydantic import SecretStr
    from tiermem import MemoryBuilder, Tier
    from tiermem.telemetry import configure_azure_monitor
    from tiermem.tiers.blob import BlobColdMemory
    from tiermem.tiers.cosmos import CosmosWarmMemory

    record_keys = sys.argv[1] == "record"
    handle = configure_azure_monitor(
        os.environ["AI_CS"], set_global=True, disable_offline_storage=True, record_keys=record_keys
    )

    async def main() -> None:
        warm = CosmosWarmMemory(
            os.environ["COSMOS_ENDPOINT"], "redaction", "memory", key=SecretStr(os.environ["COSMOS_KEY"]),
            retry_total=1,
        )
        cs = SecretStr(os.environ["CS"])
        cold = BlobColdMemory(container="redaction", connection_string=cs, retry_total=1)
        memory = (
            MemoryBuilder().with_warm(warm).with_cold(cold)
            .with_scope(tenant="acme", namespace="notes")
            .with_telemetry(record_keys=record_keys)
            .build()
        )
        key = os.environ["SECRET_KEY"]
        async with memory:
            await memory.setup()
            await memory.set(key, {"v": 1})
            await memory.set(key + ":cold", "archived", tier=Tier.COLD)
            assert await memory.get(key) == {"v": 1}
            assert await memory.get(key + ":cold") == "archived"
            assert await memory.get(key + ":missing") is None
            await memory.delete(key)

    asyncio.run(main())
    assert handle is not None and handle.force_flush(20_000)
    handle.shutdown()
    """
)


@pytest.fixture
def ingestion() -> Iterator[ThreadingHTTPServer]:
    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingestion)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(mode: str, ingestion: ThreadingHTTPServer, azurite: Any, cosmos_server: Any) -> str:
    port = ingestion.server_address[1]
    env = {
        **os.environ,
        "AI_CS": "InstrumentationKey=00000000-0000-0000-0000-000000000001;"
        f"IngestionEndpoint=http://127.0.0.1:{port}/;LiveEndpoint=http://127.0.0.1:{port}/",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "CS": azurite.connection_string,
        "COSMOS_ENDPOINT": cosmos_server.endpoint,
        "COSMOS_KEY": cosmos_server.key,
        "SECRET_KEY": SECRET_KEY,
        "PYTHONWARNINGS": "ignore",
    }
    subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, timeout=150, check=True)
    received: list[dict[str, Any]] = ingestion.received  # type: ignore[attr-defined]
    return json.dumps(received)


def _spellings(key: str) -> list[str]:
    """Every form of the key a tier puts on the wire: raw, base64url, blob name, item id, URL-quoted."""
    out: set[str] = set()
    for variant in (key, key + ":cold", key + ":missing"):
        name = blob_name(make_key("acme", "notes", variant)).split("/")[-1]
        out |= {variant, b64_name(variant), name, quote(name), quote(quote(name, safe=""), safe="")}
    out |= {quote(s, safe="") for s in out} | {json.dumps(s)[1:-1] for s in out}
    return sorted(out)


def test_sdk_spans_reach_the_wire_without_keys(
    ingestion: ThreadingHTTPServer, azurite: Any, cosmos_server: Any
) -> None:
    wire = _run("redact", ingestion, azurite, cosmos_server)
    received = json.loads(wire)
    dependencies = [
        i["data"]["baseData"] for i in received if i["data"]["baseType"] == "RemoteDependencyData"
    ]
    sdk = [d for d in dependencies if not d["name"].startswith("tiermem.")]
    assert sdk, "azure-core sent no spans: SDK tracing is not on"
    assert any(d.get("type") == "HTTP" or "url.full" in str(d) or d.get("data") for d in sdk)
    leaked = [s for s in _spellings(SECRET_KEY) if s in wire]
    assert leaked == [], f"on the wire: {leaked}; e.g. {[d.get('data') for d in sdk][:5]}"


def test_record_keys_keeps_the_urls(ingestion: ThreadingHTTPServer, azurite: Any, cosmos_server: Any) -> None:
    wire = _run("record", ingestion, azurite, cosmos_server)
    name = blob_name(make_key("acme", "notes", SECRET_KEY + ":cold")).split("/")[-1]
    # The opt-in really exports the URLs, so the test above can fail: the blob URL and the item URL.
    assert quote(name, safe="") in wire
    assert b64_name(SECRET_KEY) in wire
