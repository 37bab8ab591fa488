"""A small HTTPS fake of the Key Vault *secrets* REST API (no stand-in exists).

Enough for ``azure.keyvault.secrets.aio.SecretClient(vault_url, credential,
verify_challenge_resource=False, connection_verify=<bundle>)``:

* the challenge flow: a request without a bearer token gets ``401`` with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tid>",
  resource="https://vault.azure.net"``; the client then fetches a token for that resource;
* bearer tokens are validated for real: RS256 signature against the identity endpoint's JWKS,
  issuer (``https://sts.windows.net/<tid>/``), audience ``https://vault.azure.net``, ``nbf``/``exp``;
* ``GET /secrets/{name}[/{version}]``, ``PUT /secrets/{name}``, ``GET /secrets`` (one page).

``verify_challenge_resource=False`` is required because the vault lives on 127.0.0.1, which is
not a subdomain of the challenge resource ``vault.azure.net``. Not implemented: deletion and
recovery, backups, certificates-backed secrets, paging, RBAC (any valid token may read anything).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from tests.services._http import LoopbackHttpService, Response
from tests.services._process import LOOPBACK
from tests.services.identity import VAULT_RESOURCE, ManagedIdentityEndpoint
from tests.services.tls import TlsMaterial

__all__ = ["KeyVaultFake", "SecretVersion"]


@dataclass
class SecretVersion:
    """One stored version of a secret."""

    value: str
    version: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str | None = None
    tags: dict[str, str] | None = None
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))


class KeyVaultFake(LoopbackHttpService):
    """A Key Vault secrets fake on ``https://127.0.0.1:<port>/``.

    Attributes:
        secrets: name -> versions (oldest first); use :meth:`set_secret` to add one.
        requests: ``(method, path, status)`` of every request, for assertions.
    """

    _methods = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH"})
    _content_type = "application/json; charset=utf-8"
    _thread_name = "key-vault-fake"
    _noun = "vault"

    def __init__(self, *, tls: TlsMaterial, identity: ManagedIdentityEndpoint) -> None:
        self.tls = tls
        self.identity = identity
        self.secrets: dict[str, list[SecretVersion]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    @classmethod
    def start(cls, *, tls: TlsMaterial, identity: ManagedIdentityEndpoint) -> KeyVaultFake:
        """Serve on a free loopback port, trusting tokens signed by ``identity``."""
        vault = cls(tls=tls, identity=identity)
        vault._serve(tls.server_context())
        return vault

    @property
    def vault_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/"

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
    ) -> str:
        """Store a new version of ``name`` directly; returns the version id."""
        version = SecretVersion(
            value=value,
            content_type=content_type,
            tags=dict(tags) if tags is not None else None,
            enabled=enabled,
        )
        with self._lock:
            self.secrets.setdefault(name, []).append(version)
        return version.version

    def __repr__(self) -> str:
        where = self.vault_url if self._server is not None else "stopped"
        return f"KeyVaultFake({where})"

    # -- request handling -------------------------------------------------------------------

    def _respond(self, method: str, raw_path: str, headers: Message[str, str], body: bytes) -> Response:
        status, payload, extra = self._route(method, raw_path, headers, body)
        with self._lock:
            self.requests.append((method, raw_path, status))
        return status, payload, extra

    def _challenge(self, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        header = f'Bearer authorization="{self.identity.authority}", resource="{VAULT_RESOURCE}"'
        return 401, _error("Unauthorized", message), {"WWW-Authenticate": header}

    def _route(
        self, method: str, raw_path: str, headers: Message[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = urlsplit(raw_path)
        if "api-version" not in parse_qs(url.query):
            return 400, _error("BadParameter", "The api-version query parameter is required."), {}
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            return self._challenge("AKV10000: Request is missing a Bearer or PoP token.")
        try:
            self.identity.verify(authorization.removeprefix("Bearer "), audience=VAULT_RESOURCE)
        except jwt.InvalidTokenError as exc:
            return self._challenge(f"AKV10022: Invalid token: {exc}")

        parts = [unquote(part) for part in url.path.strip("/").split("/") if part]
        if not parts or parts[0] != "secrets" or len(parts) > 3:
            return 404, _error("NotFound", f"no such route: {method} {url.path}"), {}
        if len(parts) == 1:
            if method != "GET":
                return 405, _error("MethodNotAllowed", f"{method} /secrets"), {}
            return 200, {"value": self._list(), "nextLink": None}, {}
        name = parts[1]
        version = parts[2] if len(parts) == 3 else ""
        if method == "PUT" and not version:
            return self._put(name, body)
        if method == "GET":
            return self._get(name, version)
        return 405, _error("MethodNotAllowed", f"{method} {url.path} is not implemented by the fake"), {}

    def _put(self, name: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return 400, _error("BadParameter", f"invalid JSON body: {exc}"), {}
        if not isinstance(request, dict) or not isinstance(request.get("value"), str):
            return 400, _error("BadParameter", "The request body must contain a string 'value'."), {}
        attributes = request.get("attributes") or {}
        self.set_secret(
            name,
            request["value"],
            content_type=request.get("contentType"),
            tags=request.get("tags"),
            enabled=bool(attributes.get("enabled", True)),
        )
        return self._get(name, "")

    def _get(self, name: str, version: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            versions = list(self.secrets.get(name, ()))
        if version:
            versions = [v for v in versions if v.version == version]
        if not versions:
            what = f"{name}/{version}" if version else name
            message = f"A secret with (name/id) {what} was not found in this key vault."
            return 404, _error("SecretNotFound", message), {}
        secret = versions[-1]
        if not secret.enabled:
            return 403, _error("Forbidden", f"Operation get is not allowed on a disabled secret {name}."), {}
        return 200, self._bundle(name, secret), {}

    def _list(self) -> list[dict[str, Any]]:
        with self._lock:
            latest = {name: versions[-1] for name, versions in self.secrets.items() if versions}
        items = []
        for name, secret in latest.items():
            item = self._bundle(name, secret)
            del item["value"]
            item["id"] = f"{self.vault_url}secrets/{name}"
            items.append(item)
        return items

    def _bundle(self, name: str, secret: SecretVersion) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "value": secret.value,
            "id": f"{self.vault_url}secrets/{name}/{secret.version}",
            "attributes": {
                "enabled": secret.enabled,
                "created": secret.created,
                "updated": secret.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
        }
        if secret.content_type is not None:
            bundle["contentType"] = secret.content_type
        if secret.tags is not None:
            bundle["tags"] = secret.tags
        return bundle


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
