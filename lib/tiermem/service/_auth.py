"""Who is calling: Entra ID bearer-token validation, and the local no-auth mode.

An :class:`Authenticator` turns the bearer token of a request into a :class:`Principal`: the
caller's tiermem tenant (from a token claim, never from the URL or body) and its app roles.

:class:`EntraAuthenticator` validates access tokens issued by one Entra tenant (or, for a
multi-tenant app, by an allow-list of tenants):

- the header first: ``alg`` must be ``RS256`` (``none`` and every HMAC algorithm are refused before
  any key is looked up) and ``kid`` must name a key;
- the signature against the tenant's JWKS, discovered from its OpenID configuration and cached;
  an unknown ``kid`` triggers a refresh (key rotation), at most once per
  ``auth_jwks_min_refresh_seconds`` so random ``kid`` values cannot make the service hammer Entra;
- then the required claims, ``aud``, ``exp``, ``nbf`` and ``iat`` (small leeway), and ``iss``,
  which must be the issuer of the token's own ``tid`` (v2; v1 if enabled) for an allowed ``tid``;
- and that it is an access token: ``azp`` (v2) or ``appid`` (v1) present, no ``nonce`` (ID tokens
  carry one).

Failures raise :class:`~tiermem.service._errors.ApiError` with status 401 and a short reason;
a missing role is a 403 (see :func:`require`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import httpx
import jwt

from tiermem._errors import ConfigurationError, InvalidScopeError
from tiermem._keys import validate_scope
from tiermem._net import is_loopback
from tiermem.service._errors import ApiError
from tiermem.service._settings import ServiceSettings

__all__ = [
    "Authenticator",
    "EntraAuthenticator",
    "LocalAuthenticator",
    "Permission",
    "Principal",
    "authenticator_from_settings",
    "require",
]

logger = logging.getLogger("tiermem.service.auth")

ALGORITHM: Final = "RS256"
_MAX_TOKEN_CHARS: Final = 16 * 1024
_MAX_JWKS_BYTES: Final = 512 * 1024
_MIN_RSA_BITS: Final = 2048
_REQUIRED_CLAIMS: Final = ("exp", "nbf", "iat", "iss", "aud", "tid")
_MULTI_TENANT: Final = frozenset({"organizations", "common"})
_GUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UNAVAILABLE_RETRY_AFTER: Final = 10
_RETRY_EMPTY_SECONDS: Final = 5.0


class Permission(enum.Enum):
    """What a route needs; each maps to an app role named in :class:`ServiceSettings`."""

    READ = "read"
    WRITE = "write"
    STATS = "stats"
    ADMIN = "admin"  # erasure and usage of the caller's own tenant


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        tenant: the tiermem tenant every request of this caller is scoped to.
        roles: the app roles granted to the caller (the ``roles`` claim).
        subject: who the caller is, for logs (``oid``, else ``sub``); never used for access decisions.
    """

    tenant: str
    roles: frozenset[str]
    subject: str | None = None


@runtime_checkable
class Authenticator(Protocol):
    """Turns a bearer token into a :class:`Principal`, or raises ``ApiError`` (401/503)."""

    @property
    def requires_token(self) -> bool:
        """Whether requests must carry ``Authorization: Bearer`` (documented in the OpenAPI schema)."""
        ...

    async def authenticate(self, token: str | None) -> Principal: ...

    async def aclose(self) -> None: ...


def unauthorized(reason: str, *, error: bool = True) -> ApiError:
    """A 401 with a short reason; ``error=False`` for a request that carried no token (RFC 6750 3.1)."""
    challenge = 'Bearer error="invalid_token"' if error else 'Bearer realm="tiermem"'
    return ApiError(
        401, "invalid_token" if error else "unauthorized", reason, headers={"WWW-Authenticate": challenge}
    )


def require(principal: Principal, permission: Permission, role_names: Mapping[Permission, str]) -> Principal:
    """Return ``principal`` if it holds the role for ``permission``, else raise a 403."""
    role = role_names[permission]
    if role not in principal.roles:
        raise ApiError(
            403,
            "forbidden",
            f"this operation needs the {role} role",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
        )
    return principal


def role_names(settings: ServiceSettings) -> dict[Permission, str]:
    return {
        Permission.READ: settings.auth_read_role,
        Permission.WRITE: settings.auth_write_role,
        Permission.STATS: settings.auth_stats_role,
        Permission.ADMIN: settings.auth_admin_role,
    }


