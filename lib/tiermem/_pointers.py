"""The large-value layout (ADR 0005): where a version lives in cold and the warm pointer naming it.

Pure functions over records and keys, no I/O: the engine (``_engine.large``), collections and the
lifecycle maintenance all build and follow pointers the same way through this module.
"""

from __future__ import annotations

import hashlib
import secrets

import orjson

from tiermem._codec import Record, RecordKind, make_record
from tiermem._errors import CorruptValueError
from tiermem._types import MemoryKey, Tier

__all__ = ["cold_key", "cold_version", "new_version", "pointer", "pointer_target"]


def cold_key(mk: MemoryKey, version: str) -> MemoryKey:
    """Where one version of a large value lives in cold. The NUL separator cannot occur in a valid key,
    so versions never collide with user keys, and every write gets a fresh object: a write that
    loses its warm precondition can never destroy the committed version (ADR 0005)."""
    return MemoryKey(mk.tenant, mk.namespace, f"{mk.key}\x00{version}")


def new_version() -> str:
    return secrets.token_hex(8)


def pointer(record: Record, version: str) -> Record:
    """The warm record that names a cold version: its size, sha256, CRC and version."""
    digest = hashlib.sha256(record.payload).hexdigest()
    body = orjson.dumps({"size": len(record.payload), "sha256": digest, "crc": record.checksum, "v": version})
    return make_record(RecordKind.POINTER, body, expires_at=record.expires_at)


def pointer_target(mk: MemoryKey, ptr: Record) -> tuple[MemoryKey, str | None]:
    """The cold key a warm pointer refers to, and the sha256 it promises."""
    try:
        meta = orjson.loads(ptr.payload)
        version = meta.get("v")
        digest = meta.get("sha256")
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise CorruptValueError(
            "warm pointer does not parse", tier=Tier.WARM, operation="get", key=mk.key
        ) from exc
    target = cold_key(mk, version) if isinstance(version, str) else mk
    return target, digest if isinstance(digest, str) else None


def cold_version(mk: MemoryKey, record: Record) -> tuple[MemoryKey, Record]:
    """A fresh cold object key for ``record`` and the warm pointer to it."""
    version = new_version()
    return cold_key(mk, version), pointer(record, version)
