"""The file tier's shared directory fsync and its cross-process directory locks.

``DirectorySync`` is pure coordination, so its fsync is replaced by a recorder that can be held
open: which callers one fsync covers is then fixed by the test, not by timing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tiermem.tiers._file_sync import DirectoryLocks, DirectorySync

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """An fsync stand-in: logs each call (with the changes made before it began) and can block."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[int] = []  # number of changes made before each fsync began
        self.changes = 0
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def change(self) -> int:
        with self.lock:
            self.changes += 1
            return self.changes

    def __call__(self, directory: str) -> None:
        with self.lock:
            self.calls.append(self.changes)
            first = len(self.calls) == 1
        self.started.set()
        assert self.release.wait(30)
        if first and self.fail_first:
            raise OSError(5, "Input/output error")


def _writer(sync: DirectorySync, recorder: Recorder) -> tuple[int, BaseException | None]:
    made = recorder.change()
    try:
        sync.sync("/some/dir")
    except OSError as exc:
        return made, exc
    return made, None


def _waiting(sync: DirectorySync, requests: int) -> bool:
    with sync._cond:
        state = sync._dirs.get("/some/dir")
        return state is not None and state.requested == requests


@pytest.mark.parametrize("fail_first", [False, True])
def test_one_fsync_covers_every_change_made_before_it_began(fail_first: bool) -> None:
    recorder = Recorder(fail_first=fail_first)
    sync = DirectorySync(fsync=recorder)
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(_writer, sync, recorder)
        assert recorder.started.wait(30)  # the first fsync runs (held open)
        rest = [pool.submit(_writer, sync, recorder) for _ in range(10)]
        while not _waiting(sync, 11):  # every other writer has made its change and asked to sync
            threading.Event().wait(0.001)
        recorder.release.set()
        outcomes = [first.result(), *(f.result() for f in rest)]
    # The first fsync began before the others' changes, so it cannot vouch for them: exactly one
    # more fsync covers all ten. A failed fsync is raised to its caller only; the rest retry.
    assert recorder.calls == [1, 11]
    assert [exc is not None for _, exc in outcomes] == [fail_first] + [False] * 10
    assert sync._dirs == {}  # no state is kept for idle directories


def test_directory_locks_exclude_across_descriptors(tmp_path: Path) -> None:
    locks = DirectoryLocks()
    order: list[str] = []
    inside = threading.Event()
    leave = threading.Event()

    def holder() -> None:
        with locks.hold(tmp_path, exclusive=True):
            order.append("exclusive in")
            inside.set()
            assert leave.wait(30)
            order.append("exclusive out")

    def shared() -> None:
        with locks.hold(tmp_path, exclusive=False):
            order.append("shared in")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(holder)
        assert inside.wait(30)
        second = pool.submit(shared)
        threading.Event().wait(0.05)
        assert order == ["exclusive in"]  # the shared holder waits, though it is the same process
        leave.set()
        first.result()
        second.result()
    assert order == ["exclusive in", "exclusive out", "shared in"]
