"""Azurite (Blob only) from ``node_modules`` at the repository root (``npm ci`` installs it).

Two flavours:

* :meth:`Azurite.start` - plain HTTP, shared-key auth with the well-known ``devstoreaccount1`` key
  (use :attr:`Azurite.connection_string`).
* :meth:`Azurite.start_oauth` - HTTPS with the session certificate and ``--oauth basic``, so the
  Azure SDK can authenticate with Entra tokens (``ManagedIdentityCredential`` against
  :class:`~tests.services.identity.ManagedIdentityEndpoint`). Pass the TLS bundle as
  ``connection_verify=``.

Data lives in memory (``--inMemoryPersistence``), so :meth:`Azurite.restart` comes back on the same
port but *empty*. Azurite refuses ``--location`` together with ``--inMemoryPersistence``; the process
runs with its temporary directory as working directory instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.services._process import ManagedProcess, ServiceStartupError, make_workdir, node_modules_path
from tests.services._service import LocalService
from tests.services.tls import TlsMaterial

__all__ = ["DEVSTORE_ACCOUNT_KEY", "DEVSTORE_ACCOUNT_NAME", "Azurite", "node_bin"]

DEVSTORE_ACCOUNT_NAME = "devstoreaccount1"
# The documented, public Azurite/Storage Emulator key: not a secret.
DEVSTORE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_LISTENING = re.compile(r"successfully listens on (https?)://[^\s:]+:(\d+)")


def node_bin(name: str) -> Path:
    """Path of an npm-installed executable in ``<repo>/node_modules/.bin``.

    Raises:
        ServiceUnavailableError: Node.js is not on PATH or the package is not installed.
    """
    return node_modules_path(".bin", name)


class Azurite(LocalService):
    """An ``azurite-blob`` process on 127.0.0.1."""

    _program = "azurite-blob"
    _log_name = "azurite.log"

    def __init__(self, *, workdir: Path, tls: TlsMaterial | None, oauth: bool) -> None:
        super().__init__(workdir=workdir)
        self.account_name = DEVSTORE_ACCOUNT_NAME
        self.account_key = DEVSTORE_ACCOUNT_KEY
        self.tls = tls
        self.oauth = oauth
        self._binary = node_bin("azurite-blob")

    @classmethod
    def start(cls, *, port: int | None = None, timeout: float = 30.0) -> Azurite:
        """Start plain-HTTP Azurite (shared key). ``port=None`` lets Azurite pick one.

        Raises:
            ServiceUnavailableError: Node or ``node_modules/.bin/azurite-blob`` is missing.
            ServiceStartupError: It did not report listening in time (the message has the log tail).
        """
        azurite = cls(workdir=make_workdir("azurite"), tls=None, oauth=False)
        azurite._launch(port or 0, timeout)
        return azurite

    @classmethod
    def start_oauth(cls, tls: TlsMaterial, *, port: int | None = None, timeout: float = 30.0) -> Azurite:
        """Start HTTPS Azurite with ``--oauth basic`` and the session certificate.

        Azurite's basic OAuth checks the token's ``iss`` prefix (``https://sts.windows.net/``),
        ``aud`` (``https://storage.azure.com`` and variants), ``nbf``/``exp``/``iat``; it does not
        check the signature or any role assignment. Shared key keeps working too.
        """
        azurite = cls(workdir=make_workdir("azurite-oauth"), tls=tls, oauth=True)
        azurite._launch(port or 0, timeout)
        return azurite

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def account_url(self) -> str:
        """Same as :attr:`blob_endpoint` (the name ``BlobServiceClient(account_url=...)`` uses)."""
        return self.blob_endpoint

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def __repr__(self) -> str:
        return f"Azurite(blob_endpoint={self.blob_endpoint!r}, oauth={self.oauth}, pid={self.pid})"

    def _argv(self, port: int) -> list[str]:
        argv = [
            str(self._binary),
            "--blobHost", self.host,
            "--blobPort", str(port),
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]  # fmt: skip
        if self.tls is not None:
            argv += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        if self.oauth:
            argv += ["--oauth", "basic"]
        return argv

    def _wait_ready(self, process: ManagedProcess, timeout: float) -> int:
        # Even with --silent, Azurite prints the address it listens on (needed for port 0).
        match = process.wait_for_output(
            _LISTENING, timeout=timeout, what="azurite-blob reports that it listens"
        )
        if match.group(1) != self.scheme:
            raise ServiceStartupError(f"azurite listens on {match.group(1)}, expected {self.scheme}")
        return int(match.group(2))
