"""Fixtures for the HTTP service: a local Entra-like identity provider, embedded memory, the app.

The identity provider is a real HTTP server on loopback that serves an OpenID configuration and
a JWKS for RSA keys generated per session; tokens are real RS256 JWTs minted with those keys.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, MemoryClient, SqliteWarmMemory
from tiermem.service import ServiceSettings, build_service_app

TENANT_A = "11111111-aaaa-4aaa-8aaa-111111111111"
TENANT_B = "22222222-bbbb-4bbb-8bbb-222222222222"
TENANT_C = "33333333-cccc-4ccc-8ccc-333333333333"  # a real Entra tenant that is not allowed
AUDIENCE = "api://tiermem-test"
CLIENT_ID = "0a0b0c0d-0000-4000-8000-00000000abcd"
READ = "Memory.Read"
WRITE = "Memory.Write"
ALL_ROLES = (READ, WRITE)
AUTHORITY = "https://login.microsoftonline.com"


def issuer(tid: str) -> str:
    return f"{AUTHORITY}/{tid}/v2.0"


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk


@dataclass
class IdentityProvider:
    """An OpenID configuration + JWKS server on loopback, and a token minter for its keys."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failing: bool = False
    server: http.server.ThreadingHTTPServer | None = None
    default_kid: str = "key-1"

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def openid_config_url(self, tenant: str = "organizations") -> str:
        return f"{self.base_url}/{tenant}/v2.0/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/discovery/v2.0/keys"

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for path in self.requests if path.endswith("/keys"))

    def add_key(self, kid: str, *, publish: bool = True, bits: int = 2048) -> rsa.RSAPrivateKey:
        key = new_rsa_key(bits)
        self.keys[kid] = key
        if publish:
            self.published.append(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.keys[kid], kid) for kid in self.published]}

    def claims(
        self,
        tenant: str = TENANT_A,
        roles: Sequence[str] | None = ALL_ROLES,
        *,
        lifetime: float = 3600,
        **overrides: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": AUDIENCE,
            "iss": issuer(tenant),
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + int(lifetime),
            "tid": tenant,
            "oid": str(uuid.uuid4()),
            "sub": "caller",
            "azp": CLIENT_ID,
            "ver": "2.0",
        }
        if roles is not None:
            claims["roles"] = list(roles)
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def mint(
        self,
        tenant: str = TENANT_A,
        roles: Sequence[str] | None = ALL_ROLES,
        *,
        kid: str | None = None,
        signing_key: rsa.RSAPrivateKey | None = None,
        headers: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        kid = kid or self.default_kid
        key = signing_key if signing_key is not None else self.keys[kid]
        return jwt.encode(
            self.claims(tenant, roles, **overrides),
            key,
            algorithm="RS256",
            headers={"kid": kid, "typ": "JWT", **(headers or {})},
        )

    def auth(
        self, tenant: str = TENANT_A, roles: Sequence[str] | None = ALL_ROLES, **kw: Any
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(tenant, roles, **kw)}"}

    def settings(self, **overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "auth_mode": "entra",
            "auth_tenant_id": "organizations",
            "auth_allowed_tenants": f"{TENANT_A},{TENANT_B}",
            "auth_audience": f"{AUDIENCE},{CLIENT_ID}",
            "auth_openid_config_url": self.openid_config_url(),
            "auth_jwks_min_refresh_seconds": 0,
        }
        values.update(overrides)
        return ServiceSettings(**values)


class _DropType:
    def __repr__(self) -> str:
        return "DROP"


_DROP: Any = _DropType()
DROP: Any = _DROP
"""Pass as a claim override to leave the claim out of a token."""


def _handler(idp: IdentityProvider) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            idp.requests.append(self.path)
            if idp.failing:
                self._json(503, {"error": "temporarily_unavailable"})
            elif self.path.endswith("/.well-known/openid-configuration"):
                tenant = self.path.split("/")[1]
                self._json(
                    200,
                    {
                        "issuer": f"{AUTHORITY}/{{tenantid}}/v2.0"
                        if tenant == "organizations"
                        else issuer(tenant),
                        "jwks_uri": idp.jwks_url,
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                )
            elif self.path == "/discovery/v2.0/keys":
                self._json(200, idp.jwks())
            else:
                self._json(404, {"error": "not_found"})

    return Handler


@pytest.fixture(scope="session")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.add_key("key-1")
    provider.add_key("key-2")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.server = server
    thread = threading.Thread(target=server.serve_forever, name="test-idp", daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _idp_reset(idp: IdentityProvider) -> Iterator[None]:
    """Each test starts with the two published keys and a healthy provider."""
    yield
    idp.failing = False
    for kid in list(idp.keys):
        if kid not in ("key-1", "key-2"):
            del idp.keys[kid]
    idp.published[:] = ["key-1", "key-2"]
    idp.requests.clear()


def make_memory(root: Path, **policy: Any) -> MemoryClient:
    """The embedded tiers in ``root`` (what ``tiermem serve`` uses without Azure settings)."""
    builder = (
        MemoryBuilder()
        .with_hot(LocalHotMemory())
        .with_warm(SqliteWarmMemory(root / "warm.db"))
        .with_cold(FileColdMemory(root / "cold", fsync=False))
    )
    if policy:
        builder.with_policy(**policy)
    return builder.build()


@dataclass
class Service:
    """An app over embedded memory, with an in-process HTTP client and the identity provider."""

    app: FastAPI
    client: httpx.AsyncClient
    memory: MemoryClient
    idp: IdentityProvider

    def auth(
        self, tenant: str = TENANT_A, roles: Sequence[str] | None = ALL_ROLES, **kw: Any
    ) -> dict[str, str]:
        return self.idp.auth(tenant, roles, **kw)


@contextlib.asynccontextmanager
async def running(app: FastAPI, memory: MemoryClient, idp: IdentityProvider) -> AsyncIterator[Service]:
    """Run the app's lifespan and give an in-process client (``httpx.ASGITransport``)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tiermem.test") as client:
            yield Service(app, client, memory, idp)


@contextlib.asynccontextmanager
async def service_over(
    root: Path, idp: IdentityProvider, *, policy: Mapping[str, Any] | None = None, **settings: Any
) -> AsyncIterator[Service]:
    """Fresh embedded memory under ``root`` and an app with ``idp.settings(**settings)``."""
    memory = make_memory(root, **(policy or {}))
    await memory.setup()
    try:
        app = build_service_app(memory, settings=idp.settings(**settings))
        async with running(app, memory, idp) as svc:
            yield svc
    finally:
        await memory.aclose()


@pytest.fixture
async def service(tmp_path: Path, idp: IdentityProvider) -> AsyncIterator[Service]:
    async with service_over(tmp_path, idp) as svc:
        yield svc
