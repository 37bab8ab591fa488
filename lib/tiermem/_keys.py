"""Key, tenant and namespace validation, and the per-tier key encodings.

A key is data, never a path: ``../x``, ``a/b`` and ``%2F`` are legal keys and stay inside their
tenant on every tier. Every encoding here is deterministic and reversible (tested).
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote

from tiermem._errors import InvalidKeyError, InvalidScopeError, InvalidTTLError
from tiermem._protocols import MemoryKey

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_TTL_SECONDS",
    "b64_name",
    "blob_name",
    "check_file_path",
    "cosmos_id",
    "file_parts",
    "file_scope_parts",
    "make_key",
    "parse_b64_name",
    "parse_blob_name",
    "parse_cosmos_id",
    "parse_file_parts",
    "parse_redis_key",
    "redis_key",
    "redis_names",
    "unpercent",
    "validate_key",
    "validate_scope",
    "validate_ttl",
    "validate_user_scope",
]

MAX_KEY_BYTES: Final = 512
MAX_TTL_SECONDS: Final = float(2**31)
"""About 68 years: longer TTLs overflow expiry arithmetic in the tiers (issue 13 item 6)."""
_SCOPE_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BLOB_NAME_MAX: Final = 1024
_FILE_SEGMENT_MAX: Final = 200


def validate_key(key: object) -> str:
    """Return ``key`` if it is a 1..512-byte UTF-8 string without control characters."""
    # Fast path for the common case, all in C: printable ASCII has no control characters and one
    # byte per character.
    if type(key) is str and 0 < len(key) <= MAX_KEY_BYTES and key.isascii() and key.isprintable():
        return key
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidKeyError("key is not valid Unicode (lone surrogate)") from exc
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(f"key is {size} UTF-8 bytes; the limit is {MAX_KEY_BYTES}")
    if _CONTROL_RE.search(key):
        raise InvalidKeyError("key must not contain control characters")
    return key


def validate_scope(name: object, what: str) -> str:
    """Return a tenant/namespace if it matches ``[A-Za-z0-9._-]{1,64}`` and does not end in a dot.

    A trailing dot (which includes "only dots") would end a Blob path segment, which Azure's
    naming rules forbid and normalise away (Azurite keeps it), so two scopes could share objects.
    """
    if not isinstance(name, str) or not _SCOPE_RE.fullmatch(name) or name.endswith("."):
        raise InvalidScopeError(
            f"{what} must match [A-Za-z0-9._-]{{1,64}} and not end with a dot, got {name!r:.80}"
        )
    return name


RESERVED_NAMESPACES: Final = frozenset({"sessions"})
"""Namespaces tiermem's own structures live in (``ConversationStore``'s default): never plain values."""


def validate_user_scope(name: object, what: str) -> str:
    """Like :func:`validate_scope`, and refuse the names tiermem keeps for its own structures.

    A tenant or namespace starting with ``_`` is reserved, and so is the ``sessions`` namespace:
    a plain write there could forge a session head that other structures trust (issue 13 item 5).
    Views made with :meth:`MemoryClient.scoped` and builders use this; tier stores and the name
    parsers (which read back what tiermem wrote) use :func:`validate_scope`.
    """
    scope = validate_scope(name, what)
    if scope.startswith("_") or (what == "namespace" and scope in RESERVED_NAMESPACES):
        raise InvalidScopeError(
            f"{what} {scope!r} is reserved for tiermem's own structures (names starting with '_', "
            "and the 'sessions' namespace of ConversationStore); choose another name"
        )
    return scope


def make_key(tenant: str, namespace: str, key: str) -> MemoryKey:
    """Validate all three parts and build a :class:`MemoryKey`."""
    return MemoryKey(
        validate_scope(tenant, "tenant"), validate_scope(namespace, "namespace"), validate_key(key)
    )


_VERSION_RE: Final = re.compile(r"[0-9a-f]{16}")


def _stored_key(tenant: str, namespace: str, key: str) -> MemoryKey:
    """A key read back from a cold name: a valid key, or one plus the ``\\x00<16 hex>`` version suffix
    that large values carry (ADR 0005). Anything else is not a name tiermem writes."""
    base, sep, version = key.rpartition("\x00")
    if not sep:
        return make_key(tenant, namespace, key)
    if not _VERSION_RE.fullmatch(version):
        raise InvalidKeyError("not a tiermem object name")
    make_key(tenant, namespace, base)
    return MemoryKey(tenant, namespace, key)


def validate_ttl(ttl: object) -> float | None:
    """Return the TTL in seconds (``None`` = no expiry); reject negative, zero, NaN, inf and bools."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTTLError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    try:
        seconds = float(ttl)
    except OverflowError as exc:  # an int beyond float range
        raise InvalidTTLError("ttl must be a positive, finite number of seconds") from exc
    if not seconds > 0 or seconds == float("inf"):
        raise InvalidTTLError(f"ttl must be a positive, finite number of seconds, got {ttl!r:.40}")
    if seconds > MAX_TTL_SECONDS:
        raise InvalidTTLError(f"ttl must be at most {MAX_TTL_SECONDS:.0f} seconds (2^31), got {ttl!r:.40}")
    return seconds


