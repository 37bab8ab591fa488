"""Embedded tiers, the zero-setup default: in-process hot, SQLite warm, local-file cold.

They are full implementations of the tier Protocols (they pass the same contract suite as the
Azure adapters), so ``tiermem demo`` and ``tiermem serve`` work with no servers at all.
"""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from tiermem._codec import HEADER_SIZE, Record
from tiermem._errors import (
    BatchWriteError,
    ConflictError,
    CorruptValueError,
    InvalidKeyError,
    TierError,
    TierUnavailableError,
    ValueTooLargeError,
)
from tiermem._keys import file_parts, file_scope_parts, parse_file_parts, validate_scope
from tiermem._lifecycle import AsyncResource
from tiermem._protocols import MemoryKey, Tier, TierInfo

__all__ = ["EvictionPolicy", "FileColdMemory", "LocalHotMemory", "SqliteWarmMemory"]

_T = TypeVar("_T")
Clock = Callable[[], float]


class EvictionPolicy(enum.Enum):
    """Which entry ``LocalHotMemory`` drops first when it is full."""

    LRU = "lru"  # least recently used
    LFU = "lfu"  # least frequently used (ties: least recently used)
    FIFO = "fifo"  # oldest insertion


@dataclass(slots=True)
class _HotEntry:
    record: Record
    size: int
    freq: int = 1


_ENTRY_OVERHEAD: Final = 64  # rough per-entry bookkeeping, so max_bytes bounds real memory use


class LocalHotMemory(AsyncResource):
    """In-process hot tier with LRU, LFU or FIFO eviction, ``max_items``/``max_bytes`` bounds and TTL.

    All operations are synchronous under the hood and never await, so they are atomic with
    respect to other tasks on the same event loop. Not shared between processes.

    Args:
        max_items: most entries kept.
        max_bytes: most bytes kept (records plus keys plus a per-entry overhead).
        eviction: the policy that picks the victim when a bound is exceeded.
        clock: time source (Unix seconds), injectable for tests.
    """

    def __init__(
        self,
        *,
        max_items: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        eviction: EvictionPolicy = EvictionPolicy.LRU,
        clock: Clock = time.time,
    ) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be >= 1")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.eviction = eviction
        self._clock = clock
        self._entries: dict[MemoryKey, _HotEntry] = {}
        self._order: OrderedDict[MemoryKey, None] = OrderedDict()  # LRU / FIFO order, oldest first
        self._freq: dict[int, OrderedDict[MemoryKey, None]] = {}  # LFU buckets
        self._min_freq = 0
        self._bytes = 0
        self.evictions = 0
        self._info = TierInfo(db_system="tiermem_local", native_ttl=True)

    @property
    def info(self) -> TierInfo:
        return self._info

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def setup(self) -> None:
        self._ensure_open("setup")

    async def ping(self) -> None:
        self._ensure_open("ping")

    # -- bookkeeping ---------------------------------------------------------------------------

    def _touch(self, mk: MemoryKey, entry: _HotEntry) -> None:
        if self.eviction is EvictionPolicy.LRU:
            self._order.move_to_end(mk)
        elif self.eviction is EvictionPolicy.LFU:
            bucket = self._freq[entry.freq]
            del bucket[mk]
            if not bucket:
                del self._freq[entry.freq]
                if self._min_freq == entry.freq:
                    self._min_freq = entry.freq + 1
            entry.freq += 1
            self._freq.setdefault(entry.freq, OrderedDict())[mk] = None

    def _remove(self, mk: MemoryKey) -> None:
        entry = self._entries.pop(mk, None)
        if entry is None:
            return
        self._bytes -= entry.size
        if self.eviction is EvictionPolicy.LFU:
            bucket = self._freq[entry.freq]
            del bucket[mk]
            if not bucket:
                del self._freq[entry.freq]
        else:
            del self._order[mk]

    def _victim(self) -> MemoryKey:
        if self.eviction is EvictionPolicy.LFU:
            if self._min_freq not in self._freq:
                self._min_freq = min(self._freq)
            return next(iter(self._freq[self._min_freq]))
        return next(iter(self._order))

    def _live(self, mk: MemoryKey) -> _HotEntry | None:
        entry = self._entries.get(mk)
        if entry is not None and entry.record.is_expired(self._clock()):
            self._remove(mk)
            return None
        return entry

    def _put(self, mk: MemoryKey, record: Record) -> None:
        size = record.size + len(mk.key) + len(mk.tenant) + len(mk.namespace) + _ENTRY_OVERHEAD
        self._remove(mk)  # even when the new record is refused, the old one must not stay cached
        if size > self.max_bytes:
            raise ValueTooLargeError(
                f"record of {size} bytes exceeds the hot tier's max_bytes={self.max_bytes}",
                size=size,
                limit=self.max_bytes,
                tier=Tier.HOT,
                operation="set",
                key=mk.key,
            )
        self._remove(mk)
        # Make room first, so the entry being admitted is never its own victim (LFU: it has freq 1).
        while self._entries and (len(self._entries) >= self.max_items or self._bytes + size > self.max_bytes):
            self._remove(self._victim())
            self.evictions += 1
        self._entries[mk] = _HotEntry(record, size)
        self._bytes += size
        if self.eviction is EvictionPolicy.LFU:
            self._freq.setdefault(1, OrderedDict())[mk] = None
            self._min_freq = 1
        else:
            self._order[mk] = None

    # -- TierStore -----------------------------------------------------------------------------

    async def get(self, key: MemoryKey) -> Record | None:
        self._ensure_open("get")
        entry = self._live(key)
        if entry is None:
            return None
        self._touch(key, entry)
        return entry.record

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        self._ensure_open("set")
        if if_match is not None:
            raise TierError("the hot tier has no ETags; if_match applies to the durable tier", tier=Tier.HOT)
        if if_absent and self._live(key) is not None:
            raise ConflictError("key already exists", tier=Tier.HOT, operation="set", key=key.key)
        self._put(key, record)
        return None

    async def delete(self, key: MemoryKey) -> None:
        self._ensure_open("delete")
        self._remove(key)

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        self._ensure_open("mdelete")
        for mk in keys:
            self._remove(mk)

    async def exists(self, key: MemoryKey) -> bool:
        self._ensure_open("exists")
        return self._live(key) is not None

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        self._ensure_open("mget")
        out: list[Record | None] = []
        for mk in keys:
            entry = self._live(mk)
            if entry is not None:
                self._touch(mk, entry)
                out.append(entry.record)
            else:
                out.append(None)
        return out

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        self._ensure_open("mset")
        written: list[str] = []
        failed: dict[str, BaseException] = {}
        for mk, record in items:
            if if_absent and self._live(mk) is not None:
                continue
            try:
                self._put(mk, record)
                written.append(mk.key)
            except ValueTooLargeError as exc:
                failed[mk.key] = exc
        if failed:
            raise BatchWriteError("hot mset failed", written=written, failed=failed, tier=Tier.HOT)

    async def _close(self) -> None:
        self._entries.clear()
        self._order.clear()
        self._freq.clear()
        self._bytes = 0


