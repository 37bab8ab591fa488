"""``MemoryBuilder``: a fluent, validated description of a client; ``build()`` makes it (no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Self, Unpack

from tiermem._client import MemoryClient
from tiermem._config import DEFAULT_TIER_OPTIONS, Policy, TierOptions
from tiermem._engine.core import Engine
from tiermem._errors import ConfigurationError
from tiermem._instrumentation import Telemetry
from tiermem._keys import validate_user_scope
from tiermem._lifecycle import Closable
from tiermem._protocols import ColdMemory, HotMemory, Tier, TierStore, WarmMemory
from tiermem.lifecycle import Governance

if TYPE_CHECKING:
    from tiermem._settings import MemorySettings, SettingsPlan
    from tiermem.lifecycle import QuotaPolicy, RetentionPolicy
    from tiermem.tiers.blob import BlobOptions
    from tiermem.tiers.cosmos import CosmosOptions
    from tiermem.tiers.redis import RedisOptions

__all__ = ["Closable", "MemoryBuilder"]


_POLICY_FIELDS = frozenset(f.name for f in fields(Policy))


class MemoryBuilder:
    """Compose tiers and policy into an immutable :class:`MemoryClient`.

    Each ``with_*`` call returns the builder; ``build()`` validates and says what to change.
    The client takes ownership of the tiers given here (``owned=False`` to keep it yourself).

    Example::

        memory = (MemoryBuilder()
                  .with_hot(LocalHotMemory(max_items=10_000))
                  .with_warm(SqliteWarmMemory("./.tiermem/warm.db"))
                  .with_cold(FileColdMemory("./.tiermem/cold"))
                  .with_policy(hot_ttl=300, compress_min_bytes=4096)
                  .build())
    """

    def __init__(self) -> None:
        self._hot: HotMemory | None = None
        self._warm: WarmMemory | None = None
        self._cold: ColdMemory | None = None
        self._owned: list[Closable] = []
        self._policy = Policy()
        self._tier_options: dict[Tier, TierOptions] = dict(DEFAULT_TIER_OPTIONS)
        self._tenant = "default"
        self._namespace = "default"
        self._clock: Callable[[], float] = time.time
        self._tracer_provider: Any = None
        self._meter_provider: Any = None
        self._near_cache: dict[str, Any] | None = None
        self._logger_provider: Any = None
        self._retention: RetentionPolicy | None = None
        self._quotas: QuotaPolicy | None = None
        self._built = False

    def _take(self, store: TierStore, owned: bool) -> None:
        if owned:
            self._owned.append(store)

    def own(self, resource: Closable) -> Self:
        """Hand the client something to close with it (e.g. a credential an edge created)."""
        self._owned.append(resource)
        return self

    def with_hot(self, store: HotMemory, *, owned: bool = True) -> Self:
        """The hot tier (``LocalHotMemory``, ``RedisHotMemory``...)."""
        if not isinstance(store, HotMemory):
            raise ConfigurationError(f"{type(store).__name__} does not implement HotMemory")
        self._hot = store
        self._take(store, owned)
        return self

    def with_warm(self, store: WarmMemory, *, owned: bool = True) -> Self:
        """The durable warm tier (``SqliteWarmMemory``, ``CosmosWarmMemory``...)."""
        if not isinstance(store, WarmMemory):
            raise ConfigurationError(f"{type(store).__name__} does not implement WarmMemory")
        self._warm = store
        self._take(store, owned)
        return self

    def with_cold(self, store: ColdMemory, *, owned: bool = True) -> Self:
        """The cold tier for large values and archives (``FileColdMemory``, ``BlobColdMemory``...)."""
        if not isinstance(store, ColdMemory):
            raise ConfigurationError(f"{type(store).__name__} does not implement ColdMemory")
        self._cold = store
        self._take(store, owned)
        return self

    def with_policy(self, **changes: Any) -> Self:
        """Change :class:`Policy` fields (``hot_ttl``, ``compress_min_bytes``, ...); unknown names fail."""
        unknown = set(changes) - _POLICY_FIELDS
        if unknown:
            raise ConfigurationError(
                f"unknown policy option(s) {sorted(unknown)}; known: {sorted(_POLICY_FIELDS)}"
            )
        self._policy = replace(self._policy, **changes)
        return self

    def with_resilience(
        self,
        tier: Tier,
        *,
        timeout: float | None = None,
        failure_threshold: int | None = None,
        reset_timeout: float | None = None,
        seconds_per_mib: float | None = None,
    ) -> Self:
        """Per-tier deadline and circuit breaker settings (see :class:`TierOptions`)."""
        current = self._tier_options[tier]
        self._tier_options[tier] = TierOptions(
            timeout=current.timeout if timeout is None else timeout,
            failure_threshold=current.failure_threshold if failure_threshold is None else failure_threshold,
            reset_timeout=current.reset_timeout if reset_timeout is None else reset_timeout,
            seconds_per_mib=current.seconds_per_mib if seconds_per_mib is None else seconds_per_mib,
        )
        return self

    def with_scope(self, *, tenant: str = "default", namespace: str = "default") -> Self:
        """The tenant and namespace the built client starts in (views via ``client.scoped``)."""
        self._tenant = validate_user_scope(tenant, "tenant")
        self._namespace = validate_user_scope(namespace, "namespace")
        return self

    def with_telemetry(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        logger_provider: Any = None,
        record_keys: bool | None = None,
        detailed_spans: bool | None = None,
    ) -> Self:
        """OTel providers to use instead of the global ones (``logger_provider``: audit events);
        ``record_keys`` puts raw keys in spans and audit events; ``detailed_spans`` gives every tier
        call its own child span (default: hot-tier calls are attributes of the method span)."""
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._logger_provider = logger_provider
        if record_keys is not None:
            self._policy = replace(self._policy, record_keys=record_keys)
        if detailed_spans is not None:
            self._policy = replace(self._policy, detailed_spans=detailed_spans)
        return self

    def with_clock(self, clock: Callable[[], float]) -> Self:
        """Wall-clock source (Unix seconds) for expiry; inject a fake one in tests."""
        self._clock = clock
        return self

    def with_retention(self, policy: RetentionPolicy) -> Self:
        """What ``maintain()`` archives to cold or expires (``tiermem.RetentionPolicy``; docs/adr/0014)."""
        self._retention = policy
        return self

    def with_quotas(self, policy: QuotaPolicy) -> Self:
        """Per-tenant ``max_items``/``max_bytes`` enforced on writes (``tiermem.QuotaPolicy``)."""
        self._quotas = policy
        return self

    def with_redis(self, url: str, **options: Unpack[RedisOptions]) -> Self:
        """Hot tier on Redis / Azure Managed Redis (``pip install tiermem[redis]``).

        Takes exactly the arguments of :meth:`tiermem.tiers.redis.RedisHotMemory.from_url`
        (``credential=`` an Entra ID credential, sync or ``azure.identity.aio``; ``password=`` a
        ``str``, ``SecretStr`` or secret source; pool and timeout settings). Already hold a
        ``redis.asyncio`` client? Use ``with_hot(RedisHotMemory(client))``: it is not closed for you.
        """
        from tiermem.tiers.redis import RedisHotMemory

        return self.with_hot(RedisHotMemory.from_url(url, **options))

    def with_near_cache(
        self,
        *,
        max_items: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_staleness: float = 1.0,
    ) -> Self:
        """An in-process L1 in front of the Redis hot tier, invalidated by Redis ``CLIENT TRACKING``.

        Applied at ``build()`` to the hot tier, which must be a single-endpoint ``RedisHotMemory``.
        See :class:`tiermem.tiers.near.NearCache` and docs/adr/0010-near-cache.md.
        """
        self._near_cache = {"max_items": max_items, "max_bytes": max_bytes, "max_staleness": max_staleness}
        return self

    def _near_cached(self, hot: HotMemory | None) -> HotMemory | None:
        """The hot tier wrapped in the near cache when one was asked for; the client closes it first."""
        if self._near_cache is None:
            return hot
        from tiermem.tiers.redis import RedisHotMemory

        if not isinstance(hot, RedisHotMemory):
            raise ConfigurationError(
                "with_near_cache() needs a Redis hot tier: add with_redis(...) or with_hot(RedisHotMemory...)"
            )
        from tiermem.tiers.near import NearCache

        near = NearCache(hot, owned=False, **self._near_cache)  # the hot tier stays in _owned
        self._owned.append(near)
        return near

    def with_cosmos(
        self, endpoint: str, database: str, container: str, **options: Unpack[CosmosOptions]
    ) -> Self:
        """Warm tier on Azure Cosmos DB for NoSQL (``pip install tiermem[cosmos]``).

        Takes exactly the arguments of :class:`tiermem.tiers.cosmos.CosmosWarmMemory`: one of
        ``credential=`` (an ``AsyncTokenCredential``), ``key=`` (emulator account key, ``str`` or
        ``SecretStr``) or ``client=`` (an ``azure.cosmos.aio.CosmosClient`` you already hold and have
        entered; it is shared, never closed here), plus retry, timeout and concurrency settings.
        """
        from tiermem.tiers.cosmos import CosmosWarmMemory

        return self.with_warm(CosmosWarmMemory(endpoint, database, container, **options))

    def with_blob(
        self, account_url: str | None = None, container: str = "tiermem", **options: Unpack[BlobOptions]
    ) -> Self:
        """Cold tier on Azure Blob Storage (``pip install tiermem[blob]``).

        Takes exactly the arguments of :class:`tiermem.tiers.blob.BlobColdMemory`: ``account_url``
        with ``credential=`` (an ``AsyncTokenCredential``), or ``connection_string=`` (emulators,
        ``str`` or ``SecretStr``; a connection string passed as ``account_url`` is refused), or
        ``service_client=`` (an ``azure.storage.blob.aio.BlobServiceClient`` you already hold; never
        closed here), plus transfer, retry and timeout settings.
        """
        from tiermem.tiers.blob import BlobColdMemory

        return self.with_cold(BlobColdMemory(account_url, container, **options))

    @classmethod
    def from_settings(cls, settings: MemorySettings | None = None) -> MemoryBuilder:
        """A builder configured from :class:`MemorySettings` (the env vars in ``.env.example``).

        With no Azure settings it describes the embedded default (local files under
        ``TIERMEM_LOCAL_DIR``). Credentials it creates are closed by the client.
        """
        from tiermem._settings import MemorySettings, resolve

        return cls()._apply(resolve(settings if settings is not None else MemorySettings()))

    def _apply(self, plan: SettingsPlan) -> Self:
        """Configure tiers, policy and scope from a resolved :class:`~tiermem._settings.SettingsPlan`."""
        from tiermem._settings import (
            CosmosPlan,
            FilesPlan,
            LocalHotPlan,
            OwnedCredential,
            SqlitePlan,
            make_credential,
        )

        self.with_policy(**plan.policy).with_scope(tenant=plan.tenant, namespace=plan.namespace)
        if plan.retention is not None:
            self.with_retention(plan.retention)
        if plan.quotas is not None:
            self.with_quotas(plan.quotas)
        credential: Any = None

        def shared_credential() -> Any:
            nonlocal credential
            if credential is None:
                credential = make_credential(plan.azure_client_id)
                self.own(OwnedCredential(credential))
            return credential

        if isinstance(plan.hot, LocalHotPlan):
            from tiermem.tiers.memory import LocalHotMemory

            self.with_hot(LocalHotMemory(max_items=plan.hot.max_items))
        else:
            redis = plan.hot
            options: dict[str, Any] = {"cluster": redis.cluster}
            if redis.ca_file is not None:
                options["ssl_ca_certs"] = str(redis.ca_file)
            if redis.mac_key_secret:
                from tiermem.secrets import KeyVaultSecret

                assert plan.key_vault_url is not None
                mac_secret = KeyVaultSecret(
                    plan.key_vault_url, redis.mac_key_secret, credential=shared_credential()
                )
                self.own(mac_secret)
                options["mac_key"] = mac_secret
            elif redis.mac_key is not None:
                options["mac_key"] = redis.mac_key
            if redis.mac_previous_key is not None:
                options["mac_previous_keys"] = (redis.mac_previous_key,)
            if redis.auth == "entra":
                sync_credential = make_credential(plan.azure_client_id, sync=True)
                self.own(OwnedCredential(sync_credential))
                self.with_redis(redis.url, credential=sync_credential, **options)
            elif redis.auth == "password" and redis.password is not None:
                self.with_redis(redis.url, password=redis.password, **options)
            elif redis.auth == "password":
                from tiermem.secrets import KeyVaultSecret

                assert plan.key_vault_url is not None
                assert redis.password_secret is not None
                secret = KeyVaultSecret(
                    plan.key_vault_url, redis.password_secret, credential=shared_credential()
                )
                self.own(secret)
                self.with_redis(redis.url, password=secret, **options)
            else:
                self.with_redis(redis.url, **options)

        if isinstance(plan.warm, SqlitePlan):
            from tiermem.tiers.sqlite import SqliteWarmMemory

            self.with_warm(SqliteWarmMemory(plan.warm.path, durability=plan.warm.durability))
        else:
            cosmos: CosmosPlan = plan.warm
            auth: dict[str, Any] = (
                {"key": cosmos.key} if cosmos.key is not None else {"credential": shared_credential()}
            )
            self.with_cosmos(cosmos.endpoint, cosmos.database, cosmos.container, **auth)

        if isinstance(plan.cold, FilesPlan):
            from tiermem.tiers.files import FileColdMemory

            self.with_cold(FileColdMemory(plan.cold.root))
        elif plan.cold.connection_string is not None:
            self.with_blob(container=plan.cold.container, connection_string=plan.cold.connection_string)
        else:
            self.with_blob(plan.cold.account_url, plan.cold.container, credential=shared_credential())
        return self

    def build(self) -> MemoryClient:
        """Validate and make the client. Does no I/O: call ``await memory.setup()`` to create resources."""
        if self._built:
            raise ConfigurationError("this builder was already built; make a new MemoryBuilder")
        if self._hot is None and self._warm is None and self._cold is None:
            raise ConfigurationError(
                "configure at least one tier: with_hot(), with_warm() or with_cold() "
                "(or MemoryBuilder.from_settings() for the embedded default)"
            )
        policy = self._policy
        if policy.hot_max_bytes > policy.max_value_bytes or policy.warm_max_bytes > policy.max_value_bytes:
            raise ConfigurationError("hot_max_bytes and warm_max_bytes must not exceed max_value_bytes")
        warm_limit = self._warm.info.max_record_bytes if self._warm is not None else None
        if warm_limit is not None and policy.warm_max_bytes > warm_limit:
            raise ConfigurationError(
                f"warm_max_bytes={policy.warm_max_bytes} exceeds what the warm tier accepts "
                f"({warm_limit} bytes); lower it with with_policy(warm_max_bytes=...)"
            )
        hot = self._near_cached(self._hot)
        self._built = True
        core = Engine(
            hot=hot,
            warm=self._warm,
            cold=self._cold,
            policy=policy,
            tier_options=self._tier_options,
            owned=self._owned,
            clock=self._clock,
            telemetry=Telemetry(
                record_keys=policy.record_keys,
                detailed_spans=policy.detailed_spans,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
            ),
            governance=Governance(
                retention=self._retention,
                quotas=self._quotas,
                record_keys=policy.record_keys,
                logger_provider=self._logger_provider,
            ),
        )
        return MemoryClient(core, tenant=self._tenant, namespace=self._namespace)
