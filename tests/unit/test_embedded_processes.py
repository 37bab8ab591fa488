"""The embedded durable tiers across real processes: crashes lose no acknowledged write, and two
processes sharing one SQLite file or one cold directory never lose or double an update.

A power loss cannot be simulated here: ``durability="fsync"`` is tested for what a process crash
can show (the fsync itself is SQLite's ``synchronous=FULL``, ADR 0009); ``durability="os"`` promises
no more than surviving a process crash, which is exactly what SIGKILL tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit._embedded_worker import INCREMENTS, OWN_KEYS, SHARED_KEYS, value
from tiermem import Codec, FileColdMemory, SqliteWarmMemory, TierStore, make_key

CODEC = Codec()
ROOT = Path(__file__).resolve().parents[2]
ACKS_BEFORE_KILL = 120

pytestmark = pytest.mark.timeout(120)

# (kind, durability): the file tier always fsyncs.
KINDS = [("sqlite", "fsync"), ("sqlite", "os"), ("files", "fsync")]


def _target(kind: str, tmp_path: Path) -> str:
    return str(tmp_path / ("warm.db" if kind == "sqlite" else "cold"))


def _store(kind: str, target: str) -> TierStore:
    return SqliteWarmMemory(target) if kind == "sqlite" else FileColdMemory(target)


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.unit._embedded_worker",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = await proc.stdout.readline()
    assert line, f"the worker exited early with {await proc.wait()}"
    return line.decode().strip()


@pytest.mark.parametrize(("kind", "durability"), KINDS)
async def test_sigkill_right_after_acknowledged_writes_loses_none(
    tmp_path: Path, kind: str, durability: str
) -> None:
    target = _target(kind, tmp_path)
    proc = await _spawn("ack", kind, target, durability, "w")
    acked = [int(await _line(proc)) for _ in range(ACKS_BEFORE_KILL)]
    proc.send_signal(signal.SIGKILL)  # eight writes are in flight right now
    assert proc.stdout is not None
    rest = await proc.stdout.read()  # acknowledgements printed before the kill landed count too
    acked += [int(line) for line in rest.decode().split()]
    assert await proc.wait() == -signal.SIGKILL

    async with _store(kind, target) as store:
        records = await store.mget([make_key("t", "n", f"w-{i}") for i in acked])
    missing = [i for i, r in zip(acked, records, strict=True) if r is None]
    assert missing == []
    assert [CODEC.decode(r) for r in records if r is not None] == [value("w", i) for i in acked]


@pytest.mark.parametrize(("kind", "durability"), KINDS)
async def test_two_processes_share_one_store(tmp_path: Path, kind: str, durability: str) -> None:
    target = _target(kind, tmp_path)
    procs = [await _spawn("race", kind, target, durability, name) for name in ("a", "b")]
    for proc in procs:
        assert await _line(proc) == "ready"
    for proc in procs:  # both start together
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results: dict[str, Any] = {name: json.loads(await _line(p)) for name, p in zip("ab", procs, strict=True)}
    for proc in procs:
        assert await proc.wait() == 0

    async with _store(kind, target) as store:
        for name in "ab":
            own = await store.mget([make_key("t", "n", f"{name}-{i}") for i in range(OWN_KEYS)])
            assert [None if r is None else CODEC.decode(r) for r in own] == [
                value(name, i) for i in range(OWN_KEYS)
            ]
        # Every shared key was created exactly once, by the process that was told it won.
        won = {j: name for name in "ab" for j in results[name]["won"]}
        assert len(won) == len(results["a"]["won"]) + len(results["b"]["won"]) == SHARED_KEYS
        shared = await store.mget([make_key("t", "n", f"shared-{j}") for j in range(SHARED_KEYS)])
        assert [None if r is None else CODEC.decode(r) for r in shared] == [
            won[j] for j in range(SHARED_KEYS)
        ]
        # Compare-and-swap increments from both processes: none lost, none doubled.
        counter = await store.get(make_key("t", "n", "counter"))
        assert counter is not None
        assert CODEC.decode(counter) == 2 * INCREMENTS
