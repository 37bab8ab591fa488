"""Settings read from the environment (names in ``.env.example``) and the builder they describe.

Only the edges (CLI, service, ``MemoryBuilder.from_settings``) read settings; library code
takes everything as arguments. With no Azure settings the result is the embedded default.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tiermem._errors import ConfigurationError
from tiermem._net import is_loopback

if TYPE_CHECKING:
    from tiermem._builder import MemoryBuilder

__all__ = ["MemorySettings", "builder_from_settings", "is_loopback"]


class MemorySettings(BaseSettings):
    """Configuration for a ``MemoryClient``: each field maps to ``TIERMEM_<NAME>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="TIERMEM_", env_file=None, extra="ignore")

    # Hot: Redis / Azure Managed Redis
    redis_url: str | None = Field(None, description="redis:// or rediss:// URL; unset = in-process hot tier")
    redis_cluster: bool = Field(
        False, description="Use the OSS cluster protocol (Azure Managed Redis OSS policy)"
    )
    redis_auth: Literal["auto", "entra", "password", "none"] = Field(
        "auto", description="auto: password if one is configured, none on loopback, else Entra ID"
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password (local/dev only; prefer Key Vault)"
    )
    redis_password_secret: str | None = Field(
        None, description="Name of the Key Vault secret holding the password"
    )
    redis_ca_file: Path | None = Field(None, description="CA bundle for a private Redis TLS certificate")

    # Warm: Cosmos DB for NoSQL
    cosmos_endpoint: str | None = Field(None, description="https://<account>.documents.azure.com:443/")
    cosmos_database: str = "tiermem"
    cosmos_container: str = "memory"
    cosmos_key: SecretStr | None = Field(None, description="Account key: emulators and stand-ins only")

    # Cold: Blob Storage
    blob_account_url: str | None = Field(None, description="https://<account>.blob.core.windows.net")
    blob_container: str = "tiermem"
    blob_connection_string: SecretStr | None = Field(None, description="Azurite only")

    # Identity and secrets
    azure_client_id: str | None = Field(
        None,
        validation_alias=AliasChoices("AZURE_CLIENT_ID", "TIERMEM_AZURE_CLIENT_ID"),
        description="Client id of a user-assigned managed identity",
    )
    key_vault_url: str | None = Field(None, description="https://<vault>.vault.azure.net/")

    # Embedded default and policy
    local_dir: Path = Field(
        Path(".tiermem"), description="Where the embedded warm/cold tiers keep their files"
    )
    hot_max_items: int = 10_000
    hot_ttl: float | None = 300.0
    compress_min_bytes: int = 4096
    tenant: str = "default"
    namespace: str = "default"

    # Data lifecycle (docs/adr/0011): retention run by `tiermem maintain`, quotas enforced on writes
    archive_after_days: float | None = Field(None, gt=0, description="Move values idle this long to cold")
    expire_after_days: float | None = Field(None, gt=0, description="Delete values idle this long")
    quota_max_items: int | None = Field(None, ge=0, description="Default per-tenant item quota")
    quota_max_bytes: int | None = Field(None, ge=0, description="Default per-tenant byte quota")

    applicationinsights_connection_string: SecretStr | None = Field(
        None, validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )

    @property
    def uses_azure(self) -> bool:
        return bool(self.cosmos_endpoint or self.blob_account_url or self.key_vault_url)


class _OwnedCredential:
    """Lets the client close a credential that ``from_settings`` created (and only that one)."""

    def __init__(self, credential: Any) -> None:
        self.credential = credential

    async def aclose(self) -> None:
        closed = self.credential.close()
        if inspect.isawaitable(closed):  # azure.identity.aio credentials close asynchronously
            await closed


def make_credential(settings: MemorySettings, *, sync: bool = False) -> Any:
    """User-assigned ``ManagedIdentityCredential`` if a client id is set, else ``DefaultAzureCredential``.

    Args:
        sync: an ``azure.identity`` (not ``.aio``) credential; redis-entraid calls ``get_token`` in sync.
    """
    try:
        if sync:
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
        else:
            from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential  # type: ignore[assignment]
    except ImportError as exc:
        raise ImportError("Azure credentials need azure-identity: pip install 'tiermem[identity]'") from exc
    if settings.azure_client_id:
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    return DefaultAzureCredential()