class LocalAuthenticator:
    """``auth_mode=none``: no token; every caller is ``tenant`` with every role. Local development only."""

    def __init__(self, tenant: str, roles: frozenset[str]) -> None:
        self._principal = Principal(validate_scope(tenant, "tenant"), roles, "local")

    @property
    def requires_token(self) -> bool:
        return False

    async def authenticate(self, token: str | None) -> Principal:
        return self._principal

    async def aclose(self) -> None:
        return None


class _KeyFetchError(Exception):
    """The OpenID configuration or the JWKS could not be fetched or parsed."""


def _require_secure(url: str, what: str) -> str:
    if not url.startswith("https://") and not (url.startswith("http://") and is_loopback(url)):
        raise _KeyFetchError(f"{what} must use https (plain http is allowed on loopback only): {url}")
    return url


def _parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """Keep the RSA signing keys usable with RS256 (>= 2048 bits); skip anything else."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _KeyFetchError("the JWKS document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for raw in document["keys"]:
        if not isinstance(raw, dict):
            continue
        kid = raw.get("kid")
        if not isinstance(kid, str) or not kid or raw.get("kty") != "RSA":
            continue
        if raw.get("use", "sig") != "sig" or raw.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            key = jwt.PyJWK(raw, algorithm=ALGORITHM)
        except jwt.PyJWTError as exc:
            logger.warning("ignoring an unusable signing key %r: %s", kid, exc)
            continue
        if getattr(key.key, "key_size", 0) < _MIN_RSA_BITS:
            logger.warning("ignoring signing key %r: RSA keys must have at least %d bits", kid, _MIN_RSA_BITS)
            continue
        keys[kid] = key
    return keys


class _SigningKeys:
    """The tenant's signing keys: fetched lazily, cached, refreshed on expiry or (rate-limited) on a new kid.

    One refresh at a time (single flight): concurrent requests wait for it and then look again.
    When a refresh fails the keys already known stay in use, so an Entra hiccup does not take the
    service down.
    """

    def __init__(
        self,
        *,
        openid_config_url: str | None,
        jwks_url: str | None,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout: float,
        http: httpx.AsyncClient | None,
        clock: Callable[[], float],
    ) -> None:
        self._openid_config_url = openid_config_url
        self._jwks_url = jwks_url
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._timeout = timeout
        self._http = http
        self._owns_http = http is None
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._http

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            response = await self._client().get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _KeyFetchError(f"cannot fetch the {what}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _KeyFetchError(f"the {what} answered HTTP {response.status_code}")
        if len(response.content) > _MAX_JWKS_BYTES:
            raise _KeyFetchError(f"the {what} is larger than {_MAX_JWKS_BYTES} bytes")
        try:
            return response.json()
        except ValueError as exc:
            raise _KeyFetchError(f"the {what} is not JSON") from exc

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        jwks_url = self._jwks_url
        if jwks_url is None:
            assert self._openid_config_url is not None
            config = await self._get_json(
                _require_secure(self._openid_config_url, "the OpenID configuration URL"),
                "OpenID configuration",
            )
            uri = config.get("jwks_uri") if isinstance(config, dict) else None
            if not isinstance(uri, str):
                raise _KeyFetchError("the OpenID configuration has no jwks_uri")
            jwks_url = uri
        keys = _parse_jwks(await self._get_json(_require_secure(jwks_url, "jwks_uri"), "JWKS"))
        if not keys:
            raise _KeyFetchError("the JWKS holds no usable RS256 signing key")
        return keys

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._cache_seconds

    def _may_retry(self, now: float) -> bool:
        if self._attempted_at is None:
            return True
        # Without any key every request fails, so retry sooner than the unknown-kid rate limit.
        interval = (
            self._min_refresh_seconds if self._keys else min(self._min_refresh_seconds, _RETRY_EMPTY_SECONDS)
        )
        return now - self._attempted_at >= interval

    async def _refresh(self, *, unknown_kid: str | None) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = self._clock()
            # Someone else may have refreshed while we waited for the lock.
            if unknown_kid is None and not self._stale(now):
                return
            if unknown_kid is not None and unknown_kid in self._keys:
                return
            if not self._may_retry(now):
                if not self._keys:
                    raise _KeyFetchError("no signing keys yet; the last attempt failed moments ago")
                return  # refreshed (or failed to) moments ago: keep using the keys we have
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = await self._fetch()
            except _KeyFetchError as exc:
                if not self._keys:
                    logger.error("cannot load the token signing keys: %s", exc)  # noqa: TRY400 - no traceback needed
                    raise
                logger.warning(
                    "signing-key refresh failed; using the %d cached keys: %s", len(self._keys), exc
                )
                return
            self._keys = keys
            self._fetched_at = self._clock()
            logger.info("loaded %d token signing keys", len(keys))

    async def get(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``, refreshing when the cache is stale or the kid is new (rate-limited)."""
        if self._stale(self._clock()):
            await self._refresh(unknown_kid=None)
        key = self._keys.get(kid)
        if key is None and self._may_retry(self._clock()):
            await self._refresh(unknown_kid=kid)
            key = self._keys.get(kid)
        return key

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()


