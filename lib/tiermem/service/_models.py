"""Request and response bodies (pydantic), which are also the OpenAPI schemas, plus their conversions."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from tiermem._codec import Value
from tiermem._protocols import Tier

__all__ = [
    "MAX_BATCH_KEYS",
    "ErrorBody",
    "ErrorDetail",
    "GetResponse",
    "HealthResponse",
    "MgetRequest",
    "MgetResponse",
    "MsetRequest",
    "MsetResponse",
    "PutRequest",
    "PutResponse",
    "ReadyResponse",
    "SessionResponse",
    "StatsResponse",
    "TurnAppended",
    "TurnsResponse",
    "decode_value",
    "encode_value",
    "from_http_etag",
    "to_http_etag",
]

MAX_BATCH_KEYS: Final = 1000
NAMESPACE_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"

Encoding = Literal["json", "base64"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------------------


class ValidationDetail(BaseModel):
    loc: list[str]
    msg: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_input, not_found, unavailable")
    message: str = Field(description="Short human-readable reason (never a stack trace)")
    details: list[ValidationDetail] | None = Field(None, description="Request validation errors (422 only)")
    written: list[str] | None = Field(None, description=":mset partial failure: keys that were written")
    failed: list[str] | None = Field(None, description=":mset partial failure: keys that were not")


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- memory -------------------------------------------------------------------------------------------


class PutRequest(_Strict):
    value: Any = Field(description="Any JSON value; with encoding=base64, a base64 string of raw bytes")
    ttl: float | None = Field(None, gt=0, description="Seconds until the value expires; null keeps it")
    tier: Tier | None = Field(None, description="Pin to one tier (hot needs a ttl); null = write-through")
    encoding: Encoding = Field("json", description="json (default) or base64 for a bytes value")


class PutResponse(BaseModel):
    namespace: str
    key: str
    etag: str | None = Field(description="Opaque ETag for If-Match, when the durable tier returns one")


class GetResponse(BaseModel):
    namespace: str
    key: str
    value: Any = Field(description="The value; a base64 string when encoding is base64")
    encoding: Encoding
    tier: Tier = Field(description="The tier that served the read")
    etag: str | None = Field(description="Opaque ETag (present on durable-tier reads; use consistent=true)")
    expires_at: float | None = Field(
        description="Expiry (Unix seconds) of the copy that answered, null for none. A hot-tier copy "
        "expires within hot_ttl even when the value does not; consistent=true gives the value's own."
    )


class MgetRequest(_Strict):
    keys: list[str] = Field(max_length=MAX_BATCH_KEYS, description=f"At most {MAX_BATCH_KEYS} keys")


class MgetResponse(BaseModel):
    values: dict[str, Any] = Field(description="Every requested key; null for a miss")
    base64: list[str] = Field(
        default_factory=list, description="Keys whose value is raw bytes, given as a base64 string"
    )


class MsetRequest(_Strict):
    items: dict[str, Any] = Field(
        max_length=MAX_BATCH_KEYS, description=f"key -> JSON value, at most {MAX_BATCH_KEYS}"
    )
    ttl: float | None = Field(None, gt=0, description="Seconds until every item expires; null keeps them")
    tier: Tier | None = Field(None, description="Pin every item to one tier; null = write-through")


class MsetResponse(BaseModel):
    stored: int = Field(description="How many items were written")


# -- sessions -----------------------------------------------------------------------------------------


class TurnAppended(BaseModel):
    session_id: str
    index: int = Field(description="0-based index of the new turn")


class TurnsResponse(BaseModel):
    session_id: str
    turns: list[dict[str, Any]] = Field(description="Chronological; with limit=N, the last N turns")


class SessionResponse(BaseModel):
    session_id: str
    turn_count: int
    created_at: float = Field(description="Unix seconds")
    updated_at: float = Field(description="Unix seconds")
    archived: bool


# -- operations ---------------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    status: Literal["ok"]


class TierReadiness(BaseModel):
    status: Literal["ok", "unavailable", "auth_failed", "error", "timeout"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    tiers: dict[str, TierReadiness]


class LatencyStats(BaseModel):
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class TierStatsModel(BaseModel):
    hits: int
    misses: int
    errors: int
    writes: int
    hit_rate: float | None
    latency: dict[str, LatencyStats]
    circuit: str


class CompressionStats(BaseModel):
    bytes_in: int
    bytes_out: int


class StatsResponse(BaseModel):
    """Process-wide counters of this service instance (all tenants together)."""

    tiers: dict[str, TierStatsModel]
    promotions: int
    fallthroughs: int
    compression: CompressionStats
    dirty_keys: int
    dirty_overflows: int


# -- conversions --------------------------------------------------------------------------------------


def encode_value(value: Value) -> tuple[Any, Encoding]:
    """A stored value as JSON: bytes become a base64 string."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii"), "base64"
    return value, "json"


def decode_value(value: Any, encoding: Encoding) -> Value:
    """A request value as the library stores it; raises ``ValueError`` for bad base64."""
    if encoding == "json":
        return value
    if not isinstance(value, str):
        raise ValueError("with encoding=base64 the value must be a base64 string")  # noqa: TRY004 - a 400
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the value is not valid base64") from exc


def to_http_etag(etag: str | None) -> str | None:
    """Tier ETags may hold quotes (Cosmos does); the HTTP form is an opaque, always-valid entity tag."""
    if etag is None:
        return None
    return '"' + base64.urlsafe_b64encode(etag.encode("utf-8")).rstrip(b"=").decode("ascii") + '"'


def from_http_etag(header: str) -> str | None:
    """The tier ETag inside an HTTP entity tag we issued, or ``None`` if it cannot be one of ours."""
    tag = header.strip()
    if len(tag) < 2 or not tag.startswith('"') or not tag.endswith('"'):
        return None
    inner = tag[1:-1]
    try:
        return base64.urlsafe_b64decode(inner + "=" * (-len(inner) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
