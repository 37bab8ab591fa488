"""The versioned value envelope, JSON serialization (orjson) and gzip.

A stored record is a binary header followed by the payload. Version 1 (17 bytes)::

    magic "TM" | version u8 | kind u8 | flags u8 | expires_at f64 (0 = never) | crc32 u32 | payload

Version 2 (29 bytes) appends ``epoch u32 | write id 8 bytes`` before the payload: the hot epoch a hot
record was filled under and the id of the write that stored a durable record (ADR 0006). A record
with neither is written as version 1, so records without them keep their bytes.

The payload is orjson for JSON values, UTF-8 for ``str`` and the raw bytes for ``bytes``;
flag bit 0 means the payload is a complete gzip stream. A binary header (not a JSON wrapper)
avoids base64-ing bytes and double-encoding JSON, and gzip
carries its own CRC of the original bytes, so corruption raises instead of returning garbage. The CRC32
covers kind, flags and payload (not expiry, which promotions rewrite). Flag bit 1 marks a hot record
whose seal (a MAC over its Redis key and every envelope byte, :mod:`tiermem._seal`, ADR 0015) follows
the payload; the CRC does not cover it. Nothing is ever deserialized with pickle.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from tiermem._errors import CorruptValueError, InvalidValueError, ValueTooLargeError
from tiermem._types import Value

if TYPE_CHECKING:
    from tiermem._types import MemoryKey, Tier

__all__ = ["Codec", "CorruptBatchError", "Record", "RecordKind", "Value", "declared_size", "read_header"]

_MAGIC: Final = b"TM"
_VERSION: Final = 1
_VERSION_2: Final = 2
_HEADER: Final = struct.Struct(">2sBBBdI")
_HEADER_2: Final = struct.Struct(">2sBBBdII8s")
MIN_HEADER_SIZE: Final = _HEADER.size
HEADER_SIZE: Final = _HEADER_2.size
"""The longest header: read this many bytes to learn a stored record's expiry."""
WRITE_ID_BYTES: Final = 8
_NO_WID: Final = bytes(WRITE_ID_BYTES)
_FLAG_GZIP: Final = 0x01
FLAG_SEALED: Final = 0x02
"""Header flag of a hot record whose seal (a MAC, ADR 0015) follows the payload; outside the CRC."""
FLAGS_OFFSET: Final = 4
"""Byte offset of the flags in every envelope version."""
_GZIP_TRAILER: Final = 8  # CRC32 + ISIZE (uncompressed length mod 2**32, little-endian)
_GZIP_WBITS: Final = 31  # zlib container = gzip (header + CRC32 + size trailer)


class RecordKind(enum.IntEnum):
    """What the payload holds."""

    JSON = 1
    STR = 2
    BYTES = 3
    POINTER = 4  # warm item that points at a large value stored in the cold tier
    TOMBSTONE = 5  # hot marker for a cached miss: a definitive miss
    FENCE = 6  # legacy hot marker of an invalidation (before ADR 0006): read through
    LEASE = 7  # hot marker a reader takes before filling (ADR 0006): read through, fill only under it


