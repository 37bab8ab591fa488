"""Redis hot tier (``pip install tiermem[redis]``): Azure Managed Redis, Azure Cache for Redis, OSS Redis.

``RedisHotMemory`` speaks ``redis.asyncio`` (hiredis parser when installed) to one server or to an
OSS Redis Cluster. Keys are ``{prefix}:{tenant}:{namespace}:{key}`` (no hash tags, so a tenant's
keys spread over every shard); values are :meth:`tiermem.Record.to_bytes` envelopes with a native
``PX`` expiry equal to the envelope's. Authentication is Entra ID through ``redis-entraid`` or a
password; TLS is required for every non-loopback endpoint.

Every redis-py exception is translated in one place, :func:`_translate`.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from tiermem._codec import Record
from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidScopeError,
    TierError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._keys import redis_key, validate_scope
from tiermem._lifecycle import AsyncResource
from tiermem._protocols import MemoryKey, Tier, TierInfo

_T = TypeVar("_T")

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from tiermem.secrets import SecretSource
    from tiermem.tiers.azure_lifecycle import RedisScopeStore
    from tiermem.tiers.memory_collections import InProcessCollectionStore

try:
    from redis import exceptions as rexc
    from redis.asyncio import BlockingConnectionPool, Connection, Redis, SSLConnection
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.auth.err import InvalidTokenSchemaErr, RequestTokenErr, TokenRenewalErr
    from redis.auth.idp import IdentityProviderInterface
    from redis.auth.token import JWToken, TokenInterface
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.credentials import CredentialProvider
except ImportError as exc:  # the [redis] extra is not installed; RedisHotMemory says so when used
    _MISSING_REDIS: ImportError | None = exc
else:
    _MISSING_REDIS = None

    class _TransientRetry(Retry):
        """redis-py's ``Retry``, minus retrying rejected credentials.

        redis-py's ``AuthenticationError`` subclasses ``ConnectionError``, so a plain ``Retry``
        would back off and resend a wrong password or token ``retries`` times before failing.
        """

        async def call_with_retry(
            self,
            do: Callable[[], Awaitable[_T]],
            fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
            is_retryable: Callable[[Exception], bool] | None = None,
            with_failure_count: bool = False,
        ) -> _T:
            def transient(error: Exception) -> bool:
                if isinstance(error, _NEVER_RETRIED):
                    return False
                return is_retryable is None or is_retryable(error)

            return await super().call_with_retry(do, fail, transient, with_failure_count)

    class _TokenRequestError(RequestTokenErr, rexc.AuthenticationError):
        """No token could be fetched: retried by the token manager, then fails the connect.

        It is also a redis-py ``AuthenticationError`` because redis-py closes a connection whose
        handshake failed only for a ``RedisError``; anything else would leave a connected but
        unauthenticated connection in the pool.
        """

        def __init__(self, message: str) -> None:
            # RequestTokenErr.__init__ only forwards to the next base; call that one typed.
            rexc.AuthenticationError.__init__(self, message)

    class _CredentialIdentity(IdentityProviderInterface):
        """Feeds redis-entraid's token manager from a synchronous azure-identity ``TokenCredential``.

        Stands in for redis-entraid's ``DefaultAzureCredentialProvider`` (which calls the same
        ``get_token``) so that the adapter can stop the background refresh when it is closed:
        redis-py schedules async renewals with ``call_later`` and keeps no handle to cancel them.
        """

        def __init__(self, credential: TokenCredential, scope: str) -> None:
            self._credential = credential
            self._scope = scope
            self.closed = False

        def request_token(self, force_refresh: bool = False) -> TokenInterface:
            if self.closed:
                raise _TokenRequestError("the Redis hot tier is closed; token refresh stopped")
            try:
                return JWToken(self._credential.get_token(self._scope).token)
            except Exception as exc:  # the token manager retries it, then the connect fails with it
                raise _TokenRequestError(f"{type(exc).__name__}: {exc}") from exc

    class _SecretCredentials(CredentialProvider):
        """Asks a :class:`tiermem.secrets.SecretSource` for the password on every new connection.

        So a rotated secret (a new Key Vault version) is picked up without a restart.
        """

        def __init__(self, source: SecretSource, username: str | None) -> None:
            self._source = source
            self._username = username

        def get_credentials(self) -> tuple[str] | tuple[str, str]:
            raise NotImplementedError("RedisHotMemory only uses the async client")

        async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
            # Raise RedisErrors only: redis-py then closes the half-open connection (see above).
            try:
                secret = (await self._source.get_secret()).get_secret_value()
            except TierUnavailableError as exc:
                raise rexc.ConnectionError(f"the Redis password source is unreachable: {exc}") from exc
            except TierMemError as exc:
                raise rexc.AuthenticationError(f"could not read the Redis password: {exc}") from exc
            return (self._username, secret) if self._username is not None else (secret,)

    _NEVER_RETRIED: Final = (rexc.AuthenticationError, rexc.AuthorizationError, rexc.MaxConnectionsError)
    # Everything here is translated by _translate; anything else (a bug) propagates unchanged.
    _FAILURES: Final = (
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

__all__ = ["ENTRA_SCOPE", "MAX_RECORD_BYTES", "TOKEN_REFRESH_RATIO", "RedisHotMemory"]

ENTRA_SCOPE: Final = "https://redis.azure.com/.default"
"""The Entra ID scope of Azure Cache for Redis and Azure Managed Redis data-plane tokens."""

MAX_RECORD_BYTES: Final = 512 * 1024 * 1024  # Redis' proto-max-bulk-len default

TOKEN_REFRESH_RATIO: Final = 0.7
"""Tokens are renewed when this fraction of their lifetime has passed (redis-entraid's default)."""

_OOM_MESSAGE: Final = "Redis is out of memory (maxmemory); see runbooks/redis-out-of-memory.md"
_AUTH_CODES: Final = frozenset({"NOAUTH", "WRONGPASS", "NOPERM"})
_AZURE_TLS_PORTS: Final = (
    (".redis.cache.windows.net", 6380),  # Azure Cache for Redis
    (".redis.azure.net", 10000),  # Azure Managed Redis
)
_PIPELINE_PREFIX: Final = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.DOTALL)


