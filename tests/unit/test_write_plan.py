"""The write plan is a pure function: where a value goes, and every refusal, with no I/O."""

from __future__ import annotations

import pytest

from tiermem import (
    ConfigurationError,
    InvalidInputError,
    InvalidTTLError,
    MemoryKey,
    Policy,
    Tier,
    ValueTooLargeError,
)
from tiermem._codec import RecordKind, make_record
from tiermem._engine.hot import ABSENT, MISS, classify
from tiermem._engine.writes import Layout, Route, plan

MK = MemoryKey("t", "n", "k")
POLICY = Policy(hot_max_bytes=100, warm_max_bytes=1000)
ALL = Layout(hot=True, warm=True, cold=True)


def sized(size: int) -> object:
    return make_record(RecordKind.BYTES, b"x" * (size - 17))  # 17: the envelope header


@pytest.mark.parametrize(
    ("size", "tier", "layout", "route", "cache"),
    [
        (50, None, ALL, Route.DURABLE, True),  # small: durable, then write-through
        (500, None, ALL, Route.DURABLE, False),  # above hot_max_bytes: fence hot
        (5000, None, ALL, Route.LARGE, False),  # above warm_max_bytes: cold + pointer
        (50, Tier.WARM, ALL, Route.DURABLE, False),
        (50, Tier.COLD, ALL, Route.LARGE, False),
        (50, Tier.COLD, Layout(hot=True, warm=False, cold=True), Route.DURABLE, False),
        (50, None, Layout(hot=True, warm=False, cold=False), Route.HOT_ONLY, True),
        (5000, None, Layout(hot=False, warm=False, cold=True), Route.DURABLE, False),
        (50, None, Layout(hot=False, warm=True, cold=False), Route.DURABLE, False),
    ],
)
def test_where_a_value_goes(size: int, tier: Tier | None, layout: Layout, route: Route, cache: bool) -> None:
    write = plan(MK, sized(size), tier, None, layout, POLICY)  # type: ignore[arg-type]
    assert (write.route, write.cache) == (route, cache)


@pytest.mark.parametrize(
    ("size", "tier", "ttl", "layout", "kwargs", "error", "match"),
    [
        (50, Tier.HOT, None, ALL, {}, InvalidTTLError, "ttl"),
        (500, Tier.HOT, 5.0, ALL, {}, ValueTooLargeError, "hot_max_bytes"),
        (5000, Tier.WARM, None, ALL, {}, ValueTooLargeError, "warm_max_bytes"),
        (5000, None, None, Layout(hot=True, warm=True, cold=False), {}, ValueTooLargeError, "no cold tier"),
        (50, Tier.WARM, None, Layout(hot=True, warm=False, cold=True), {}, ConfigurationError, "warm tier"),
        (50, Tier.HOT, 5.0, Layout(hot=False, warm=True, cold=False), {}, ConfigurationError, "hot tier"),
        (50, "hot", None, ALL, {}, InvalidInputError, "tiermem.Tier"),
        (50, None, None, ALL, {"if_match": "e", "if_absent": True}, InvalidInputError, "either"),
        (50, Tier.HOT, 5.0, ALL, {"if_match": "e"}, InvalidInputError, "durable tier"),
    ],
)
def test_refusals_happen_in_the_plan(
    size: int,
    tier: object,
    ttl: float | None,
    layout: Layout,
    kwargs: dict[str, object],
    error: type,
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        plan(MK, sized(size), tier, ttl, layout, POLICY, **kwargs)  # type: ignore[arg-type]


def test_how_a_hot_record_classifies() -> None:
    value = make_record(RecordKind.JSON, b"1", expires_at=200.0)
    assert classify(None, 100.0, 0) is None  # nothing there: a reader may take a lease
    assert classify(value, 300.0, 0) is None  # expired
    assert classify(make_record(RecordKind.FENCE, b"", expires_at=200.0), 100.0, 0) is None  # legacy
    assert classify(make_record(RecordKind.LEASE, b"t", expires_at=200.0), 100.0, 0) is MISS  # someone's
    assert classify(make_record(RecordKind.TOMBSTONE, b"", expires_at=200.0), 100.0, 0) is ABSENT
    assert classify(value, 100.0, 0) is value
    assert classify(value.for_hot(200.0, 3), 100.0, 4) is None  # filled before the epoch was raised
    assert classify(value.for_hot(200.0, 4), 100.0, 4) is not None
