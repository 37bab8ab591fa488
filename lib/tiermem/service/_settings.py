"""``ServiceSettings``: what the HTTP service reads from the environment (``TIERMEM_AUTH_*`` and more).

The memory tiers themselves are configured by :class:`tiermem._settings.MemorySettings`; this
class holds only what the HTTP edge adds: authentication and request limits.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from tiermem._settings import ENV_PREFIX, StrictSettings

__all__ = ["ServiceSettings"]

_MIB = 1024 * 1024


def _service(name: str) -> AliasChoices:
    """``TIERMEM_SERVICE_<NAME>`` only: no bare name, no second spelling (issue 13 item 17)."""
    return AliasChoices(f"{ENV_PREFIX}SERVICE_{name.upper()}")


class ServiceSettings(StrictSettings):
    """Configuration of the HTTP service. Each field maps to the environment variable in its description.

    Read like :class:`~tiermem.MemorySettings`: the environment and ``.env``, blanks unset,
    unknown ``TIERMEM_AUTH_*``/``TIERMEM_SERVICE_*`` names and bad values fail with a
    ``ConfigurationError`` naming the variable.

    Attributes:
        auth_mode: ``entra`` validates Entra ID bearer tokens; ``none`` is for local development
            (no token; every caller is tenant :attr:`tenant`; ``serve`` binds to loopback only).
        auth_tenant_id: the Entra tenant (GUID) that issues the callers' tokens, or ``organizations``
            (or ``common``) for a multi-tenant app; then ``auth_allowed_tenants`` says which tenants.
        auth_allowed_tenants: multi-tenant apps only: Entra tenant ids allowed to call, comma-separated,
            or ``*`` for any (each caller still only reaches its own tiermem tenant).
        auth_audience: accepted ``aud`` values, comma-separated (the app ID URI and/or client id).
        auth_authority: the Entra authority host (change it for sovereign clouds).
        auth_openid_config_url: OpenID configuration document; default
            ``{authority}/{tenant}/v2.0/.well-known/openid-configuration``.
        auth_jwks_url: the JWKS URL; when set, OpenID discovery is skipped.
        auth_accept_v1_tokens: also accept v1 tokens (issuer ``https://sts.windows.net/{tenant}/``).
        auth_tenant_claim: the claim that names the caller's tiermem tenant (default ``tid``).
        auth_read_role / auth_write_role / auth_stats_role / auth_admin_role: app-role names in the
            ``roles`` claim (admin: ``/v1/admin/forget`` and ``/v1/admin/usage`` of the own tenant).
        auth_leeway: seconds of clock skew allowed for ``exp``, ``nbf`` and ``iat``.
        auth_jwks_cache_seconds: how long fetched signing keys are used before a refresh.
        auth_jwks_min_refresh_seconds: least time between two refreshes caused by unknown ``kid`` values.
        auth_http_timeout: seconds for one OpenID/JWKS request.
        tenant: the tiermem tenant of every caller when ``auth_mode`` is ``none``.
        max_body_bytes: largest request body for single-value routes (413 above it).
        max_batch_body_bytes: largest request body for ``:mget`` and ``:mset``.
        ready_timeout: seconds ``/readyz`` waits for every tier to answer ``ping``.
        max_response_bytes: largest ``:mget`` response; above it the caller is told to ask for fewer keys.
        limit_concurrency / keep_alive_timeout / max_header_bytes / backlog: uvicorn's limits for
            ``tiermem serve`` (docs/security.md, "Slow clients").
        monitor_entra: ``tiermem serve`` exports to Application Insights with the managed identity
            (``AZURE_CLIENT_ID``), for components that accept Entra-authenticated ingestion only.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    _owned_prefixes: ClassVar[tuple[str, ...]] = ("TIERMEM_AUTH_", "TIERMEM_SERVICE_")

    auth_mode: Literal["entra", "none"] = Field("entra", description="TIERMEM_AUTH_MODE: entra | none")
    auth_tenant_id: str | None = Field(
        None, description="TIERMEM_AUTH_TENANT_ID: Entra tenant GUID, or organizations/common"
    )
    auth_allowed_tenants: str | None = Field(
        None,
        description="TIERMEM_AUTH_ALLOWED_TENANTS: multi-tenant apps: tenant GUIDs, comma-separated, or *",
    )
    auth_audience: str | None = Field(
        None, description="TIERMEM_AUTH_AUDIENCE: accepted audiences, comma-separated"
    )
    auth_authority: str = Field(
        "https://login.microsoftonline.com", description="TIERMEM_AUTH_AUTHORITY: Entra authority host"
    )
    auth_openid_config_url: str | None = Field(
        None, description="TIERMEM_AUTH_OPENID_CONFIG_URL: OpenID configuration document URL"
    )
    auth_jwks_url: str | None = Field(
        None, description="TIERMEM_AUTH_JWKS_URL: skip discovery, use these keys"
    )
    auth_accept_v1_tokens: bool = Field(
        False, description="TIERMEM_AUTH_ACCEPT_V1_TOKENS: also accept sts.windows.net (v1) issuers"
    )
    auth_tenant_claim: str = Field("tid", description="TIERMEM_AUTH_TENANT_CLAIM: claim naming the tenant")
    auth_read_role: str = Field("Memory.Read", description="TIERMEM_AUTH_READ_ROLE")
    auth_write_role: str = Field("Memory.Write", description="TIERMEM_AUTH_WRITE_ROLE")
    auth_stats_role: str = Field("Memory.Read", description="TIERMEM_AUTH_STATS_ROLE: needed for /v1/stats")
    auth_admin_role: str = Field(
        "Memory.Admin", description="TIERMEM_AUTH_ADMIN_ROLE: erasure and usage of the caller's tenant"
    )
    auth_leeway: float = Field(60.0, ge=0, le=300, description="TIERMEM_AUTH_LEEWAY: clock skew (seconds)")
    auth_jwks_cache_seconds: float = Field(
        6 * 3600.0, gt=0, description="TIERMEM_AUTH_JWKS_CACHE_SECONDS: signing-key cache lifetime"
    )
    auth_jwks_min_refresh_seconds: float = Field(
        60.0, ge=0, description="TIERMEM_AUTH_JWKS_MIN_REFRESH_SECONDS: rate limit for unknown-kid refreshes"
    )
    auth_http_timeout: float = Field(10.0, gt=0, description="TIERMEM_AUTH_HTTP_TIMEOUT (seconds)")

    tenant: str = Field("default", description="TIERMEM_TENANT: the tenant of every caller with auth none")

    max_body_bytes: int = Field(
        2 * _MIB,
        ge=1024,
        validation_alias=_service("max_body_bytes"),
        description="TIERMEM_SERVICE_MAX_BODY_BYTES: largest body for single-value routes",
    )
    max_batch_body_bytes: int = Field(
        16 * _MIB,
        ge=1024,
        validation_alias=_service("max_batch_body_bytes"),
        description="TIERMEM_SERVICE_MAX_BATCH_BODY_BYTES: largest body for :mget and :mset",
    )
    ready_timeout: float = Field(
        5.0,
        gt=0,
        validation_alias=_service("ready_timeout"),
        description="TIERMEM_SERVICE_READY_TIMEOUT: seconds /readyz waits for the tiers",
    )
    max_response_bytes: int = Field(
        32 * _MIB,
        ge=1024,
        validation_alias=_service("max_response_bytes"),
        description="TIERMEM_SERVICE_MAX_RESPONSE_BYTES: largest :mget response body (413 above it: page)",
    )
    limit_concurrency: int = Field(
        1000,
        ge=1,
        validation_alias=_service("limit_concurrency"),
        description="TIERMEM_SERVICE_LIMIT_CONCURRENCY: connections + requests at once (503 above it)",
    )
    keep_alive_timeout: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias=_service("keep_alive_timeout"),
        description="TIERMEM_SERVICE_KEEP_ALIVE_TIMEOUT: seconds an idle connection stays open",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        validation_alias=_service("max_header_bytes"),
        description="TIERMEM_SERVICE_MAX_HEADER_BYTES: request line + headers before the server refuses",
    )
    monitor_entra: bool = Field(
        False,
        validation_alias=_service("monitor_entra"),
        description="TIERMEM_SERVICE_MONITOR_ENTRA: export telemetry with the managed identity (Entra)",
    )
    backlog: int = Field(
        2048,
        ge=1,
        validation_alias=_service("backlog"),
        description="TIERMEM_SERVICE_BACKLOG: pending TCP connections the OS queues",
    )

    @property
    def audiences(self) -> list[str]:
        """The accepted audiences (``auth_audience`` split on commas, blanks dropped)."""
        return _split(self.auth_audience)

    @property
    def allowed_tenants(self) -> list[str]:
        """``auth_allowed_tenants`` split on commas (``["*"]`` allows any tenant)."""
        return _split(self.auth_allowed_tenants)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]
