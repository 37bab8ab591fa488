"""SQLite warm tier: one durable file in WAL mode, group commit, reads that never wait for writes.

Where the time goes and why it is arranged this way is in ADR 0009: writes go to one writer
thread that commits concurrent writes together (one fsync per group); small point reads run on
the event loop's thread on their own read connection (WAL readers never wait for the writer, and
``busy_timeout=0`` means they cannot wait for a lock either); anything larger, and any read that
meets a lock, goes to a small pool of reader threads. Every statement text is a constant, so the
sqlite3 module's per-connection statement cache keeps each one prepared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TypeVar, get_args

from tiermem._codec import Record
from tiermem._errors import (
    BatchWriteError,
    ConfigurationError,
    ConflictError,
    TierError,
    TierUnavailableError,
)
from tiermem._keys import validate_scope
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers._base import Clock, TierAdapter
from tiermem.tiers._sqlite_writer import GroupCommitWriter

if TYPE_CHECKING:
    from tiermem.tiers.embedded_lifecycle import SqliteScopeStore
    from tiermem.tiers.sqlite_collections import SqliteCollectionStore

__all__ = ["Durability", "SqliteWarmMemory"]

_T = TypeVar("_T")
Durability = Literal["fsync", "os"]
"""``fsync``: a write returns after its group's fsync (survives power loss). ``os``: after the OS
has the data (survives a crash of the process, not of the machine)."""

_log = logging.getLogger("tiermem.sqlite")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tiermem_items (
    tenant TEXT NOT NULL,
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at REAL,
    etag TEXT NOT NULL,
    PRIMARY KEY (tenant, ns, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tiermem_items_expiry ON tiermem_items (expires_at) WHERE expires_at IS NOT NULL;
"""
_BATCH: Final = 300  # rows per IN (...) query: 900 bound parameters, well under SQLite's limit
INLINE_MAX_BYTES: Final = 64 * 1024
"""Records up to this size are read (and with ``durability="os"`` written) on the event loop's thread."""
_CHECKPOINT_EVERY: Final = 500  # inline commits between background WAL checkpoints (durability="os")

# Only the named constant is interpolated: every value is a bound parameter.
_GET_SMALL: Final = (
    f"SELECT CASE WHEN length(data) <= {INLINE_MAX_BYTES} THEN data END, etag, length(data) "  # noqa: S608
    "FROM tiermem_items WHERE tenant=? AND ns=? AND key=?"
)
_GET: Final = "SELECT data, etag FROM tiermem_items WHERE tenant=? AND ns=? AND key=?"
_EXISTS: Final = (
    "SELECT 1 FROM tiermem_items WHERE tenant=? AND ns=? AND key=? AND (expires_at IS NULL OR expires_at > ?)"
)
_UPSERT: Final = "INSERT OR REPLACE INTO tiermem_items VALUES (?,?,?,?,?,?)"
_UPDATE_IF_MATCH: Final = (
    "UPDATE tiermem_items SET data=?, expires_at=?, etag=? WHERE tenant=? AND ns=? AND key=? AND etag=?"
)
_INSERT_IF_ABSENT: Final = (
    "INSERT INTO tiermem_items VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
    "data=excluded.data, expires_at=excluded.expires_at, etag=excluded.etag "
    "WHERE tiermem_items.expires_at IS NOT NULL AND tiermem_items.expires_at <= ?"
)
_DELETE: Final = "DELETE FROM tiermem_items WHERE tenant=? AND ns=? AND key=?"
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_PING: Final = "SELECT 1 FROM tiermem_items LIMIT 1"
_Row = tuple[bytes, str]
_Op = Callable[[sqlite3.Connection], _T]


def _new_etag() -> str:
    return secrets.token_hex(8)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


