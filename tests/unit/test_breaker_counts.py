"""Issue 13 item 5: the breaker every tenant shares counts only unavailability.

A tier that answers with a failure caused by one caller's input or data (too large, corrupt,
invalid, a precondition) is reachable; counting those would let one tenant open the breaker and
fail every other tenant's healthy calls. Real SQLite tier behind a double that raises on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.doubles import WrappedStore
from tiermem import (
    BatchWriteError,
    CircuitState,
    ConflictError,
    CorruptValueError,
    InvalidKeyError,
    InvalidValueError,
    MemoryBuilder,
    MemoryKey,
    Record,
    SqliteWarmMemory,
    Tier,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
)

_THRESHOLD = 2


def _too_large() -> TierMemError:
    return ValueTooLargeError(
        "item is larger than the tier accepts", size=3 << 20, limit=2 << 20, tier=Tier.WARM
    )


def _partial_batch() -> TierMemError:
    return ConflictError("etag does not match", tier=Tier.WARM)  # single-key calls; mset: see FailingWarm


class FailingWarm(WrappedStore):
    """Raises ``error()`` from every read and write while it is set."""

    def __init__(self, inner: SqliteWarmMemory) -> None:
        super().__init__(inner, Tier.WARM)
        self.error: Callable[[], TierMemError] | None = None

    async def _enter(self, operation: str, keys: Sequence[MemoryKey] = ()) -> None:
        await super()._enter(operation, keys)
        if self.error is not None and operation != "setup":
            raise self.error()

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        if self.error is not _partial_batch:
            return await super().mset(items, if_absent=if_absent)
        # Every item but the last is written; the last is too large for the tier.
        await self.inner.mset(items[:-1], if_absent=if_absent)
        last = items[-1][0].key
        raise BatchWriteError(
            "one item too large",
            written=[mk.key for mk, _ in items[:-1]],
            failed={last: ValueTooLargeError("too large", size=3 << 20, limit=2 << 20, tier=Tier.WARM)},
            tier=Tier.WARM,
        )


ANSWERS: dict[str, Callable[[], TierMemError]] = {
    "too-large": _too_large,
    "corrupt": lambda: CorruptValueError("bad checksum", tier=Tier.WARM),
    "invalid-value": lambda: InvalidValueError("not JSON"),
    "invalid-key": lambda: InvalidKeyError("not a key"),
    "conflict": lambda: ConflictError("etag does not match", tier=Tier.WARM),
    "batch-not-an-outage": _partial_batch,
}


@pytest.mark.parametrize("answer", list(ANSWERS), ids=list(ANSWERS))
async def test_failures_the_tier_answered_never_open_the_breaker(tmp_path: Path, answer: str) -> None:
    warm = FailingWarm(SqliteWarmMemory(tmp_path / "warm.db"))
    memory = MemoryBuilder().with_warm(warm).with_resilience(Tier.WARM, failure_threshold=_THRESHOLD).build()
    async with memory:
        await memory.setup()
        warm.error = ANSWERS[answer]
        for i in range(3 * _THRESHOLD):
            with pytest.raises(TierMemError):
                await memory.get(f"k{i}")
            with pytest.raises(TierMemError):
                await memory.mset({f"a{i}": 1, f"b{i}": 2})
        assert memory.circuit_state(Tier.WARM) is CircuitState.CLOSED
        warm.error = None
        await memory.set("healthy", 1)  # another caller's call goes through
        assert await memory.get("healthy") == 1


async def test_unavailability_still_opens_it(tmp_path: Path) -> None:
    warm = FailingWarm(SqliteWarmMemory(tmp_path / "warm.db"))
    memory = MemoryBuilder().with_warm(warm).with_resilience(Tier.WARM, failure_threshold=_THRESHOLD).build()
    async with memory:
        await memory.setup()
        warm.error = lambda: TierUnavailableError("refused", tier=Tier.WARM)
        for i in range(_THRESHOLD):
            with pytest.raises(TierUnavailableError):
                await memory.get(f"k{i}")
        assert memory.circuit_state(Tier.WARM) is CircuitState.OPEN
