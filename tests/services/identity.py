"""A local managed-identity token endpoint (the App Service protocol).

azure-identity's ``ManagedIdentityCredential`` (sync and ``aio``; also inside
``DefaultAzureCredential``) and msal's ``ManagedIdentityClient`` (used by redis-entraid) use the
App Service protocol when ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set and
``IDENTITY_SERVER_THUMBPRINT`` / ``IMDS_ENDPOINT`` are not::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>
        [&client_id=...|&object_id=...|&mi_res_id=...]
    X-IDENTITY-HEADER: {IDENTITY_HEADER}

    200 {"access_token": "<jwt>", "expires_on": "<epoch seconds>", "resource": "<resource>",
         "token_type": "Bearer", "client_id": "<appid>"}

The tokens are real RS256 JWTs signed with a key generated per endpoint; :attr:`jwks` publishes
the public half so fakes (Key Vault) can verify signatures. Claims follow Entra ID v1 access
tokens: ``iss=https://sts.windows.net/<tid>/``, ``aud=<resource>``, ``tid``, ``oid`` (stable per
identity), ``appid``, ``iat``/``nbf``/``exp``.

The server runs in its own thread, so a client that blocks its event loop while fetching a token
(redis-entraid does: msal is synchronous) still gets an answer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services._http import LoopbackHttpService, Response
from tests.services._process import LOOPBACK

__all__ = [
    "API_VERSION",
    "REDIS_RESOURCE",
    "STORAGE_RESOURCE",
    "VAULT_RESOURCE",
    "IssuedToken",
    "ManagedIdentityEndpoint",
    "TokenCallback",
]

API_VERSION = "2019-08-01"
STORAGE_RESOURCE = "https://storage.azure.com"
VAULT_RESOURCE = "https://vault.azure.net"
REDIS_RESOURCE = "https://redis.azure.com"

# Variables that would make azure-identity/msal pick another managed-identity flavour
# (Service Fabric, Azure Arc, Cloud Shell) instead of App Service.
_CONFLICTING_ENV = ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET")

_ID_NAMESPACE = uuid.UUID("6c1f3d1e-58a4-4d44-9b4e-2b9a3c7e0f11")

TokenCallback = Callable[[str, Mapping[str, Any], str], None]
"""``on_issue(resource, claims, token)``; runs before the token is returned to the client."""


@dataclass(frozen=True)
class IssuedToken:
    """One token handed out by the endpoint."""

    resource: str
    claims: Mapping[str, Any]
    token: str
    issued_at: float = field(default_factory=time.time)

    @property
    def object_id(self) -> str:
        return str(self.claims["oid"])

    @property
    def expires_on(self) -> int:
        return int(self.claims["exp"])


class ManagedIdentityEndpoint(LoopbackHttpService):
    """An App Service managed-identity endpoint on 127.0.0.1 that mints signed JWTs.

    Attributes:
        tenant_id: The ``tid`` claim and the issuer's tenant.
        identity_header: The secret expected in ``X-IDENTITY-HEADER``.
        token_lifetime: Default lifetime of new tokens in seconds (see :meth:`set_lifetime`).
        on_issue: Callbacks run for every issued token, in order, before the response is sent.
            An exception in a callback turns the response into a 500 (and is kept in
            :attr:`callback_errors`), so the client sees the failure.
    """

    _thread_name = "managed-identity-endpoint"
    _noun = "endpoint"

    def __init__(self, *, tenant_id: str | None = None, token_lifetime: float = 3600.0) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.identity_header = secrets.token_urlsafe(24)
        self.token_lifetime = token_lifetime
        self.on_issue: list[TokenCallback] = []
        self.callback_errors: list[BaseException] = []
        self._lifetimes: dict[str, float] = {}
        self._issued: list[IssuedToken] = []
        self._requests = 0
        self._fail_next: list[int] = []
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(8)

    @classmethod
    def start(
        cls, *, tenant_id: str | None = None, token_lifetime: float = 3600.0
    ) -> ManagedIdentityEndpoint:
        """Create the endpoint and start serving on a free loopback port."""
        endpoint = cls(tenant_id=tenant_id, token_lifetime=token_lifetime)
        endpoint._serve()
        return endpoint

    # -- addresses and environment -------------------------------------------------------

    @property
    def url(self) -> str:
        """The value for ``IDENTITY_ENDPOINT``."""
        return f"http://{LOOPBACK}:{self.port}/msi/token"

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def authority(self) -> str:
        """What a resource's ``WWW-Authenticate`` challenge names as ``authorization``."""
        return f"https://login.microsoftonline.com/{self.tenant_id}"

    def env(self) -> dict[str, str]:
        """``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` for this endpoint."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.identity_header}

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """Set :meth:`env` in ``os.environ`` (and unset variables selecting other managed-identity
        flavours), restoring the previous values on exit.

        Credentials read the environment when they are constructed, so construct them inside.
        """
        names = (*self.env(), *_CONFLICTING_ENV)
        saved = {name: os.environ.get(name) for name in names}
        try:
            for name in _CONFLICTING_ENV:
                os.environ.pop(name, None)
            os.environ.update(self.env())
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    # -- identities, keys and tokens -----------------------------------------------------

    @property
    def jwks(self) -> dict[str, Any]:
        """The public signing key as a JWKS document (``{"keys": [...]}``)."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def identity(
        self, *, client_id: str | None = None, object_id: str | None = None, resource_id: str | None = None
    ) -> tuple[str, str]:
        """``(appid, oid)`` of an identity: system-assigned when no selector is given.

        Both are stable for the endpoint's lifetime (derived from the tenant and the selector), so
        tests can predict the Redis username redis-entraid will send (the ``oid``).
        """
        if sum(value is not None for value in (client_id, object_id, resource_id)) > 1:
            raise ValueError("give at most one of client_id, object_id, resource_id")
        if client_id is not None:
            return client_id, self._derive("oid", client_id)
        if object_id is not None:
            return self._derive("appid", object_id), object_id
        selector = resource_id if resource_id is not None else "system-assigned"
        return self._derive("appid", selector), self._derive("oid", selector)

    def set_lifetime(self, seconds: float | None, *, resource: str | None = None) -> None:
        """Change the lifetime of tokens issued from now on.

        Args:
            seconds: The lifetime; None removes a per-resource override.
            resource: Only for this resource (e.g. :data:`REDIS_RESOURCE`); all when None.
        """
        with self._lock:
            if resource is None:
                if seconds is None:
                    raise ValueError("the default lifetime cannot be None")
                self.token_lifetime = seconds
            elif seconds is None:
                self._lifetimes.pop(_normalise_resource(resource), None)
            else:
                self._lifetimes[_normalise_resource(resource)] = seconds

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` token requests with ``status`` (fault injection)."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def mint(
        self,
        resource: str,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
        lifetime: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign a token without going through HTTP (not logged, no callbacks)."""
        return self._mint(resource, client_id, object_id, resource_id, lifetime, extra_claims)[1]

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """Validate signature (against :attr:`jwks`), issuer, audience and lifetime.

        Raises:
            jwt.InvalidTokenError: Any check failed.
        """
        header = jwt.get_unverified_header(token)
        keys = {jwk.key_id: jwk for jwk in jwt.PyJWKSet.from_dict(self.jwks).keys}
        jwk = keys.get(header.get("kid"))
        if jwk is None:
            raise jwt.InvalidKeyError(f"unknown signing key {header.get('kid')!r}")
        claims: dict[str, Any] = jwt.decode(
            token,
            key=jwk,
            algorithms=["RS256"],
            audience=audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "nbf", "aud", "iss"]},
        )
        return claims

    @property
    def issued(self) -> list[IssuedToken]:
        """Every token issued over HTTP so far (a copy)."""
        with self._lock:
            return list(self._issued)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._requests

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"ManagedIdentityEndpoint({where}, tenant_id={self.tenant_id!r})"

    # -- internals -------------------------------------------------------------------------

    def _derive(self, kind: str, value: str) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.tenant_id}:{kind}:{value}"))

    def _mint(
        self,
        resource: str,
        client_id: str | None,
        object_id: str | None,
        resource_id: str | None,
        lifetime: float | None,
        extra_claims: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Any], str]:
        resource = _normalise_resource(resource)
        appid, oid = self.identity(client_id=client_id, object_id=object_id, resource_id=resource_id)
        if lifetime is None:
            with self._lock:
                lifetime = self._lifetimes.get(resource, self.token_lifetime)
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + max(1, round(lifetime)),
            "tid": self.tenant_id,
            "oid": oid,
            "sub": oid,
            "appid": appid,
            "appidacr": "2",
            "idtyp": "app",
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
        }
        if resource_id is not None:
            claims["xms_mirid"] = resource_id
        if extra_claims:
            claims.update(extra_claims)
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})
        return claims, token

    def _respond(self, method: str, path: str, headers: Message[str, str], body: bytes) -> Response:
        status, payload = self._handle(path, headers)
        return status, payload, {}

    def _handle(self, path: str, headers: Message[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._requests += 1
            forced = self._fail_next.pop(0) if self._fail_next else None
        if forced is not None:
            return forced, {"statusCode": forced, "message": "injected failure"}
        if headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return 401, {"statusCode": 401, "message": "missing or wrong X-IDENTITY-HEADER"}
        query = {name: values[-1] for name, values in parse_qs(urlsplit(path).query).items()}
        if query.get("api-version") != API_VERSION:
            return 400, {"statusCode": 400, "message": f"api-version must be {API_VERSION}"}
        resource = query.get("resource")
        if not resource:
            return 400, {"statusCode": 400, "message": "resource is required"}
        try:
            claims, token = self._mint(
                resource,
                query.get("client_id"),
                query.get("object_id") or query.get("principal_id"),
                query.get("mi_res_id"),
                None,
                None,
            )
        except ValueError as exc:
            return 400, {"statusCode": 400, "message": str(exc)}
        for callback in list(self.on_issue):
            try:
                callback(claims["aud"], claims, token)
            except Exception as exc:  # reported to the client as a 500 and kept for the test
                with self._lock:
                    self.callback_errors.append(exc)
                return 500, {"statusCode": 500, "message": f"on_issue callback failed: {exc!r}"}
        with self._lock:
            self._issued.append(IssuedToken(resource=claims["aud"], claims=claims, token=token))
        return 200, {
            "access_token": token,
            "expires_on": str(claims["exp"]),
            "resource": claims["aud"],
            "token_type": "Bearer",
            "client_id": claims["appid"],
        }


def _normalise_resource(resource: str) -> str:
    """``https://x/.default`` and ``https://x/`` both mean the resource ``https://x``."""
    return resource.removesuffix("/.default").rstrip("/")