class _Inline:
    """A connection used on the event loop's thread, never waited for: busy -> ``None``.

    The lock is taken without blocking, so a second event loop in another thread (or a re-entrant
    call) falls back to the thread path instead of sharing the connection.
    """

    __slots__ = ("conn", "lock")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteWarmMemory(TierAdapter):
    """Durable warm tier in one SQLite file (WAL), safe to share between processes.

    A write that returns is durable: with ``durability="fsync"`` (the default) its transaction
    was fsynced (``synchronous=FULL``; concurrent writes share one transaction and one fsync); with
    ``durability="os"`` (``synchronous=NORMAL``, what diskcache does) it survives a crash of the
    process but not a power loss. Calls never block the event loop on a lock or an fsync.

    Args:
        path: database file (parent directories are created); ``":memory:"`` for tests.
        durability: ``"fsync"`` or ``"os"`` (see above); anything else is a ``ConfigurationError``.
        busy_timeout: seconds to wait for another process's write lock before failing.
        clock: the time source for expiry checks.
    """

    tier = Tier.WARM
    failures = (sqlite3.Error, OSError)  # OSError: the database's directory cannot be made

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        busy_timeout: float = 30.0,
        clock: Clock = time.time,
    ) -> None:
        if durability not in get_args(Durability):
            raise ConfigurationError(f"durability must be 'fsync' or 'os', not {durability!r}")
        if not busy_timeout >= 0:
            raise ConfigurationError(f"busy_timeout must be >= 0 seconds, not {busy_timeout!r}")
        self.path = str(path)
        self.durability: Durability = durability
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._memory = self.path == ":memory:"  # one connection only: everything runs on the writer
        self._writer = GroupCommitWriter(self._connect_writer, name="tiermem-sqlite-writer")
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tiermem-sqlite-read")
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._inline_read: _Inline | None = None
        self._inline_write: _Inline | None = None
        self._inline_commits = 0
        self._ready = False
        self._info = TierInfo(db_system="sqlite", max_record_bytes=None, native_ttl=False)

    @property
    def info(self) -> TierInfo:
        return self._info

    # --- connections --------------------------------------------------------------------------------

    def _open(
        self, *, timeout: float, synchronous: str | None, query_only: bool = False
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            if synchronous is not None:
                conn.execute(f"PRAGMA synchronous={synchronous}")
            if query_only:
                conn.execute("PRAGMA query_only=1")
        except BaseException:
            conn.close()
            raise
        return conn

    def _synchronous(self) -> str:
        return "FULL" if self.durability == "fsync" else "NORMAL"

    def _connect_writer(self) -> sqlite3.Connection:
        # Runs on the writer thread, at its first request.
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(timeout=self._busy_timeout, synchronous=None)
        try:
            # Switching to WAL takes a lock: skip it when another connection (another process,
            # another client) already did it, so opening never waits behind a busy writer.
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous()}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Runs on the writer thread, outside any transaction: the schema, then the inline connections.
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='tiermem_items'"
        ).fetchone()
        if exists is None:
            conn.executescript(_SCHEMA)
        if self._memory:
            return
        with self._conns_lock:
            if self._inline_read is None:
                self._inline_read = _Inline(self._open(timeout=0, synchronous=None, query_only=True))
            if self.durability == "os" and self._inline_write is None:
                inline = self._open(timeout=0, synchronous="NORMAL")
                # Checkpoints copy the WAL into the database (and fsync it): never on the event
                # loop. The writer thread runs them (see _inline_commit).
                inline.execute("PRAGMA wal_autocheckpoint=0")
                self._inline_write = _Inline(inline)

    def _reader(self) -> sqlite3.Connection:
        # Runs on a reader thread: one connection per thread, closed by aclose().
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = self._open(timeout=self._busy_timeout, synchronous=None, query_only=True)
            with self._conns_lock:
                self._reader_conns.append(conn)
            self._reader_local.conn = conn
        return conn

    # --- running statements -------------------------------------------------------------------------

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierError:
        name = key.key if key else None
        if isinstance(exc, sqlite3.OperationalError | OSError):  # locked, I/O error, no directory
            return TierUnavailableError(f"sqlite: {exc}", tier=Tier.WARM, operation=operation, key=name)
        return TierError(f"sqlite: {exc}", tier=Tier.WARM, operation=operation, key=name)

    async def _start(self, operation: str) -> None:
        """Open the database and create the schema, once (concurrent first calls may both do it)."""
        self._ensure_open(operation)
        if not self._ready:
            await self._wait(operation, None, self._writer.call(self._prepare))
            self._ready = True

    async def _wait(self, operation: str, key: MemoryKey | None, future: asyncio.Future[_T]) -> _T:
        return await self._sdk(operation, key, lambda: future)

    async def _write(
        self, operation: str, key: MemoryKey | None, fn: _Op[_T], *, one_statement: bool = True
    ) -> _T:
        """A write through the group-commit writer: returns after its group committed."""
        await self._start(operation)
        return await self._wait(operation, key, self._writer.submit(fn, savepoint=not one_statement))

    async def _read(self, operation: str, key: MemoryKey | None, fn: _Op[_T]) -> _T:
        """A read on a reader thread (its own connection: it never queues behind writes)."""
        await self._start(operation)
        if self._memory:
            return await self._wait(operation, key, self._writer.call(fn))
        loop = asyncio.get_running_loop()
        return await self._sdk(
            operation, key, lambda: loop.run_in_executor(self._readers, lambda: self._retry_busy(fn))
        )

    def _retry_busy(self, fn: _Op[_T]) -> _T:
        """Run a read on this reader thread's connection, again while SQLite answers busy without
        waiting (another process switching the file to WAL or recovering it), up to ``busy_timeout``.
        Reads change nothing, so running one again is safe."""
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                return fn(self._reader())
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            threading.Event().wait(pause)  # this is a reader thread, never the event loop
            pause = min(pause * 2, 0.05)

    def _inline_query(
        self, operation: str, key: MemoryKey, sql: str, params: tuple[object, ...]
    ) -> list[tuple[object, ...]] | None:
        """Rows of ``sql`` on the loop's thread, or ``None`` when it would have to wait."""
        inline = self._inline_read
        if not self._ready or inline is None or not inline.lock.acquire(blocking=False):
            return None
        try:
            # fetchall: the statement runs to completion, so no read transaction stays open.
            return inline.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return None
            raise self._translate(exc, operation, key, None) from exc
        except sqlite3.Error as exc:
            raise self._translate(exc, operation, key, None) from exc
        finally:
            inline.lock.release()

    def _inline_commit(self, fn: Callable[[sqlite3.Connection], _T]) -> tuple[bool, _T | None]:
        """Run one write transaction on the loop's thread (``durability="os"``): ``(False, None)`` if busy."""
        inline = self._inline_write
        if inline is None or not inline.lock.acquire(blocking=False):
            return False, None
        try:
            conn = inline.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    return False, None
                raise
            try:
                value = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            inline.lock.release()
        self._inline_commits += 1
        if self._inline_commits % _CHECKPOINT_EVERY == 0:
            self._writer.call(_checkpoint).add_done_callback(_log_checkpoint)
        return True, value

    async def _write_small(
        self, operation: str, key: MemoryKey, size: int, fn: Callable[[sqlite3.Connection], _T]
    ) -> _T:
        """A single-key write: inline with ``durability="os"`` when small and unlocked, else grouped."""
        self._ensure_open(operation)
        if self._ready and size <= INLINE_MAX_BYTES and self._inline_write is not None:
            try:
                done, value = self._inline_commit(fn)
            except (sqlite3.Error, OSError) as exc:
                raise self._translate(exc, operation, key, size) from exc
            if done:
                return value  # type: ignore[return-value]
        return await self._write(operation, key, fn)

    # --- the tier -----------------------------------------------------------------------------------

    async def setup(self) -> None:
        await self._start("setup")

    async def ping(self) -> None:
        await self._read("ping", None, lambda conn: conn.execute(_PING).fetchall())

    async def get(self, key: MemoryKey) -> Record | None:
        self._ensure_open("get")
        rows = self._inline_query("get", key, _GET_SMALL, key)
        if rows is not None:
            if not rows:
                return None
            data, etag, _ = rows[0]
            if data is not None:
                return Record.from_bytes(data, etag=etag)  # type: ignore[arg-type]
            # Larger than INLINE_MAX_BYTES: read it on a reader thread.

        def op(conn: sqlite3.Connection) -> list[_Row]:
            return conn.execute(_GET, key).fetchall()

        found = await self._read("get", key, op)
        return Record.from_bytes(found[0][0], etag=found[0][1]) if found else None

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        etag = _new_etag()
        data = record.to_bytes()
        if if_match is not None:
            sql = _UPDATE_IF_MATCH
            params: tuple[object, ...] = (data, record.expires_at, etag, *key, if_match)
        elif if_absent:
            sql = _INSERT_IF_ABSENT
            params = (*key, data, record.expires_at, etag, self._clock())
        else:
            sql = _UPSERT
            params = (*key, data, record.expires_at, etag)

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        if await self._write_small("set", key, len(data), op) == 0:
            why = "etag does not match" if if_match is not None else "key already exists"
            raise ConflictError(why, tier=Tier.WARM, operation="set", key=key.key)
        return etag

    async def delete(self, key: MemoryKey) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_DELETE, key)

        await self._write_small("delete", key, 0, op)

    async def exists(self, key: MemoryKey) -> bool:
        self._ensure_open("exists")
        params = (*key, self._clock())
        rows = self._inline_query("exists", key, _EXISTS, params)
        if rows is not None:
            return bool(rows)
        return await self._read("exists", key, lambda conn: bool(conn.execute(_EXISTS, params).fetchall()))

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        if not keys:
            return []

        def op(conn: sqlite3.Connection) -> dict[tuple[str, str, str], _Row]:
            found: dict[tuple[str, str, str], _Row] = {}
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                values = ",".join(["(?,?,?)"] * len(chunk))
                params = [part for mk in chunk for part in mk]
                # Only "(?,?,?)" placeholders are interpolated; every value is a bound parameter.
                sql = f"SELECT tenant, ns, key, data, etag FROM tiermem_items WHERE (tenant, ns, key) IN (VALUES {values})"  # noqa: S608, E501
                for tenant, ns, k, data, etag in conn.execute(sql, params):
                    found[(tenant, ns, k)] = (data, etag)
            return found

        found = await self._read("mget", None, op)
        out: list[Record | None] = []
        for mk in keys:
            row = found.get(mk)
            out.append(None if row is None else Record.from_bytes(row[0], etag=row[1]))
        return out

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        if not items:
            return
        now = self._clock()
        rows = [(*mk, rec.to_bytes(), rec.expires_at, _new_etag()) for mk, rec in items]

        def op(conn: sqlite3.Connection) -> None:
            # One savepoint in the writer's transaction: all rows or none.
            if if_absent:
                conn.executemany(_INSERT_IF_ABSENT, [(*row, now) for row in rows])
            else:
                conn.executemany(_UPSERT, rows)

        try:
            await self._write("mset", None, op, one_statement=False)
        except TierError as exc:
            raise BatchWriteError(
                "sqlite mset rolled back",
                written=[],
                failed={mk.key: exc for mk, _ in items},
                tier=Tier.WARM,
            ) from exc

    async def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        validate_scope(tenant, "tenant")
        if namespace is not None:
            validate_scope(namespace, "namespace")

        def op(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            if namespace is None:
                cur = conn.execute("SELECT tenant, ns, key FROM tiermem_items WHERE tenant=?", (tenant,))
            else:
                cur = conn.execute(
                    "SELECT tenant, ns, key FROM tiermem_items WHERE tenant=? AND ns=?", (tenant, namespace)
                )
            return cur.fetchall()

        for t, ns, k in await self._read("scan", None, op):
            yield MemoryKey(t, ns, k)

    async def purge(self, tenant: str, namespace: str | None = None) -> int:
        validate_scope(tenant, "tenant")
        if namespace is not None:
            validate_scope(namespace, "namespace")

        def op(conn: sqlite3.Connection) -> int:
            if namespace is None:
                return conn.execute("DELETE FROM tiermem_items WHERE tenant=?", (tenant,)).rowcount
            return conn.execute(
                "DELETE FROM tiermem_items WHERE tenant=? AND ns=?", (tenant, namespace)
            ).rowcount

        return await self._write("purge", None, op)

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete expired rows (SQLite has no native TTL); return how many."""
        cutoff = self._clock() if now is None else now

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM tiermem_items WHERE expires_at IS NOT NULL AND expires_at <= ?", (cutoff,)
            ).rowcount

        return await self._write("sweep", None, op)

    async def _close(self) -> None:
        # Queued writes finish first; then reads in flight; then every connection is closed.
        await self._writer.aclose()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, partial(self._readers.shutdown, wait=True))
        with self._conns_lock:
            conns, self._reader_conns = self._reader_conns, []
            inline = [c for c in (self._inline_read, self._inline_write) if c is not None]
            self._inline_read = self._inline_write = None
        for conn in conns:
            conn.close()
        for each in inline:
            each.close()

    # -- collections and lifecycle: hooks that share this adapter's writer and readers ------------------

    async def _exclusive(self, operation: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the writer thread's connection, in queue order and outside any transaction
        (``fn`` manages its own): the lifecycle store uses it."""
        await self._start(operation)
        return await self._wait(operation, None, self._writer.call(fn))

    _collections: SqliteCollectionStore | None = None

    def collection_store(self) -> SqliteCollectionStore:
        """The collection store in this database file (its own table; this adapter's group-commit
        writer, reader threads and error translation)."""
        if self._collections is None:
            from tiermem.tiers.sqlite_collections import SqliteCollectionStore

            async def prepare(operation: str, fn: _Op[None]) -> None:
                await self._start(operation)
                await self._wait(operation, None, self._writer.call(fn))

            self._collections = SqliteCollectionStore(
                read=lambda operation, fn: self._read(operation, None, fn),
                write=lambda operation, fn, atomic: self._write(
                    operation, None, fn, one_statement=not atomic
                ),
                prepare=prepare,
                new_etag=_new_etag,
            )
        return self._collections

    def lifecycle_store(self) -> SqliteScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.embedded_lifecycle import SqliteScopeStore

        return SqliteScopeStore(self._exclusive)


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _log_checkpoint(future: asyncio.Future[None]) -> None:
    # A background checkpoint that fails costs only WAL size; the next one tries again. Say so.
    if not future.cancelled() and future.exception() is not None:
        _log.warning("sqlite: background WAL checkpoint failed: %s", future.exception())
