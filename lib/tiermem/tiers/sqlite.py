"""SQLite warm tier: one durable file, WAL, a dedicated worker thread."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from tiermem._codec import Record
from tiermem._errors import (
    BatchWriteError,
    ConflictError,
    TierError,
    TierUnavailableError,
)
from tiermem._keys import validate_scope
from tiermem._lifecycle import AsyncResource
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem._types import Clock

if TYPE_CHECKING:
    from tiermem.tiers.embedded_lifecycle import SqliteScopeStore
    from tiermem.tiers.sqlite_collections import SqliteCollectionStore

__all__ = ["SqliteWarmMemory"]

_T = TypeVar("_T")


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


def _new_etag() -> str:
    return secrets.token_hex(8)


class SqliteWarmMemory(AsyncResource):
    """Durable warm tier in one SQLite file (WAL, ``synchronous=FULL``).

    One connection lives on one dedicated worker thread, so calls never block the event loop and
    SQLite sees no concurrent use from this process; a write that returns has been fsynced.

    Args:
        path: database file (parent directories are created); ``":memory:"`` for tests.
        busy_timeout: seconds to wait for another process's lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0, clock: Clock = time.time):
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiermem-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._info = TierInfo(db_system="sqlite", max_record_bytes=None, native_ttl=False)

    @property
    def info(self) -> TierInfo:
        return self._info

    def _connection(self) -> sqlite3.Connection:
        # Runs on the worker thread only.
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False)
            # Switching to WAL and creating the schema take write locks: skip them when another
            # connection (another process, another client) already did it, so opening never has to
            # wait behind a busy writer.
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='tiermem_items'"
            ).fetchone()
            if exists is None:
                conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, operation: str, key: MemoryKey | None, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        self._ensure_open(operation)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))
        except (sqlite3.OperationalError, OSError) as exc:  # OSError: the file's directory cannot be made
            raise TierUnavailableError(
                f"sqlite: {exc}", tier=Tier.WARM, operation=operation, key=key.key if key else None
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise TierError(
                f"sqlite: {exc}", tier=Tier.WARM, operation=operation, key=key.key if key else None
            ) from exc

    async def setup(self) -> None:
        await self._run("setup", None, lambda conn: None)

    async def ping(self) -> None:
        await self._run("ping", None, lambda conn: conn.execute("SELECT 1").fetchone())

    @staticmethod
    def _row_record(row: tuple[bytes, str] | None) -> Record | None:
        return None if row is None else Record.from_bytes(row[0], etag=row[1])

    async def get(self, key: MemoryKey) -> Record | None:
        def op(conn: sqlite3.Connection) -> tuple[bytes, str] | None:
            cur = conn.execute(
                "SELECT data, etag FROM tiermem_items WHERE tenant=? AND ns=? AND key=?",
                (key.tenant, key.namespace, key.key),
            )
            row: tuple[bytes, str] | None = cur.fetchone()
            return row

        return self._row_record(await self._run("get", key, op))

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        etag = _new_etag()
        data = record.to_bytes()
        now = self._clock()
        params = (key.tenant, key.namespace, key.key, data, record.expires_at, etag)

        def op(conn: sqlite3.Connection) -> int:
            with conn:
                if if_match is not None:
                    cur = conn.execute(
                        "UPDATE tiermem_items SET data=?, expires_at=?, etag=? "
                        "WHERE tenant=? AND ns=? AND key=? AND etag=?",
                        (data, record.expires_at, etag, key.tenant, key.namespace, key.key, if_match),
                    )
                elif if_absent:
                    cur = conn.execute(
                        "INSERT INTO tiermem_items VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                        "data=excluded.data, expires_at=excluded.expires_at, etag=excluded.etag "
                        "WHERE tiermem_items.expires_at IS NOT NULL AND tiermem_items.expires_at <= ?",
                        (*params, now),
                    )
                else:
                    cur = conn.execute("INSERT OR REPLACE INTO tiermem_items VALUES (?,?,?,?,?,?)", params)
                return cur.rowcount

        if await self._run("set", key, op) == 0:
            why = "etag does not match" if if_match is not None else "key already exists"
            raise ConflictError(why, tier=Tier.WARM, operation="set", key=key.key)
        return etag

    async def delete(self, key: MemoryKey) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "DELETE FROM tiermem_items WHERE tenant=? AND ns=? AND key=?",
                    (key.tenant, key.namespace, key.key),
                )

        await self._run("delete", key, op)

    async def exists(self, key: MemoryKey) -> bool:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "SELECT 1 FROM tiermem_items WHERE tenant=? AND ns=? AND key=? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key.tenant, key.namespace, key.key, now),
            )
            return cur.fetchone() is not None

        return await self._run("exists", key, op)

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        if not keys:
            return []

        def op(conn: sqlite3.Connection) -> dict[tuple[str, str, str], tuple[bytes, str]]:
            found: dict[tuple[str, str, str], tuple[bytes, str]] = {}
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                values = ",".join(["(?,?,?)"] * len(chunk))
                params = [part for mk in chunk for part in (mk.tenant, mk.namespace, mk.key)]
                # Only "(?,?,?)" placeholders are interpolated; every value is a bound parameter.
                sql = f"SELECT tenant, ns, key, data, etag FROM tiermem_items WHERE (tenant, ns, key) IN (VALUES {values})"  # noqa: S608, E501
                cur = conn.execute(sql, params)
                for tenant, ns, k, data, etag in cur:
                    found[(tenant, ns, k)] = (data, etag)
            return found

        found = await self._run("mget", None, op)
        return [self._row_record(found.get((mk.tenant, mk.namespace, mk.key))) for mk in keys]

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        if not items:
            return
        now = self._clock()
        rows = [
            (mk.tenant, mk.namespace, mk.key, rec.to_bytes(), rec.expires_at, _new_etag(), now)
            for mk, rec in items
        ]

        def op(conn: sqlite3.Connection) -> None:
            with conn:  # one transaction: all rows or none
                if if_absent:
                    conn.executemany(
                        "INSERT INTO tiermem_items VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                        "data=excluded.data, expires_at=excluded.expires_at, etag=excluded.etag "
                        "WHERE tiermem_items.expires_at IS NOT NULL AND tiermem_items.expires_at <= ?",
                        rows,
                    )
                else:
                    conn.executemany(
                        "INSERT OR REPLACE INTO tiermem_items VALUES (?,?,?,?,?,?)", [r[:6] for r in rows]
                    )

        try:
            await self._run("mset", None, op)
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
            return list(cur)

        for t, ns, k in await self._run("scan", None, op):
            yield MemoryKey(t, ns, k)

    async def purge(self, tenant: str, namespace: str | None = None) -> int:
        validate_scope(tenant, "tenant")
        if namespace is not None:
            validate_scope(namespace, "namespace")

        def op(conn: sqlite3.Connection) -> int:
            with conn:
                if namespace is None:
                    return conn.execute("DELETE FROM tiermem_items WHERE tenant=?", (tenant,)).rowcount
                return conn.execute(
                    "DELETE FROM tiermem_items WHERE tenant=? AND ns=?", (tenant, namespace)
                ).rowcount

        return await self._run("purge", None, op)

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete expired rows (SQLite has no native TTL); return how many."""
        cutoff = self._clock() if now is None else now

        def op(conn: sqlite3.Connection) -> int:
            with conn:
                return conn.execute(
                    "DELETE FROM tiermem_items WHERE expires_at IS NOT NULL AND expires_at <= ?", (cutoff,)
                ).rowcount

        return await self._run("sweep", None, op)

    async def _close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    # -- collections (tiermem._collection): the one hook, sharing this connection and worker thread --

    _collections: SqliteCollectionStore | None = None

    def collection_store(self) -> SqliteCollectionStore:
        """The collection store in this database file (its own table, this adapter's connection)."""
        if self._collections is None:
            from tiermem.tiers.sqlite_collections import SqliteCollectionStore

            self._collections = SqliteCollectionStore(
                lambda operation, fn: self._run(operation, None, fn), _new_etag
            )
        return self._collections

    def lifecycle_store(self) -> SqliteScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0011)."""
        from tiermem.tiers.embedded_lifecycle import SqliteScopeStore

        return SqliteScopeStore(lambda operation, fn: self._run(operation, None, fn))
