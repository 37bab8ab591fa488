"""A per-tier circuit breaker: stop calling a tier that keeps failing, probe it after a cooldown."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker", "CircuitState"]


class CircuitState(enum.IntEnum):
    """Breaker state; the integer is what the ``tiermem.circuit.state`` gauge reports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive unavailability failures; probes after ``reset_timeout``.

    In the half-open state exactly one call is let through as a probe: success closes the
    breaker, failure opens it again for another ``reset_timeout``. Only "could not reach the
    tier" failures count; misses, conflicts and bad input do not.
    """

    __slots__ = ("_clock", "_failures", "_opened_at", "_probing", "failure_threshold", "reset_timeout")

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self.reset_timeout:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def closed(self) -> bool:
        """Whether calls flow normally (cheaper than comparing :attr:`state`)."""
        return self._opened_at is None

    def allow(self) -> bool:
        """Whether a call may go to the tier now (claims the probe slot when half-open)."""
        if self._opened_at is None:
            return True
        if self._probing or self._clock() - self._opened_at < self.reset_timeout:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> bool:
        """Count a failure; return True when this failure opened the circuit."""
        self._failures += 1
        was_open = self._opened_at is not None
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False
        return not was_open and self._opened_at is not None

    def trip(self) -> None:
        """Open now, whatever the count: a failure that every call would meet alike (rejected
        credentials), so there is nothing to wait for before skipping the tier."""
        self._failures = max(self._failures, self.failure_threshold)
        self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """The probe ended without telling us anything (e.g. cancelled): let another call probe."""
        self._probing = False
