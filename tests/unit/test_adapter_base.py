"""The plumbing every adapter shares (tiers/_base.py): fan-out into BatchWriteError, bounded
concurrency, miss handling, translation, re-tagging, the extra guard and unknown options."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from tests.records import k
from tiermem import (
    BatchWriteError,
    ConflictError,
    CorruptValueError,
    MemoryKey,
    Record,
    RecordKind,
    Tier,
    TierError,
    TierInfo,
    TierMemError,
    TierUnavailableError,
)
from tiermem._codec import make_record
from tiermem.tiers._base import (
    BatchOutcome,
    TierAdapter,
    brief,
    check_options,
    for_each,
    require_extra,
    retag_corrupt,
)

REC = make_record(RecordKind.STR, b"v")


class SdkError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}\nresponse body that must not reach messages")
        self.status = status


class Adapter(TierAdapter):
    tier: ClassVar[Tier] = Tier.WARM
    failures: ClassVar[tuple[type[BaseException], ...]] = (SdkError,)

    def __init__(self, outcomes: dict[str, BaseException | None] | None = None, concurrency: int = 2) -> None:
        self._info = TierInfo(db_system="test")
        self.outcomes = outcomes or {}
        self.concurrency = concurrency
        self.in_flight = 0
        self.peak = 0
        self.writes: list[tuple[str, bytes]] = []

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierMemError:
        assert isinstance(exc, SdkError)
        cls = TierUnavailableError if exc.status == 503 else ConflictError if exc.status == 409 else TierError
        return cls(brief(exc), tier=self.tier, operation=operation, key=key.key if key else None)

    def _is_miss(self, exc: BaseException) -> bool:
        return isinstance(exc, SdkError) and exc.status == 404

    async def write(self, mk: MemoryKey, record: Record) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            outcome = self.outcomes.get(mk.key)

            async def call() -> None:
                if outcome is not None:
                    raise outcome
                self.writes.append((mk.key, record.payload))

            await self._sdk("mset", mk, call)
        finally:
            self.in_flight -= 1

    async def mset(self, items: list[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        await self._write_each(
            items, self.write, if_absent=if_absent, concurrency=self.concurrency, what="test"
        )


async def test_fan_out_collects_every_failure_by_key_and_names_what_was_written() -> None:
    adapter = Adapter({"b": SdkError(503), "c": SdkError(500)}, concurrency=3)
    items = [(k(name), REC) for name in "abcdef"]
    with pytest.raises(BatchWriteError) as info:
        await adapter.mset(items)
    error = info.value
    assert sorted(error.written) == ["a", "d", "e", "f"]
    assert set(error.failed) == {"b", "c"}
    assert isinstance(error.failed["b"], TierUnavailableError) and isinstance(error.failed["c"], TierError)
    assert error.tier is Tier.WARM and "test mset failed" in str(error)
    assert error.__cause__ in error.failed.values()
    assert 1 < adapter.peak <= 3  # bounded, and actually concurrent


async def test_fan_out_with_if_absent_keeps_live_values_without_failing() -> None:
    adapter = Adapter({"b": SdkError(409)})
    await adapter.mset([(k("a"), REC), (k("b"), REC)], if_absent=True)
    assert adapter.writes == [("a", b"v")]
    with pytest.raises(BatchWriteError) as info:
        await Adapter({"b": SdkError(409)}).mset([(k("a"), REC), (k("b"), REC)])
    assert isinstance(info.value.failed["b"], ConflictError)


async def test_fan_out_writes_a_repeated_key_once_with_its_last_record() -> None:
    adapter = Adapter()
    later = make_record(RecordKind.STR, b"later")
    await adapter.mset([(k("a"), REC), (k("a"), later)])
    assert adapter.writes == [("a", b"later")]


async def test_sdk_wrapper_translates_maps_misses_and_lets_bugs_through() -> None:
    adapter = Adapter()

    async def fail(status: int) -> None:
        raise SdkError(status)

    assert await adapter._sdk_or_none("get", k("a"), lambda: fail(404)) is None
    with pytest.raises(TierError, match="status 404") as info:
        await adapter._sdk("get", k("a"), lambda: fail(404))  # a miss only where a miss is asked for
    assert "response body" not in str(info.value) and isinstance(info.value.__cause__, SdkError)
    with pytest.raises(TierUnavailableError):
        await adapter._sdk_or_none("get", k("a"), lambda: fail(503))

    async def bug() -> None:
        raise KeyError("a bug, not a tier failure")

    with pytest.raises(KeyError):
        await adapter._sdk("get", k("a"), bug)


async def test_for_each_bounds_concurrency_and_raises_the_first_tier_error_itself() -> None:
    running = peak = 0
    seen: list[int] = []

    async def one(i: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        seen.append(i)
        if i == 5:
            raise TierUnavailableError("down", tier=Tier.COLD)

    async def source() -> AsyncIterator[int]:
        for i in range(100):
            yield i

    with pytest.raises(TierUnavailableError, match="down"):  # not an ExceptionGroup
        await for_each(source(), one, 4)
    assert peak == 4 and len(seen) < 100  # the rest was not started


def test_batch_outcome_reports_an_outage_as_itself() -> None:
    outcome = BatchOutcome()
    outage = TierUnavailableError("down", tier=Tier.HOT)
    outcome.fail(k("a"), outage)
    with pytest.raises(TierUnavailableError) as info:
        outcome.raise_failures(Tier.HOT, "hot", outage_as_itself=True)
    assert info.value is outage
    outcome.ok(k("b"))
    with pytest.raises(BatchWriteError):
        outcome.raise_failures(Tier.HOT, "hot", outage_as_itself=True)
    BatchOutcome().raise_failures(Tier.HOT, "hot")  # nothing failed: nothing raised


def test_retag_check_options_brief_and_the_extra_guard() -> None:
    damaged = CorruptValueError("bad crc")
    retagged = retag_corrupt(damaged, Tier.COLD, "get", k("a"))
    assert (retagged.tier, retagged.operation, retagged.message) == (Tier.COLD, "get", "bad crc")
    assert retagged.key_hash is not None
    with pytest.raises(TypeError, match="max_conections"):
        check_options({"max_conections": 1}, {"max_connections"}, "Thing")
    check_options({"max_connections": 1}, {"max_connections"}, "Thing")
    assert brief(ValueError("first\nsecond")) == "first" and len(brief(ValueError("x" * 999))) == 300
    require_extra(None, "Thing", "sdk", "extra")
    with pytest.raises(ImportError, match=r"pip install 'tiermem\[extra\]'") as info:
        require_extra(ImportError("no sdk"), "Thing", "sdk", "extra")
    assert isinstance(info.value.__cause__, ImportError)