# --- Redis: tm:{tenant}:{namespace}:{}{key}. Tenant and namespace cannot hold ':', so this is reversible.
# The empty hash tag "{}" is the first '{' of every name (prefix, tenant and namespace cannot hold
# braces), and Redis Cluster hashes the whole name when the first tag is empty. So a key's braces
# never choose its slot (issue 13 item 10): every name spreads over all 16384 slots by its full
# text, one tenant's keys over every node. A per-tenant tag would pin each tenant to one slot, one
# node, and one shard's memory; nothing here needs keys co-located (batches go one MGET per slot).
_NO_TAG: Final = "{}"


def redis_key(mk: MemoryKey, prefix: str = "tm") -> str:
    return f"{prefix}:{mk.tenant}:{mk.namespace}:{_NO_TAG}{mk.key}"


def redis_names(keys: Sequence[MemoryKey], prefix: str = "tm") -> list[bytes]:
    """:func:`redis_key` of every key, UTF-8 encoded, as the wire carries them: one scope prefix per
    run of keys in the same tenant and namespace (a batch usually has one), no ``str`` per key for
    the Redis client to encode again."""
    names: list[bytes] = []
    tenant = namespace = ""
    head = b""
    for mk in keys:
        if mk.tenant != tenant or mk.namespace != namespace:
            tenant, namespace = mk.tenant, mk.namespace
            head = f"{prefix}:{tenant}:{namespace}:{_NO_TAG}".encode()
        names.append(head + mk.key.encode())
    return names


def parse_redis_key(raw: str, prefix: str = "tm") -> MemoryKey:
    head, sep, rest = raw.partition(":")
    tenant, _, rest = rest.partition(":")
    namespace, _, key = rest.partition(":")
    if head != prefix or not sep or not key.startswith(_NO_TAG):
        raise InvalidKeyError(f"not a tiermem Redis key for prefix {prefix!r}")
    return make_key(tenant, namespace, key[len(_NO_TAG) :])


# --- Cosmos: id == pk == "{tenant}:{namespace}:{base64url(key)}": ASCII, no / \ ? #, <= 819 chars.


def b64_name(key: str) -> str:
    """``key`` as unpadded base64url: ASCII without ``/``, for Cosmos ids and long blob names."""
    return base64.urlsafe_b64encode(key.encode("utf-8")).rstrip(b"=").decode("ascii")


_B64_RE: Final = re.compile(r"[A-Za-z0-9_-]*")


def parse_b64_name(text: str) -> str:
    """The key :func:`b64_name` encoded; ``InvalidKeyError`` for text it would not write."""
    # Strict: the decoder silently drops characters outside the alphabet, which would make
    # two different names parse to the same key.
    if not _B64_RE.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidKeyError("not a tiermem base64url name")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidKeyError("not a tiermem base64url name") from exc


def cosmos_id(mk: MemoryKey) -> str:
    """The item id, also used as the partition key value (one logical partition per key)."""
    return f"{mk.tenant}:{mk.namespace}:{b64_name(mk.key)}"


def parse_cosmos_id(item_id: str) -> MemoryKey:
    """The key an item id encodes; ``InvalidKeyError`` for ids tiermem would not write."""
    tenant, _, rest = item_id.partition(":")
    namespace, _, encoded = rest.partition(":")
    mk = make_key(tenant, namespace, parse_b64_name(encoded))
    if cosmos_id(mk) != item_id:
        raise InvalidKeyError("not a tiermem item id")
    return mk


# --- Blob: {tenant}/{namespace}/{percent-encoded key}; '~' + base64url when that would pass 1024 chars.
# Only [A-Za-z0-9_-] stay literal: '.', '/', '~' and '%' are always escaped, so no name has a '..' segment.

_DIGITS_LETTERS: Final = b"0123456789abcdefghijklmnopqrstuvwxyz"
_BLOB_SAFE: Final = frozenset(_DIGITS_LETTERS + _DIGITS_LETTERS[10:].upper() + b"-_")
_FILE_SAFE: Final = frozenset(_DIGITS_LETTERS + b"-_")


def _percent(text: str, safe: frozenset[int], hex_format: str) -> str:
    return "".join(chr(b) if b in safe else hex_format % b for b in text.encode("utf-8"))