_VALUE_KINDS: Final = frozenset({RecordKind.JSON, RecordKind.STR, RecordKind.BYTES})
_KINDS: Final = {kind.value: kind for kind in RecordKind}  # a dict lookup is ~10x cheaper than RecordKind(n)
_SAMPLE_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """One stored value as the tiers see it: opaque payload plus the metadata tiers need.

    Attributes:
        kind: what the payload holds.
        payload: the stored bytes (a gzip stream when ``compressed``).
        compressed: whether ``payload`` is gzip.
        expires_at: absolute expiry (Unix seconds) or ``None``.
        checksum: CRC32 of kind, compression flag and ``payload``.
        etag: the tier's version tag when read back (Cosmos/Blob/SQLite), else ``None``.
        epoch: the hot epoch a hot record was filled under (ADR 0006); 0 elsewhere.
        wid: the id of the write that stored this record (ADR 0006), or empty.
    """

    kind: RecordKind
    payload: bytes
    compressed: bool
    expires_at: float | None
    checksum: int
    etag: str | None = None
    epoch: int = 0
    wid: bytes = b""

    def to_bytes(self) -> bytes:
        """Header + payload, for tiers that store one opaque byte string."""
        return self.header() + self.payload

    def header(self, extra_flags: int = 0) -> bytes:
        """The envelope header alone; ``extra_flags`` sets flag bits the CRC does not cover
        (:data:`FLAG_SEALED`: a seal follows the payload, ADR 0015)."""
        flags = (_FLAG_GZIP if self.compressed else 0) | extra_flags
        expiry = self.expires_at if self.expires_at is not None else 0.0
        if self.epoch or self.wid:
            wid = self.wid or _NO_WID
            return _HEADER_2.pack(
                _MAGIC, _VERSION_2, self.kind, flags, expiry, self.checksum, self.epoch, wid
            )
        return _HEADER.pack(_MAGIC, _VERSION, self.kind, flags, expiry, self.checksum)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, etag: str | None = None) -> Record:
        """Parse a stored byte string; raise :class:`CorruptValueError` if the header is not ours."""
        if len(data) < MIN_HEADER_SIZE:
            raise CorruptValueError(f"stored value is {len(data)} bytes, shorter than the envelope header")
        magic, version, kind, flags, expiry, crc = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise CorruptValueError("stored value does not start with the tiermem envelope magic")
        epoch, wid, start = 0, b"", MIN_HEADER_SIZE
        if version == _VERSION_2:
            if len(data) < HEADER_SIZE:
                raise CorruptValueError(f"stored value is {len(data)} bytes, shorter than its header")
            epoch, raw_wid = _HEADER_2.unpack_from(data)[6:]
            wid = b"" if raw_wid == _NO_WID else bytes(raw_wid)
            start = HEADER_SIZE
        elif version != _VERSION:
            raise CorruptValueError(f"unsupported envelope version {version}")
        record_kind = _KINDS.get(kind)
        if record_kind is None:
            raise CorruptValueError(f"unknown record kind {kind}")
        return cls(
            kind=record_kind,
            payload=bytes(data[start:]),
            compressed=bool(flags & _FLAG_GZIP),
            expires_at=expiry if expiry else None,
            checksum=crc,
            etag=etag,
            epoch=epoch,
            wid=wid,
        )

    @property
    def size(self) -> int:
        """Stored size in bytes, header included."""
        return (HEADER_SIZE if self.epoch or self.wid else MIN_HEADER_SIZE) + len(self.payload)

    @property
    def decoded_size(self) -> int:
        """Payload bytes once inflated, known without inflating: the gzip trailer's ISIZE for a
        compressed payload (a claim until inflating checks it), else the payload's length."""
        return declared_size(self.payload) if self.compressed else len(self.payload)

    @property
    def largest_size(self) -> int:
        """The larger of the stored and the decoded size: what a size limit on a cached value checks."""
        return max(self.size, self.decoded_size)

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    # The copies below call the constructor directly: dataclasses.replace costs ~3x as much, and
    # batches copy every record (hot fills, hot-only writes).

    def with_expiry(self, expires_at: float | None) -> Record:
        """The same record with another expiry (the header is not part of the checksum)."""
        return Record(
            self.kind, self.payload, self.compressed, expires_at, self.checksum, None, self.epoch, self.wid
        )

    def with_write_id(self, wid: bytes) -> Record:
        """The same record carrying the id of the write that stores it (ADR 0006)."""
        return Record(
            self.kind, self.payload, self.compressed, self.expires_at, self.checksum, None, self.epoch, wid
        )

    def for_hot(self, expires_at: float | None, epoch: int) -> Record:
        """The record as a hot copy: its own expiry, the epoch it was filled under, no write id."""
        # The constructor, not dataclasses.replace (3x slower): this runs on every hot write and fill.
        # A field added to Record must be carried here too (or deliberately dropped, like wid).
        return Record(self.kind, self.payload, self.compressed, expires_at, self.checksum, None, epoch)


_SEEDS: Final[dict[tuple[int, bool], int]] = {
    (kind, compressed): zlib.crc32(bytes((kind, _FLAG_GZIP if compressed else 0)))
    for kind in RecordKind
    for compressed in (False, True)
}
"""The CRC32 of each (kind, flag) prefix, so a checksum is one pass over the payload (keyed by
``(kind, compressed)``; an ``int`` kind and ``bool`` flag from a header look up the same entries)."""
_JSON: Final = int(RecordKind.JSON)
_JSON_SEED: Final = _SEEDS[RecordKind.JSON, False]


