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
import shutil
from pathlib import Path
from types import TracebackType

from tests.services._process import (
    LOOPBACK,
    ManagedProcess,
    ServiceStartupError,
    ServiceUnavailableError,
    make_workdir,
    remove_workdir,
    repo_root,
)
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
    if shutil.which("node") is None:
        raise ServiceUnavailableError("node is not on PATH (Node.js 20 is needed for the npm stand-ins)")
    path = repo_root() / "node_modules" / ".bin" / name
    if not path.exists():
        raise ServiceUnavailableError(f"{path} is missing: run `npm ci` at the repository root")
    return path


class Azurite:
    """An ``azurite-blob`` process on 127.0.0.1."""

    def __init__(self, *, workdir: Path, tls: TlsMaterial | None, oauth: bool) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.account_name = DEVSTORE_ACCOUNT_NAME
        self.account_key = DEVSTORE_ACCOUNT_KEY
        self.tls = tls
        self.oauth = oauth
        self.workdir = workdir
        self._binary = node_bin("azurite-blob")
        self._process: ManagedProcess | None = None

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

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "azurite.log"

    def stop(self) -> None:
        """Terminate Azurite and remove its directory. Idempotent."""
        if self._process is not None:
            self._process.stop()
        remove_workdir(self.workdir)

    def kill(self) -> None:
        """SIGKILL (a crash); :meth:`restart` brings it back on the same port, empty."""
        if self._process is not None:
            self._process.kill()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start again on the same port. All containers and blobs are gone afterwards."""
        if self._process is not None:
            self._process.stop()
        self._launch(self.port, timeout)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but never answered."""
        if self._process is not None:
            self._process.pause()

    def resume(self) -> None:
        if self._process is not None:
            self._process.resume()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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

    def _launch(self, port: int, timeout: float) -> None:
        process = ManagedProcess(
            f"azurite-blob:{port or 'auto'}",
            self._argv(port),
            cwd=self.workdir,
            log_path=self.log_path,
        )
        self._process = process
        process.start()
        try:
            # Even with --silent, Azurite prints the address it listens on (needed for port 0).
            match = process.wait_for_output(
                _LISTENING, timeout=timeout, what="azurite-blob reports that it listens"
            )
            if match.group(1) != self.scheme:
                raise ServiceStartupError(f"azurite listens on {match.group(1)}, expected {self.scheme}")
        except BaseException:
            process.stop()
            raise
        self.port = int(match.group(2))