def unpercent(text: str) -> str:
    """Undo percent-encoding strictly: a stray ``%`` is ``InvalidKeyError``, bad UTF-8 ``ValueError``."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise InvalidKeyError("malformed percent-encoding")
    return unquote(text, errors="strict")


def blob_name(mk: MemoryKey) -> str:
    if mk.tenant.endswith(".") or mk.namespace.endswith("."):  # a MemoryKey built without make_key
        raise InvalidScopeError("a blob path segment must not end with a dot", key=mk.key)
    prefix = f"{mk.tenant}/{mk.namespace}/"
    encoded = _percent(mk.key, _BLOB_SAFE, "%%%02X")
    if len(prefix) + len(encoded) > _BLOB_NAME_MAX:
        encoded = "~" + b64_name(mk.key)
    return prefix + encoded


def parse_blob_name(name: str) -> MemoryKey:
    """The key a blob name encodes; ``InvalidKeyError`` for any name tiermem would not write."""
    tenant, _, rest = name.partition("/")
    namespace, _, encoded = rest.partition("/")
    try:
        key = parse_b64_name(encoded[1:]) if encoded.startswith("~") else unpercent(encoded)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidKeyError("not a tiermem blob name") from exc
    mk = _stored_key(tenant, namespace, key)
    if blob_name(mk) != name:  # canonical form only: foreign blobs are never mistaken for keys
        raise InvalidKeyError("not a tiermem blob name")
    return mk


# --- Files: case-insensitive-safe names ([a-z0-9_-] and lower-case %xx), so 'A' and 'a' never share a
# file on macOS/Windows. Long keys become '~' + lowercase base32 split into <= 200-char directory segments;
# their leaf file ends in '~' (never a base32 character), so no long key's file is another's directory.


# Windows opens a device, not a file, for these names (any case, with or without an extension).
# Quoted names are lower case and never hold a dot, so an exact match is the only way to spell one.
_WINDOWS_DEVICE_RE: Final = re.compile(r"(?:con|prn|aux|nul|com[0-9]|lpt[0-9])")
_FILE_NAME_MAX: Final = 255
_PATH_MAX: Final = {"darwin": 1024, "win32": 260}.get(sys.platform, 4096)
_TMP_NAME_BYTES: Final = 21  # ".tmp-" + 16 hex: the temporary file a write renames into place


def _file_quote(text: str) -> str:
    quoted = _percent(text, _FILE_SAFE, "%%%02x")
    if _WINDOWS_DEVICE_RE.fullmatch(quoted):
        quoted = f"%{ord(quoted[0]):02x}{quoted[1:]}"  # "con" -> "%63on": a file on every OS
    return quoted


def check_file_path(root: str | os.PathLike[str], parts: Sequence[str], key: str) -> None:
    """Raise ``InvalidKeyError`` unless every part fits a file name and the path fits ``PATH_MAX``.

    Checked before any I/O, so a key too long for this root is bad input, never an ``OSError``
    (which the file tier would report as an outage, counted by the breaker every tenant shares).
    """
    leaf = max(len(parts[-1]), _TMP_NAME_BYTES)
    size = len(os.fsencode(root)) + sum(len(p) + 1 for p in parts[:-1]) + 1 + leaf
    if size >= _PATH_MAX or any(len(p) > _FILE_NAME_MAX for p in parts):
        raise InvalidKeyError(
            f"the file for this key needs a {size}-byte path; the limit is {_PATH_MAX - 1} bytes "
            "(255 per name): use a shorter key or cold-tier root",
            key=key,
        )


def file_parts(mk: MemoryKey) -> tuple[str, ...]:
    """Relative path parts of a key's file under the root (tenant, namespace, name...)."""
    name = _file_quote(mk.key)
    if len(name) <= _FILE_SEGMENT_MAX:
        tail: tuple[str, ...] = (name,)
    else:
        b32 = base64.b32encode(mk.key.encode("utf-8")).rstrip(b"=").decode("ascii").lower()
        chunks = [b32[i : i + _FILE_SEGMENT_MAX] for i in range(0, len(b32), _FILE_SEGMENT_MAX)]
        chunks[0] = "~" + chunks[0]
        chunks[-1] += "~"
        tail = tuple(chunks)
    return (_file_quote(mk.tenant), _file_quote(mk.namespace), *tail)


def file_scope_parts(tenant: str, namespace: str | None = None) -> tuple[str, ...]:
    """Directory parts of a tenant (and optionally one namespace) under the cold root."""
    parts = (_file_quote(tenant),)
    return parts if namespace is None else (*parts, _file_quote(namespace))


def parse_file_parts(parts: tuple[str, ...]) -> MemoryKey:
    if len(parts) < 3:
        raise InvalidKeyError("not a tiermem file path")
    try:
        tenant, namespace = unpercent(parts[0]), unpercent(parts[1])
        tail = parts[2:]
        if tail[0].startswith("~"):
            if not tail[-1].endswith("~"):
                raise InvalidKeyError("not a tiermem file path")
            b32 = "".join(tail)[1:-1].upper()
            key = base64.b32decode(b32 + "=" * (-len(b32) % 8)).decode("utf-8")
        elif len(tail) == 1:
            key = unpercent(tail[0])
        else:
            raise InvalidKeyError("not a tiermem file path")
    except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
        if isinstance(exc, InvalidKeyError):
            raise
        raise InvalidKeyError("not a tiermem file path") from exc
    mk = _stored_key(tenant, namespace, key)
    if file_parts(mk) != tuple(parts):  # canonical form only: stray files are never mistaken for keys
        raise InvalidKeyError("not a tiermem file path")
    return mk