# ---------------------------------------------------------------------------------------------
# SQLite warm tier

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


# ---------------------------------------------------------------------------------------------
# File cold tier

_ETAG_BYTES: Final = 8


class FileColdMemory(AsyncResource):
    """Cold tier as one file per key under ``root``: atomic writes (temp file, fsync, rename, fsync dir).

    Key names are encoded so they can never escape ``root`` (no separators, no dot segments) and
    stay distinct on case-insensitive file systems. Conditional writes (``if_match``/``if_absent``)
    are serialized per key within this process; use Blob for multi-process writers.

    Args:
        root: the directory that holds everything (created on first write).
        fsync: fsync files and directories on write (turn off only for throwaway data).
        max_concurrency: most file operations in flight at once.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: bool = True,
        max_concurrency: int = 8,
        clock: Clock = time.time,
    ) -> None:
        self.root = Path(root).absolute()
        self._fsync = fsync
        self._clock = clock
        self._limit = asyncio.Semaphore(max_concurrency)
        self._locks = [asyncio.Lock() for _ in range(64)]  # striped: bounded memory, per-key serialization
        self._info = TierInfo(db_system="filesystem", native_ttl=False)

    @property
    def info(self) -> TierInfo:
        return self._info

    def _path(self, mk: MemoryKey) -> Path:
        path = self.root.joinpath(*file_parts(mk))
        # Defence in depth: the encoding already rules this out.
        if os.path.commonpath([self.root, path]) != str(self.root):
            raise InvalidKeyError("key would escape the cold root", tier=Tier.COLD, key=mk.key)
        return path

    async def _io(self, operation: str, key: MemoryKey | None, fn: Callable[[], _T]) -> _T:
        self._ensure_open(operation)
        async with self._limit:
            try:
                return await asyncio.to_thread(fn)
            except OSError as exc:
                raise TierUnavailableError(
                    f"file tier: {exc.strerror or exc}",
                    tier=Tier.COLD,
                    operation=operation,
                    key=key.key if key else None,
                ) from exc

    def _read(self, path: Path) -> Record | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        # Layout: a random per-write ETag, then the record. Timestamps are too coarse to be ETags.
        return Record.from_bytes(memoryview(data)[_ETAG_BYTES:], etag=data[:_ETAG_BYTES].hex())

    def _write(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        etag = secrets.token_bytes(_ETAG_BYTES)
        try:
            with tmp.open("wb") as fh:
                fh.write(etag)
                fh.write(data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._fsync:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return etag.hex()

    async def setup(self) -> None:
        await self._io("setup", None, lambda: self.root.mkdir(parents=True, exist_ok=True))

    async def ping(self) -> None:
        def probe() -> None:
            if self.root.exists() and not os.access(self.root, os.W_OK):
                raise PermissionError(13, "cold root is not writable", str(self.root))

        await self._io("ping", None, probe)

    async def get(self, key: MemoryKey) -> Record | None:
        path = self._path(key)
        return await self._io("get", key, lambda: self._read(path))

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        path = self._path(key)
        data = record.to_bytes()
        if if_match is None and not if_absent:
            return await self._io("set", key, lambda: self._write(path, data))
        async with self._locks[hash(key) % len(self._locks)]:
            current = await self._io("set", key, lambda: self._read(path))
            live = current is not None and not current.is_expired(self._clock())
            if if_absent and live:
                raise ConflictError("key already exists", tier=Tier.COLD, operation="set", key=key.key)
            if if_match is not None and (current is None or current.etag != if_match):
                raise ConflictError("etag does not match", tier=Tier.COLD, operation="set", key=key.key)
            return await self._io("set", key, lambda: self._write(path, data))

    async def delete(self, key: MemoryKey) -> None:
        path = self._path(key)
        await self._io("delete", key, lambda: path.unlink(missing_ok=True))

    async def exists(self, key: MemoryKey) -> bool:
        path = self._path(key)
        now = self._clock()

        def probe() -> bool:
            try:
                with path.open("rb") as fh:
                    head = fh.read(_ETAG_BYTES + HEADER_SIZE)[_ETAG_BYTES:]
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return False
            return not Record.from_bytes(head).is_expired(now)

        return await self._io("exists", key, probe)

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        return list(await asyncio.gather(*(self.get(mk) for mk in keys)))

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        async def one(mk: MemoryKey, rec: Record) -> bool:
            try:
                await self.set(mk, rec, if_absent=if_absent)
            except ConflictError:
                if not if_absent:
                    raise
                return False  # skipped: a live value exists (promotion semantics)
            return True

        results = await asyncio.gather(*(one(mk, rec) for mk, rec in items), return_exceptions=True)
        failed = {
            mk.key: r for (mk, _), r in zip(items, results, strict=True) if isinstance(r, BaseException)
        }
        if failed:
            written = [mk.key for (mk, _), r in zip(items, results, strict=True) if r is True]
            raise BatchWriteError("cold mset failed", written=written, failed=failed, tier=Tier.COLD)

    def _walk(self, tenant: str, namespace: str | None) -> Iterator[tuple[tuple[str, ...], Path]]:
        base = self.root.joinpath(*file_scope_parts(tenant, namespace))
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath, name)
                yield path.relative_to(self.root).parts, path

    async def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        validate_scope(tenant, "tenant")
        if namespace is not None:
            validate_scope(namespace, "namespace")
        entries = await self._io("scan", None, lambda: [parts for parts, _ in self._walk(tenant, namespace)])
        for parts in entries:
            try:
                yield parse_file_parts(parts)
            except InvalidKeyError:
                continue  # a file tiermem did not write (e.g. an operator's README): not a key

    async def sweep(self, *, now: float | None = None) -> int:
        cutoff = self._clock() if now is None else now

        def op() -> int:
            removed = 0
            if not self.root.is_dir():
                return 0
            for tenant_dir in self.root.iterdir():
                if not tenant_dir.is_dir() or tenant_dir.name.startswith("."):
                    continue
                for dirpath, dirnames, filenames in os.walk(tenant_dir):
                    dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                    for name in filenames:
                        if name.startswith("."):
                            continue
                        path = Path(dirpath, name)
                        with path.open("rb") as fh:
                            head = fh.read(_ETAG_BYTES + HEADER_SIZE)[_ETAG_BYTES:]
                        try:
                            expired = Record.from_bytes(head).is_expired(cutoff)
                        except CorruptValueError:
                            continue  # not ours or damaged: leave it for an operator, never delete blindly
                        if expired:
                            path.unlink(missing_ok=True)
                            removed += 1
            return removed

        return await self._io("sweep", None, op)
