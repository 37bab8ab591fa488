"""A child process for the cross-process tests of the embedded durable tiers.

``python -m tests.unit._embedded_worker ack KIND PATH DURABILITY NAME`` writes keys ``NAME-<i>`` with
eight concurrent writers forever and prints ``i`` on stdout as soon as each ``set`` returned (the
parent SIGKILLs it). ``... race KIND PATH DURABILITY NAME`` prints ``ready``, waits for a line on
stdin, then writes its own keys, races for the shared ``if_absent`` keys and increments a shared
counter with ``if_match``; it prints one JSON line with the shared keys it won.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tiermem import Codec, ConflictError, FileColdMemory, SqliteWarmMemory, TierStore, make_key

CODEC = Codec()
WRITERS = 8
OWN_KEYS = 40
SHARED_KEYS = 30
INCREMENTS = 25


def value(name: str, i: int) -> dict[str, Any]:
    return {"writer": name, "i": i, "pad": "x" * (i % 300)}


def open_store(kind: str, path: str, durability: str) -> TierStore:
    if kind == "sqlite":
        return SqliteWarmMemory(path, durability=durability)  # type: ignore[arg-type]
    return FileColdMemory(path)


async def ack(store: TierStore, name: str) -> None:
    async def writer(first: int) -> None:
        i = first
        while True:
            await store.set(make_key("t", "n", f"{name}-{i}"), CODEC.encode(value(name, i))[0])
            sys.stdout.write(f"{i}\n")
            sys.stdout.flush()
            i += WRITERS

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


async def increment(store: TierStore) -> None:
    counter = make_key("t", "n", "counter")
    while True:
        current = await store.get(counter)
        try:
            if current is None:
                await store.set(counter, CODEC.encode(1)[0], if_absent=True)
            else:
                n = CODEC.decode(current)
                await store.set(counter, CODEC.encode(n + 1)[0], if_match=current.etag)
        except ConflictError:
            continue  # the other process got there first: read again
        return


async def race(store: TierStore, name: str) -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def own(i: int) -> None:
        await store.set(make_key("t", "n", f"{name}-{i}"), CODEC.encode(value(name, i))[0])

    async def claim(j: int) -> int | None:
        try:
            await store.set(make_key("t", "n", f"shared-{j}"), CODEC.encode(name)[0], if_absent=True)
        except ConflictError:
            return None
        return j

    await asyncio.gather(*(own(i) for i in range(OWN_KEYS)))
    won = [j for j in await asyncio.gather(*(claim(j) for j in range(SHARED_KEYS))) if j is not None]
    for _ in range(INCREMENTS):
        await increment(store)
    sys.stdout.write(json.dumps({"won": won}) + "\n")
    sys.stdout.flush()


async def main(mode: str, kind: str, path: str, durability: str, name: str) -> None:
    async with open_store(kind, path, durability) as store:
        await store.setup()
        if mode == "ack":
            await ack(store, name)
        else:
            await race(store, name)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
