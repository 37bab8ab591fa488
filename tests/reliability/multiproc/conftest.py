"""Fixtures for the multi-process scenarios, and their figures at the end of the run.

The figures are printed as ``tiermem multi-process figures`` lines and written as JSON to
``$TIERMEM_TEST_MULTIPROC_REPORT`` when set (docs/reliability.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.multiproc.harness import RESULTS, Pool, Run
from tests.services.cosmos import CosmosServer
from tests.services.fixtures import require_local
from tests.services.redis import RedisServer


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.write_line("tiermem multi-process figures:")
    for name, figures in RESULTS.items():
        line = ", ".join(f"{k}={v}" for k, v in figures.items())
        terminalreporter.write_line(f"  {name}: {line}")
    path = os.environ.get("TIERMEM_TEST_MULTIPROC_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(RESULTS, fh, indent=2, sort_keys=True)


class Runs:
    """Makes :class:`Run` objects on this test's services and closes them afterwards."""

    def __init__(self, pool: Pool, redis: RedisServer, cosmos: Any, azurite: Any, tmp: Path) -> None:
        self.pool = pool
        self.redis = redis
        self.cosmos = cosmos
        self.azurite = azurite
        self.tmp = tmp
        self.made: list[Run] = []

    async def azure(self, name: str, **spec: Any) -> Run:
        run = Run.azure(name, self._dir(name), self.pool, self.redis.url, self.cosmos, self.azurite, **spec)
        self.made.append(run)
        await run.setup()
        return run

    async def embedded(self, name: str, **spec: Any) -> Run:
        run = Run.embedded(name, self._dir(name), self.pool, self.redis.url, **spec)
        self.made.append(run)
        await run.setup()
        return run

    async def pause_cosmos(self, seconds: float) -> None:
        """SIGSTOP the Cosmos stand-in for ``seconds`` (every process's warm tier hangs), then SIGCONT."""
        cosmos = require_local(self.cosmos, CosmosServer)
        await asyncio.to_thread(cosmos.pause)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(cosmos.resume)

    def _dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir()
        return path

    async def aclose(self) -> None:
        for run in self.made:
            await run.aclose()


@pytest.fixture(scope="session")
async def worker_pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pool]:
    pool = Pool(tmp_path_factory.mktemp("workers"))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def runs(
    worker_pool: Pool, own_redis: RedisServer, cosmos_server: Any, azurite: Any, tmp_path: Path
) -> AsyncIterator[Runs]:
    require_local(own_redis, RedisServer)
    # Refill here, not after a scenario: idle processes importing must not load the next test file.
    worker_pool.refill()
    made = Runs(worker_pool, own_redis, cosmos_server, azurite, tmp_path)
    try:
        yield made
    finally:
        own_redis.resume()  # a scenario that paused it and failed must not leave it stopped
        await made.aclose()
