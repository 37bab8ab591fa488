"""Make a local ``redis-server`` accept Entra ID tokens the way Azure Managed Redis does.

redis-entraid's credential provider authenticates with ``AUTH <oid> <access_token>``: the username
is the token's ``oid`` claim and the password the raw JWT (see ``EntraIdCredentialsProvider`` and
redis-py's ``Connection.re_auth``). Redis has no JWT support, so this glue registers an ``on_issue``
callback on :class:`~tests.services.identity.ManagedIdentityEndpoint`: every token issued for
:data:`~tests.services.identity.REDIS_RESOURCE` is added as one more password of an ACL user named
after its ``oid`` (``ACL SETUSER <oid> on >token ~* &* +@all``) *before* the endpoint returns it,
and passwords of expired tokens of that user are removed at the same time.

The server runs with the ``default`` user disabled, so an unauthenticated client fails with
``NOAUTH``/``WRONGPASS`` exactly like against Azure. An admin user with a random password exists
for the glue itself (:attr:`EntraRedis.admin_url`).

Differences from Azure Managed Redis (tests must not claim these): a connection that
authenticated with a token that later expires is *not* disconnected (Azure closes it unless it
re-authenticated); passwords are checked as opaque strings (signature, audience and expiry are
checked only when the token is issued, by construction); access policies other than "all" are
not modelled.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis

from tests.services._service import StopOnExit
from tests.services.identity import REDIS_RESOURCE, ManagedIdentityEndpoint
from tests.services.redis import RedisServer

__all__ = ["ADMIN_USERNAME", "EntraRedis"]

ADMIN_USERNAME = "tiermem-admin"


class EntraRedis(StopOnExit):
    """A :class:`RedisServer` whose users are Entra identities, fed by a token endpoint.

    Attributes:
        server: The underlying server (``server.restart()`` loses the ACL users; use
            :meth:`restart`, which replays them).
        identity: The endpoint whose tokens are accepted.
        registered: ``oid -> {token: exp}`` of tokens currently accepted.
    """

    def __init__(
        self, *, server: RedisServer, identity: ManagedIdentityEndpoint, admin_password: str
    ) -> None:
        self.server = server
        self.identity = identity
        self.admin_password = admin_password
        self.registered: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._admin = redis.Redis(
            host=server.host,
            port=server.port,
            username=ADMIN_USERNAME,
            password=admin_password,
            socket_timeout=5,
        )

    @classmethod
    def start(cls, identity: ManagedIdentityEndpoint, *, timeout: float = 10.0) -> EntraRedis:
        """Start a server that only Entra tokens from ``identity`` (and the admin) can use.

        Raises:
            ServiceUnavailableError: No ``redis-server`` binary was found.
            ServiceStartupError: It did not answer in time.
        """
        admin_password = secrets.token_hex(24)
        server = RedisServer.start(
            # Config-file `user` directives on the command line, so they survive a restart.
            extra_args=[
                *("--user", "default", "off"),
                *("--user", ADMIN_USERNAME, "on", f">{admin_password}", "~*", "&*", "+@all"),
            ],
            timeout=timeout,
        )
        glue = cls(server=server, identity=identity, admin_password=admin_password)
        identity.on_issue.append(glue._on_issue)
        return glue

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """URL without credentials (clients add a ``credential_provider``)."""
        return self.server.url

    @property
    def admin_url(self) -> str:
        return f"redis://{ADMIN_USERNAME}:{self.admin_password}@{self.host}:{self.port}/0"

    def admin(self) -> redis.Redis:
        """The glue's synchronous admin client (do not close it)."""
        return self._admin

    def restart(self, *, timeout: float = 10.0) -> None:
        """Restart the server on the same port and re-register unexpired tokens."""
        self.server.restart(timeout=timeout)
        self._admin.connection_pool.disconnect()
        now = int(time.time())
        with self._lock:
            for oid, tokens in self.registered.items():
                live = {token: exp for token, exp in tokens.items() if exp > now}
                self.registered[oid] = live
                if live:
                    self._set_user(oid, add=list(live), remove=[])

    def stop(self) -> None:
        """Unregister from the endpoint, close the admin client and stop the server. Idempotent."""
        if self._on_issue in self.identity.on_issue:
            self.identity.on_issue.remove(self._on_issue)
        self._admin.close()
        self.server.stop()

    def __repr__(self) -> str:
        return f"EntraRedis(url={self.url!r}, users={sorted(self.registered)})"

    def _on_issue(self, resource: str, claims: Mapping[str, Any], token: str) -> None:
        if resource != REDIS_RESOURCE:
            return
        oid = str(claims["oid"])
        now = int(time.time())
        with self._lock:
            tokens = self.registered.setdefault(oid, {})
            expired = [t for t, exp in tokens.items() if exp <= now]
            # Runs on the endpoint's thread before the token is returned, so the password is
            # valid by the time the client sends AUTH.
            self._set_user(oid, add=[token], remove=expired)
            for t in expired:
                del tokens[t]
            tokens[token] = int(claims["exp"])

    def _set_user(self, oid: str, *, add: list[str], remove: list[str]) -> None:
        """``ACL SETUSER <oid> on >add... <remove... ~* &* +@all`` (existing passwords are kept)."""
        self._admin.acl_setuser(
            oid,
            enabled=True,
            passwords=[*(f"+{t}" for t in add), *(f"-{t}" for t in remove)],
            keys=["*"],
            channels=["*"],
            categories=["+@all"],
        )
