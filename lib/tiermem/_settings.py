"""Settings read from the environment (names in ``.env.example``), resolved into a plain tier plan.

Only the edges (CLI, service, ``MemoryBuilder.from_settings``) read settings; library code takes
everything as arguments. :func:`resolve` turns :class:`MemorySettings` into a :class:`SettingsPlan`
of plain values (which service backs each tier, where its local files live); the builder applies
it, so this module never imports the builder. With no Azure settings the plan is the embedded
default.

Strictness (issue 13): a ``TIERMEM_*`` name nobody reads fails with a did-you-mean, blank values
count as unset, and a bad value is a one-line :class:`ConfigurationError` naming the variable.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tiermem._errors import ConfigurationError
from tiermem._net import is_loopback
from tiermem.lifecycle._model import DAY, Quota, QuotaPolicy, Retention, RetentionPolicy

__all__ = [
    "ENV_PREFIX",
    "TOOLING_NAMES",
    "BlobPlan",
    "CosmosPlan",
    "FilesPlan",
    "LocalHotPlan",
    "MemorySettings",
    "OwnedCredential",
    "RedisPlan",
    "SettingsPlan",
    "SqlitePlan",
    "StrictSettings",
    "env_names",
    "is_loopback",
    "make_credential",
    "resolve",
]

ENV_PREFIX: Final = "TIERMEM_"

TOOLING_NAMES: Final = frozenset(
    {
        "TIERMEM_AZURE_LIVE",
        "TIERMEM_CHECKOV",
        "TIERMEM_HOSTILE_EXAMPLES",
        "TIERMEM_LIVE_LONG",
        "TIERMEM_LOAD_SECONDS",
        "TIERMEM_REDIS_SERVER",
        "TIERMEM_RELIABILITY_REPORT",
    }
)
"""``TIERMEM_*`` names read by the test suite and scripts (docs/testing.md), never by the library.
Names starting with ``TIERMEM_TEST_`` are the test suite's too."""

_TOOLING_PREFIX: Final = "TIERMEM_TEST_"