def builder_from_settings(settings: MemorySettings) -> MemoryBuilder:
    """Describe tiers from settings: each tier is the Azure service where configured, else embedded."""
    from tiermem._builder import MemoryBuilder
    from tiermem.tiers.local import FileColdMemory, LocalHotMemory, SqliteWarmMemory

    builder = MemoryBuilder().with_policy(
        hot_ttl=settings.hot_ttl, compress_min_bytes=settings.compress_min_bytes
    )
    builder.with_scope(tenant=settings.tenant, namespace=settings.namespace)
    _with_lifecycle(builder, settings)
    credential: Any = None

    def shared_credential() -> Any:
        nonlocal credential
        if credential is None:
            credential = make_credential(settings)
            builder.own(_OwnedCredential(credential))
        return credential

    if settings.redis_url:
        _with_redis(builder, settings, shared_credential)
    else:
        builder.with_hot(LocalHotMemory(max_items=settings.hot_max_items))

    if settings.cosmos_endpoint:
        if settings.cosmos_key is not None:
            if not is_loopback(settings.cosmos_endpoint):
                raise ConfigurationError(
                    "TIERMEM_COSMOS_KEY is accepted only for a local emulator; use managed identity for Azure"
                )
            builder.with_cosmos(
                settings.cosmos_endpoint,
                settings.cosmos_database,
                settings.cosmos_container,
                key=settings.cosmos_key,
            )
        else:
            builder.with_cosmos(
                settings.cosmos_endpoint,
                settings.cosmos_database,
                settings.cosmos_container,
                credential=shared_credential(),
            )
    else:  # always a durable tier: a write that returns must have reached one
        builder.with_warm(SqliteWarmMemory(settings.local_dir / "warm.db"))

    if settings.blob_connection_string is not None:
        builder.with_blob(
            container=settings.blob_container, connection_string=settings.blob_connection_string
        )
    elif settings.blob_account_url:
        builder.with_blob(settings.blob_account_url, settings.blob_container, credential=shared_credential())
    else:
        builder.with_cold(FileColdMemory(settings.local_dir / "cold"))
    return builder


def _with_redis(builder: MemoryBuilder, settings: MemorySettings, credential: Any) -> None:
    url = settings.redis_url
    assert url is not None
    mode = settings.redis_auth
    if mode == "auto":
        if settings.redis_password is not None or settings.redis_password_secret:
            mode = "password"
        elif is_loopback(url):
            mode = "none"
        else:
            mode = "entra"
    options: dict[str, Any] = {"cluster": settings.redis_cluster}
    if settings.redis_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ca_file)
    if mode == "entra":
        sync_credential = make_credential(settings, sync=True)
        builder.own(_OwnedCredential(sync_credential))
        builder.with_redis(url, credential=sync_credential, **options)
    elif mode == "password":
        if settings.redis_password is not None:
            builder.with_redis(url, password=settings.redis_password, **options)
        elif settings.redis_password_secret and settings.key_vault_url:
            from tiermem.secrets import KeyVaultSecret

            secret = KeyVaultSecret(
                settings.key_vault_url, settings.redis_password_secret, credential=credential()
            )
            builder.own(secret)
            builder.with_redis(url, password=secret, **options)
        else:
            raise ConfigurationError(
                "TIERMEM_REDIS_AUTH=password needs TIERMEM_REDIS_PASSWORD, or TIERMEM_REDIS_PASSWORD_SECRET "
                "with TIERMEM_KEY_VAULT_URL"
            )
    else:
        builder.with_redis(url, **options)


def _with_lifecycle(builder: MemoryBuilder, settings: MemorySettings) -> None:
    from tiermem.lifecycle import DAY, Quota, QuotaPolicy, Retention, RetentionPolicy

    archive, expire = settings.archive_after_days, settings.expire_after_days
    if archive is not None or expire is not None:
        builder.with_retention(
            RetentionPolicy(
                Retention(
                    archive_after=None if archive is None else archive * DAY,
                    expire_after=None if expire is None else expire * DAY,
                )
            )
        )
    if settings.quota_max_items is not None or settings.quota_max_bytes is not None:
        builder.with_quotas(QuotaPolicy(Quota(settings.quota_max_items, settings.quota_max_bytes)))
