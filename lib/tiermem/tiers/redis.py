"""Redis hot tier (``pip install tiermem[redis]``): Azure Managed Redis, Azure Cache for Redis, OSS Redis.

``RedisHotMemory`` speaks ``redis.asyncio`` (hiredis parser when installed) to one server or to an
OSS Redis Cluster. Keys are ``{prefix}:{tenant}:{namespace}:{}{key}`` (the empty hash tag makes
Redis Cluster hash the whole name, so braces in a key never pick its slot and a tenant's keys
spread over every shard); values are :meth:`tiermem.Record.to_bytes` envelopes sealed to their
Redis key (:mod:`tiermem._seal`, ADR 0015: a keyed MAC with ``mac_key``) with a native ``PX``
expiry equal to the envelope's. Authentication is Entra ID through ``redis-entraid`` or a
password; TLS is required for every non-loopback endpoint.

Every redis-py exception is translated in one place, :func:`_translate`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack, cast
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from tiermem._codec import Record
from tiermem._errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidScopeError,
    TierError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._keys import redis_key, redis_names, validate_scope
from tiermem._net import is_loopback_host
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem._seal import HotSeal, SealKeys
from tiermem.tiers._base import BatchOutcome, TierAdapter, check_options, require_extra
from tiermem.tiers._redis_records import open_envelopes, open_one, records_of, sealed, ttl_ms
from tiermem.tiers._redis_scripts import SWAP_LUA

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

    from tiermem.secrets import SecretSource
    from tiermem.tiers.azure_lifecycle import RedisScopeStore
    from tiermem.tiers.memory_collections import InProcessCollectionStore

try:
    from redis import exceptions as rexc
    from redis.asyncio import BlockingConnectionPool, Connection, Redis, SSLConnection
    from redis.asyncio.cluster import RedisCluster
    from redis.auth.err import InvalidTokenSchemaErr, RequestTokenErr, TokenRenewalErr
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.credentials import CredentialProvider

    from tiermem.tiers._redis_auth import (
        ENTRA_SCOPE,
        TOKEN_REFRESH_RATIO,
        CredentialIdentity,
        SecretCredentials,
        TransientRetry,
        entra_provider,
        ignore_token_error,
    )
    from tiermem.tiers._redis_batch import queue_sets, run_swaps, swap_args
except ImportError as exc:  # the [redis] extra is not installed; RedisHotMemory says so when used
    _MISSING_REDIS: ImportError | None = exc
    _FAILURES: tuple[type[BaseException], ...] = ()
    ENTRA_SCOPE = "https://redis.azure.com/.default"
    TOKEN_REFRESH_RATIO = 0.7
else:
    _MISSING_REDIS = None
    # Everything here is translated by _translate; anything else (a bug) propagates unchanged.
    _FAILURES = (
        rexc.RedisError,
        rexc.RedisClusterException,
        RequestTokenErr,
        TokenRenewalErr,
        InvalidTokenSchemaErr,
        OSError,
        TimeoutError,
    )
    # The service did not (or could not) do the work; retrying later, elsewhere, may succeed.
    _UNAVAILABLE: Final = (
        rexc.ConnectionError,  # refused, reset, TLS handshake, BusyLoadingError (LOADING)
        rexc.TimeoutError,
        rexc.ClusterDownError,  # CLUSTERDOWN and MASTERDOWN
        rexc.TryAgainError,  # TRYAGAIN during resharding
        rexc.ReadOnlyError,  # a write reached a replica mid-failover
        rexc.SlotNotCoveredError,
        OSError,
        TimeoutError,
    )

__all__ = ["ENTRA_SCOPE", "MAX_RECORD_BYTES", "TOKEN_REFRESH_RATIO", "RedisHotMemory", "RedisOptions"]

MAX_RECORD_BYTES: Final = 512 * 1024 * 1024  # Redis' proto-max-bulk-len default

_OOM_MESSAGE: Final = "Redis is out of memory (maxmemory); see runbooks/redis-out-of-memory.md"
_AUTH_CODES: Final = frozenset({"NOAUTH", "WRONGPASS", "NOPERM"})
_AZURE_TLS_PORTS: Final = (
    (".redis.cache.windows.net", 6380),  # Azure Cache for Redis
    (".redis.azure.net", 10000),  # Azure Managed Redis
)
_PIPELINE_PREFIX: Final = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.DOTALL)


class RedisOptions(TypedDict, total=False):
    """How to connect and authenticate: the keyword arguments of :meth:`RedisHotMemory.from_url`,
    :meth:`~RedisHotMemory.from_host` and :meth:`tiermem.MemoryBuilder.with_redis` (documented on
    ``from_url``; defaults there too)."""

    credential: TokenCredential | AsyncTokenCredential | None
    password: SecretStr | str | SecretSource | None
    username: str | None
    cluster: bool
    prefix: str
    max_connections: int
    pool_timeout: float
    socket_timeout: float
    socket_connect_timeout: float
    retries: int
    ssl_ca_certs: str | None
    mac_key: SecretStr | str | SecretSource | None
    mac_previous_keys: Sequence[SecretStr | str]


def _require_redis() -> None:
    require_extra(_MISSING_REDIS, "RedisHotMemory", "redis-py", "redis")


def _describe(exc: BaseException) -> str:
    # Cluster pipelines rewrite an error's message to quote the command, keys and values included;
    # keep only the server's part so raw keys never reach error messages or logs.
    text = _PIPELINE_PREFIX.sub("", str(exc)) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _translate(exc: BaseException, operation: str, key: MemoryKey | None) -> TierError:
    """The one place that maps redis-py (and token) exceptions onto the tiermem tree."""
    raw_key = key.key if key is not None else None
    code = getattr(exc, "status_code", None)
    text = _describe(exc)
    if isinstance(exc, RequestTokenErr | TokenRenewalErr | InvalidTokenSchemaErr):
        return AuthenticationError(
            f"could not get a usable Entra ID token for Redis: {text} "
            "(see runbooks/redis-entra-token-expiry.md)",
            tier=Tier.HOT,
            operation=operation,
            key=raw_key,
        )
    if (
        isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError | rexc.NoPermissionError)
        or code in _AUTH_CODES
    ):
        return AuthenticationError(
            f"Redis rejected the credentials: {text}", tier=Tier.HOT, operation=operation, key=raw_key
        )
    if isinstance(exc, rexc.OutOfMemoryError) or code == "OOM":
        return TierError(_OOM_MESSAGE, tier=Tier.HOT, operation=operation, key=raw_key)
    if isinstance(exc, rexc.MaxConnectionsError) or (
        isinstance(exc, rexc.ConnectionError) and "No connection available" in str(exc)
    ):
        return TierUnavailableError(
            "Redis connection pool exhausted: every connection stayed busy past the pool timeout "
            "(raise max_connections or lower the concurrency; see runbooks/connection-pool-exhaustion.md)",
            tier=Tier.HOT,
            operation=operation,
            key=raw_key,
        )
    if isinstance(exc, _UNAVAILABLE):
        return TierUnavailableError(
            f"Redis unavailable: {text}", tier=Tier.HOT, operation=operation, key=raw_key
        )
    cause = exc.__cause__
    if isinstance(exc, rexc.RedisClusterException) and isinstance(cause, _FAILURES):
        # "Redis Cluster cannot be connected ..." wraps what each startup node answered: a refused
        # connection, a rejected credential, or a server without cluster mode.
        return _translate(cause, operation, key)
    return TierError(f"Redis error: {text}", tier=Tier.HOT, operation=operation, key=raw_key)


def _default_port(host: str, tls: bool) -> int:
    if tls:
        for suffix, port in _AZURE_TLS_PORTS:
            if host.lower().endswith(suffix):
                return port
    return 6379


class RedisHotMemory(TierAdapter):
    """Hot tier on Redis: native TTL, one ``MGET`` per batch read, one pipeline per batch write.

    Build it with :meth:`from_url` / :meth:`from_host` (the adapter then owns and closes its
    connection pool), or wrap a ``redis.asyncio.Redis`` / ``redis.asyncio.cluster.RedisCluster``
    you configured yourself (it must use ``decode_responses=False``; it is not closed here).

    Batches are not atomic. On a cluster they are split by hash slot: ``mget`` sends one ``MGET``
    per slot through one pipeline per node (nodes in parallel) and returns values in input order;
    ``mset`` is one non-transactional pipeline; ``mdelete`` one ``UNLINK`` per slot.

    Args:
        client: a configured async Redis or RedisCluster client (``decode_responses=False``).
        prefix: first segment of every key, ``[A-Za-z0-9._-]{1,64}`` (default ``tm``).
        mac_key: the key of the MAC that seals every record to its Redis key (ADR 0015); see
            :meth:`from_url`. ``None``: an unkeyed seal (detects copies and edits, not forgeries).
        mac_previous_keys: earlier MAC keys still accepted on reads while a rotation rolls out.

    Raises:
        ImportError: redis-py is not installed.
        ConfigurationError: ``prefix`` or a MAC key is invalid, or the client decodes responses to ``str``.
    """

    tier = Tier.HOT
    failures = _FAILURES

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "tm",
        mac_key: SecretStr | str | SecretSource | None = None,
        mac_previous_keys: Sequence[SecretStr | str] = (),
    ) -> None:
        _require_redis()
        self._seals = SealKeys(mac_key, mac_previous_keys)
        try:
            self._prefix = validate_scope(prefix, "prefix")
        except InvalidScopeError as exc:
            raise ConfigurationError(exc.message) from exc
        options = client.get_connection_kwargs()
        if options.get("decode_responses"):
            raise ConfigurationError(
                "RedisHotMemory stores binary envelopes: build the client with decode_responses=False"
            )
        self._client: Redis | RedisCluster = client
        self._cluster = isinstance(client, RedisCluster)
        host = options.get("host")
        if host is None and isinstance(client, RedisCluster) and client.startup_nodes:
            host = client.startup_nodes[0].host
        self._info = TierInfo(
            db_system="redis",
            server_address=str(host) if host is not None else None,
            max_record_bytes=MAX_RECORD_BYTES,
            native_ttl=True,
        )
        # Set only by from_url/from_host: what this object created and must release.
        self._owns_client = False
        self._identity: CredentialIdentity | None = None
        self._streaming: Any = None
        self._admission: asyncio.Semaphore | None = None
        self._pool_timeout = 0.0
        self._swap_script: Any = None  # redis-py's Script / AsyncScript, registered on first use
        self._swap_loaded = False

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Unpack[RedisOptions]) -> RedisHotMemory:
        """A hot tier for ``redis://host[:port][/db]`` or ``rediss://...`` (TLS). No I/O happens here.

        The URL carries no password and no query options (pass them as arguments). Plain
        ``redis://`` is accepted only for loopback hosts. A ``rediss://`` URL without a port uses
        6380 for ``*.redis.cache.windows.net`` (Azure Cache for Redis), 10000 for
        ``*.redis.azure.net`` (Azure Managed Redis) and 6379 otherwise.

        Args:
            url: the server (or, with ``cluster``, one startup node of the cluster).
            credential: Entra ID authentication through redis-entraid: any ``azure.identity``
                credential, synchronous (``ManagedIdentityCredential``, ``WorkloadIdentityCredential``,
                ``DefaultAzureCredential``, ``ClientSecretCredential``, ``AzureCliCredential``...) or
                from ``azure.identity.aio`` (the same credential your Cosmos DB and Blob tiers use), or
                any object whose ``get_token(scope)`` returns (or, async, resolves to) an ``AccessToken``
                holding an Entra ID JWT with ``oid`` and ``exp`` claims. redis-py's token manager asks
                for tokens synchronously: a synchronous credential's network fetch blocks the event loop
                while it runs (azure-identity serves cached tokens in between); an async one is awaited
                in a task on the loop while the token manager polls for the result (every 100 ms, up
                to 10 s). Tokens are for :data:`ENTRA_SCOPE`; the username sent is the token's
                ``oid``. A token is renewed in the background after :data:`TOKEN_REFRESH_RATIO` of
                its lifetime and every pooled connection re-authenticates with ``AUTH`` (idle ones at
                once, busy ones when released); new connections use the current token. Not closed here.
            password: a ``pydantic.SecretStr`` (a plain ``str`` is wrapped in one), or a
                :class:`tiermem.secrets.SecretSource` such as
                ``KeyVaultSecret`` that is asked for the current value whenever a connection opens
                (rotation is picked up by new connections; the source is not closed here).
            username: ACL user for ``password`` (the URL's user part works too).
            cluster: speak the OSS Cluster protocol (Azure Managed Redis "OSS cluster" policy).
            prefix: first segment of every key.
            max_connections: connections kept at most (per node on a cluster).
            pool_timeout: seconds a call waits for a free connection before it fails with
                :class:`TierUnavailableError`.
            socket_timeout: seconds to wait for a reply.
            socket_connect_timeout: seconds to wait for a TCP/TLS connection.
            retries: retries after a connection error or timeout (exponential backoff with jitter);
                rejected credentials are never retried.
            ssl_ca_certs: CA bundle that signs the server certificate (private CAs, tests).
            mac_key: the secret (at least 16 bytes; use 32 random ones) of the keyed MAC that seals
                every record to its Redis key, kind, expiry, epoch and payload (ADR 0015), so whoever
                can write Redis without it cannot forge, move or edit records: a ``str``,
                ``SecretStr`` or a :class:`tiermem.secrets.SecretSource` (Key Vault; on rotation the
                previous value stays accepted for reads). Every process sharing the Redis needs the
                same key. ``None``: an unkeyed seal (copies and edits are detected, forgeries not).
            mac_previous_keys: earlier keys still accepted when reading (rotation: sign with the
                new key, accept the old one until records sealed with it have expired, ``hot_ttl``).

        Raises:
            ImportError: redis-py (or, with ``credential``, redis-entraid) is not installed.
            ConfigurationError: the URL or a combination of arguments cannot work; the message says why.
        """
        _require_redis()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss"):
            raise ConfigurationError(
                f"Redis URLs start with redis:// or rediss://, got {scheme or 'no'} scheme"
            )
        if parts.password is not None:
            raise ConfigurationError("do not put the Redis password in the URL: pass password=SecretStr(...)")
        if parts.query or parts.fragment:
            raise ConfigurationError("Redis URL options are not supported: pass them as keyword arguments")
        if not parts.hostname:
            raise ConfigurationError("the Redis URL has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"the Redis URL has an invalid port: {exc}") from exc
        db_text = parts.path.strip("/")
        if db_text and not db_text.isdigit():
            raise ConfigurationError(f"the Redis URL path must be a database number, got {db_text!r}")
        url_user = unquote(parts.username) if parts.username else None
        username = options.get("username")
        if url_user is not None and username is not None and url_user != username:
            raise ConfigurationError("the Redis username is given twice, in the URL and as username=")
        tls = scheme == "rediss"
        options = options.copy()
        options["username"] = username if username is not None else url_user
        return cls._create(
            parts.hostname,
            port if port is not None else _default_port(parts.hostname, tls),
            db=int(db_text) if db_text else 0,
            tls=tls,
            options=options,
        )

    @classmethod
    def from_host(
        cls, host: str, port: int, *, tls: bool = True, db: int = 0, **options: Unpack[RedisOptions]
    ) -> RedisHotMemory:
        """Like :meth:`from_url`, from a host and port (TLS unless ``tls=False`` on loopback).

        Azure ports: 6380 for Azure Cache for Redis, 10000 for Azure Managed Redis.
        """
        _require_redis()
        return cls._create(host, port, db=db, tls=tls, options=options)

    @classmethod
    def _create(cls, host: str, port: int, *, db: int, tls: bool, options: RedisOptions) -> RedisHotMemory:
        check_options(options, RedisOptions.__optional_keys__, "RedisHotMemory.from_url")
        credential = options.get("credential")
        password = options.get("password")
        if isinstance(password, str):
            password = SecretStr(password)
        username = options.get("username")
        cluster = options.get("cluster", False)
        max_connections = options.get("max_connections", 64)
        pool_timeout = options.get("pool_timeout", 1.0)
        socket_timeout = options.get("socket_timeout", 1.0)
        socket_connect_timeout = options.get("socket_connect_timeout", 1.0)
        retries = options.get("retries", 3)
        ssl_ca_certs = options.get("ssl_ca_certs")
        if not tls and not is_loopback_host(host):
            raise ConfigurationError(
                f"plaintext Redis is allowed only on loopback, not {host}: use rediss:// "
                "(Azure Cache for Redis listens on 6380, Azure Managed Redis on 10000)"
            )
        if ssl_ca_certs is not None and not tls:
            raise ConfigurationError("ssl_ca_certs needs a TLS endpoint (rediss://)")
        if credential is not None and (password is not None or username is not None):
            raise ConfigurationError(
                "give either credential= (Entra ID; the username is the token's oid) or password=, not both"
            )
        if password is not None and not (
            isinstance(password, SecretStr) or callable(getattr(password, "get_secret", None))
        ):
            raise ConfigurationError(
                "password must be a str, a pydantic.SecretStr or a tiermem.secrets.SecretSource"
            )
        if cluster and db != 0:
            raise ConfigurationError("Redis Cluster has only database 0")
        if max_connections < 1 or retries < 0:
            raise ConfigurationError("max_connections must be >= 1 and retries >= 0")
        if not (pool_timeout > 0 and socket_timeout > 0 and socket_connect_timeout > 0):
            raise ConfigurationError("pool_timeout, socket_timeout and socket_connect_timeout must be > 0")
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"invalid Redis port {port}")

        identity: CredentialIdentity | None = None
        streaming: CredentialProvider | None = None
        provider: CredentialProvider | None = None
        if credential is not None:
            identity, streaming = entra_provider(credential)
            provider = streaming
        elif password is not None and not isinstance(password, SecretStr):
            provider = SecretCredentials(password, username)
        retry = TransientRetry(ExponentialWithJitterBackoff(cap=0.5, base=0.01), retries)
        connection: dict[str, Any] = {
            "username": username if provider is None else None,  # a provider sends its own
            "password": password.get_secret_value() if isinstance(password, SecretStr) else None,
            "credential_provider": provider,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
        }
        tls_options: dict[str, Any] = {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": ssl_ca_certs,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2,
        }
        client: Redis | RedisCluster
        if cluster:
            client = RedisCluster(
                host=host,
                port=port,
                max_connections=max_connections,
                retry=retry,
                ssl=tls,
                **connection,
                **(tls_options if tls else {}),
            )
        else:
            pool = BlockingConnectionPool(
                connection_class=SSLConnection if tls else Connection,
                max_connections=max_connections,
                timeout=pool_timeout,
                host=host,
                port=port,
                db=db,
                retry=retry,
                **connection,
                **(tls_options if tls else {}),
            )
            # The provider goes to the client too: that is what registers the pool for re-auth.
            client = Redis(connection_pool=pool, credential_provider=streaming)
        self = cls(
            client,
            prefix=options.get("prefix", "tm"),
            mac_key=options.get("mac_key"),
            mac_previous_keys=options.get("mac_previous_keys", ()),
        )
        self._owns_client = True
        self._identity = identity
        self._streaming = streaming
        if cluster:
            # RedisCluster fails at once when a node's connections are all busy; this bounds
            # calls in flight (each holds at most one connection per node) and makes the
            # excess wait up to pool_timeout, like BlockingConnectionPool does for one node.
            self._admission = asyncio.Semaphore(max_connections)
            self._pool_timeout = pool_timeout
        return self

    # -- TierStore --------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def mac_keyed(self) -> bool:
        """Whether records are sealed with a MAC key (ADR 0015), not the unkeyed binding."""
        return self._seals.keyed

    @property
    def cluster(self) -> bool:
        """Whether this tier speaks the OSS Cluster protocol."""
        return self._cluster

    def raw_key(self, key: MemoryKey) -> str:
        """The Redis key that holds ``key`` (for operators and tests)."""
        return redis_key(key, self._prefix)

    def dedicated_connection(self, *, client_name: str | None = None) -> Connection:
        """A new, unconnected RESP2 connection configured like this tier's pool (host, TLS, auth).

        For a caller that needs a connection of its own outside the pool, such as the near cache's
        invalidation channel. The caller connects and disconnects it.

        Raises:
            ConfigurationError: this tier is a cluster (a connection reaches one node only).
        """
        self._ensure_open("dedicated_connection")
        client = self._client
        if isinstance(client, RedisCluster):
            raise ConfigurationError("a dedicated connection needs a single Redis endpoint, not a cluster")
        pool = client.connection_pool
        options = {**pool.connection_kwargs, "protocol": 2}
        if client_name is not None:
            options["client_name"] = client_name
        return cast("Connection", pool.connection_class(**options))

    def __repr__(self) -> str:
        return (
            f"RedisHotMemory(server_address={self._info.server_address!r}, "
            f"cluster={self._cluster}, prefix={self._prefix!r})"
        )

    @asynccontextmanager
    async def _call(self, operation: str, key: MemoryKey | None = None) -> AsyncIterator[None]:
        """Admission (cluster only) plus exception translation around one tier operation."""
        self._ensure_open(operation)
        admission = self._admission
        if admission is not None:
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await admission.acquire()
            except TimeoutError as exc:
                raise _translate(rexc.MaxConnectionsError(), operation, key) from exc
        try:
            yield
        except _FAILURES as exc:
            raise self._translate(exc, operation, key, None) from exc
        finally:
            if admission is not None:
                admission.release()

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierMemError:
        return _translate(exc, operation, key)

    async def _seal(self) -> HotSeal:
        """The seal for this call (fixed, or from the MAC key's secret source)."""
        return self._seals.fixed or await self._seals.current()

    async def setup(self) -> None:
        """Nothing to create in Redis; checks that the server answers."""
        async with self._call("setup"):
            await self._client.ping()

    async def ping(self) -> None:
        async with self._call("ping"):
            await self._client.ping()

    async def get(self, key: MemoryKey) -> Record | None:
        seal = await self._seal()
        name = self.raw_key(key)
        if self._admission is None:  # what _call does without admission, minus its context manager
            self._ensure_open("get")
            try:
                data = await self._client.get(name)
            except _FAILURES as exc:
                raise self._translate(exc, "get", key, None) from exc
        else:
            async with self._call("get", key):
                data = await self._client.get(name)
        return None if data is None else open_one(seal, name, data, "get", key)

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        """``SET key envelope PX <ms until expires_at> [NX]``.

        A record that has already expired is not written: with ``if_absent`` nothing happens (or
        :class:`ConflictError` if a live value exists); otherwise the key is removed, which is what
        writing it and letting it expire would leave behind.

        Raises:
            ConflictError: ``if_absent`` and the key holds a value.
            TierError: ``if_match`` was given (the hot tier has no ETags).
        """
        self._ensure_open("set")
        if if_match is not None:
            raise TierError(
                "the hot tier has no ETags; if_match applies to the durable tier",
                tier=Tier.HOT,
                operation="set",
                key=key.key,
            )
        seal = await self._seal()
        raw = self.raw_key(key)
        px = ttl_ms(record, time.time())
        async with self._call("set", key):
            if px is not None and px <= 0:
                if not if_absent:
                    await self._client.unlink(raw)
                    return None
                stored = not await self._client.exists(raw)
            else:
                stored = bool(await self._client.set(raw, sealed(seal, raw, record), px=px, nx=if_absent))
        if not stored:
            raise ConflictError("key already exists", tier=Tier.HOT, operation="set", key=key.key)
        return None

    async def delete(self, key: MemoryKey) -> None:
        async with self._call("delete", key):
            await self._client.unlink(self.raw_key(key))

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        """One ``UNLINK`` for all keys (one per hash slot on a cluster); missing keys are fine."""
        if not keys:
            self._ensure_open("mdelete")
            return
        raws = list(dict.fromkeys(redis_names(keys, self._prefix)))
        async with self._call("mdelete"):
            await self._client.unlink(*raws)

    async def exists(self, key: MemoryKey) -> bool:
        async with self._call("exists", key):
            return bool(await self._client.exists(self.raw_key(key)))

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        """One ``MGET`` (on a cluster one per hash slot, nodes in parallel); input order, ``None`` for misses.

        Raises:
            CorruptValueError: a stored value fails its seal or is not a tiermem envelope (the error
                names the first such key; its ``readable`` holds every other key's record).
        """
        return records_of(keys, await self.mget_envelopes(keys))

    async def mget_envelopes(self, keys: Sequence[MemoryKey]) -> list[bytes | CorruptValueError | None]:
        """:meth:`mget` without parsing: the envelopes under their verified seals, a damaged record's
        error in its place (the hot cache's batch reads decode them from their header fields, issue 17)."""
        if not keys:
            self._ensure_open("mget")
            return []
        seal = await self._seal()
        names = redis_names(keys, self._prefix)
        async with self._call("mget"):
            if isinstance(self._client, RedisCluster):
                # redis-py groups the keys by slot, pipelines one MGET per slot to each node and
                # maps the replies back to the keys, so the order (and duplicates) survive.
                values = await self._client.mget_nonatomic(names)
            else:
                values = await self._client.mget(names)
        return self._opened(values, names, seal)

    def _opened(
        self, values: list[Any], names: Sequence[bytes], seal: HotSeal
    ) -> list[bytes | CorruptValueError | None]:
        """The envelopes of a batch read (``values[i]`` is stored under ``names[i]``), each with its
        seal verified against its key and stripped; a damaged one is its error in place, so it costs
        only its own key. Every read of many envelopes passes here."""
        return open_envelopes(seal, names, values)

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        """One non-transactional pipeline of ``SET PX [NX]``; with ``if_absent`` existing keys are skipped.

        Raises:
            BatchWriteError: some commands failed; ``written`` lists the keys that were stored.
            TierUnavailableError: nothing could be written because Redis was unreachable.
        """
        self._ensure_open("mset")
        if not items:
            return
        seal = await self._seal()
        pipe = self._client.pipeline(transaction=False)
        names = redis_names([mk for mk, _ in items], self._prefix)
        queued = queue_sets(pipe, seal, names, items, time.time(), if_absent=if_absent)
        if not queued:
            return
        async with self._call("mset"):
            replies = await pipe.execute(raise_on_error=False)
        outcome = BatchOutcome()
        for (mk, is_set), reply in zip(queued, replies, strict=True):
            if isinstance(reply, BaseException):
                error = _translate(reply, "mset", mk)
                error.__cause__ = reply
                outcome.fail(mk, error)
            elif not is_set or reply:  # a falsy SET reply is NX keeping an existing key: what if_absent asks
                outcome.ok(mk)
        outcome.raise_failures(Tier.HOT, "redis", outage_as_itself=True)

    async def swap(self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]]) -> list[bool]:
        """Compare-and-swap per key with a single-key script (runs on a cluster and on Azure
        Managed Redis): where the key holds exactly ``expected`` (``None``: nothing), store ``new``
        (``None``: delete). The lease-guarded fills of ADR 0006 rest on this. Many items go in one
        pipeline (each script call atomic on its own key, as if sent alone).
        """
        self._ensure_open("swap")
        if not items:
            return []
        script = self._swap_script
        if script is None:
            script = self._swap_script = self._client.register_script(SWAP_LUA)
            self._swap_loaded = False  # SCRIPT LOAD before the first pipeline of calls
        seal = await self._seal()
        now = time.time()
        names = redis_names([mk for mk, _, _ in items], self._prefix)
        argv = [
            swap_args(seal, name, expected, new, now)
            for name, (_, expected, new) in zip(names, items, strict=True)
        ]
        sent = [i for i, args in enumerate(argv) if args is not None]
        done = [False] * len(items)
        if not sent:
            return done
        async with self._call("swap", items[0][0] if len(items) == 1 else None):
            if len(sent) == 1:
                (i,) = sent
                done[i] = bool(await script(keys=[names[i]], args=argv[i]))
                return done
            sent_argv = [a for a in argv if a is not None]
            swapped = await run_swaps(
                self._client, script, [names[i] for i in sent], sent_argv, self._swap_loaded
            )
            self._swap_loaded = True
        for i, ok in zip(sent, swapped, strict=True):
            done[i] = ok
        return done

    async def _close(self) -> None:
        if self._identity is not None:
            # Stop the background token refresh: the next renewal fails fast and ends quietly.
            self._identity.stop()
            self._streaming.on_error(ignore_token_error)
        if self._owns_client:
            client = self._client
            if isinstance(client, RedisCluster):
                await client.aclose()
            else:
                await client.aclose(close_connection_pool=True)

    # -- collections (tiermem._collection): a hot-only client keeps them in this process ----------

    _collections: InProcessCollectionStore | None = None

    def collection_store(self) -> InProcessCollectionStore:
        """Collections for a client whose only tier is this one: held in process memory (not shared)."""
        if self._collections is None:
            from tiermem.tiers.memory_collections import InProcessCollectionStore

            self._collections = InProcessCollectionStore()
        return self._collections

    def lifecycle_store(self) -> RedisScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.azure_lifecycle import RedisScopeStore

        return RedisScopeStore(self)
