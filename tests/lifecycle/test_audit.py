"""Audit trail: one event per write, delete, erasure, archival and quota refusal, to the ``tiermem.audit``
logger and to OpenTelemetry log records; keys hashed unless ``record_keys``; the principal attached."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from tests.lifecycle.rigs import embedded_stores
from tiermem import MemoryBuilder, Quota, QuotaExceededError, QuotaPolicy, Retention, RetentionPolicy
from tiermem._errors import key_digest
from tiermem.lifecycle import AUDIT_LOGGER, DAY, acting_as


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


def ops(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["tiermem.audit.operation"], e["tiermem.audit.outcome"]) for e in found]


async def test_one_event_per_operation_with_hashed_keys_and_the_principal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    memory = MemoryBuilder().with_quotas(QuotaPolicy(Quota(max_items=3)))
    for tier, store in zip(("hot", "warm", "cold"), embedded_stores(tmp_path), strict=True):
        getattr(memory, f"with_{tier}")(store)
    async with memory.build() as client:
        view = client.scoped(tenant="acme", namespace="app")
        with acting_as("ops@contoso"):
            await view.set("secret-key", 1)
            await view.mset({"a": 1, "b": 2})
            await view.delete("a")
            await view.collection("c").put("item", {"x": 1})
            with pytest.raises(QuotaExceededError):
                await view.set("one-too-many", 1)
            await client.maintain(
                retention=RetentionPolicy(Retention(archive_after=DAY)), now=time.time() + 2 * DAY
            )
            await client.forget(tenant="acme")
    found = events(caplog)
    assert ops(found) == [
        ("set", "ok"),
        ("mset", "ok"),
        ("delete", "ok"),
        ("put", "ok"),
        ("set", "quota_exceeded"),
        ("archive", "ok"),
        ("archive", "ok"),
        ("forget", "started"),
        ("forget", "ok"),
    ]
    assert {e["tiermem.audit.principal"] for e in found} == {"ops@contoso"}
    assert {e["tiermem.tenant"] for e in found} == {"acme"}
    first = found[0]
    assert first["tiermem.key_hash"] == key_digest("secret-key") and "tiermem.key" not in first
    assert "secret-key" not in json.dumps(found)  # raw keys never leave without record_keys
    refusal = found[4]
    assert (refusal["tiermem.audit.resource"], refusal["tiermem.audit.limit"]) == ("items", 3)
    erased = found[-1]
    assert erased["tiermem.namespace"] == "*" and erased["tiermem.audit.deleted"] > 0
    record = next(r for r in caplog.records if r.name == AUDIT_LOGGER)
    assert getattr(record, "tiermem.audit.operation") == "set"  # fields are record attributes too


async def test_record_keys_and_opentelemetry_log_records(tmp_path: Path) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    builder = MemoryBuilder().with_telemetry(logger_provider=provider, record_keys=True)
    for tier, store in zip(("hot", "warm", "cold"), embedded_stores(tmp_path), strict=True):
        getattr(builder, f"with_{tier}")(store)
    async with builder.build() as client:
        view = client.scoped(tenant="globex", namespace="n")
        with acting_as("svc-principal"):
            await view.set("visible-key", 1)
            await client.forget(tenant="globex", namespace="n")
    logs = [data.log_record for data in exporter.get_finished_logs()]
    attrs = [dict(r.attributes or {}) for r in logs]
    assert [(a["tiermem.audit.operation"], a["tiermem.audit.outcome"]) for a in attrs] == [
        ("set", "ok"),
        ("forget", "started"),
        ("forget", "ok"),
    ]
    assert attrs[0]["tiermem.key"] == "visible-key" and "tiermem.key_hash" not in attrs[0]
    assert all(a["tiermem.audit.principal"] == "svc-principal" for a in attrs)
    assert logs[0].event_name == "tiermem.audit"
    provider.shutdown()


async def test_nothing_is_emitted_when_nobody_listens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=AUDIT_LOGGER)
    builder = MemoryBuilder()
    for tier, store in zip(("hot", "warm", "cold"), embedded_stores(tmp_path), strict=True):
        getattr(builder, f"with_{tier}")(store)
    async with builder.build() as client:
        assert not client._core.governance.watching  # the write path skips the guard entirely
        await client.set("k", 1)
    assert events(caplog) == []
