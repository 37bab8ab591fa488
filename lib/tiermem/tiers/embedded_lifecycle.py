"""Lifecycle stores of the embedded tiers: in-process hot, SQLite warm, files cold (see lifecycle/_store).

Each is reached through its adapter's ``lifecycle_store()`` hook and runs on that adapter's own
machinery (its worker thread, its file-system executor), so errors are translated in one place.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from tiermem._codec import HEADER_SIZE, Record, RecordKind
from tiermem._errors import CorruptValueError
from tiermem._keys import file_scope_parts, parse_file_parts, unpercent, validate_scope
from tiermem._types import MemoryKey
from tiermem.lifecycle._store import LISTING_PAGE, StoredEntry
from tiermem.tiers.cold_collections import parse_file_key


class _Held(Protocol):
    @property
    def record(self) -> Record: ...


class _InProcessLike(Protocol):
    """What the in-process store uses of the hot adapter: its entries and its removal bookkeeping."""

    @property
    def _entries(self) -> Mapping[MemoryKey, _Held]: ...

    def _remove(self, mk: MemoryKey) -> None: ...

    def _ensure_open(self, operation: str) -> None: ...


class _FilesLike(Protocol):
    """What the file store uses of the files adapter: its root and its I/O executor (and translation)."""

    @property
    def root(self) -> Path: ...

    async def _io(self, operation: str, key: MemoryKey | None, fn: Callable[[], _T]) -> _T: ...


__all__ = ["FileScopeStore", "InProcessScopeStore", "SqliteScopeStore"]

_T = TypeVar("_T")
Runner = Callable[[str, Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
_MARKERS: Final = frozenset({RecordKind.TOMBSTONE, RecordKind.FENCE, RecordKind.LEASE})
_ETAG_BYTES: Final = 8  # files: a per-write ETag precedes the envelope (tiers/files.py)


def _scope(tenant: str | None, namespace: str | None) -> None:
    if tenant is not None:
        validate_scope(tenant, "tenant")
    if namespace is not None:
        validate_scope(namespace, "namespace")


def _header(head: bytes) -> Record | None:
    try:
        return Record.from_bytes(head)
    except CorruptValueError:
        return None  # not ours or damaged: listed with what is known, never judged here


class InProcessScopeStore:
    """The in-process hot tier: its entries are a dict in this process."""

    def __init__(self, hot: _InProcessLike) -> None:
        self._hot = hot

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        self._hot._ensure_open("entries")
        for mk, entry in list(self._hot._entries.items()):
            if (tenant is None or mk.tenant == tenant) and (namespace is None or mk.namespace == namespace):
                rec = entry.record
                yield StoredEntry(
                    mk.tenant,
                    mk.namespace,
                    mk.key,
                    size=rec.size,
                    marker=rec.kind in _MARKERS,
                    expires_at=rec.expires_at,
                )

    async def erase(self, tenant: str, namespace: str | None) -> int:
        _scope(tenant, namespace)
        self._hot._ensure_open("erase")
        doomed = [
            mk
            for mk in list(self._hot._entries)
            if mk.tenant == tenant and (namespace is None or mk.namespace == namespace)
        ]
        for mk in doomed:
            self._hot._remove(mk)
        return len(doomed)


_WRITE_TIMES: Final = """
CREATE TABLE IF NOT EXISTS tiermem_write_times (
    tenant TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, written_at REAL NOT NULL,
    PRIMARY KEY (tenant, ns, key)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS tiermem_items_written_insert AFTER INSERT ON tiermem_items BEGIN
    INSERT OR REPLACE INTO tiermem_write_times
    VALUES (NEW.tenant, NEW.ns, NEW.key, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER IF NOT EXISTS tiermem_items_written_update AFTER UPDATE ON tiermem_items BEGIN
    INSERT OR REPLACE INTO tiermem_write_times
    VALUES (NEW.tenant, NEW.ns, NEW.key, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER IF NOT EXISTS tiermem_items_written_delete AFTER DELETE ON tiermem_items BEGIN
    DELETE FROM tiermem_write_times WHERE tenant = OLD.tenant AND ns = OLD.ns AND key = OLD.key;
END;
"""
"""SQLite keeps no write time; triggers record one per key-value item (docs/adr/0014). Rows written
before the triggers existed get the time the triggers were installed."""


_KV_SELECT: Final = (
    "SELECT i.tenant, i.ns, i.key, length(i.data), substr(i.data, 1, ?), i.etag, w.written_at "
    "FROM tiermem_items i LEFT JOIN tiermem_write_times w "
    "ON w.tenant = i.tenant AND w.ns = i.ns AND w.key = i.key"
)
_KV_AFTER: Final = "(i.tenant, i.ns, i.key) > (?, ?, ?) ORDER BY i.tenant, i.ns, i.key LIMIT ?"
_ITEM_SELECT: Final = (
    "SELECT tenant, ns, coll, key, length(data), ptr, expires_at FROM tiermem_collection_items"
)
_ITEM_AFTER: Final = "(tenant, ns, coll, key) > (?, ?, ?, ?) ORDER BY tenant, ns, coll, key LIMIT ?"


def _install(conn: sqlite3.Connection) -> None:
    """Create the write-time table and triggers once (idempotent; other processes may race us)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='tiermem_items_written_delete'"
    ).fetchone()
    if found is not None:
        return
    with conn:
        conn.executescript("BEGIN IMMEDIATE;" + _WRITE_TIMES + "COMMIT;")
        conn.execute(
            "INSERT OR IGNORE INTO tiermem_write_times SELECT tenant, ns, key, "
            "(julianday('now') - 2440587.5) * 86400.0 FROM tiermem_items"
        )


def _has_collections(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='tiermem_collection_items'"
    ).fetchone()
    return row is not None


def _where(tenant: str | None, namespace: str | None, alias: str = "") -> tuple[str, list[str]]:
    clauses, params = [], []
    if tenant is not None:
        clauses.append(f"{alias}tenant = ?")
        params.append(tenant)
    if namespace is not None:
        clauses.append(f"{alias}ns = ?")
        params.append(namespace)
    return (" AND ".join(clauses) or "1"), params


class SqliteScopeStore:
    """The SQLite warm tier: key-value rows, collection rows and their write times (keyset-paged)."""

    def __init__(self, run: Runner) -> None:
        self._run = run

    async def _call(self, operation: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def with_times(conn: sqlite3.Connection) -> _T:
            _install(conn)
            return fn(conn)

        result: _T = await self._run(operation, with_times)
        return result

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        where, params = _where(tenant, namespace, "i.")
        cursor: tuple[str, str, str] = ("", "", "")
        while True:
            sql = f"{_KV_SELECT} WHERE {where} AND {_KV_AFTER}"
            args: list[object] = [HEADER_SIZE, *params, *cursor, LISTING_PAGE]

            def kv_page(conn: sqlite3.Connection, q: str = sql, a: list[object] = args) -> list[Any]:
                return conn.execute(q, a).fetchall()

            rows = await self._call("entries", kv_page)
            for t, ns, key, size, head, etag, written in rows:
                rec = _header(head)
                yield StoredEntry(
                    t,
                    ns,
                    key,
                    size=int(size),
                    written_at=written,
                    pointer=rec is not None and rec.kind is RecordKind.POINTER,
                    expires_at=None if rec is None else rec.expires_at,
                    etag=etag,
                )
            if len(rows) < LISTING_PAGE:
                break
            cursor = (rows[-1][0], rows[-1][1], rows[-1][2])
        async for entry in self._collection_entries(tenant, namespace):
            yield entry

    async def _collection_entries(
        self, tenant: str | None, namespace: str | None
    ) -> AsyncIterator[StoredEntry]:
        where, params = _where(tenant, namespace)
        cursor: tuple[str, str, str, bytes] = ("", "", "", b"")
        while True:
            sql = f"{_ITEM_SELECT} WHERE {where} AND {_ITEM_AFTER}"
            args: list[object] = [*params, *cursor, LISTING_PAGE]

            def page(conn: sqlite3.Connection, q: str = sql, a: list[object] = args) -> list[Any]:
                return conn.execute(q, a).fetchall() if _has_collections(conn) else []

            rows = await self._call("entries", page)
            for t, ns, coll, key, size, ptr, exp in rows:
                yield StoredEntry(
                    t,
                    ns,
                    bytes(key).decode("utf-8", "replace"),
                    collection=coll,
                    size=int(size),
                    pointer=bool(ptr),
                    expires_at=exp,
                )
            if len(rows) < LISTING_PAGE:
                return
            last = rows[-1]
            cursor = (last[0], last[1], last[2], bytes(last[3]))

    async def erase(self, tenant: str, namespace: str | None) -> int:
        _scope(tenant, namespace)
        where, params = _where(tenant, namespace)

        def op(conn: sqlite3.Connection) -> int:
            with conn:  # one transaction: a crash leaves all or nothing of this tier
                n = conn.execute(f"DELETE FROM tiermem_items WHERE {where}", params).rowcount  # noqa: S608
                if _has_collections(conn):
                    n += conn.execute(
                        f"DELETE FROM tiermem_collection_items WHERE {where}",  # noqa: S608
                        params,
                    ).rowcount
                conn.execute(f"DELETE FROM tiermem_write_times WHERE {where}", params)  # noqa: S608
                return int(n)

        return await self._call("erase", op)

    async def delete_if(self, tenant: str, namespace: str, key: str, etag: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with conn:
                cur = conn.execute(
                    "DELETE FROM tiermem_items WHERE tenant=? AND ns=? AND key=? AND etag=?",
                    (tenant, namespace, key, etag),
                )
                return cur.rowcount > 0

        return await self._call("delete_if", op)


class FileScopeStore:
    """The files cold tier: one directory per tenant and namespace under the root."""

    def __init__(self, cold: _FilesLike) -> None:
        self._cold = cold

    def _bases(self, tenant: str | None, namespace: str | None) -> list[Path]:
        """The directories of a scope: its key-value objects and, under ``~tenant``, the items of its
        collections when the client has no warm tier (tiers/cold_collections.py)."""
        root = self._cold.root
        if tenant is None:
            return [root]
        return [root.joinpath(*file_scope_parts(t, namespace)) for t in (tenant, f"~{tenant}")]

    def _walk(self, tenant: str | None, namespace: str | None) -> Iterator[tuple[tuple[str, ...], Path]]:
        root = self._cold.root
        for base in self._bases(tenant, namespace):
            if not base.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = Path(dirpath, name)
                    yield path.relative_to(root).parts, path

    @staticmethod
    def _describe(parts: tuple[str, ...], path: Path) -> StoredEntry | None:
        if len(parts) < 3:
            return None
        collection = None
        try:
            tenant, namespace = unpercent(parts[0]), unpercent(parts[1])
        except ValueError:
            return None
        try:
            if tenant.startswith("~"):  # an item of a collection kept in cold (no warm tier)
                tenant = tenant[1:]
                collection, _, key = parse_file_key(parts[2:]).partition("\x1f")
            else:
                key = parse_file_parts(parts).key
        except (ValueError, UnicodeDecodeError):  # a large collection item's version, or foreign
            key = "/".join(parts[2:])
        stat = path.stat()
        with path.open("rb") as fh:
            rec = _header(fh.read(_ETAG_BYTES + HEADER_SIZE)[_ETAG_BYTES:])
        return StoredEntry(
            tenant,
            namespace,
            key,
            collection=collection,
            size=max(0, stat.st_size - _ETAG_BYTES),
            written_at=stat.st_mtime,
            expires_at=None if rec is None else rec.expires_at,
        )

    async def entries(self, tenant: str | None, namespace: str | None) -> AsyncIterator[StoredEntry]:
        _scope(tenant, namespace)
        walker = self._walk(tenant, namespace)

        def page() -> list[StoredEntry]:
            out: list[StoredEntry] = []
            for parts, path in walker:
                try:
                    entry = self._describe(parts, path)
                except FileNotFoundError:
                    continue  # removed since the directory was read
                if entry is not None:
                    out.append(entry)
                if len(out) >= LISTING_PAGE:
                    break
            return out

        while True:
            batch = await self._cold._io("entries", None, page)
            for entry in batch:
                yield entry
            if len(batch) < LISTING_PAGE:
                return

    async def erase(self, tenant: str, namespace: str | None) -> int:
        _scope(tenant, namespace)
        bases = self._bases(tenant, namespace)

        def op() -> int:
            count = 0
            for base in bases:
                if not base.is_dir():
                    continue
                count += sum(
                    1 for _, _, files in os.walk(base) for name in files if not name.startswith(".tmp-")
                )
                shutil.rmtree(base)
            return count

        return await self._cold._io("erase", None, op)
