"""How the Redis hot tier authenticates: Entra ID tokens through redis-entraid, or a password.

Imported by :mod:`tiermem.tiers.redis` only when redis-py is installed. Everything here raises
redis-py errors (never tiermem ones), because redis-py closes a connection whose handshake failed
only for a ``RedisError``; anything else would leave a connected but unauthenticated connection
in the pool. The adapter translates them like any other redis-py error.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.auth.err import RequestTokenErr, TokenRenewalErr
from redis.auth.idp import IdentityProviderInterface
from redis.auth.token import JWToken, TokenInterface
from redis.credentials import CredentialProvider

from tiermem._errors import ConfigurationError, TierMemError, TierUnavailableError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

    from tiermem.secrets import SecretSource

__all__ = [
    "ENTRA_SCOPE",
    "TOKEN_REFRESH_RATIO",
    "CredentialIdentity",
    "SecretCredentials",
    "TransientRetry",
    "entra_provider",
    "ignore_token_error",
]

_T = TypeVar("_T")

ENTRA_SCOPE = "https://redis.azure.com/.default"
"""The Entra ID scope of Azure Cache for Redis and Azure Managed Redis data-plane tokens."""

TOKEN_REFRESH_RATIO = 0.7
"""Tokens are renewed when this fraction of their lifetime has passed (redis-entraid's default)."""

# An async credential's token arrives on the event loop while redis-entraid polls for it; poll
# every 100 ms for up to 10 s (a managed-identity endpoint can take seconds on a cold start).
_ASYNC_POLL_MS: Final = 100
_ASYNC_POLLS: Final = 100
_FETCH_ATTEMPTS: Final = 4  # like the synchronous path: the first fetch and 3 retries

_NEVER_RETRIED: Final = (rexc.AuthenticationError, rexc.AuthorizationError, rexc.MaxConnectionsError)


class TransientRetry(Retry):
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
    """No token could be fetched: retried by the token manager, then fails the connect."""

    def __init__(self, message: str) -> None:
        # RequestTokenErr.__init__ only forwards to the next base; call that one typed.
        rexc.AuthenticationError.__init__(self, message)


class _TokenFetchError(TokenRenewalErr, rexc.AuthenticationError):
    """The credential failed every attempt: not retried any further; fails the connect."""

    def __init__(self, message: str) -> None:
        rexc.AuthenticationError.__init__(self, message)


class CredentialIdentity(IdentityProviderInterface):
    """Feeds redis-entraid's token manager from a synchronous azure-identity ``TokenCredential``.

    Stands in for redis-entraid's ``DefaultAzureCredentialProvider`` (which calls the same
    ``get_token``) so that the adapter can stop the background refresh when it is closed:
    redis-py schedules async renewals with ``call_later`` and keeps no handle to cancel them.
    """

    def __init__(self, credential: TokenCredential, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self.closed = False

    def stop(self) -> None:
        """Refuse further token requests: the background refresh then fails fast and ends."""
        self.closed = True

    def request_token(self, force_refresh: bool = False) -> TokenInterface:
        if self.closed:
            raise _TokenRequestError("the Redis hot tier is closed; token refresh stopped")
        try:
            return JWToken(self._credential.get_token(self._scope).token)
        except Exception as exc:  # the token manager retries it, then the connect fails with it
            raise _TokenRequestError(f"{type(exc).__name__}: {exc}") from exc


class _AsyncCredentialIdentity(CredentialIdentity):
    """The same, from an ``azure.identity.aio`` credential, without blocking the event loop.

    redis-py's async token manager calls ``request_token`` synchronously but waits between its
    retries with ``asyncio.sleep``. So a request starts the credential's ``get_token`` as a task
    on the running loop and answers "not yet" (a retried error); a later poll hands out the token
    that task fetched. Each request gets a token fetched for it, as with a synchronous credential.
    """

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self._async_credential = credential
        self._scope = scope
        self.closed = False
        self._fetch: asyncio.Task[str] | None = None
        self._failures = 0

    def request_token(self, force_refresh: bool = False) -> TokenInterface:
        if self.closed:
            raise _TokenRequestError("the Redis hot tier is closed; token refresh stopped")
        fetch = self._fetch
        if fetch is not None and fetch.done():
            self._fetch = None
            error = fetch.exception()
            if error is None:
                self._failures = 0
                token = JWToken(fetch.result())
                if not token.is_expired():
                    return token
                # azure-identity may hand out its cached token up to a second past expiry (it compares
                # whole seconds): ask again, it then fetches a fresh one.
                raise _TokenRequestError("the async credential returned an expired token; asking again")
            self._failures += 1
            message = f"{type(error).__name__}: {error}"
            if self._failures >= _FETCH_ATTEMPTS:
                self._failures = 0
                raise _TokenFetchError(message) from error
            raise _TokenRequestError(message) from error
        if fetch is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError as exc:
                raise _TokenRequestError("an async credential needs a running event loop") from exc
            self._fetch = loop.create_task(self._token())
        raise _TokenRequestError("waiting for the async credential to return a token")

    async def _token(self) -> str:
        return (await self._async_credential.get_token(self._scope)).token

    def stop(self) -> None:
        self.closed = True
        fetch, self._fetch = self._fetch, None
        if fetch is not None:
            if fetch.done() and not fetch.cancelled():
                fetch.exception()  # retrieved: a failed fetch nobody polled is not an error to log
            fetch.cancel()


class SecretCredentials(CredentialProvider):
    """Asks a :class:`tiermem.secrets.SecretSource` for the password on every new connection.

    So a rotated secret (a new Key Vault version) is picked up without a restart.
    """

    def __init__(self, source: SecretSource, username: str | None) -> None:
        self._source = source
        self._username = username

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        raise NotImplementedError("RedisHotMemory only uses the async client")

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        try:
            secret = (await self._source.get_secret()).get_secret_value()
        except TierUnavailableError as exc:
            raise rexc.ConnectionError(f"the Redis password source is unreachable: {exc}") from exc
        except TierMemError as exc:
            raise rexc.AuthenticationError(f"could not read the Redis password: {exc}") from exc
        return (self._username, secret) if self._username is not None else (secret,)


async def ignore_token_error(error: Exception) -> None:
    """Renewal errors after close are expected (see ``CredentialIdentity.request_token``)."""


def entra_provider(
    credential: TokenCredential | AsyncTokenCredential,
) -> tuple[CredentialIdentity, CredentialProvider]:
    """redis-entraid's credential provider over an azure-identity credential (sync or ``aio``)."""
    get_token = getattr(credential, "get_token", None)
    if not callable(get_token):
        raise ConfigurationError(
            "credential must be a TokenCredential or AsyncTokenCredential (an azure-identity credential "
            f"such as ManagedIdentityCredential, sync or azure.identity.aio), not {type(credential).__name__}"
        )
    try:
        from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
        from redis_entraid.cred_provider import EntraIdCredentialsProvider
    except ImportError as exc:
        raise ImportError(
            "Entra ID auth for Redis needs redis-entraid: pip install 'tiermem[redis]'"
        ) from exc
    identity: CredentialIdentity
    if inspect.iscoroutinefunction(get_token):
        identity = _AsyncCredentialIdentity(cast("AsyncTokenCredential", credential), ENTRA_SCOPE)
        retry = RetryPolicy(max_attempts=_ASYNC_POLLS, delay_in_ms=_ASYNC_POLL_MS)
    else:
        identity = CredentialIdentity(cast("TokenCredential", credential), ENTRA_SCOPE)
        retry = RetryPolicy(max_attempts=3, delay_in_ms=100)
    config = TokenManagerConfig(
        expiration_refresh_ratio=TOKEN_REFRESH_RATIO,
        lower_refresh_bound_millis=0,
        token_request_execution_timeout_in_ms=1000,
        retry_policy=retry,
    )
    return identity, cast("CredentialProvider", EntraIdCredentialsProvider(identity, config))
