"""One benchmark run: services, scenarios in order, progress, the report."""

from __future__ import annotations

import asyncio
import datetime
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import (
    _batches,
    _codec,
    _collections,
    _durable,
    _embedded,
    _hot,
    _langgraph,
    _memory,
    _near,
    _tracing,
)
from benchmarks._harness import Row, Scenario, measure
from benchmarks._profile import profile_embedded, profile_hot
from benchmarks._report import Report
from benchmarks._services import Endpoints, describe_machine, local_services
from tiermem.cli._bench import GROUPS  # one list of scenario groups, shared with `tiermem bench`

__all__ = ["GROUPS", "BenchConfig", "run"]

DEFAULT_ROUNDS: Final = 15


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run.

    Attributes:
        rounds: measured rounds per scenario (``None``: 15, or 1 with ``quick``).
        quick: tiny sizes and batches, one round: a smoke run that takes seconds.
        endpoints: services to measure; all ``None`` is the embedded default.
        start_services: start local redis-server, the Cosmos stand-in and Azurite for the run.
        only: scenario groups to run (empty: all of :data:`GROUPS`).
        profile: also profile tiermem's hot path (``_profile``).
    """

    rounds: int | None = None
    quick: bool = False
    endpoints: Endpoints = field(default_factory=Endpoints)
    start_services: bool = False
    only: tuple[str, ...] = ()
    profile: bool = False

    @property
    def effective_rounds(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return 1 if self.quick else DEFAULT_ROUNDS

    @property
    def groups(self) -> tuple[str, ...]:
        return self.only or GROUPS

    @property
    def batch_seconds(self) -> float:
        return 0.002 if self.quick else 0.15


@contextmanager
def _quiet_peers() -> Iterator[None]:
    # aiocache 0.12 and cashews call redis-py APIs that redis-py 8 deprecates (setex, close); the
    # rows note it. The filter is scoped to this run and to those two packages.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(aiocache|cashews)(\.|$)")
        yield


class _Progress:
    def __init__(self, console: Console | None, total: int) -> None:
        enabled = console is not None and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = self._progress.add_task("starting", total=total)

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def hook(self) -> Callable[[str, int, int], None]:
        def advance(scenario: str, done: int, total: int) -> None:
            self._progress.update(self._task, description=f"{scenario} {done}/{total}", advance=1)

        return advance


def _plan(config: BenchConfig, endpoints: Endpoints) -> int:
    """How many scenario-rounds the progress bar will count."""
    groups = config.groups
    count = 0
    if "hot" in groups:
        count += 13 if endpoints.redis_url else 6
    if "embedded" in groups:
        count += 4
    durable = bool(endpoints.redis_url and endpoints.cosmos_endpoint and endpoints.cosmos_key)
    if "warm" in groups and durable:
        count += 2
    if "cold" in groups and durable and endpoints.blob_connection_string:
        count += 4
    if "collections" in groups:
        count += 4 if durable else 2
    if "tracing" in groups:
        count += 1
    if "codec" in groups:
        count += 4
    if "langgraph" in groups:
        count += 3
    return max(1, count * config.effective_rounds)


def _hot_scenarios(bench: _hot.HotBench) -> list[Scenario]:
    return [
        _hot.get_scenario(bench),
        _hot.set_scenario(bench),
        _hot.mget_scenario(bench),
        _hot.mset_scenario(bench),
    ]


async def _measure_all(scenarios: list[Scenario], config: BenchConfig, progress: _Progress) -> list[Row]:
    rows: list[Row] = []
    for scenario in scenarios:
        progress.describe(f"{scenario.id} warm-up")
        rows += await measure(
            scenario,
            rounds=config.effective_rounds,
            batch_seconds=config.batch_seconds,
            progress=progress.hook(),
        )
    return rows


async def _run(config: BenchConfig, endpoints: Endpoints, report: Report, progress: _Progress) -> None:
    groups = config.groups
    quick = config.quick
    keys = 50 if quick else 1000
    async with AsyncExitStack() as stack:
        hot = None
        if "hot" in groups or config.profile:
            progress.describe("hot: loading keys")
            hot = await _hot.open_hot(stack, redis_url=endpoints.redis_url, keys=keys, batch=keys)
        if "hot" in groups and hot is not None:
            # The in-process hot tier is measured in every run; the Redis one when there is Redis.
            local = hot
            scenarios = []
            if hot.on_redis:
                scenarios += _hot_scenarios(hot)
                scenarios.append(await _batches.mixed_scenario(hot))
                scenarios.append(await _batches.leases_scenario(stack, hot))
                progress.describe("hot: filling the near cache")
                scenarios.append(await _near.near_scenario(stack, hot))
                progress.describe("in-process hot: loading keys")
                local = await _hot.open_hot(stack, redis_url=None, keys=keys, batch=keys)
            else:
                report.rows += (
                    _hot.unavailable_rows() + _near.unavailable_rows() + _batches.unavailable_rows()
                )
            scenarios += _hot_scenarios(local)
            scenarios.append(await _batches.mixed_scenario(local))
            scenarios.append(_memory.memory_scenario(items=1_000 if quick else 10_000))
            report.rows += await _measure_all(scenarios, config, progress)

        embedded = None
        if "embedded" in groups or config.profile:
            progress.describe("embedded: loading keys")
            embedded = await _embedded.open_embedded(stack, quick=quick)
        if "embedded" in groups and embedded is not None:
            report.rows += await _measure_all(_embedded.embedded_scenarios(embedded), config, progress)

        want_warm, want_cold = "warm" in groups, "cold" in groups
        if want_warm or want_cold:
            na = [row for row in _durable.unavailable_rows(endpoints) if row.group in groups]
            measured_groups = {"warm", "cold"} - {row.group for row in na}
            if measured_groups & set(groups):
                progress.describe("warm/cold: setting up")
                durable = await _durable.open_durable(stack, endpoints, quick=quick)
                scenarios = []
                if want_warm:
                    scenarios += _durable.warm_scenarios(durable)
                if want_cold and "cold" in measured_groups:
                    scenarios += await _durable.cold_scenarios(durable, quick=quick)
                report.rows += await _measure_all(scenarios, config, progress)
            report.rows += na

        if "collections" in groups:
            progress.describe("collections: loading items")
            scenarios = await _collections.collection_scenarios(stack, endpoints, quick=quick)
            report.rows += await _measure_all(scenarios, config, progress)
            report.rows += _collections.unavailable_rows(endpoints)

        if "tracing" in groups:
            progress.describe("tracing: loading keys")
            tracing = await _tracing.tracing_scenario(stack, redis_url=endpoints.redis_url, keys=keys)
            report.rows += await _measure_all([tracing], config, progress)

        if "codec" in groups:
            report.rows += await _measure_all(_codec.codec_scenarios(quick=quick), config, progress)

        if "compression" in groups:
            progress.describe("compression levels")
            report.compression = _codec.compression_table(quick=quick, rounds=config.effective_rounds)
            report.threshold = _codec.threshold_table(quick=quick, rounds=config.effective_rounds)

        if "langgraph" in groups:
            progress.describe("langgraph: writing the thread")
            lg = await _langgraph.open_langgraph(stack, endpoints, quick=quick)
            report.rows += await _measure_all(_langgraph.langgraph_scenarios(lg), config, progress)

        if config.profile and hot is not None:
            progress.describe("profiling the hot path")
            report.profile = await profile_hot(hot, quick=quick)
            if embedded is not None:
                progress.describe("profiling the embedded tiers")
                await profile_embedded(report.profile, embedded, quick=quick)
        progress.describe("closing")


def run(config: BenchConfig, *, console: Console | None = None) -> Report:
    """Run the benchmark (blocking); ``console`` shows a progress bar when it is a terminal."""
    started = time.time()
    context = local_services(config.endpoints) if config.start_services else nullcontext(config.endpoints)
    with _quiet_peers(), context as endpoints:
        meta: dict[str, Any] = {
            "started_at": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(),
            "quick": config.quick,
            "rounds": config.effective_rounds,
            "batch_seconds": config.batch_seconds,
            "groups": list(config.groups),
            "services": endpoints.describe(),
            "machine": describe_machine(),
            "zstd_measured": _codec.zstd_available(),
        }
        report = Report(meta=meta)
        with _Progress(console, _plan(config, endpoints)) as progress:
            asyncio.run(_run(config, endpoints, report, progress))
    report.meta["duration_s"] = round(time.time() - started, 2)
    return report
