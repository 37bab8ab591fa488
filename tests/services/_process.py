"""Process plumbing shared by the launchers.

Every stand-in runs as a child process that is *not* daemonized, writes its output to a log
file in its own temporary directory, and is polled for readiness against a deadline. Every
started process is registered here so that an ``atexit`` hook can stop whatever a test session
left behind (a KeyboardInterrupt in the middle of a run, a launcher used outside pytest, ...).
Fixtures still stop their services explicitly; the hook is only a backstop.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "LOOPBACK",
    "ManagedProcess",
    "ServiceStartupError",
    "ServiceUnavailableError",
    "free_port",
    "make_workdir",
    "node_modules_path",
    "remove_workdir",
    "repo_root",
    "wait_until",
]

LOOPBACK = "127.0.0.1"

_POLL_INTERVAL = 0.02
_LOG_TAIL_LINES = 40

# Everything started and not yet stopped, for the atexit backstop.
_live: set[ManagedProcess] = set()
_workdirs: set[Path] = set()
_live_lock = threading.Lock()


class ServiceUnavailableError(RuntimeError):
    """The stand-in cannot be started on this machine (binary or package missing).

    Fixtures turn this into a skip (or a failure when ``CI=true``); it is never raised for a
    service that was found but then failed to start.
    """


class ServiceStartupError(RuntimeError):
    """A stand-in was started but did not become ready (the message carries its log tail)."""


def repo_root() -> Path:
    """Return the repository root (the directory holding ``package.json``)."""
    return Path(__file__).resolve().parents[2]


def node_modules_path(*parts: str) -> Path:
    """``<repo>/node_modules/<parts...>``, for the stand-ins that npm installs.

    Raises:
        ServiceUnavailableError: Node.js is not on PATH or the path does not exist.
    """
    if shutil.which("node") is None:
        raise ServiceUnavailableError("node is not on PATH (Node.js 20 is needed for the npm stand-ins)")
    path = repo_root().joinpath("node_modules", *parts)
    if not path.exists():
        raise ServiceUnavailableError(f"{path} is missing: run `npm ci` at the repository root")
    return path


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now.

    The port is released before returning, so another process could take it in between; on
    loopback with ephemeral ports that race is rare enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def make_workdir(name: str) -> Path:
    """Create a private temporary directory for one service instance.

    It is removed by :func:`remove_workdir`, or at interpreter exit if nobody did.
    """
    path = Path(tempfile.mkdtemp(prefix=f"tiermem-{name}-"))
    with _live_lock:
        _workdirs.add(path)
    return path


def remove_workdir(path: Path) -> None:
    """Remove a service's temporary directory unless ``TIERMEM_TEST_KEEP_LOGS=1``."""
    with _live_lock:
        _workdirs.discard(path)
    if os.environ.get("TIERMEM_TEST_KEEP_LOGS") == "1":
        return
    shutil.rmtree(path, ignore_errors=True)


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    diagnostics: Callable[[], str] | None = None,
    interval: float = _POLL_INTERVAL,
) -> None:
    """Poll ``predicate`` until it returns True, or raise when ``timeout`` seconds have passed.

    Args:
        predicate: Checked once per ``interval``; it may raise ``ServiceStartupError`` to stop early
            (for example when the process it waits for has exited).
        timeout: Deadline in seconds from now.
        what: Human description used in the error message ("redis on port 6379 answers PING").
        diagnostics: Called on timeout to append details (usually the log tail).
        interval: Sleep between checks.

    Raises:
        ServiceStartupError: The deadline passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            details = diagnostics() if diagnostics is not None else ""
            raise ServiceStartupError(f"timed out after {timeout:.1f}s waiting until {what}{details}")
        time.sleep(interval)


class ManagedProcess:
    """One child process with its output captured to ``log_path``.

    Not thread-safe: a service object owns its ManagedProcess and drives it from one thread.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process (appending to the log if it was started before)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            # The child inherits the log descriptor; ours closes when the `with` block ends.
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _register(self)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output_since_start(self) -> str:
        """What the process has logged since its latest :meth:`start`."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, pattern: re.Pattern[str], *, timeout: float, what: str) -> re.Match[str]:
        """Wait until the output since the latest start matches ``pattern``; return the match.

        Raises:
            ServiceStartupError: The process exited or the deadline passed (with the log tail).
        """
        found: list[re.Match[str]] = []

        def matched() -> bool:
            match = pattern.search(self.output_since_start())
            if match is None:
                self.ensure_alive()
                return False
            found.append(match)
            return True

        wait_until(matched, timeout=timeout, what=what, diagnostics=self.log_tail)
        return found[0]

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, formatted for an error message."""
        tail = self.log_text().splitlines()[-lines:]
        body = "\n".join(f"    {line}" for line in tail) or "    <empty>"
        return f"\n--- last {len(tail)} log lines of {self.name} ({self.log_path}):\n{body}"

    def ensure_alive(self) -> None:
        """Raise ``ServiceStartupError`` with the log tail if the process has exited."""
        if self._proc is None:
            raise ServiceStartupError(f"{self.name} was never started")
        code = self._proc.poll()
        if code is not None:
            raise ServiceStartupError(f"{self.name} exited with code {code}{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps the child. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # A paused process cannot handle SIGTERM until it is continued.
            self._signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._proc = None
        _unregister(self)

    def kill(self) -> None:
        """SIGKILL (a crash, for fault tests) and reap. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        self._proc = None
        _unregister(self)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung server)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)


def _register(proc: ManagedProcess) -> None:
    with _live_lock:
        _live.add(proc)


def _unregister(proc: ManagedProcess) -> None:
    with _live_lock:
        _live.discard(proc)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        proc.stop(timeout=2.0)
    with _live_lock:
        workdirs = list(_workdirs)
    for path in workdirs:
        remove_workdir(path)
