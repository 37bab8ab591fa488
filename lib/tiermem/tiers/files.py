"""File cold tier: one file per key, atomic writes, names that cannot escape the root."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from tiermem._codec import HEADER_SIZE, Record
from tiermem._errors import (
    BatchWriteError,
    ConflictError,
    CorruptValueError,
    InvalidKeyError,
    TierUnavailableError,
)
from tiermem._keys import file_parts, file_scope_parts, parse_file_parts, validate_scope
from tiermem._lifecycle import AsyncResource
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem._types import Clock

if TYPE_CHECKING:
    from tiermem.tiers.cold_collections import ColdCollectionStore
    from tiermem.tiers.embedded_lifecycle import FileScopeStore

__all__ = ["FileColdMemory"]

_T = TypeVar("_T")


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
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0011)."""
        from tiermem.tiers.embedded_lifecycle import FileScopeStore

        return FileScopeStore(self)
