"""Secrets that must stay secrets: a Key Vault secret fetched lazily and refreshed for rotation.

Used for the few keys that remain when Entra ID is not possible (e.g. a Redis password). The
value is fetched on first use (never in a constructor), cached for ``refresh_after`` seconds so
a rotated secret is picked up, and never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr

from tiermem._errors import AuthenticationError, ConfigurationError, TierUnavailableError

__all__ = ["KeyVaultSecret", "SecretSource"]

logger = logging.getLogger("tiermem")
_RETRY_AFTER = 30.0  # seconds before a failed refresh is retried while the cached value is served


@runtime_checkable
class SecretSource(Protocol):
    """Something that can produce a secret value when asked (and may rotate it)."""

    async def get_secret(self) -> SecretStr: ...


class KeyVaultSecret:
    """A Key Vault secret read with an injected credential (``pip install tiermem[identity]``).

    Args:
        vault_url: ``https://<vault>.vault.azure.net/``.
        name: the secret's name.
        credential: an ``AsyncTokenCredential`` (not closed here).
        refresh_after: seconds before the cached value is fetched again (rotation pick-up).
        client_options: passed to ``SecretClient`` (e.g. ``connection_verify`` for a local fake).
    """

    def __init__(
        self,
        vault_url: str,
        name: str,
        *,
        credential: Any,
        refresh_after: float = 300.0,
        **client_options: Any,
    ) -> None:
        if not vault_url.startswith("https://"):
            raise ConfigurationError("Key Vault URLs must use https://")
        self.vault_url = vault_url
        self.name = name
        self._credential = credential
        self._refresh_after = refresh_after
        self._client_options = client_options
        self._client: Any = None
        self._value: SecretStr | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"KeyVaultSecret(vault_url={self.vault_url!r}, name={self.name!r})"

    def _secret_client(self) -> Any:
        if self._client is None:
            try:
                from azure.keyvault.secrets.aio import SecretClient
            except ImportError as exc:
                raise ImportError(
                    "Key Vault needs azure-keyvault-secrets: pip install 'tiermem[identity]'"
                ) from exc
            self._client = SecretClient(self.vault_url, self._credential, **self._client_options)
        return self._client

    async def get_secret(self) -> SecretStr:
        """The current value; fetched on first use and again after ``refresh_after`` seconds."""
        async with self._lock:
            if self._value is not None and time.monotonic() - self._fetched_at < self._refresh_after:
                return self._value
            try:
                secret = await self._fetch()
            except TierUnavailableError:
                if self._value is None:
                    raise
                # A refresh failed: keep serving the value we have, and try again a little later.
                logger.warning("Key Vault refresh of secret %r failed; using the cached value", self.name)
                self._fetched_at = time.monotonic() - self._refresh_after + _RETRY_AFTER
                return self._value
            if secret.value is None:
                raise ConfigurationError(f"Key Vault secret {self.name!r} has no value")
            self._value = SecretStr(secret.value)
            self._fetched_at = time.monotonic()
            return self._value

    async def _fetch(self) -> Any:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            return await self._secret_client().get_secret(self.name)
        except ClientAuthenticationError as exc:
            raise AuthenticationError(f"Key Vault refused the credential for secret {self.name!r}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TierUnavailableError(f"Key Vault unreachable at {self.vault_url}") from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise AuthenticationError(
                    f"Key Vault denied secret {self.name!r} (needs 'Key Vault Secrets User')"
                ) from exc
            if exc.status_code is not None and (exc.status_code == 429 or exc.status_code >= 500):
                raise TierUnavailableError(f"Key Vault answered {exc.status_code} for {self.name!r}") from exc
            raise ConfigurationError(f"Key Vault secret {self.name!r}: {exc.reason}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
