"""Seals on hot records kept in a shared store (Redis): a MAC that binds each record to its key (ADR 0015).

A sealed record is the envelope of :mod:`tiermem._codec` with :data:`~tiermem._codec.FLAG_SEALED` set,
followed by a 16-byte BLAKE2b tag over the record's full name (prefix, tenant, namespace and key as
the tier encodes them) and every byte of the envelope: kind, flags, expiry, CRC, epoch and payload.
With a key (``TIERMEM_HOT_MAC_KEY``) the tag is a keyed MAC: whoever can write Redis but does not hold
the key cannot forge, move or edit a record. Without one the same tag is an unkeyed hash: a record
copied to another key (another tenant) or with its expiry or epoch edited fails it, but anyone can
compute it for a record of their own making.

Sealing is deterministic (same name, record and key: same bytes), which the compare-and-swap of
leases relies on. Records of earlier versions (no seal) read as damaged: they were cache copies.
In-process hot tiers keep ``Record`` objects in the process and are never sealed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

from pydantic import SecretStr

from tiermem._codec import FLAG_SEALED, FLAGS_OFFSET, MIN_HEADER_SIZE, Record
from tiermem._errors import ConfigurationError, CorruptValueError
from tiermem.secrets import SecretSource

__all__ = ["MIN_KEY_BYTES", "TAG_BYTES", "HotSeal", "SealKeys"]

TAG_BYTES: Final = 16
MIN_KEY_BYTES: Final = 16
"""The shortest MAC key accepted (UTF-8 bytes); 32 random bytes, base64, is what the docs suggest."""
_PERSON: Final = b"tiermem-hot-v1"  # domain separation: these tags mean nothing anywhere else
_DERIVE: Final = b"tiermem-mac-key"
_NO_SEAL: Final = "hot record carries no seal (written by an earlier version, or planted)"
_BAD_SEAL: Final = "hot record fails its seal: moved from another key, edited, or sealed with another MAC key"


def _derive(secret: SecretStr, name: str) -> bytes:
    """A 32-byte BLAKE2b key from a configured secret of any length (at least MIN_KEY_BYTES)."""
    raw = secret.get_secret_value().encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigurationError(f"{name} must be at least {MIN_KEY_BYTES} bytes (use 32 random bytes)")
    return hashlib.blake2b(raw, digest_size=32, person=_DERIVE).digest()


class HotSeal:
    """Seals and opens hot records for one set of keys: the first key signs, every key verifies.

    Args:
        keys: derived MAC keys, current first; empty for the unkeyed binding.
    """

    __slots__ = ("_macs", "keyed")

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self.keyed = bool(keys)
        # One keyed state per key, copied per record: cheaper than keying BLAKE2b again each time.
        self._macs = tuple(
            hashlib.blake2b(key=key, digest_size=TAG_BYTES, person=_PERSON) for key in keys or (b"",)
        )  # b"": BLAKE2b without a key

    @classmethod
    def from_secrets(cls, current: SecretStr | None, previous: Sequence[SecretStr] = ()) -> HotSeal:
        """A seal for configured secrets (``None`` and no previous keys: the unkeyed binding).

        Raises:
            ConfigurationError: a key is shorter than :data:`MIN_KEY_BYTES`, or previous keys
                are given without a current one.
        """
        if current is None:
            if previous:
                raise ConfigurationError("previous hot MAC keys need a current one (mac_key=)")
            return cls()
        keys = [_derive(current, "the hot MAC key")]
        keys += [_derive(old, "a previous hot MAC key") for old in previous]
        return cls(keys)

    def seal(self, name: bytes, record: Record) -> bytes:
        """The stored form of ``record`` under ``name``: envelope (sealed flag set), payload, tag."""
        head = record.header(FLAG_SEALED)
        payload = record.payload
        return b"".join((head, payload, _tag(self._macs[0], name, head, payload)))

    def open(self, name: bytes, data: bytes | memoryview) -> Record:
        """The record stored under ``name``, if its seal holds for any accepted key.

        Raises:
            CorruptValueError: no seal (an earlier version's record, or a planted one), a seal that
                does not match (another key's record, edited bytes, another MAC key), or a bad header.
        """
        return Record.from_bytes(self._body(name, data))

    def envelopes(
        self, names: Sequence[bytes], values: Sequence[bytes | None]
    ) -> list[bytes | CorruptValueError | None]:
        """:meth:`open` without parsing, for every value of a batch read (``values[i]`` stored under
        ``names[i]``, ``None`` for a miss): a value whose seal does not hold is its error in place, not
        raised, so it costs only its own key; the others are the envelopes under their seals (tag
        stripped, header not checked: batch reads decode from its fields). One loop with the MAC
        inlined: it runs for every key of an MGET."""
        out: list[bytes | CorruptValueError | None] = []
        append = out.append
        first, *others = self._macs
        least = MIN_HEADER_SIZE + TAG_BYTES
        for name, data in zip(names, values, strict=True):
            if data is None:
                append(None)
                continue
            if len(data) < least or not data[FLAGS_OFFSET] & FLAG_SEALED:
                append(CorruptValueError(_NO_SEAL))
                continue
            body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
            head = len(name).to_bytes(4, "big") + name
            mac = first.copy()
            mac.update(head)
            mac.update(body)
            if hmac.compare_digest(mac.digest(), tag) or any(
                hmac.compare_digest(_tag(other, name, body), tag) for other in others
            ):
                append(body)
            else:
                append(CorruptValueError(_BAD_SEAL))
        return out

    def _body(self, name: bytes, data: bytes | memoryview) -> memoryview:
        if len(data) < MIN_HEADER_SIZE + TAG_BYTES or not data[FLAGS_OFFSET] & FLAG_SEALED:
            raise CorruptValueError(_NO_SEAL)
        view = memoryview(data)
        body, tag = view[:-TAG_BYTES], view[-TAG_BYTES:]
        for mac in self._macs:
            if hmac.compare_digest(_tag(mac, name, body), tag):
                return body
        raise CorruptValueError(_BAD_SEAL)


def _tag(base: hashlib.blake2b, name: bytes, *parts: bytes | memoryview) -> bytes:
    mac = base.copy()
    mac.update(len(name).to_bytes(4, "big") + name)  # length first: name and body cannot run together
    for part in parts:
        mac.update(part)
    return mac.digest()


class SealKeys:
    """Where a Redis hot tier's seal comes from: fixed secrets, or a secret source (Key Vault) that
    may rotate. On rotation the value it replaced stays accepted for reads, so records sealed just
    before are not all misses at once.

    Args:
        current: the signing key: a ``SecretStr`` (or ``str``), a :class:`~tiermem.secrets.SecretSource`,
            or ``None`` for the unkeyed binding.
        previous: earlier keys still accepted when verifying (rotation).
    """

    __slots__ = ("_fixed", "_lock", "_previous", "_seal", "_seen", "_source")

    def __init__(
        self, current: SecretStr | str | SecretSource | None, previous: Sequence[SecretStr | str] = ()
    ) -> None:
        old = [SecretStr(p) if isinstance(p, str) else p for p in previous]
        if any(not isinstance(p, SecretStr) for p in old):
            raise ConfigurationError("mac_previous_keys must be str or pydantic.SecretStr values")
        self._previous = old
        self._source: SecretSource | None = None
        self._fixed: HotSeal | None = None
        self._seen: SecretStr | None = None
        self._seal: HotSeal | None = None
        self._lock = asyncio.Lock()
        if current is None or isinstance(current, str | SecretStr):
            self._fixed = HotSeal.from_secrets(
                SecretStr(current) if isinstance(current, str) else current, old
            )
        elif isinstance(current, SecretSource):
            self._source = current
        else:
            raise ConfigurationError(
                "mac_key must be a str, a pydantic.SecretStr or a tiermem.secrets.SecretSource"
            )

    @property
    def keyed(self) -> bool:
        """Whether records are sealed with a MAC key (a secret source always holds one)."""
        return self._fixed is None or self._fixed.keyed

    @property
    def fixed(self) -> HotSeal | None:
        """The seal when it never changes (no secret source): use it without awaiting."""
        return self._fixed

    async def current(self) -> HotSeal:
        """The seal to use now (asks the secret source, which caches and refreshes its value)."""
        if self._fixed is not None:
            return self._fixed
        assert self._source is not None
        value = await self._source.get_secret()
        async with self._lock:
            seen = self._seen
            if self._seal is None or seen is None or seen.get_secret_value() != value.get_secret_value():
                older = [seen] if seen is not None else []
                self._seal = HotSeal.from_secrets(value, [*older, *self._previous])
                self._seen = value
            return self._seal
