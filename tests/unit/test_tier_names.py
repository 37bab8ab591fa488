"""Issue 13 item 10, tier half: names the tiers make are legal where they are stored.

Files: no Windows device name (``CON``, ``nul.txt``, ``COM1``...) as any path part, every part within
255 bytes, and a path too long for the root is a typed error before any I/O, never an ``OSError``
(which the tier reports as an outage). Blob: no path segment ends in a dot, whatever the key.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import given

from tests.unit.test_keys import memory_keys
from tiermem import CircuitState, InvalidKeyError, InvalidScopeError, MemoryBuilder, MemoryKey, Tier, make_key
from tiermem._codec import Codec
from tiermem._keys import blob_name, file_parts, parse_blob_name, parse_file_parts
from tiermem.tiers.files import FileColdMemory

_DEVICES = ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))]
_DEVICE_RE = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)", re.IGNORECASE)
_SPELLINGS = [
    *_DEVICES,
    *(d.upper() for d in _DEVICES),
    "Con",
    "nUl",
    "con.txt",
    "NUL.tar.gz",
    "aux.",
    "com1 ",
    "lpt¹",
    "CONIN$",
]


def _windows_device(part: str) -> bool:
    """Windows' rule: the name up to the first dot (trailing spaces ignored) is a device name."""
    return bool(_DEVICE_RE.fullmatch(part.split(".", 1)[0].rstrip(" ")))


@pytest.mark.parametrize("name", _SPELLINGS)
def test_no_file_part_is_a_windows_device_name(name: str) -> None:
    mks = [make_key("acme", "ns", name)]
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}", name) and not name.endswith("."):
        mks += [make_key(name, "ns", "k"), make_key("acme", name, "k")]
    for mk in mks:
        parts = file_parts(mk)
        assert not any(_windows_device(p) for p in parts), parts
        assert parse_file_parts(parts) == mk


@given(memory_keys)
def test_file_parts_fit_file_names_and_are_never_devices(mk: MemoryKey) -> None:
    parts = file_parts(mk)
    assert all(len(p.encode()) <= 255 and not _windows_device(p) for p in parts)


@given(memory_keys)
def test_no_blob_segment_ends_in_a_dot(mk: MemoryKey) -> None:
    name = blob_name(mk)
    assert all(segment and not segment.endswith(".") for segment in name.split("/")), name
    assert parse_blob_name(name) == mk


def test_a_memory_key_built_around_validation_gets_no_dotted_blob_segment() -> None:
    with pytest.raises(InvalidScopeError):
        blob_name(MemoryKey("acme.", "ns", "k"))
    with pytest.raises(InvalidScopeError):
        blob_name(MemoryKey("acme", "..", "k"))


async def test_device_named_keys_are_ordinary_files(tmp_path: Path) -> None:
    record, _ = Codec().encode("v")
    async with FileColdMemory(tmp_path, fsync=False) as cold:
        for name in ("con", "NUL", "com1", "lpt9.txt"):
            await cold.set(make_key("nul", "aux", name), record)
            got = await cold.get(make_key("nul", "aux", name))
            assert got is not None and got.payload == record.payload
        on_disk = await asyncio.to_thread(
            lambda: [p.relative_to(tmp_path).parts for p in tmp_path.rglob("*") if p.is_file()]
        )
        assert on_disk and not any(_windows_device(part) for parts in on_disk for part in parts)
        assert {mk.key async for mk in cold.scan("nul")} == {"con", "NUL", "com1", "lpt9.txt"}


async def test_a_path_too_long_for_the_root_is_invalid_input_not_an_outage(tmp_path: Path) -> None:
    # About 3.4 KB of the 4 KB PATH_MAX (Linux), whatever the depth of the temporary directory.
    root = tmp_path.joinpath(*["d" * 200] * ((3400 - len(str(tmp_path))) // 201))
    memory = MemoryBuilder().with_cold(FileColdMemory(root, fsync=False)).build()
    async with memory:
        await memory.set("short", "fits")
        assert await memory.get("short") == "fits"
        long_key = "k" * 512  # 820 characters of base32 under the root
        for _ in range(8):  # more than the breaker's threshold: none of these is an outage
            with pytest.raises(InvalidKeyError, match="path"):
                await memory.set(long_key, "v")
        assert memory.circuit_state(Tier.COLD) is CircuitState.CLOSED
        assert await memory.get("short") == "fits"