def env_names(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """The documented environment name of each field of ``settings_cls`` (upper case)."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in settings_cls.model_fields.items():
        names[field_name] = _env_name(prefix, field_name, field)
    return names


def _env_name(prefix: str, field_name: str, field: FieldInfo) -> str:
    return _env_choices(prefix, field_name, field)[0]


def _env_choices(prefix: str, field_name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        choices = [c.upper() for c in alias.choices if isinstance(c, str)]
        if choices:
            return choices
    if isinstance(alias, str):
        return [alias.upper()]
    return [(prefix + field_name).upper()]


def _known_names(settings_cls: type[BaseSettings]) -> set[str]:
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return {
        name
        for field_name, field in settings_cls.model_fields.items()
        for name in _env_choices(prefix, field_name, field)
    }


class _UnknownNames(PydanticBaseSettingsSource):
    """Fails on ``TIERMEM_*`` names (environment or ``.env``) that its settings class owns but does not know.

    Runs first among the sources, so a typo never falls back silently to a default (issue 13).
    """

    def __init__(
        self, settings_cls: type[StrictSettings], sources: Iterable[PydanticBaseSettingsSource]
    ) -> None:
        super().__init__(settings_cls)
        self._owner = settings_cls
        self._sources = tuple(s for s in sources if isinstance(s, EnvSettingsSource))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        seen: set[str] = set()
        for source in self._sources:
            seen.update(name.upper() for name, value in source.env_vars.items() if value is not None)
        known = _known_names(self._owner)
        for name in sorted(seen):
            if name in known or not self._owner.owns_env_name(name):
                continue
            guess = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            hint = f"; did you mean {guess[0]}?" if guess else "; known names: docs/configuration.md"
            raise ConfigurationError(f"unknown setting {name}{hint}")
        return {}


class StrictSettings(BaseSettings):
    """Base of tiermem's settings classes: unknown ``TIERMEM_*`` names fail, blanks are unset,
    and a bad value raises :class:`ConfigurationError` naming the variable (never a pydantic traceback).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    _owned_prefixes: ClassVar[tuple[str, ...]] = (ENV_PREFIX,)
    _foreign_prefixes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def owns_env_name(cls, name: str) -> bool:
        """Whether ``name`` (upper case) is this class's to check (tooling and sibling classes' are not)."""
        if name in TOOLING_NAMES or name.startswith(_TOOLING_PREFIX):
            return False
        if name.startswith(cls._foreign_prefixes):
            return False
        # pydantic-settings also reads <prefix><field name> for a field with an alias: own those
        # second spellings so they fail with a did-you-mean instead of working undocumented.
        shadows = {(ENV_PREFIX + field).upper() for field in cls.model_fields}
        return name.startswith(cls._owned_prefixes) or name in shadows

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _configuration_error(type(self), exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert issubclass(settings_cls, StrictSettings)
        check = _UnknownNames(settings_cls, (env_settings, dotenv_settings))
        return check, init_settings, env_settings, dotenv_settings, file_secret_settings


def _configuration_error(settings_cls: type[BaseSettings], exc: ValidationError) -> ConfigurationError:
    """The first validation failure as one line naming the environment variable (secrets not echoed)."""
    names = env_names(settings_cls)
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first.get("loc", ())
    field_name = str(loc[0]) if loc else ""
    if field_name not in names:  # reported under an alias
        field_name = next((f for f, n in names.items() if n == field_name.upper()), field_name)
    name = names.get(field_name, field_name.upper() or "settings")
    field = settings_cls.model_fields.get(field_name)
    secret = field is not None and "SecretStr" in str(field.annotation)
    given = first.get("input")
    shown = "" if secret or not isinstance(given, str | int | float) else f" (got {str(given)!r:.60})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigurationError(f"{name}: {first.get('msg', 'invalid value')}{shown}{more}")


def _https_or_loopback(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if value.startswith("https://") or (value.startswith("http://") and is_loopback(value)):
        return value
    raise ValueError(f"{name} must be an https:// URL (http:// only for a local emulator on loopback)")


class MemorySettings(StrictSettings):
    """Configuration for a ``MemoryClient``: each field maps to ``TIERMEM_<NAME>`` unless noted.

    Read from the environment and from ``.env`` in the current directory (``_env_file=`` picks
    another file; ``tiermem --env-file``). Blank values count as unset. Names of the HTTP service
    (``TIERMEM_AUTH_*``, ``TIERMEM_SERVICE_*``) are checked by its own settings.
    """

    _foreign_prefixes: ClassVar[tuple[str, ...]] = ("TIERMEM_AUTH_", "TIERMEM_SERVICE_")

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
    hot_mac_key: SecretStr | None = Field(
        None, description="Key of the MAC sealing hot records in Redis (ADR 0015); prefer Key Vault"
    )
    hot_mac_key_secret: str | None = Field(
        None, description="Name of the Key Vault secret holding the hot MAC key"
    )
    hot_mac_previous_key: SecretStr | None = Field(
        None, description="Previous hot MAC key, still accepted on reads during a rotation"
    )

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
    require_azure: bool = Field(
        False, description="Refuse to fall back to an embedded tier: every tier must name its Azure service"
    )

    # Embedded default and policy
    local_dir: Path = Field(
        Path(".tiermem"), description="Where the embedded warm/cold tiers keep their files"
    )
    sqlite_durability: Literal["fsync", "os"] = Field(
        "fsync",
        description="Embedded SQLite warm tier: fsync per commit group, or os (survives a process crash)",
    )
    hot_max_items: int = Field(10_000, ge=1)
    hot_ttl: float | None = Field(300.0, gt=0)
    compress_min_bytes: int = Field(4096, ge=0)
    detailed_spans: bool = Field(
        False, description="A child span per hot-tier call too (default: attributes of the method span)"
    )
    mget_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Decoded bytes one mget may return (past it: page)"
    )
    tenant: str = "default"
    namespace: str = "default"

    # Data lifecycle (docs/adr/0014): retention run by `tiermem maintain`, quotas enforced on writes
    archive_after_days: float | None = Field(None, gt=0, description="Move values idle this long to cold")
    expire_after_days: float | None = Field(None, gt=0, description="Delete values idle this long")
    quota_max_items: int | None = Field(None, ge=0, description="Default per-tenant item quota")
    quota_max_bytes: int | None = Field(None, ge=0, description="Default per-tenant byte quota")

    applicationinsights_connection_string: SecretStr | None = Field(
        None, validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("cosmos_endpoint")
    @classmethod
    def _cosmos_scheme(cls, value: str | None) -> str | None:
        return _https_or_loopback(value, "the Cosmos DB endpoint")

    @field_validator("blob_account_url")
    @classmethod
    def _blob_scheme(cls, value: str | None) -> str | None:
        return _https_or_loopback(value, "the Blob account URL")

    @field_validator("key_vault_url")
    @classmethod
    def _vault_scheme(cls, value: str | None) -> str | None:
        return _https_or_loopback(value, "the Key Vault URL")

    @property
    def uses_azure(self) -> bool:
        return bool(self.cosmos_endpoint or self.blob_account_url or self.key_vault_url)


# --- The plan: plain values the builder applies ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalHotPlan:
    """In-process hot tier."""

    max_items: int


@dataclass(frozen=True, slots=True)
class RedisPlan:
    """Redis hot tier: ``auth`` is resolved (never ``auto``); a password is a value or a Key Vault name."""

    url: str
    cluster: bool
    auth: Literal["entra", "password", "none"]
    password: SecretStr | None
    password_secret: str | None
    ca_file: Path | None
    mac_key: SecretStr | None = None
    mac_key_secret: str | None = None
    mac_previous_key: SecretStr | None = None


@dataclass(frozen=True, slots=True)
class SqlitePlan:
    """Embedded warm tier: one SQLite file."""

    path: Path
    durability: Literal["fsync", "os"] = "fsync"


@dataclass(frozen=True, slots=True)
class CosmosPlan:
    """Cosmos DB warm tier; ``key`` is set only for a loopback emulator, else a credential is used."""

    endpoint: str
    database: str
    container: str
    key: SecretStr | None


@dataclass(frozen=True, slots=True)
class FilesPlan:
    """Embedded cold tier: a directory of files."""

    root: Path


@dataclass(frozen=True, slots=True)
class BlobPlan:
    """Blob Storage cold tier: an account URL (credential) or an Azurite connection string."""

    account_url: str | None
    container: str
    connection_string: SecretStr | None


@dataclass(frozen=True, slots=True)
class SettingsPlan:
    """What :class:`MemorySettings` describe, as plain values (no clients, no I/O)."""

    hot: LocalHotPlan | RedisPlan
    warm: SqlitePlan | CosmosPlan
    cold: FilesPlan | BlobPlan
    policy: Mapping[str, Any]
    tenant: str
    namespace: str
    azure_client_id: str | None
    key_vault_url: str | None
    retention: RetentionPolicy | None = None
    quotas: QuotaPolicy | None = None

    def local_paths(self) -> dict[str, Path]:
        """Tier name -> the local file or directory an embedded tier uses (absolute)."""
        paths: dict[str, Path] = {}
        if isinstance(self.warm, SqlitePlan):
            paths["warm"] = self.warm.path.absolute()
        if isinstance(self.cold, FilesPlan):
            paths["cold"] = self.cold.root.absolute()
        return paths


def resolve(settings: MemorySettings) -> SettingsPlan:
    """Decide each tier from settings: the Azure service where configured, else the embedded one.

    Raises:
        ConfigurationError: contradictory settings, or ``TIERMEM_REQUIRE_AZURE`` with a tier unset.
    """
    if settings.require_azure:
        missing = [
            name
            for name, given in (
                ("TIERMEM_REDIS_URL", settings.redis_url),
                ("TIERMEM_COSMOS_ENDPOINT", settings.cosmos_endpoint),
                ("TIERMEM_BLOB_ACCOUNT_URL", settings.blob_account_url or settings.blob_connection_string),
            )
            if not given
        ]
        if missing:
            raise ConfigurationError(
                f"TIERMEM_REQUIRE_AZURE=true but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set: refusing to fall back to embedded tiers"
            )
    hot: LocalHotPlan | RedisPlan = (
        _redis_plan(settings) if settings.redis_url else LocalHotPlan(settings.hot_max_items)
    )
    warm: SqlitePlan | CosmosPlan
    if settings.cosmos_endpoint:
        if settings.cosmos_key is not None and not is_loopback(settings.cosmos_endpoint):
            raise ConfigurationError(
                "TIERMEM_COSMOS_KEY is accepted only for a local emulator; use managed identity for Azure"
            )
        warm = CosmosPlan(
            settings.cosmos_endpoint, settings.cosmos_database, settings.cosmos_container, settings.cosmos_key
        )
    else:  # always a durable tier: a write that returns must have reached one
        warm = SqlitePlan(settings.local_dir / "warm.db", settings.sqlite_durability)
    cold: FilesPlan | BlobPlan
    if settings.blob_connection_string is not None:
        cold = BlobPlan(None, settings.blob_container, settings.blob_connection_string)
    elif settings.blob_account_url:
        cold = BlobPlan(settings.blob_account_url, settings.blob_container, None)
    else:
        cold = FilesPlan(settings.local_dir / "cold")
    return SettingsPlan(
        hot=hot,
        warm=warm,
        cold=cold,
        policy={
            "hot_ttl": settings.hot_ttl,
            "compress_min_bytes": settings.compress_min_bytes,
            "detailed_spans": settings.detailed_spans,
            "mget_max_bytes": settings.mget_max_bytes,
        },
        tenant=settings.tenant,
        namespace=settings.namespace,
        azure_client_id=settings.azure_client_id,
        key_vault_url=settings.key_vault_url,
        retention=_retention(settings),
        quotas=_quotas(settings),
    )


def _retention(settings: MemorySettings) -> RetentionPolicy | None:
    archive, expire = settings.archive_after_days, settings.expire_after_days
    if archive is None and expire is None:
        return None
    return RetentionPolicy(
        Retention(
            archive_after=None if archive is None else archive * DAY,
            expire_after=None if expire is None else expire * DAY,
        )
    )


def _quotas(settings: MemorySettings) -> QuotaPolicy | None:
    if settings.quota_max_items is None and settings.quota_max_bytes is None:
        return None
    return QuotaPolicy(Quota(settings.quota_max_items, settings.quota_max_bytes))


def _redis_plan(settings: MemorySettings) -> RedisPlan:
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
    if (
        mode == "password"
        and settings.redis_password is None
        and not (settings.redis_password_secret and settings.key_vault_url)
    ):
        raise ConfigurationError(
            "TIERMEM_REDIS_AUTH=password needs TIERMEM_REDIS_PASSWORD, or TIERMEM_REDIS_PASSWORD_SECRET "
            "with TIERMEM_KEY_VAULT_URL"
        )
    if settings.hot_mac_key is not None and settings.hot_mac_key_secret:
        raise ConfigurationError("set TIERMEM_HOT_MAC_KEY or TIERMEM_HOT_MAC_KEY_SECRET, not both")
    if settings.hot_mac_key_secret and not settings.key_vault_url:
        raise ConfigurationError("TIERMEM_HOT_MAC_KEY_SECRET needs TIERMEM_KEY_VAULT_URL")
    if settings.hot_mac_previous_key is not None and not (
        settings.hot_mac_key is not None or settings.hot_mac_key_secret
    ):
        raise ConfigurationError(
            "TIERMEM_HOT_MAC_PREVIOUS_KEY needs a current key (TIERMEM_HOT_MAC_KEY or _SECRET)"
        )
    return RedisPlan(
        url=url,
        cluster=settings.redis_cluster,
        auth=mode,
        password=settings.redis_password,
        password_secret=settings.redis_password_secret,
        ca_file=settings.redis_ca_file,
        mac_key=settings.hot_mac_key,
        mac_key_secret=settings.hot_mac_key_secret,
        mac_previous_key=settings.hot_mac_previous_key,
    )


class OwnedCredential:
    """Lets the client close a credential that ``from_settings`` created (and only that one)."""

    def __init__(self, credential: Any) -> None:
        self.credential = credential

    async def aclose(self) -> None:
        closed = self.credential.close()
        if inspect.isawaitable(closed):  # azure.identity.aio credentials close asynchronously
            await closed


def make_credential(client_id: str | None, *, sync: bool = False) -> Any:
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
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()
