"""A worker process: one ``MemoryClient``, driven by the parent over stdin/stdout, recording a history.

Run as ``python -m tests.reliability.multiproc.worker``. The first line on stdin is the setup
(``{"process", "spec", "history"}``); every later line is a command ``{"id", "op", "args"}`` that runs as
its own task, so a background loop and single operations can run side by side. Each reply is one line
``{"id", "result"}`` or ``{"id", "error"}`` (an error of the harness, not of tiermem: client errors are
outcomes in the history). ``close`` writes the history to its file and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tests.reliability.multiproc.clients import ClientSpec, build
from tests.reliability.multiproc.history import Event, Op, Outcome, dump, uid_of, value_for
from tiermem import (
    BatchWriteError,
    ConflictError,
    ConversationStore,
    InvalidInputError,
    MemoryClient,
    Tier,
    TierMemError,
)


class Worker:
    def __init__(self, process: str, memory: MemoryClient, history: Path) -> None:
        self.process = process
        self.memory = memory
        self.sessions = ConversationStore(memory)
        self.history_path = history
        self.events: list[Event] = []
        self.counter = 0
        self.rng = random.Random(process)
        self.loops: dict[str, tuple[asyncio.Event, asyncio.Task[dict[str, int]]]] = {}

    def uid(self) -> str:
        self.counter += 1
        return f"{self.process}:{self.counter}"

    def record(
        self, op: Op, key: str, value: str | None, t0: float, outcome: Outcome, error: str | None = None
    ) -> None:
        self.events.append(
            Event(self.process, op, key, value, t0, time.monotonic(), outcome, error, len(self.events))
        )

    @staticmethod
    def classify(exc: BaseException) -> tuple[Outcome, str]:
        """A conflict or bad input says the write did not happen; anything else leaves it unknown."""
        text = f"{type(exc).__name__}: {exc}"[:300]
        if not isinstance(exc, TierMemError):
            return Outcome.UNKNOWN, f"untyped {text}"
        if isinstance(exc, ConflictError | InvalidInputError):
            return Outcome.FAIL, text
        return Outcome.UNKNOWN, text

    async def _at(self, at: float | None) -> None:
        if at is not None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))

    # -- operations (each records its events) ----------------------------------------------------

    async def set(
        self,
        key: str,
        size: int = 0,
        if_match: str | None = None,
        if_absent: bool = False,
        at: float | None = None,
    ) -> dict[str, Any]:
        uid = self.uid()
        value = value_for(uid, size, self.rng)
        await self._at(at)
        t0 = time.monotonic()
        try:
            etag = await self.memory.set(key, value, if_match=if_match, if_absent=if_absent)
        except Exception as exc:
            outcome, error = self.classify(exc)
            self.record(Op.SET, key, uid, t0, outcome, error)
            return {"value": uid, "outcome": outcome.value, "error": error}
        self.record(Op.SET, key, uid, t0, Outcome.OK)
        return {"value": uid, "outcome": "ok", "etag": etag}

    async def delete(self, key: str, at: float | None = None) -> dict[str, Any]:
        await self._at(at)
        t0 = time.monotonic()
        try:
            await self.memory.delete(key)
        except Exception as exc:
            outcome, error = self.classify(exc)
            self.record(Op.DELETE, key, None, t0, outcome, error)
            return {"outcome": outcome.value, "error": error}
        self.record(Op.DELETE, key, None, t0, Outcome.OK)
        return {"outcome": "ok"}

    async def get(self, key: str, consistent: bool = False, at: float | None = None) -> dict[str, Any]:
        await self._at(at)
        t0 = time.monotonic()
        try:
            entry = await self.memory.get_entry(key, consistent=consistent)
        except Exception as exc:
            outcome, error = self.classify(exc)
            self.record(Op.GET, key, None, t0, Outcome.UNKNOWN, error)
            return {"outcome": outcome.value, "error": error}
        uid = uid_of(None if entry is None else entry.value)
        self.record(Op.GET, key, uid, t0, Outcome.OK)
        return {
            "outcome": "ok",
            "value": uid,
            "etag": None if entry is None else entry.etag,
            "tier": None if entry is None else entry.tier.value,
        }

    async def mget(self, keys: Sequence[str]) -> dict[str, Any]:
        t0 = time.monotonic()
        try:
            found = await self.memory.mget(list(keys))
        except Exception as exc:
            _, error = self.classify(exc)
            for key in keys:
                self.record(Op.GET, key, None, t0, Outcome.UNKNOWN, error)
            return {"outcome": "unknown", "error": error}
        for key in keys:
            self.record(Op.GET, key, uid_of(found.get(key)), t0, Outcome.OK)
        return {"outcome": "ok"}

    async def mset(self, keys: Sequence[str], size: int = 0) -> dict[str, Any]:
        uids = {key: self.uid() for key in keys}
        items = {key: value_for(uid, size, self.rng) for key, uid in uids.items()}
        t0 = time.monotonic()
        try:
            await self.memory.mset(items)
        except BatchWriteError as exc:
            _, error = self.classify(exc)
            for key, uid in uids.items():
                if key in exc.written:
                    self.record(Op.SET, key, uid, t0, Outcome.OK)
                else:
                    outcome = self.classify(exc.failed[key])[0] if key in exc.failed else Outcome.UNKNOWN
                    self.record(Op.SET, key, uid, t0, outcome, error)
            return {"outcome": "partial", "error": error}
        except Exception as exc:
            outcome, error = self.classify(exc)
            for key, uid in uids.items():
                self.record(Op.SET, key, uid, t0, outcome, error)
            return {"outcome": outcome.value, "error": error}
        for key, uid in uids.items():
            self.record(Op.SET, key, uid, t0, Outcome.OK)
        return {"outcome": "ok"}

    async def append(self, session: str, size: int = 0) -> dict[str, Any]:
        uid = self.uid()
        turn = value_for(uid, size, self.rng)
        t0 = time.monotonic()
        try:
            index = await self.sessions.append_turn(session, turn)
        except Exception as exc:
            outcome, error = self.classify(exc)
            self.record(Op.APPEND, session, uid, t0, outcome, error)
            return {"value": uid, "outcome": outcome.value, "error": error}
        self.record(Op.APPEND, session, uid, t0, Outcome.OK)
        return {"value": uid, "outcome": "ok", "index": index}

    async def circuit(self, tier: str = "hot") -> str:
        state = self.memory.circuit_state(Tier(tier))
        return "none" if state is None else state.name.lower()

    # -- background loops -------------------------------------------------------------------------

    async def loop(
        self,
        name: str,
        mix: dict[str, float],
        keys: Sequence[str],
        sessions: Sequence[str] = (),
        interval: float = 0.0,
        large_size: int = 0,
        large_ratio: float = 0.0,
    ) -> dict[str, Any]:
        """Start a loop of random operations (weights in ``mix``) until ``stop(name)``."""
        stop = asyncio.Event()
        task = asyncio.create_task(self._loop(stop, mix, keys, sessions, interval, large_size, large_ratio))
        self.loops[name] = (stop, task)
        return {"started": name}

    async def _loop(
        self,
        stop: asyncio.Event,
        mix: dict[str, float],
        keys: Sequence[str],
        sessions: Sequence[str],
        interval: float,
        large_size: int,
        large_ratio: float,
    ) -> dict[str, int]:
        rng = random.Random(f"{self.process}-loop")
        ops = list(mix)
        weights = [mix[o] for o in ops]
        done: Counter[str] = Counter()
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "get": lambda: self.get(rng.choice(keys)),
            "set": lambda: self.set(rng.choice(keys), size=large_size if rng.random() < large_ratio else 0),
            "delete": lambda: self.delete(rng.choice(keys)),
            "mget": lambda: self.mget(rng.sample(list(keys), min(3, len(keys)))),
            "mset": lambda: self.mset(rng.sample(list(keys), min(2, len(keys)))),
            "append": lambda: self.append(rng.choice(sessions)),
        }
        while not stop.is_set():
            op = rng.choices(ops, weights)[0]
            await actions[op]()
            done[op] += 1
            if interval:
                await asyncio.sleep(interval)
            else:
                await asyncio.sleep(0)
        return dict(done)

    async def stop(self, name: str) -> dict[str, int]:
        stop, task = self.loops.pop(name)
        stop.set()
        return await task

    async def close(self) -> dict[str, Any]:
        for name in list(self.loops):
            await self.stop(name)
        dump(self.events, self.history_path)
        await self.memory.aclose()
        return {"events": len(self.events)}


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    first = await reader.readline()
    if not first:
        return  # a pooled process that was never used
    setup = json.loads(first)
    spec = ClientSpec.from_json(setup["spec"])
    worker = Worker(setup["process"], build(spec), Path(setup["history"]))
    _reply({"ready": setup["process"], "pid": os.getpid()})
    tasks: set[asyncio.Task[None]] = set()

    async def run(command: dict[str, Any]) -> None:
        try:
            result = await getattr(worker, command["op"])(**command.get("args", {}))
        except Exception as exc:  # a harness error: the parent raises it
            _reply({"id": command["id"], "error": f"{type(exc).__name__}: {exc}"})
        else:
            _reply({"id": command["id"], "result": result})

    while True:
        line = await reader.readline()
        if not line:
            return  # the parent went away
        command = json.loads(line)
        if command["op"] == "close":
            await asyncio.gather(*tasks)
            await run(command)
            return
        task = asyncio.create_task(run(command))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    # Import every adapter before waiting for the setup line: a pooled process is then ready at once.
    import tiermem.tiers.blob
    import tiermem.tiers.cosmos
    import tiermem.tiers.local
    import tiermem.tiers.redis  # noqa: F401

    asyncio.run(_serve())
