"""Shared directory fsyncs and cross-process key locks for the file cold tier (ADR 0009)."""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: locks hold within one process only
    fcntl = None  # type: ignore[assignment]

__all__ = ["DirectoryLocks", "DirectorySync", "fsync_directory"]

STRIPES: Final = 64  # in-process fallback locks


def fsync_directory(directory: str) -> None:
    """Make ``directory``'s entries (renames, new files, unlinks) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Dir:
    requested: int = 0  # tickets handed out: each one is a change made before asking
    synced: int = 0  # every ticket up to this one is covered by a finished fsync
    busy: bool = False  # an fsync of this directory is running
    waiting: int = 0


class DirectorySync:
    """``fsync`` of a directory, shared by the threads that changed it at about the same time.

    A thread calls :meth:`sync` after its rename. An fsync covers every change made before it
    started, so one running fsync cannot vouch for a rename that came after it began: such callers
    wait for it to finish and then one of them starts the next, which covers all of them. Each caller
    still returns only after an fsync that began after its own change; a failed fsync is raised to its
    caller and the others try again themselves.
    """

    def __init__(self, fsync: Callable[[str], None] = fsync_directory) -> None:
        self._fsync = fsync
        self._cond = threading.Condition()
        self._dirs: dict[str, _Dir] = {}

    def sync(self, directory: str) -> None:
        cond = self._cond
        with cond:
            state = self._dirs.get(directory)
            if state is None:
                state = self._dirs[directory] = _Dir()
            state.requested += 1
            ticket = state.requested
            state.waiting += 1
            try:
                while state.synced < ticket:
                    if state.busy:
                        cond.wait()
                        continue
                    state.busy = True
                    target = state.requested
                    cond.release()
                    try:
                        self._fsync(directory)
                    finally:
                        cond.acquire()
                        state.busy = False
                        cond.notify_all()
                    state.synced = max(state.synced, target)
            finally:
                state.waiting -= 1
                if state.waiting == 0 and not state.busy:
                    del self._dirs[directory]


class DirectoryLocks:
    """Locks that hold across processes: ``flock`` on the directory that holds the key's file.

    Each acquisition opens its own file description, so threads of one process exclude each other
    too, and no lock files are left around. Blind writes and deletes take the lock shared (they may
    run together; the last rename wins); a compare-and-swap (``if_match``/``if_absent``) and the
    sweep's check-then-delete take it exclusive, so nothing replaces the file between their check
    and their rename or unlink. The lock covers only that check and the rename, never an fsync.
    """

    def __init__(self) -> None:
        self._local = [threading.Lock() for _ in range(STRIPES)]  # used where flock is missing

    @contextmanager
    def hold(self, directory: Path, *, exclusive: bool) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            # crc32, not hash(): stable, though here only this process relies on it.
            with self._local[zlib.crc32(str(directory).encode("utf-8", "surrogatepass")) % STRIPES]:
                yield
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the only descriptor of this open file releases the lock