def read_header(data: bytes) -> tuple[int, int, float, int, int, int] | None:
    """``(kind, flags, expires_at, checksum, epoch, payload offset)`` of an envelope (``expires_at``
    0 = never), or ``None`` when it is not one (parse it with :meth:`Record.from_bytes` for the
    error). One unpack, no objects: batch reads of hot copies classify and decode on these fields
    (issue 17). The kind is not checked here."""
    if len(data) >= HEADER_SIZE and data[2] == _VERSION_2:
        magic, _, kind, flags, expiry, crc, epoch, _ = _HEADER_2.unpack_from(data)
        start = HEADER_SIZE
    elif len(data) >= MIN_HEADER_SIZE and data[2] == _VERSION:
        magic, _, kind, flags, expiry, crc = _HEADER.unpack_from(data)
        epoch, start = 0, MIN_HEADER_SIZE
    else:
        return None
    if magic != _MAGIC:
        return None
    return kind, flags, expiry, crc, epoch, start


class CorruptBatchError(CorruptValueError):
    """Some records of a batch read are damaged (the message and key hash name the first one).

    Attributes:
        readable: every other key's record (or ``None``), so one bad record does not fail the
            other keys' reads; the keys missing from it are the damaged ones.
    """

    def __init__(
        self,
        message: str,
        *,
        readable: Mapping[MemoryKey, Record | None],
        tier: Tier | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, tier=tier, operation=operation, key=key)
        self.readable = readable


def declared_size(gzipped: bytes) -> int:
    """The decoded size a gzip payload declares (its trailer's ISIZE; 0 when too short to hold
    one): a claim until inflating checks it, known without inflating."""
    if len(gzipped) < _GZIP_TRAILER:
        return 0
    return int.from_bytes(gzipped[-4:], "little")


def checksum(kind: RecordKind, compressed: bool, payload: bytes) -> int:
    """CRC32 over kind, compression flag and payload (expiry is left out: promotions rewrite it)."""
    return zlib.crc32(payload, _SEEDS[kind, compressed])


def make_record(
    kind: RecordKind,
    payload: bytes,
    *,
    compressed: bool = False,
    expires_at: float | None = None,
    epoch: int = 0,
) -> Record:
    """Build a record, computing its checksum."""
    return Record(kind, payload, compressed, expires_at, checksum(kind, compressed, payload), None, epoch)


def fence(expires_at: float) -> Record:
    """The hot-tier marker an invalidation leaves: readers go to the durable tier, and a promotion of a
    value read before the write (``SET NX``) cannot fill the hole a plain delete would leave."""
    return make_record(RecordKind.FENCE, b"", expires_at=expires_at)


def tombstone(expires_at: float) -> Record:
    """The hot-tier marker for a cached miss (negative caching): a definitive miss."""
    return make_record(RecordKind.TOMBSTONE, b"", expires_at=expires_at)


def lease(expires_at: float, token: bytes) -> Record:
    """The hot-tier marker a reader takes on a miss: only its holder may replace it with a value."""
    return make_record(RecordKind.LEASE, token, expires_at=expires_at)


def _reject(obj: Any) -> Any:
    raise TypeError(f"type {type(obj).__name__} is not JSON-compatible")


