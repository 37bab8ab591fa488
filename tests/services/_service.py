"""The lifecycle every launcher shares.

:class:`StopOnExit` makes anything with a ``stop()`` a context manager. :class:`LocalService` is
one stand-in child process (a :class:`~tests.services._process.ManagedProcess`) in its own work
directory: ``pid``/``log_path``, ``stop``/``kill``/``restart``/``pause``/``resume``. A launcher
says only what differs: its command line, how it tells that the process is ready, and its
endpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from tests.services._process import LOOPBACK, ManagedProcess, ServiceStartupError, remove_workdir

__all__ = ["LocalService", "StopOnExit"]


class StopOnExit(ABC):
    """``with service:`` calls ``service.stop()`` on the way out."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything the service holds. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalService(StopOnExit):
    """A stand-in child process on 127.0.0.1, logging to ``<workdir>/<log name>``.

    Subclasses set :attr:`_program` and :attr:`_log_name` and implement :meth:`_argv` and
    :meth:`_wait_ready`. A new :class:`ManagedProcess` is made for every launch (the command line
    depends on the port); the log is appended to across restarts. The stand-ins keep their data
    in memory only, so a restarted service comes back empty.
    """

    _program: ClassVar[str]
    """Names the process in logs and errors, as ``<program>:<port or "auto">``."""
    _log_name: ClassVar[str]
    """File name of the log inside :attr:`workdir`."""

    host: str
    port: int

    def __init__(self, *, workdir: Path, port: int = 0, owns_workdir: bool = True) -> None:
        self.host = LOOPBACK
        self.port = port
        self.workdir = workdir
        self._owns_workdir = owns_workdir
        self._process: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / self._log_name

    def stop(self) -> None:
        """Terminate the process, reap it and remove its directory. Idempotent."""
        if self._process is not None:
            self._process.stop()
        if self._owns_workdir:
            remove_workdir(self.workdir)

    def kill(self) -> None:
        """SIGKILL (a crash); :meth:`restart` brings it back on the same port, empty."""
        if self._process is not None:
            self._process.kill()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop (if running) and start again on the same port; returns once it is ready.

        Everything it stored is gone afterwards (in-memory persistence only).
        """
        if self._process is not None:
            self._process.stop()
        self._launch(self.port, timeout)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but never answered (a hung server)."""
        if self._process is not None:
            self._process.pause()

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._process is not None:
            self._process.resume()

    @abstractmethod
    def _argv(self, port: int) -> list[str]:
        """The command line for a process on ``port`` (0: the process picks one)."""

    @abstractmethod
    def _wait_ready(self, process: ManagedProcess, timeout: float) -> int:
        """Block until ``process`` is ready and return the port it listens on.

        Raises:
            ServiceStartupError: It exited or did not become ready in time.
        """

    def _process_cwd(self) -> Path:
        """Working directory of the process."""
        return self.workdir

    def _started_process(self) -> ManagedProcess:
        """The current process.

        Raises:
            ServiceStartupError: Nothing was ever launched.
        """
        if self._process is None:
            raise ServiceStartupError(f"{self._program}:{self.port or 'auto'} was never started")
        return self._process

    def _spawn(self, port: int) -> ManagedProcess:
        """Start a new process on ``port`` without waiting for it."""
        process = ManagedProcess(
            f"{self._program}:{port or 'auto'}",
            self._argv(port),
            cwd=self._process_cwd(),
            log_path=self.log_path,
        )
        self._process = process
        process.start()
        return process

    def _launch(self, port: int, timeout: float) -> None:
        """Start a process on ``port`` and wait until it is ready; stop it again if it is not."""
        process = self._spawn(port)
        try:
            ready_port = self._wait_ready(process, timeout)
        except BaseException:
            process.stop()
            raise
        self.port = ready_port