def _require_redis() -> None:
    if _MISSING_REDIS is not None:
        raise ImportError("RedisHotMemory needs redis-py: pip install 'tiermem[redis]'") from _MISSING_REDIS


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


def _ttl_ms(record: Record, now: float) -> int | None:
    """Milliseconds until the record expires (rounded up); ``None`` when it never does."""
    if record.expires_at is None:
        return None
    return math.ceil((record.expires_at - now) * 1000)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_port(host: str, tls: bool) -> int:
    if tls:
        for suffix, port in _AZURE_TLS_PORTS:
            if host.lower().endswith(suffix):
                return port
    return 6379


class RedisHotMemory(AsyncResource):
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

    Raises:
        ImportError: redis-py is not installed.
        ConfigurationError: ``prefix`` is invalid or the client decodes responses to ``str``.
    """

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "tm") -> None:
        _require_redis()
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
        self._identity: _CredentialIdentity | None = None
        self._streaming: Any = None
        self._admission: asyncio.Semaphore | None = None
        self._pool_timeout = 0.0

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        credential: TokenCredential | None = None,
        password: SecretStr | SecretSource | None = None,
        username: str | None = None,
        cluster: bool = False,
        prefix: str = "tm",
        max_connections: int = 64,
        pool_timeout: float = 1.0,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        retries: int = 3,
        ssl_ca_certs: str | None = None,
    ) -> RedisHotMemory:
        """A hot tier for ``redis://host[:port][/db]`` or ``rediss://...`` (TLS). No I/O happens here.

        The URL carries no password and no query options (pass them as arguments). Plain
        ``redis://`` is accepted only for loopback hosts. A ``rediss://`` URL without a port uses
        6380 for ``*.redis.cache.windows.net`` (Azure Cache for Redis), 10000 for
        ``*.redis.azure.net`` (Azure Managed Redis) and 6379 otherwise.

        Args:
            url: the server (or, with ``cluster``, one startup node of the cluster).
            credential: Entra ID authentication through redis-entraid. Accepted: a *synchronous*
                ``azure.core.credentials.TokenCredential``, i.e. any ``azure.identity`` credential
                (``ManagedIdentityCredential``, ``WorkloadIdentityCredential``, ``DefaultAzureCredential``,
                ``ClientSecretCredential``, ``CertificateCredential``, ``AzureCliCredential``,
                ``ChainedTokenCredential``...) or any object whose ``get_token(scope)`` returns an
                ``AccessToken`` holding an Entra ID JWT with ``oid`` and ``exp`` claims. Rejected with
                :class:`ConfigurationError`: ``azure.identity.aio`` credentials (``AsyncTokenCredential``),
                because redis-py's token manager calls ``get_token`` synchronously on the event loop
                (a network fetch blocks the loop while it runs; azure-identity serves cached tokens
                in between). redis-entraid's own factories take no credential object (they build msal
                clients or their own ``DefaultAzureCredential``); to use one, pass its provider to
                ``redis.asyncio.Redis(credential_provider=...)`` and wrap that client instead. Tokens
                are for :data:`ENTRA_SCOPE`; the username sent is the token's ``oid``. A token is
                renewed in the background after :data:`TOKEN_REFRESH_RATIO` of its lifetime and
                every pooled connection re-authenticates with ``AUTH`` (idle ones at once, busy ones
                when released); new connections use the current token. Not closed here.
            password: a ``pydantic.SecretStr``, or a :class:`tiermem.secrets.SecretSource` such as
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
        if url_user is not None and username is not None and url_user != username:
            raise ConfigurationError("the Redis username is given twice, in the URL and as username=")
        tls = scheme == "rediss"
        return cls._create(
            parts.hostname,
            port if port is not None else _default_port(parts.hostname, tls),
            db=int(db_text) if db_text else 0,
            tls=tls,
            credential=credential,
            password=password,
            username=username if username is not None else url_user,
            cluster=cluster,
            prefix=prefix,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            ssl_ca_certs=ssl_ca_certs,
        )

    @classmethod
    def from_host(
        cls,
        host: str,
        port: int,
        *,
        tls: bool = True,
        db: int = 0,
        credential: TokenCredential | None = None,
        password: SecretStr | SecretSource | None = None,
        username: str | None = None,
        cluster: bool = False,
        prefix: str = "tm",
        max_connections: int = 64,
        pool_timeout: float = 1.0,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        retries: int = 3,
        ssl_ca_certs: str | None = None,
    ) -> RedisHotMemory:
        """Like :meth:`from_url`, from a host and port (TLS unless ``tls=False`` on loopback).

        Azure ports: 6380 for Azure Cache for Redis, 10000 for Azure Managed Redis.
        """
        _require_redis()
        return cls._create(
            host,
            port,
            db=db,
            tls=tls,
            credential=credential,
            password=password,
            username=username,
            cluster=cluster,
            prefix=prefix,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            ssl_ca_certs=ssl_ca_certs,
        )

    @classmethod
    def _create(
        cls,
        host: str,
        port: int,
        *,
        db: int,
        tls: bool,
        credential: TokenCredential | None,
        password: SecretStr | SecretSource | None,
        username: str | None,
        cluster: bool,
        prefix: str,
        max_connections: int,
        pool_timeout: float,
        socket_timeout: float,
        socket_connect_timeout: float,
        retries: int,
        ssl_ca_certs: str | None,
    ) -> RedisHotMemory:
        if not tls and not _is_loopback(host):
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
                "password must be a pydantic.SecretStr or a tiermem.secrets.SecretSource"
            )
        if cluster and db != 0:
            raise ConfigurationError("Redis Cluster has only database 0")
        if max_connections < 1 or retries < 0:
            raise ConfigurationError("max_connections must be >= 1 and retries >= 0")
        if not (pool_timeout > 0 and socket_timeout > 0 and socket_connect_timeout > 0):
            raise ConfigurationError("pool_timeout, socket_timeout and socket_connect_timeout must be > 0")
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"invalid Redis port {port}")

        identity: _CredentialIdentity | None = None
        streaming: CredentialProvider | None = None
        provider: CredentialProvider | None = None
        if credential is not None:
            identity, streaming = _entra_provider(credential)
            provider = streaming
        elif password is not None and not isinstance(password, SecretStr):
            provider = _SecretCredentials(password, username)
        retry = _TransientRetry(ExponentialWithJitterBackoff(cap=0.5, base=0.01), retries)
        options: dict[str, Any] = {
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
                **options,
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
                **options,
                **(tls_options if tls else {}),
            )
            # The provider goes to the client too: that is what registers the pool for re-auth.
            client = Redis(connection_pool=pool, credential_provider=streaming)
        self = cls(client, prefix=prefix)
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
    def info(self) -> TierInfo:
        return self._info

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def cluster(self) -> bool:
        """Whether this tier speaks the OSS Cluster protocol."""
        return self._cluster

    def raw_key(self, key: MemoryKey) -> str:
        """The Redis key that holds ``key`` (for operators and tests)."""
        return redis_key(key, self._prefix)

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
            raise _translate(exc, operation, key) from exc
        finally:
            if admission is not None:
                admission.release()

    def _decode(self, data: bytes | str, operation: str, key: MemoryKey) -> Record:
        if isinstance(data, str):  # ruled out by the decode_responses check in __init__
            raise ConfigurationError("the Redis client decodes responses; use decode_responses=False")
        try:
            return Record.from_bytes(data)
        except CorruptValueError as exc:
            raise CorruptValueError(exc.message, tier=Tier.HOT, operation=operation, key=key.key) from exc

    async def setup(self) -> None:
        """Nothing to create in Redis; checks that the server answers."""
        async with self._call("setup"):
            await self._client.ping()

    async def ping(self) -> None:
        async with self._call("ping"):
            await self._client.ping()

    async def get(self, key: MemoryKey) -> Record | None:
        async with self._call("get", key):
            data = await self._client.get(self.raw_key(key))
        return None if data is None else self._decode(data, "get", key)

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
        raw = self.raw_key(key)
        px = _ttl_ms(record, time.time())
        async with self._call("set", key):
            if px is not None and px <= 0:
                if not if_absent:
                    await self._client.unlink(raw)
                    return None
                stored = not await self._client.exists(raw)
            else:
                stored = bool(await self._client.set(raw, record.to_bytes(), px=px, nx=if_absent))
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
        raws = list(dict.fromkeys(self.raw_key(mk) for mk in keys))
        async with self._call("mdelete"):
            await self._client.unlink(*raws)

    async def exists(self, key: MemoryKey) -> bool:
        async with self._call("exists", key):
            return bool(await self._client.exists(self.raw_key(key)))

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        """One ``MGET`` (on a cluster one per hash slot, nodes in parallel); input order, ``None`` for misses.

        Raises:
            CorruptValueError: a stored value is not a tiermem envelope (the error names its key).
        """
        if not keys:
            self._ensure_open("mget")
            return []
        raws = [self.raw_key(mk) for mk in keys]
        async with self._call("mget"):
            if isinstance(self._client, RedisCluster):
                # redis-py groups the keys by slot, pipelines one MGET per slot to each node and
                # maps the replies back to the keys, so the order (and duplicates) survive.
                values = await self._client.mget_nonatomic(raws)
            else:
                values = await self._client.mget(raws)
        return [
            None if data is None else self._decode(data, "mget", mk)
            for mk, data in zip(keys, values, strict=True)
        ]

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        """One non-transactional pipeline of ``SET PX [NX]``; with ``if_absent`` existing keys are skipped.

        Raises:
            BatchWriteError: some commands failed; ``written`` lists the keys that were stored.
            TierUnavailableError: nothing could be written because Redis was unreachable.
        """
        self._ensure_open("mset")
        if not items:
            return
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        queued: list[tuple[MemoryKey, bool]] = []  # (key, is a SET whose reply says if it stored)
        for mk, record in items:
            raw = self.raw_key(mk)
            px = _ttl_ms(record, now)
            if px is not None and px <= 0:
                if if_absent:
                    continue  # an expired record neither blocks nor replaces anything
                pipe.unlink(raw)
                queued.append((mk, False))
            else:
                pipe.set(raw, record.to_bytes(), px=px, nx=if_absent)
                queued.append((mk, True))
        if not queued:
            return
        async with self._call("mset"):
            replies = await pipe.execute(raise_on_error=False)
        written: list[str] = []
        failed: dict[str, BaseException] = {}
        for (mk, is_set), reply in zip(queued, replies, strict=True):
            if isinstance(reply, BaseException):
                error = _translate(reply, "mset", mk)
                error.__cause__ = reply
                failed[mk.key] = error
            elif is_set and not reply:
                continue  # NX: the key exists, which is what if_absent asks to keep
            else:
                written.append(mk.key)
        if failed:
            errors = list(failed.values())
            if not written and all(isinstance(e, TierUnavailableError) for e in errors):
                raise errors[0]
            raise BatchWriteError("redis mset failed", written=written, failed=failed, tier=Tier.HOT)

    async def _close(self) -> None:
        if self._identity is not None:
            # Stop the background token refresh: the next renewal fails fast and ends quietly.
            self._identity.closed = True
            self._streaming.on_error(_ignore_token_error)
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
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0011)."""
        from tiermem.tiers.azure_lifecycle import RedisScopeStore

        return RedisScopeStore(self)


async def _ignore_token_error(error: Exception) -> None:
    """Renewal errors after close are expected (see ``_CredentialIdentity.request_token``)."""


def _entra_provider(credential: TokenCredential) -> tuple[_CredentialIdentity, CredentialProvider]:
    get_token = getattr(credential, "get_token", None)
    if not callable(get_token):
        raise ConfigurationError(
            "credential must be an azure.core.credentials.TokenCredential (e.g. azure.identity."
            f"ManagedIdentityCredential), not {type(credential).__name__}"
        )
    if inspect.iscoroutinefunction(get_token):
        raise ConfigurationError(
            "redis-entraid needs a synchronous credential: pass an azure.identity credential "
            "(e.g. azure.identity.ManagedIdentityCredential), not one from azure.identity.aio"
        )
    try:
        from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
        from redis_entraid.cred_provider import EntraIdCredentialsProvider
    except ImportError as exc:
        raise ImportError(
            "Entra ID auth for Redis needs redis-entraid: pip install 'tiermem[redis]'"
        ) from exc
    identity = _CredentialIdentity(credential, ENTRA_SCOPE)
    config = TokenManagerConfig(
        expiration_refresh_ratio=TOKEN_REFRESH_RATIO,
        lower_refresh_bound_millis=0,
        token_request_execution_timeout_in_ms=1000,
        retry_policy=RetryPolicy(max_attempts=3, delay_in_ms=100),
    )
    return identity, cast("CredentialProvider", EntraIdCredentialsProvider(identity, config))
