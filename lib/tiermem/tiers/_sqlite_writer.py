"""Group commit for SQLite: one writer thread; writes that wait together share one transaction.

While the writer thread commits a group (and, with ``synchronous=FULL``, waits for its fsync), new
writes queue up; the next group takes all of them, so N concurrent writers pay for one commit and
one fsync instead of N. Each write runs in its own savepoint: a statement that fails rolls back
only that write and fails only its caller. Every caller is answered only after its group's
``COMMIT`` returned, so a write is never reported before it is durable. See ADR 0009.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from tiermem._errors import ClientClosedError

__all__ = ["GroupCommitWriter"]

_T = TypeVar("_T")
MAX_GROUP: Final = 512  # writes per transaction: bounds how long one group holds the write lock
_log = logging.getLogger("tiermem.sqlite")


@dataclass(slots=True)
class _Request(Generic[_T]):
    fn: Callable[[sqlite3.Connection], _T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[_T]
    grouped: bool  # False: run alone, outside any transaction (setup, checkpoints)
    savepoint: bool  # False: ``fn`` runs exactly one statement, which SQLite undoes by itself on error


_Outcome = tuple[_Request[Any], BaseException | None, Any]


@dataclass(slots=True)
class _Stop:
    done: _Request[None]  # answered once the connection is closed


class GroupCommitWriter:
    """One write connection on one dedicated thread, fed by an unbounded queue.

    Args:
        connect: opens the write connection (on the writer thread, at the first request). It must
            use ``isolation_level=None``: the writer issues ``BEGIN IMMEDIATE``/``COMMIT`` itself.
        name: the thread's name.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, name: str) -> None:
        self._connect = connect
        self._name = name
        self._queue: queue.SimpleQueue[_Request[Any] | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._state_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[[sqlite3.Connection], _T], *, savepoint: bool = True) -> asyncio.Future[_T]:
        """Queue a write; the future resolves after the transaction that ran it committed.

        Args:
            savepoint: run ``fn`` in its own savepoint, so a failure undoes all of it. A write of
                exactly one statement may pass ``False``: SQLite undoes a failed statement itself.
        """
        return self._enqueue(fn, grouped=True, savepoint=savepoint)

    def call(self, fn: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        """Run ``fn`` on the writer connection outside any transaction (in queue order)."""
        return self._enqueue(fn, grouped=False, savepoint=False)

    def _enqueue(
        self, fn: Callable[[sqlite3.Connection], _T], *, grouped: bool, savepoint: bool
    ) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._state_lock:
            if self._closed:
                raise ClientClosedError("the SQLite writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(_Request(fn, loop, future, grouped, savepoint))
        return future

    async def aclose(self) -> None:
        """Finish every queued write, close the connection and stop the thread. Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is None:
                return
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            self._queue.put(_Stop(_Request(lambda conn: None, loop, done, grouped=False, savepoint=False)))
        await done

    # --- the writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_GROUP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            group: list[_Request[Any]] = []
            for item in batch:
                if isinstance(item, _Stop):
                    if group:
                        self._commit_group(group)
                    self._shutdown(item)
                    return
                if item.grouped:
                    group.append(item)
                    continue
                if group:
                    self._commit_group(group)
                    group = []
                self._call(item)
            if group:
                self._commit_group(group)

    def _shutdown(self, stop: _Stop) -> None:
        # Nothing can be queued after the stop (enqueue refuses once closed): the queue is empty.
        conn, self._conn = self._conn, None
        error: BaseException | None = None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                error = exc
        _deliver([(stop.done, error, None)])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _call(self, req: _Request[Any]) -> None:
        try:
            outcome: _Outcome = (req, None, req.fn(self._connection()))
        except Exception as exc:  # noqa: BLE001 - the caller's error; the thread lives on
            outcome = (req, exc, None)
        _deliver([outcome])

    def _commit_group(self, reqs: list[_Request[Any]]) -> None:
        # A caller cancelled before its write started is skipped (reading ``cancelled()`` from this
        # thread races benignly: a write cancelled a moment later still runs, as it may with any store).
        pending = [r for r in reqs if not r.future.cancelled()]
        outcomes: list[_Outcome] = []
        while pending:
            pending = self._attempt(pending, outcomes)
        _deliver(outcomes)

    def _attempt(self, reqs: list[_Request[Any]], outcomes: list[_Outcome]) -> list[_Request[Any]]:
        """Run ``reqs`` in one transaction; record final outcomes; return the writes to run again.

        Writes are run again only when another write's error ended the whole transaction (for
        example ``RAISE(ROLLBACK)`` or a full disk): none of them had committed.
        """
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock now, waiting up to busy_timeout
        except Exception as exc:  # noqa: BLE001 - the caller's error; the thread lives on
            outcomes.extend((r, _copy(exc), None) for r in reqs)
            return []
        done: list[tuple[_Request[Any], Any]] = []

        def unsettled(start: int) -> list[_Request[Any]]:
            return [r for r, _ in done] + reqs[start:]

        for index, req in enumerate(reqs):
            try:
                if req.savepoint:
                    conn.execute("SAVEPOINT tiermem_write")
            except Exception as exc:  # noqa: BLE001 - the callers' error; the thread lives on
                return self._abandon(conn, unsettled(index), exc, outcomes)
            try:
                value = req.fn(conn)
            except Exception as exc:  # noqa: BLE001 - the caller's error; the thread lives on
                outcomes.append((req, exc, None))
                if not conn.in_transaction:
                    return unsettled(index + 1)  # the error ended the transaction: run the others again
                if req.savepoint:
                    try:
                        conn.execute("ROLLBACK TO tiermem_write")
                        conn.execute("RELEASE tiermem_write")
                    except Exception as rollback_exc:  # noqa: BLE001 - as above
                        return self._abandon(conn, unsettled(index + 1), rollback_exc, outcomes)
                # Without a savepoint the write is one statement: SQLite undid it, and only it.
                continue
            try:
                if req.savepoint:
                    conn.execute("RELEASE tiermem_write")
            except Exception as exc:  # noqa: BLE001 - the callers' error; the thread lives on
                return self._abandon(conn, unsettled(index), exc, outcomes)
            done.append((req, value))
        try:
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the caller's error; the thread lives on
            return self._abandon(conn, [r for r, _ in done], exc, outcomes)
        outcomes.extend((r, None, value) for r, value in done)
        return []

    def _abandon(
        self,
        conn: sqlite3.Connection,
        reqs: list[_Request[Any]],
        exc: BaseException,
        outcomes: list[_Outcome],
    ) -> list[_Request[Any]]:
        """Roll back and fail ``reqs`` with ``exc``: nothing of this transaction was committed."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                # A connection that cannot roll back is not reused: the next group opens a new one
                # (closing it discards the open transaction).
                _log.warning("sqlite: rollback failed; reopening the write connection", exc_info=True)
                self._conn = None
                try:
                    conn.close()
                except sqlite3.Error:
                    _log.warning("sqlite: closing the failed write connection failed", exc_info=True)
        outcomes.extend((r, _copy(exc), None) for r in reqs)
        return []


def _copy(exc: BaseException) -> BaseException:
    # One error can fail many callers; each gets its own instance, so tracebacks do not mix.
    try:
        return copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception that cannot be copied is shared instead
        return exc


def _deliver(outcomes: list[_Outcome]) -> None:
    """Answer every caller: one wake-up per event loop, not one per caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        # A closed event loop raises RuntimeError: nobody is waiting for the answer.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[_Outcome]) -> None:
    for req, exc, value in items:
        if req.future.done():
            continue  # cancelled while the write ran
        if exc is not None:
            req.future.set_exception(exc)
        else:
            req.future.set_result(value)
