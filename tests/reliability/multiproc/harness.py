"""The parent side: start worker processes against shared services, inject faults, read the end state.

A :class:`Run` owns one scenario: unique data names on the shared services (Redis prefix, Cosmos and
Blob containers, or a SQLite file and cold directory), a fault proxy per process and tier on demand,
the worker processes, and a probe client that reads the end state directly from the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio

from tests.reliability.multiproc.checker import TOMBSTONE, EndState, Kind, Report, check, hot_serves
from tests.reliability.multiproc.clients import ClientSpec, build
from tests.reliability.multiproc.history import Event, Op, load, uid_of
from tests.reliability.proxy import FaultProxy
from tests.services._process import repo_root
from tiermem import ConversationStore, MemoryClient, Tier, make_key
from tiermem._engine.epoch import EPOCH_KEY
from tiermem.tiers.redis import RedisHotMemory

__all__ = ["BOUND", "RESULTS", "SCALE", "Pool", "Run", "ViolationsFound", "WorkerProcess"]

SOAK = os.environ.get("TIERMEM_TEST_SOAK") == "1"
SCALE = int(os.environ.get("TIERMEM_TEST_SOAK_SCALE", "10")) if SOAK else 1
"""Multiplies rounds and durations in the soak (``TIERMEM_TEST_SOAK=1``)."""
BOUND = float(os.environ.get("TIERMEM_TEST_STALENESS_BOUND", "2.0"))
"""Seconds a read may lag behind the latest acknowledged write (the design's bound; default 2 s)."""

RESULTS: dict[str, dict[str, Any]] = {}
"""Per scenario: operations, violations by kind, worst staleness, seconds (printed after the run)."""


class ViolationsFound(AssertionError):
    """The checker found violations (strict xfail markers expect exactly this exception)."""


class WorkerProcess:
    """One ``python -m tests.reliability.multiproc.worker`` child and its command channel."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, history: Path, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.history = history
        self.log = log
        self._next = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._history: list[Event] | None = None

    @classmethod
    async def spawn(cls, name: str, spec: ClientSpec, workdir: Path, pool: Pool) -> WorkerProcess:
        """Take a started process from ``pool`` and make it ``name``, with a client built from ``spec``."""
        proc, log = await pool.take()
        worker = cls(name, proc, workdir / f"{name}.jsonl", log)
        worker._send({"process": name, "spec": spec.to_json(), "history": str(worker.history)})
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {name} exited during startup:\n{worker.log_tail()}")
        worker._reader = asyncio.create_task(worker._read())
        return worker

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self._pending.pop(message["id"], None)
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(RuntimeError(f"worker {self.name}: {message['error']}"))
            else:
                future.set_result(message["result"])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}"))

    def submit(self, op: str, **args: Any) -> asyncio.Future[Any]:
        """Send a command; the future resolves with its result (commands run concurrently)."""
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        self._send({"id": self._next, "op": op, "args": args})
        return future

    async def call(self, op: str, *, limit: float = 120.0, **args: Any) -> Any:
        """Run a command and wait for its result (at most ``limit`` seconds)."""
        async with asyncio.timeout(limit):
            return await self.submit(op, **args)

    async def close(self) -> list[Event]:
        """Stop its loops, close its client, and return its history (idempotent)."""
        if self._history is not None:
            return self._history
        await self.call("close")
        async with asyncio.timeout(30):
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        self._history = list(load(self.history))
        return self._history

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Pool:
    """Worker processes started ahead of need: importing tiermem and the Azure SDKs takes a second or
    two of CPU, which the previous scenario's run time hides. Each process waits for its setup line."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.size = size
        self._ready: list[tuple[asyncio.subprocess.Process, Path]] = []
        self._filling: asyncio.Task[None] | None = None
        self._launched = 0

    async def _launch(self) -> tuple[asyncio.subprocess.Process, Path]:
        self._launched += 1
        log = self.workdir / f"worker-{self._launched}.log"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.reliability.multiproc.worker",
                cwd=repo_root(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                limit=1 << 24,
            )
        return proc, log

    async def take(self) -> tuple[asyncio.subprocess.Process, Path]:
        return self._ready.pop(0) if self._ready else await self._launch()

    def refill(self) -> None:
        """Start replacing the processes taken, in the background (when a scenario's fixture starts, so
        the imports overlap its setup and never load the tests that run after the last scenario)."""
        if self._filling is None or self._filling.done():
            self._filling = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        while len(self._ready) < self.size:
            self._ready.append(await self._launch())

    async def aclose(self) -> None:
        if self._filling is not None:
            await self._filling  # launching is quick: the imports run in the children
        for proc, _ in self._ready:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # never given a setup line: nothing to lose
            async with asyncio.timeout(30):
                await proc.wait()
        self._ready.clear()


@dataclass
class Run:
    """One scenario's processes, proxies, probe and figures."""

    name: str
    base: ClientSpec
    workdir: Path
    pool: Pool
    redis_port: int
    cosmos_port: int
    blob_port: int
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    proxies: dict[tuple[str, Tier], FaultProxy] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    probe: MemoryClient | None = None
    hot: RedisHotMemory | None = None

    @classmethod
    def embedded(cls, name: str, workdir: Path, pool: Pool, redis_url: str, **spec: Any) -> Run:
        """Redis hot, SQLite warm and files cold shared by the processes (the embedded durable tiers)."""
        base = ClientSpec(
            warm="sqlite",
            cold="files",
            redis_url=redis_url,
            redis_prefix=f"mp{secrets.token_hex(3)}",
            sqlite_path=str(workdir / "warm.db"),
            files_path=str(workdir / "cold"),
        ).with_(**spec)
        return cls(name, base, workdir, pool, _port(redis_url), 0, 0)

    @classmethod
    def azure(
        cls, name: str, workdir: Path, pool: Pool, redis_url: str, cosmos: Any, azurite: Any, **spec: Any
    ) -> Run:
        """Redis, the Cosmos stand-in and Azurite, with the reliability suite's short timeouts."""
        base = ClientSpec(
            redis_url=redis_url,
            redis_prefix=f"mp{secrets.token_hex(3)}",
            redis_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retries": 1},
            cosmos_endpoint=cosmos.endpoint,
            cosmos_key=cosmos.key,
            cosmos_container=f"c{secrets.token_hex(6)}",
            cosmos_options={"retry_total": 1, "connection_timeout": 2, "read_timeout": 5},
            blob_connection_string=azurite.connection_string,
            blob_container=f"c{secrets.token_hex(6)}",
            blob_options={"retry_total": 1, "connection_timeout": 2, "read_timeout": 5},
            policy={"warm_max_bytes": 64 * 1024},
            resilience={
                "hot": {"timeout": 2.0, "failure_threshold": 5, "reset_timeout": 0.5},
                "warm": {"timeout": 10.0, "failure_threshold": 5, "reset_timeout": 0.5},
                "cold": {"timeout": 10.0, "failure_threshold": 5, "reset_timeout": 0.5},
            },
        ).with_(**spec)
        return cls(
            name,
            base,
            workdir,
            pool,
            _port(redis_url),
            _port(cosmos.endpoint),
            _port(azurite.blob_endpoint),
        )

    async def setup(self) -> None:
        """Create the containers/tables once, from the parent, and open the probe."""
        self.probe = build(self.base)
        await self.probe.setup()
        if self.base.hot == "redis":
            self.hot = RedisHotMemory.from_url(self.base.redis_url, prefix=self.base.redis_prefix)

    async def worker(
        self, name: str, *, proxy: Iterable[Tier] = (), policy: Mapping[str, Any] | None = None, **spec: Any
    ) -> WorkerProcess:
        """Start a process; tiers in ``proxy`` reach their service through a fault proxy of its own."""
        s = self.base.with_(**spec)
        if policy:
            s = s.with_(policy={**s.policy, **policy})
        for tier in proxy:
            p = await FaultProxy(self._target(tier)).start()
            self.proxies[(name, tier)] = p
            s = _through(s, tier, self._target(tier), p.port)
        worker = await WorkerProcess.spawn(name, s, self.workdir, self.pool)
        self.workers[name] = worker
        return worker

    def _target(self, tier: Tier) -> int:
        return {Tier.HOT: self.redis_port, Tier.WARM: self.cosmos_port, Tier.COLD: self.blob_port}[tier]

    def proxy(self, worker: str, tier: Tier) -> FaultProxy:
        return self.proxies[(worker, tier)]

    async def start_all(self, *names: str, **kw: Any) -> list[WorkerProcess]:
        """Several workers with the same options, started in parallel."""
        return list(await asyncio.gather(*(self.worker(n, **kw) for n in names)))

    async def flushall(self) -> None:
        """FLUSHALL on the shared Redis: every process loses its hot copies at once."""
        assert self.hot is not None
        client = redis.asyncio.Redis.from_url(self.base.redis_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    # -- the end state ----------------------------------------------------------------------------

    async def hot_value(self, key: str) -> str | None:
        """What raw Redis would serve for ``key`` (:func:`~checker.hot_serves`), judged against the hot
        epoch in the durable tier as it is now."""
        assert self.hot is not None
        rec = await self.hot.get(make_key("default", "default", key))
        return hot_serves(rec, now=time.time(), durable_epoch=await self.durable_epoch())

    async def durable_epoch(self) -> int:
        """The hot epoch (ADR 0006) as the durable tier holds it, read raw; 0 before any bump."""
        assert self.probe is not None
        durable = next(t for t in self.probe.tiers if t is not Tier.HOT)
        store = self.probe.tier_store(durable)
        assert store is not None
        rec = await store.get(EPOCH_KEY)
        if rec is None:
            return 0
        value = json.loads(rec.payload)
        assert isinstance(value, int), f"the hot epoch item holds {value!r}"
        return value

    async def durable_value(self, key: str) -> str | None:
        assert self.probe is not None
        entry = await self.probe.get_entry(key, consistent=True)
        return None if entry is None else uid_of(entry.value)

    async def end_state(
        self, keys: Iterable[str], sessions: Iterable[str] = (), *, quiet: float = BOUND
    ) -> EndState:
        """After every worker stopped: wait until hot agrees with the durable tier or ``quiet`` seconds
        have passed since the last write of the history, then return what both hold (hot read raw, not
        through any client's logic)."""
        assert self.probe is not None
        keys = list(keys)
        writes = [e.complete for e in self.events if e.op is not Op.GET]
        deadline = (max(writes) if writes else time.monotonic()) + quiet
        while True:
            durable = {k: await self.durable_value(k) for k in keys}
            hot = {k: await self.hot_value(k) for k in keys} if self.hot is not None else {}
            agree = all(_agrees(h, durable[k]) for k, h in hot.items())
            if agree or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.25)
        store = ConversationStore(self.probe)
        turns = {}
        for sid in sessions:
            loaded = await store.load_turns(sid, consistent=True)
            turns[sid] = [str(uid_of(t)) for t in loaded]
        return EndState(durable=durable, hot=hot, sessions=turns)

    async def stop_workers(self) -> list[Event]:
        histories = await asyncio.gather(*(w.close() for w in self.workers.values()))
        self.events = [e for h in histories for e in h]
        return self.events

    def check(
        self,
        end: EndState | None,
        *,
        bound: float = BOUND,
        kinds: Iterable[Kind] | None = None,
        deadlines: Mapping[Op, float] | None = None,
    ) -> Report:
        """Check the history; record the figures; raise :class:`ViolationsFound` for the given kinds
        (all kinds when ``kinds`` is None). Errors that are not ``TierMemError`` fail the run too."""
        report = check(self.events, end, bound=bound, deadlines=deadlines)
        untyped = [e for e in self.events if e.error and e.error.startswith("untyped ")]
        RESULTS[self.name] = {
            "processes": len(self.workers),
            "operations": report.operations,
            "violations": dict(report.counts()),
            "worst_staleness_s": round(report.worst_staleness, 2),
            "untyped_errors": len(untyped),
            "seconds": round(time.monotonic() - self.started, 1),
        }
        assert not untyped, f"errors outside the TierMemError tree: {untyped[:3]}"
        wanted = set(Kind) if kinds is None else set(kinds)
        found = [v for v in report.violations if v.kind in wanted]
        if found:
            shown = Report(report.operations, found, report.worst_staleness)
            raise ViolationsFound(f"{self.name}: {shown.summary()}")
        return report

    async def aclose(self) -> None:
        for w in self.workers.values():
            await w.kill()
        for p in self.proxies.values():
            await p.stop()
        if self.probe is not None:
            await self.probe.aclose()
        if self.hot is not None:
            await self.hot.aclose()


def _agrees(hot: str | None, durable: str | None) -> bool:
    return hot is None or hot == durable or (hot == TOMBSTONE and durable is None)


def _port(url: str) -> int:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    return int(rest.rsplit(":", 1)[1])


def _through(spec: ClientSpec, tier: Tier, port: int, proxy_port: int) -> ClientSpec:
    old, new = f":{port}", f":{proxy_port}"
    if tier is Tier.HOT:
        return spec.with_(redis_url=spec.redis_url.replace(old, new))
    if tier is Tier.WARM:
        return spec.with_(cosmos_endpoint=spec.cosmos_endpoint.replace(old, new))
    return spec.with_(blob_connection_string=spec.blob_connection_string.replace(old + "/", new + "/"))
