"""Batch commands of the Redis hot tier: pipelined ``SET``s and compare-and-swaps, expiry arithmetic.

A batch names its keys once (:func:`tiermem._keys.redis_names`, bytes the client sends as they are)
and queues commands through ``execute_command``, which skips redis-py's per-call option handling
(``SET``'s reply parsing is chosen by the command name, so it is unchanged). redis-py exceptions
propagate: ``RedisHotMemory._call`` translates them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from tiermem._codec import Record
from tiermem._protocols import MemoryKey
from tiermem._seal import HotSeal
from tiermem.tiers._redis_records import sealed, ttl_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster
    from redis.commands.core import AsyncScript

__all__ = ["queue_sets", "run_swaps", "swap_args"]

SwapArgs = tuple[bytes, bytes, int]
"""ARGV of the swap script: expected stored bytes (``b""``: nothing), new ones (``b""``: delete), PX ms."""


def swap_args(
    seal: HotSeal, name: bytes, expected: Record | None, new: Record | None, now: float
) -> SwapArgs | None:
    """The swap script's arguments for one item under the Redis key ``name``, or ``None`` when
    ``new`` has already expired (an expired record replaces nothing, so the item is not sent and
    reads as not swapped). Both records are sealed to ``name``: sealing is deterministic, so the
    sealed bytes of ``expected`` are what the read found stored."""
    seen = b"" if expected is None else sealed(seal, name, expected)
    if new is None:
        return seen, b"", 0
    px = ttl_ms(new, now)
    if px is not None and px <= 0:
        return None
    return seen, sealed(seal, name, new), px or 0


async def run_swaps(
    client: Redis | RedisCluster,
    script: AsyncScript,
    names: Sequence[bytes],
    argv: Sequence[SwapArgs],
    loaded: bool,
) -> list[bool]:
    """One pipeline of ``EVALSHA`` calls (one round trip; per node on a cluster): each call is the
    single-key script, atomic on its own, exactly as if sent alone; the pipeline is not a transaction.
    Unless ``loaded`` (a call of this script succeeded before), ``SCRIPT LOAD`` goes first; calls
    answered ``NOSCRIPT`` (the server lost its script cache since) are sent again after loading it.

    Raises:
        redis.exceptions.RedisError: the first call that failed (the others may have swapped).
    """
    if not loaded:
        script.sha = await client.script_load(script.script)
    replies = await _evalsha_all(client, script.sha, names, argv)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        script.sha = await client.script_load(script.script)
        again = await _evalsha_all(
            client, script.sha, [names[i] for i in missing], [argv[i] for i in missing]
        )
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return [bool(reply) for reply in replies]


async def _evalsha_all(
    client: Redis | RedisCluster, sha: str, names: Sequence[bytes], argv: Sequence[SwapArgs]
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for name, (seen, new, px) in zip(names, argv, strict=True):
        pipe.execute_command("EVALSHA", sha, 1, name, seen, new, px)
    return list(await pipe.execute(raise_on_error=False))


def queue_sets(
    pipe: Pipeline | ClusterPipeline,
    seal: HotSeal,
    names: Sequence[bytes],
    items: Sequence[tuple[MemoryKey, Record]],
    now: float,
    *,
    if_absent: bool,
) -> list[tuple[MemoryKey, bool]]:
    """Queue ``SET name sealed-record [PX ms] [NX]`` per item, the record sealed to ``name`` (ADR
    0015); ``UNLINK`` for a record that has already expired, which is what writing it and letting it
    expire leaves; nothing with ``if_absent``, where an expired record neither blocks nor replaces
    anything. Returns, per queued command, its key and whether it is a ``SET`` (whose reply says if
    it stored)."""
    queued: list[tuple[MemoryKey, bool]] = []
    execute = pipe.execute_command
    seal_as = seal.seal  # sealed(), inlined: names are already the bytes the seal binds
    for name, (mk, record) in zip(names, items, strict=True):
        expires_at = record.expires_at
        if expires_at is None:
            if if_absent:
                execute("SET", name, seal_as(name, record), "NX")
            else:
                execute("SET", name, seal_as(name, record))
        else:
            px = math.ceil((expires_at - now) * 1000)  # ttl_ms, inlined: this loop runs per key
            if px <= 0:
                if if_absent:
                    continue
                execute("UNLINK", name)
                queued.append((mk, False))
                continue
            if if_absent:
                execute("SET", name, seal_as(name, record), "PX", px, "NX")
            else:
                execute("SET", name, seal_as(name, record), "PX", px)
        queued.append((mk, True))
    return queued