_DUMPS_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _has_non_finite(obj: Any) -> bool:
    # orjson writes NaN/Infinity as null, silently changing the value; only walk when a null appeared.
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class Codec:
    """Turns values into records and back: orjson, UTF-8 or raw bytes, gzip above a threshold.

    Args:
        compress_min_bytes: compress payloads at least this large (default 4 KiB).
        compress_level: gzip level; 1 is chosen from measurements (see docs/adr/0002).
        min_saving: keep the compressed form only if it saves at least this fraction (default 10%).
        max_value_bytes: reject decoded values larger than this (guards against gzip bombs too).
    """

    __slots__ = ("compress_level", "compress_min_bytes", "max_value_bytes", "min_saving")

    def __init__(
        self,
        *,
        compress_min_bytes: int = 4096,
        compress_level: int = 1,
        min_saving: float = 0.10,
        max_value_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if compress_min_bytes < 0:
            raise ValueError("compress_min_bytes must be >= 0")
        if not 0 <= compress_level <= 9:
            raise ValueError("compress_level must be between 0 and 9")
        if not 0.0 <= min_saving < 1.0:
            raise ValueError("min_saving must be in [0, 1)")
        self.compress_min_bytes = compress_min_bytes
        self.compress_level = compress_level
        self.min_saving = min_saving
        self.max_value_bytes = max_value_bytes

    def serialize(self, value: Value) -> tuple[RecordKind, bytes]:
        """Serialize without compressing; raise :class:`InvalidValueError` for what cannot round-trip."""
        if isinstance(value, bytes | bytearray | memoryview):
            return RecordKind.BYTES, bytes(value)
        if isinstance(value, str):
            try:
                return RecordKind.STR, value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidValueError("string value is not valid Unicode (lone surrogate)") from exc
        try:
            payload = orjson.dumps(value, default=_reject, option=_DUMPS_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InvalidValueError(f"value is not JSON-compatible: {exc}") from exc
        if b"null" in payload and _has_non_finite(value):
            raise InvalidValueError("value contains NaN or Infinity, which JSON cannot represent")
        return RecordKind.JSON, payload

    def encode(self, value: Value, *, expires_at: float | None = None, epoch: int = 0) -> tuple[Record, int]:
        """Encode ``value`` into a record (stamped with a hot ``epoch`` when given, ADR 0006);
        return it with the uncompressed payload size."""
        kind, payload = self.serialize(value)
        raw_size = len(payload)
        if raw_size > self.max_value_bytes:
            raise ValueTooLargeError(
                f"value is {raw_size} bytes, above max_value_bytes={self.max_value_bytes}",
                size=raw_size,
                limit=self.max_value_bytes,
            )
        compressed = False
        if raw_size >= self.compress_min_bytes and raw_size > 0 and self._worth_trying(payload):
            packed = zlib.compress(payload, self.compress_level, wbits=_GZIP_WBITS)
            if len(packed) <= raw_size * (1.0 - self.min_saving):
                payload, compressed = packed, True
        if kind is RecordKind.JSON and not compressed:
            # orjson's bytes keep the buffer they were written into (~1-4 KiB for a 300 B value):
            # an exact-size copy, so a cached record costs its size, not orjson's buffer.
            payload = bytes(memoryview(payload))
        return make_record(kind, payload, compressed=compressed, expires_at=expires_at, epoch=epoch), raw_size

    def _worth_trying(self, payload: bytes) -> bool:
        """For large payloads, compress a 64 KiB sample first: incompressible data (media, archives,
        encrypted blobs) then costs ~1 ms instead of a full gzip pass that is thrown away."""
        if len(payload) <= 2 * _SAMPLE_BYTES:
            return True
        sample = zlib.compress(payload[:_SAMPLE_BYTES], self.compress_level)
        return len(sample) <= _SAMPLE_BYTES * (1.0 - self.min_saving)

    def raw_payload(self, record: Record, *, limit: int | None = None) -> bytes:
        """Verify the checksum and return the uncompressed payload.

        Args:
            limit: refuse to inflate past this many bytes (default ``max_value_bytes``); hot reads
                pass ``hot_max_bytes``, so a planted gzip bomb costs at most that much memory.
        """
        return self._unpacked(record.kind, record.compressed, record.checksum, record.payload, limit)

    def _unpacked(self, kind: int, compressed: bool, crc: int, payload: bytes, limit: int | None) -> bytes:
        if zlib.crc32(payload, _SEEDS[kind, compressed]) != crc:
            raise CorruptValueError("stored value failed its CRC32 check")
        if not compressed:
            return payload
        most = self.max_value_bytes if limit is None else limit
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            data = inflater.decompress(payload, most + 1)
        except zlib.error as exc:
            raise CorruptValueError(f"stored gzip stream is corrupt: {exc}") from exc
        if len(data) > most or inflater.unconsumed_tail:
            name = "max_value_bytes" if limit is None else "its limit"
            raise CorruptValueError(f"stored gzip stream inflates beyond {name} ({most} bytes)")
        if not inflater.eof or inflater.unused_data:
            raise CorruptValueError("stored gzip stream is truncated or has trailing data")
        return data

    def decode(self, record: Record, *, limit: int | None = None) -> Value:
        """Turn a value record back into the value; raise :class:`CorruptValueError` on any damage
        (``limit``: as in :meth:`raw_payload`)."""
        return self.value(record.kind, record.compressed, record.checksum, record.payload, limit=limit)

    def value(
        self, kind: int, compressed: bool, crc: int, payload: bytes, *, limit: int | None = None
    ) -> Value:
        """:meth:`decode` on a record's fields, for batch reads that never build the record."""
        if kind == _JSON and not compressed:  # the common case, in one step
            if zlib.crc32(payload, _JSON_SEED) != crc:
                raise CorruptValueError("stored value failed its CRC32 check")
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise CorruptValueError(f"stored JSON does not parse: {exc}") from exc
        if kind not in _VALUE_KINDS:
            name = _KINDS[kind].name if kind in _KINDS else str(kind)
            raise CorruptValueError(f"record of kind {name} holds no value")
        data = self._unpacked(kind, compressed, crc, payload, limit)
        if kind == RecordKind.JSON:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise CorruptValueError(f"stored JSON does not parse: {exc}") from exc
        if kind == RecordKind.BYTES:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptValueError("stored string is not valid UTF-8") from exc
