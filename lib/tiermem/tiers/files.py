"""File cold tier: one file per key, atomic writes, shared directory fsyncs, cross-process key locks."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from tiermem._codec import HEADER_SIZE, Record
from tiermem._errors import (
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidKeyError,
    TierUnavailableError,
)
from tiermem._keys import check_file_path, file_parts, file_scope_parts, parse_file_parts, validate_scope
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers._base import Clock, TierAdapter
from tiermem.tiers._file_sync import DirectoryLocks, DirectorySync

if TYPE_CHECKING:
    from tiermem.tiers.cold_collections import ColdCollectionStore
    from tiermem.tiers.embedded_lifecycle import FileScopeStore

__all__ = ["FileColdMemory"]

_T = TypeVar("_T")


_ETAG_BYTES: Final = 8


class FileColdMemory(TierAdapter):
    """Cold tier as one file per key under ``root``: atomic writes (temp file, fsync, rename, fsync dir).

    Key names are encoded so they can never escape ``root`` (no separators, no dot segments) and
    stay distinct on case-insensitive file systems. Concurrent writers share directory fsyncs (each
    still returns only after its file and its directory entry are durable), and conditional writes
    (``if_match``/``if_absent``) hold an ``flock`` on the key's directory around their check and
    rename, so they are correct across processes sharing ``root`` (ADR 0009).

    Args:
        root: the directory that holds everything (created on first write).
        fsync: fsync files and directories on write (turn off only for throwaway data).
        max_concurrency: most file operations in flight at once (threads of this tier's own pool:
            they mostly wait for the disk, so more of them than CPUs pays off).
    """

    tier = Tier.COLD
    failures = (OSError,)

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: bool = True,
        max_concurrency: int = 16,
        clock: Clock = time.time,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, not {max_concurrency}")
        self.root = Path(root).absolute()
        self._fsync = fsync
        self._clock = clock
        self._max_concurrency = max_concurrency
        self._executor: ThreadPoolExecutor | None = None  # made at first use: no threads before I/O
        self._dirs = DirectorySync()
        self._locks = DirectoryLocks()
        self._info = TierInfo(db_system="filesystem", native_ttl=False)

    @property
    def info(self) -> TierInfo:
        return self._info

    def _path(self, mk: MemoryKey) -> Path:
        parts = file_parts(mk)
        check_file_path(self.root, parts, mk.key)
        path = self.root.joinpath(*parts)
        # Defence in depth: the encoding already rules this out.
        if os.path.commonpath([self.root, path]) != str(self.root):
            raise InvalidKeyError("key would escape the cold root", tier=Tier.COLD, key=mk.key)
        return path

    def _translate(  # every OSError: the disk or the directory failed us
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierUnavailableError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return TierUnavailableError(
            f"file tier: {reason}", tier=Tier.COLD, operation=operation, key=key.key if key else None
        )

    async def _io(self, operation: str, key: MemoryKey | None, fn: Callable[[], _T]) -> _T:
        self._ensure_open(operation)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="tiermem-files")
        executor = self._executor
        return await self._sdk(
            operation, key, lambda: asyncio.get_running_loop().run_in_executor(executor, fn)
        )

    def _read(self, path: Path) -> Record | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        # Layout: a random per-write ETag, then the record. Timestamps are too coarse to be ETags.
        return Record.from_bytes(memoryview(data)[_ETAG_BYTES:], etag=data[:_ETAG_BYTES].hex())

    def _sync_dir(self, directory: Path) -> None:
        if self._fsync:
            self._dirs.sync(str(directory))

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, each new entry durable before use."""
        if directory.is_dir():
            return
        missing: list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            # Synced even when another writer made it first: its sync may not have finished yet.
            self._sync_dir(created.parent)

    def _write(self, path: Path, data: bytes, check: Callable[[Record | None], None] | None = None) -> str:
        """Write ``path`` atomically; ``check`` sees the current record under the exclusive key lock."""
        self._make_dirs(path.parent)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        etag = secrets.token_bytes(_ETAG_BYTES)
        try:
            with tmp.open("wb") as fh:
                fh.write(etag)
                fh.write(data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            # The lock covers only the check and the rename: the data is already on disk.
            with self._locks.hold(path.parent, exclusive=check is not None):
                if check is not None:
                    check(self._read(path))
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_dir(path.parent)
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
        now = self._clock()

        def check(current: Record | None) -> None:
            if if_absent and current is not None and not current.is_expired(now):
                raise ConflictError("key already exists", tier=Tier.COLD, operation="set", key=key.key)
            if if_match is not None and (current is None or current.etag != if_match):
                raise ConflictError("etag does not match", tier=Tier.COLD, operation="set", key=key.key)

        return await self._io("set", key, lambda: self._write(path, data, check))

    async def delete(self, key: MemoryKey) -> None:
        path = self._path(key)

        def op() -> None:
            try:
                with self._locks.hold(path.parent, exclusive=False):
                    path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return  # never written (or its directory never made): deleting is idempotent
            self._sync_dir(path.parent)

        await self._io("delete", key, op)

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
        self._ensure_open("mset")

        async def write(mk: MemoryKey, record: Record) -> None:
            await self.set(mk, record, if_absent=if_absent)

        await self._write_each(
            items, write, if_absent=if_absent, concurrency=self._max_concurrency, what="cold"
        )

    @staticmethod
    def _files_under(base: Path) -> Iterator[Path]:
        """Every file below ``base`` except dot-names (temp files, lock-free leftovers, hidden dirs).

        Key files never start with a dot: the key encoding escapes a leading dot.
        """
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("."):
                    yield Path(dirpath, name)

    def _walk(self, tenant: str, namespace: str | None) -> Iterator[tuple[tuple[str, ...], Path]]:
        base = self.root.joinpath(*file_scope_parts(tenant, namespace))
        if not base.is_dir():
            return
        for path in self._files_under(base):
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

    def _unlink_if_expired(self, path: Path, cutoff: float) -> bool:
        """Unlink ``path`` if it is still expired: a writer may have replaced it since the scan."""
        with self._locks.hold(path.parent, exclusive=True):
            try:
                with path.open("rb") as fh:
                    head = fh.read(_ETAG_BYTES + HEADER_SIZE)[_ETAG_BYTES:]
            except FileNotFoundError:
                return False
            try:
                if not Record.from_bytes(head).is_expired(cutoff):
                    return False
            except CorruptValueError:
                return False  # replaced by something that is not a record: never delete blindly
            path.unlink()
            return True

    async def sweep(self, *, now: float | None = None) -> int:
        cutoff = self._clock() if now is None else now

        def op() -> int:
            removed = 0
            touched: set[str] = set()
            if not self.root.is_dir():
                return 0
            for tenant_dir in self.root.iterdir():
                if not tenant_dir.is_dir() or tenant_dir.name.startswith("."):
                    continue
                for path in self._files_under(tenant_dir):
                    try:
                        with path.open("rb") as fh:
                            head = fh.read(_ETAG_BYTES + HEADER_SIZE)[_ETAG_BYTES:]
                    except FileNotFoundError:
                        continue  # deleted since the directory was listed
                    try:
                        expired = Record.from_bytes(head).is_expired(cutoff)
                    except CorruptValueError:
                        continue  # not ours or damaged: leave it for an operator, never delete blindly
                    if expired and self._unlink_if_expired(path, cutoff):
                        removed += 1
                        touched.add(str(path.parent))
            for directory in touched:
                self._sync_dir(Path(directory))
            return removed

        return await self._io("sweep", None, op)

    async def _close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # Writes in flight finish (each is atomic anyway); waiting happens off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    # -- collections (tiermem._collection): items as files under a "~tenant" directory -------------

    _collections: ColdCollectionStore | None = None

    def collection_store(self) -> ColdCollectionStore:
        """Collections for a client without a warm tier (see ``tiers/cold_collections.py``)."""
        if self._collections is None:
            from tiermem.tiers.cold_collections import ColdCollectionStore

            self._collections = ColdCollectionStore(self, self._collection_keys)
        return self._collections

    async def _collection_keys(self, tenant: str, namespace: str) -> AsyncIterator[str]:
        from tiermem.tiers.cold_collections import parse_file_key

        base = self.root.joinpath(*file_scope_parts(tenant, namespace))

        def walk() -> list[tuple[str, ...]]:
            if not base.is_dir():
                return []
            found: list[tuple[str, ...]] = []
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                found += [
                    Path(dirpath, n).relative_to(base).parts for n in filenames if not n.startswith(".")
                ]
            return found

        for tail in await self._io("scan", None, walk):
            try:
                yield parse_file_key(tail)
            except (ValueError, UnicodeDecodeError):
                continue  # not a name tiermem writes

    def lifecycle_store(self) -> FileScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.embedded_lifecycle import FileScopeStore

        return FileScopeStore(self)
