"""The per-tier circuit breaker, driven by a fake clock."""

from __future__ import annotations

import pytest

from tiermem import CircuitState
from tiermem._breaker import CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


THRESHOLD = 3
TIMEOUT = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=THRESHOLD, reset_timeout=TIMEOUT, clock=clock)


def state(breaker: CircuitBreaker) -> CircuitState:
    # A call, not a property read, so the type checker does not narrow it across breaker calls.
    return breaker.state


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.failure()
    assert state(breaker) is CircuitState.OPEN


def test_states_map_to_gauge_integers() -> None:
    assert int(CircuitState.CLOSED) == 0
    assert int(CircuitState.HALF_OPEN) == 1
    assert int(CircuitState.OPEN) == 2


def test_starts_closed(breaker: CircuitBreaker) -> None:
    assert state(breaker) is CircuitState.CLOSED
    assert all(breaker.allow() for _ in range(100))


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    for _ in range(THRESHOLD - 1):
        breaker.failure()
        assert state(breaker) is CircuitState.CLOSED
        assert breaker.allow()
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()


def test_threshold_of_one_opens_on_first_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=TIMEOUT, clock=clock)
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN


def test_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        for _ in range(THRESHOLD - 1):
            breaker.failure()
        breaker.success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow()


def test_open_rejects_until_reset_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    for _ in range(5):
        clock.advance(TIMEOUT / 10)
        assert state(breaker) is CircuitState.OPEN
        assert not breaker.allow()
    clock.advance(TIMEOUT / 2 - 0.001)  # 9.999 s after opening
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()
    clock.advance(0.001)
    assert state(breaker) is CircuitState.HALF_OPEN


def test_half_open_allows_exactly_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(TIMEOUT)
    assert breaker.allow()
    assert state(breaker) is CircuitState.HALF_OPEN
    assert [breaker.allow() for _ in range(10)] == [False] * 10
    clock.advance(TIMEOUT * 100)  # time alone does not free a claimed probe slot
    assert not breaker.allow()
    assert state(breaker) is CircuitState.HALF_OPEN


def test_probe_success_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(TIMEOUT)
    assert breaker.allow()
    breaker.success()
    assert state(breaker) is CircuitState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    # Closed again with a fresh count: it takes a full threshold of failures to reopen.
    for _ in range(THRESHOLD - 1):
        breaker.failure()
    assert state(breaker) is CircuitState.CLOSED
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN


def test_probe_failure_reopens_for_another_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(TIMEOUT + 5)
    assert breaker.allow()
    breaker.failure()  # a single failed probe is enough, whatever the threshold
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()
    clock.advance(TIMEOUT - 0.5)
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()
    clock.advance(0.5)
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_release_frees_the_probe_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(TIMEOUT)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.success()
    assert state(breaker) is CircuitState.CLOSED


def test_release_while_closed_changes_nothing(breaker: CircuitBreaker) -> None:
    breaker.release()
    assert state(breaker) is CircuitState.CLOSED
    for _ in range(THRESHOLD - 1):
        breaker.failure()
    breaker.release()
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN


def test_uses_the_injected_clock_only(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=3600.0, clock=clock)
    breaker.failure()
    assert state(breaker) is CircuitState.OPEN  # an hour of real time would be needed without the fake
    clock.advance(3600.0)
    assert state(breaker) is CircuitState.HALF_OPEN


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -1.0)])
def test_rejects_bad_settings(threshold: int, timeout: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, reset_timeout=timeout)