class EntraAuthenticator:
    """Validates Entra ID access tokens (RS256 JWTs) for one Entra tenant, or several (multi-tenant app).

    Issuer rule: ``iss`` must be ``{authority}/{tid}/v2.0`` (or, with ``accept_v1_tokens``,
    ``https://sts.windows.net/{tid}/``) where ``tid`` is the token's own tenant claim, and ``tid``
    must be ``tenant_id`` (single tenant) or in ``allowed_tenants`` (``tenant_id`` =
    ``organizations``/``common``).

    Args:
        tenant_id: the Entra tenant (GUID) that issues the tokens, or ``organizations``/``common``.
        audiences: accepted ``aud`` values (app ID URI and/or client id).
        allowed_tenants: multi-tenant only: tenant GUIDs allowed to call, or ``["*"]`` for any.
        authority: ``https://login.microsoftonline.com`` or a sovereign-cloud authority.
        openid_config_url: where to discover ``jwks_uri`` (default: the tenant's v2.0 document).
        jwks_url: use this JWKS directly instead of discovering it.
        accept_v1_tokens: also accept the v1 issuer ``https://sts.windows.net/{tid}/``.
        tenant_claim: the claim holding the caller's tiermem tenant.
        leeway: seconds of clock skew for ``exp``/``nbf``/``iat``.
        http: an ``httpx.AsyncClient`` to fetch keys with (not closed here); default: one of our own.

    Raises:
        ConfigurationError: a missing or malformed setting (the message names the variable).
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        audiences: list[str],
        allowed_tenants: list[str] | None = None,
        authority: str = "https://login.microsoftonline.com",
        openid_config_url: str | None = None,
        jwks_url: str | None = None,
        accept_v1_tokens: bool = False,
        tenant_claim: str = "tid",
        leeway: float = 60.0,
        jwks_cache_seconds: float = 6 * 3600.0,
        jwks_min_refresh_seconds: float = 60.0,
        http_timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tenant_id = (tenant_id or "").strip().lower()
        self.multi_tenant = tenant_id in _MULTI_TENANT
        if not self.multi_tenant and not _GUID_RE.fullmatch(tenant_id):
            raise ConfigurationError(
                "TIERMEM_AUTH_TENANT_ID must be the Entra tenant id (a GUID), or organizations/common for "
                f"a multi-tenant app; got {tenant_id!r:.60}. For local development use TIERMEM_AUTH_MODE=none"
            )
        allowed = [t.strip().lower() for t in allowed_tenants or [] if t.strip()]
        if self.multi_tenant:
            if not allowed:
                raise ConfigurationError(
                    f"TIERMEM_AUTH_TENANT_ID={tenant_id} accepts tokens from other Entra tenants: set "
                    "TIERMEM_AUTH_ALLOWED_TENANTS to their tenant ids (comma-separated), or * for any"
                )
            bad = [t for t in allowed if t != "*" and not _GUID_RE.fullmatch(t)]
            if bad:
                raise ConfigurationError(
                    f"TIERMEM_AUTH_ALLOWED_TENANTS holds non-GUID entries: {bad[:3]!r:.120}"
                )
        if not audiences:
            raise ConfigurationError(
                "TIERMEM_AUTH_AUDIENCE must name the service's audience (app ID URI and/or client id)"
            )
        if not tenant_claim:
            raise ConfigurationError("TIERMEM_AUTH_TENANT_CLAIM must name a claim")
        if self.multi_tenant and tenant_claim != "tid":
            # In a multi-tenant app every other claim is under the control of the issuing customer
            # tenant (claims mapping, extension attributes): one customer could name another's tenant.
            raise ConfigurationError(
                "a multi-tenant app must take the tiermem tenant from the 'tid' claim "
                "(TIERMEM_AUTH_TENANT_CLAIM=tid): other claims are set by each customer tenant"
            )
        self.authority = authority.rstrip("/")
        self.tenant_id = tenant_id
        self.allowed_tenants: frozenset[str] | None = (
            None if "*" in allowed else frozenset(allowed) if self.multi_tenant else frozenset({tenant_id})
        )
        self.audiences = list(audiences)
        self.accept_v1_tokens = accept_v1_tokens
        self.tenant_claim = tenant_claim
        self.leeway = leeway
        if openid_config_url is None and jwks_url is None:
            openid_config_url = f"{self.authority}/{tenant_id}/v2.0/.well-known/openid-configuration"
        for url in (openid_config_url, jwks_url):
            if url is not None:
                try:
                    _require_secure(url, "the OpenID configuration/JWKS URL")
                except _KeyFetchError as exc:
                    raise ConfigurationError(str(exc)) from exc
        self.keys = _SigningKeys(
            openid_config_url=openid_config_url,
            jwks_url=jwks_url,
            cache_seconds=jwks_cache_seconds,
            min_refresh_seconds=jwks_min_refresh_seconds,
            timeout=http_timeout,
            http=http,
            clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> EntraAuthenticator:
        return cls(
            tenant_id=settings.auth_tenant_id or "",
            audiences=settings.audiences,
            allowed_tenants=settings.allowed_tenants,
            authority=settings.auth_authority,
            openid_config_url=settings.auth_openid_config_url,
            jwks_url=settings.auth_jwks_url,
            accept_v1_tokens=settings.auth_accept_v1_tokens,
            tenant_claim=settings.auth_tenant_claim,
            leeway=settings.auth_leeway,
            jwks_cache_seconds=settings.auth_jwks_cache_seconds,
            jwks_min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
            http_timeout=settings.auth_http_timeout,
        )

    @property
    def requires_token(self) -> bool:
        return True

    def issuers(self, tid: str) -> list[str]:
        """The issuers a token from Entra tenant ``tid`` may carry."""
        found = [f"{self.authority}/{tid}/v2.0"]
        if self.accept_v1_tokens:
            found.append(f"https://sts.windows.net/{tid}/")
        return found

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise unauthorized("a bearer token is required", error=False)
        if len(token) > _MAX_TOKEN_CHARS:
            raise unauthorized("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise unauthorized("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthorized("token has no key id")
        try:
            key = await self.keys.get(kid)
        except _KeyFetchError:
            raise ApiError(
                503,
                "auth_unavailable",
                "token validation is temporarily unavailable",
                headers={"Retry-After": str(_UNAVAILABLE_RETRY_AFTER)},
            ) from None
        if key is None:
            raise unauthorized("unknown signing key")
        claims = self._decode(token, key)
        self._check_issuer(claims)
        self._check_access_token(claims)
        return self._principal(claims)

    @staticmethod
    def _check_access_token(claims: Mapping[str, Any]) -> None:
        """Refuse ID tokens: an access token names its client (``azp`` v2, ``appid`` v1) and has no ``nonce``.

        An ID token issued to a client whose id is an accepted audience would otherwise pass (its
        ``aud`` is the client id), letting a sign-in token stand in for an access token (item 8).
        """
        if "nonce" in claims:
            raise unauthorized("ID tokens are not accepted; send an access token")
        client = claims.get("azp", claims.get("appid"))
        if not isinstance(client, str) or not client:
            raise unauthorized("token has no azp/appid claim (not an access token)")

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """Signature first (PyJWT checks it before any claim), then ``aud``, ``exp``, ``nbf``, ``iat``."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self.audiences,
                leeway=self.leeway,
                # iss depends on the token's tid: checked in _check_issuer, after the signature.
                options={"require": list(_REQUIRED_CLAIMS), "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("invalid audience") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("invalid signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise unauthorized("invalid token") from None
        return claims

    def _check_issuer(self, claims: Mapping[str, Any]) -> None:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not _GUID_RE.fullmatch(tid):
            raise unauthorized("invalid issuer")
        tid = tid.lower()
        if self.allowed_tenants is not None and tid not in self.allowed_tenants:
            raise unauthorized("invalid issuer")
        if claims.get("iss") not in self.issuers(tid):
            raise unauthorized("invalid issuer")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        raw = claims.get(self.tenant_claim)
        try:
            tenant = validate_scope(raw, "tenant")
        except InvalidScopeError:
            raise unauthorized("token has no valid tenant claim") from None
        roles = claims.get("roles")
        granted = (
            frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
        )
        subject = claims.get("oid") or claims.get("sub")
        return Principal(tenant, granted, subject if isinstance(subject, str) else None)

    async def aclose(self) -> None:
        await self.keys.aclose()


def authenticator_from_settings(settings: ServiceSettings) -> Authenticator:
    """``EntraAuthenticator`` for ``auth_mode=entra`` (config validated), ``LocalAuthenticator`` for none."""
    if settings.auth_mode == "none":
        return LocalAuthenticator(settings.tenant, frozenset(role_names(settings).values()))
    return EntraAuthenticator.from_settings(settings)
