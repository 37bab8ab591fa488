"""The one place every tier call goes through: breaker, deadline, child span and metrics.

Deadlines come from one watchdog timer per guard (:mod:`.deadline`), not a timer per call.

:class:`Guard` wraps a tier store and offers the same verbs (``get``, ``set``, ``mget``...), so the
engine calls ``guard.get(key)`` where it would call ``store.get(key)``, and ``mypy --strict`` checks
those calls against the tier Protocol the guard is generic over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from tiermem._breaker import CircuitBreaker
from tiermem._codec import Record, RecordKind
from tiermem._config import TierOptions
from tiermem._engine.deadline import Watchdog
from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    CircuitOpenError,
    ClientClosedError,
    CorruptValueError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._instrumentation import _NO_SPAN, LatencyHistogram, Telemetry, TierStats, logger
from tiermem._lifecycle import ClientState
from tiermem._protocols import EnvelopeReader, HotMemory, InlineRead, TierStore
from tiermem._types import MemoryKey, Tier

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Guard", "HotGuard", "Lifecycle"]

_T = TypeVar("_T")
S = TypeVar("S", bound=TierStore, covariant=True)

_MARKERS: Final = frozenset({RecordKind.TOMBSTONE, RecordKind.FENCE})


def _hit_outcome(record: Record | None) -> str:
    return "miss" if record is None or record.kind in _MARKERS else "hit"


class Lifecycle:
    """Whether the client that owns the guards is open (shared by the client and its views)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ClientState.OPEN


class Guard(Generic[S]):
    """A tier store behind its circuit breaker, deadline, span and metrics, with the store's verbs.

    Timeouts become :class:`TierUnavailableError`; unavailability (and a batch where nothing got
    through) counts against the breaker; any other answer from the tier closes it.
    """

    __slots__ = (
        "_in_process",
        "_life",
        "_slots",
        "_spans",
        "_store",
        "_telemetry",
        "_watch",
        "attrs",
        "breaker",
        "options",
        "tier",
    )

    def __init__(
        self, tier: Tier, store: S, options: TierOptions, telemetry: Telemetry, life: Lifecycle
    ) -> None:
        self.tier = tier
        self._store = store
        self.options = options
        self.breaker = CircuitBreaker(
            failure_threshold=options.failure_threshold, reset_timeout=options.reset_timeout
        )
        info = store.info
        self._in_process = info.in_process  # nothing to wait for: a deadline would only cost time
        self.attrs: dict[str, Any] = {"tiermem.tier": tier.value, "db.system": info.db_system}
        if info.server_address:
            self.attrs["server.address"] = info.server_address
        self._telemetry = telemetry
        self._life = life
        self._watch: Watchdog | None = None  # deadlines of the calls in flight (one timer per loop)
        self._slots: dict[str, tuple[TierStats, LatencyHistogram]] = {}  # operation -> where it counts
        # Child spans for this tier's calls? Hot-tier calls are method-span attributes unless
        # detailed_spans (ADR 0016): a span costs more than an in-process or Redis hot hit.
        self._spans = telemetry.detailed_spans or tier is not Tier.HOT

    @property
    def store(self) -> S:
        return self._store

    # -- the store's verbs ----------------------------------------------------------------------------

    async def get(self, key: MemoryKey, *, operation: str = "get", size_hint: int = 0) -> Record | None:
        """``store.get``; ``size_hint`` (bytes, when a pointer names them) scales the deadline."""
        return await self._run(operation, self._store.get(key), key, outcome=_hit_outcome, nbytes=size_hint)

    async def peek(self, key: MemoryKey) -> Record | None:
        """``get`` made by the write path (what a pointer named): not counted as a hit or a miss."""
        return await self._run("get", self._store.get(key), key)

    async def exists(self, key: MemoryKey) -> bool:
        return await self._run("exists", self._store.exists(key), key)

    async def set(
        self,
        key: MemoryKey,
        record: Record,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        operation: str = "set",
    ) -> str | None:
        return await self._run(
            operation,
            self._store.set(key, record, if_match=if_match, if_absent=if_absent),
            key,
            nbytes=record.size,
        )

    async def delete(self, key: MemoryKey) -> None:
        await self._run("delete", self._store.delete(key), key)

    async def mget(self, keys: Sequence[MemoryKey], *, size_hint: int = 0) -> list[Record | None]:
        return await self._run("mget", self._store.mget(keys), nkeys=len(keys), nbytes=size_hint)

    async def mset(
        self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False, operation: str = "mset"
    ) -> None:
        """``store.mset``; ``operation`` names it in spans and metrics (``promote`` for promotions)."""
        nbytes = sum(record.size for _, record in items)
        await self._run(
            operation, self._store.mset(items, if_absent=if_absent), nkeys=len(items), nbytes=nbytes
        )

    async def setup(self) -> None:
        await self._run("setup", self._store.setup())

    async def ping(self) -> None:
        await self._run("ping", self._store.ping())

    def run(
        self, operation: str, call: Coroutine[Any, Any, _T], *, nkeys: int = 1
    ) -> Coroutine[Any, Any, _T]:
        """Guard a store call this class has no method for (a collection store's): breaker, timeout, span."""
        return self._run(operation, call, nkeys=nkeys)

    # -- around every call --------------------------------------------------------------------------

    async def _run(
        self,
        operation: str,
        call: Coroutine[Any, Any, _T],
        key: MemoryKey | None = None,
        *,
        nkeys: int = 1,
        outcome: Callable[[_T], str] | None = None,
        nbytes: int = 0,
    ) -> _T:
        """Await one tier call with breaker, timeout, span and metrics; translate timeouts."""
        breaker = self.breaker
        tier = self.tier
        telemetry = self._telemetry
        if self._life.state is ClientState.CLOSED:
            call.close()  # never started: close it so it is not reported as never awaited
            raise ClientClosedError("MemoryClient is closed", operation=operation)
        if not breaker.allow():
            call.close()
            self._record(operation, "error", 0.0)
            raise CircuitOpenError(
                "circuit breaker open", tier=tier, operation=operation, key=key.key if key else None
            )
        start = time.perf_counter()
        context: AbstractContextManager[Span | None] = _NO_SPAN
        kind = "error"
        note = False  # record the call as an attribute of the method span (ADR 0016)
        if telemetry.tracing:
            if self._spans:
                attrs = self.attrs if nkeys == 1 else {**self.attrs, "tiermem.keys": nkeys}
                context = telemetry.span(f"tiermem.{tier.value}.{operation}", attrs, client=True)
            else:
                note = True
        try:
            with context as span:
                try:
                    timeout = None if self._in_process else self.options.deadline(nbytes)
                    if timeout is None:
                        result = await call
                    else:
                        result = await self._within(call, timeout)
                except TimeoutError as exc:
                    self._failure(operation, exc)
                    self._record(operation, "error", time.perf_counter() - start)
                    raise TierUnavailableError(
                        f"timed out after {timeout}s",
                        tier=tier,
                        operation=operation,
                        key=key.key if key else None,
                    ) from exc
                except TierUnavailableError as exc:
                    self._failure(operation, exc)
                    self._record(operation, "error", time.perf_counter() - start)
                    raise
                except BatchWriteError as exc:
                    if exc.failed and all(isinstance(e, TierUnavailableError) for e in exc.failed.values()):
                        self._failure(operation, exc)  # nothing got through: an outage
                    else:
                        breaker.success()
                    self._record(operation, "error", time.perf_counter() - start)
                    raise
                except AuthenticationError as exc:
                    self._rejected(operation, exc)
                    self._record(operation, "error", time.perf_counter() - start)
                    raise
                except TierMemError:
                    breaker.success()  # the tier answered; the answer was a failure (conflict, corrupt...)
                    self._record(operation, "error", time.perf_counter() - start)
                    raise
                except BaseException:
                    breaker.release()
                    kind = "cancelled"
                    raise
                breaker.success()
                kind = outcome(result) if outcome is not None else "ok"
                self._record(operation, kind, time.perf_counter() - start)
                if span is not None and outcome is not None and nkeys == 1:
                    span.set_attribute("tiermem.hit", kind == "hit")
                return result
        finally:
            if note:
                telemetry.annotate(f"tiermem.{tier.value}.{operation}", kind)

    async def _within(self, call: Coroutine[Any, Any, _T], seconds: float) -> _T:
        """Await ``call``; raise :class:`TimeoutError` when it outlives ``seconds``."""
        loop = asyncio.get_running_loop()
        watch = self._watch
        if watch is None or watch.loop is not loop:
            watch = self._watch = Watchdog(loop)  # a client used from another loop gets its own
        token = watch.arm(seconds)
        try:
            result = await call
        except asyncio.CancelledError as exc:
            if watch.disarm(token):
                raise TimeoutError from exc  # our deadline cancelled it, not the caller
            raise
        except BaseException:
            watch.disarm(token)
            raise
        watch.disarm(token)
        return result

    def _record(self, operation: str, outcome: str, seconds: float) -> None:
        """Count one call in the stats and metrics (``Telemetry.record`` with this guard's slots)."""
        slot = self._slots.get(operation)
        if slot is None:
            slot = self._slots[operation] = self._telemetry.slot(self.tier, operation)
        self._telemetry.record_in(slot, self.tier, operation, outcome, seconds)

    def _failure(self, operation: str, exc: BaseException) -> None:
        if self.breaker.failure():
            logger.warning(
                "circuit breaker opened for the %s tier after %s: %s; calls skip it for %ss",
                self.tier.value,
                operation,
                exc,
                self.options.reset_timeout,
            )

    def _rejected(self, operation: str, exc: AuthenticationError) -> None:
        """Rejected credentials: the tier answered, and every caller sees the error (durable tiers)."""
        self.breaker.success()


class HotGuard(Guard[HotMemory]):
    """The hot tier's guard: the common verbs plus the hot-only ones (batch delete, compare-and-swap),
    and for an in-process store a read without awaiting (:meth:`peek_now`)."""

    __slots__ = ("_get_now",)

    def __init__(
        self, tier: Tier, store: HotMemory, options: TierOptions, telemetry: Telemetry, life: Lifecycle
    ) -> None:
        super().__init__(tier, store, options, telemetry, life)
        inline = self._in_process and isinstance(store, InlineRead)
        self._get_now = store.get_now if inline else None  # type: ignore[attr-defined]

    @property
    def inline(self) -> bool:
        """Whether :meth:`peek_now` may be called now: an in-process store, open, breaker closed."""
        return self._get_now is not None and self.breaker.closed and self._life.state is ClientState.OPEN

    def peek_now(self, key: MemoryKey) -> Record | None:
        """The in-process store's ``get`` without awaiting, not counted; see :meth:`count_read`.

        Only the client's hot-hit fast path calls it (when :attr:`inline`); anything but a hit is
        read again through :meth:`get`, which counts it, so nothing is counted twice.
        """
        assert self._get_now is not None
        record: Record | None = self._get_now(key)
        return record

    def count_read(self, record: Record | None, seconds: float) -> None:
        """Count a :meth:`peek_now` that answered (a value or a cached miss), as :meth:`get` would."""
        self._record("get", _hit_outcome(record), seconds)

    def _rejected(self, operation: str, exc: AuthenticationError) -> None:
        """Rejected credentials on hot are a configuration bug that callers never see (reads fall
        through): open the circuit at once, so hot is skipped, and say so at ERROR, once per open
        period instead of once per call (ADR 0017)."""
        self.breaker.trip()
        logger.error(
            "the hot tier rejected the credentials after %s (a configuration error, not an outage): "
            "%s; reads fall through and hot is skipped for %ss",
            operation,
            exc,
            self.options.reset_timeout,
        )

    async def mdelete(self, keys: Sequence[MemoryKey], *, operation: str = "invalidate") -> None:
        await self._run(
            operation, self._store.mdelete(keys), keys[0] if len(keys) == 1 else None, nkeys=len(keys)
        )

    async def mget_envelopes(self, keys: Sequence[MemoryKey]) -> list[bytes | CorruptValueError | None]:
        """``store.mget_envelopes``: only for a store that is an :class:`EnvelopeReader`."""
        store = cast("EnvelopeReader", self._store)
        return await self._run("mget", store.mget_envelopes(keys), nkeys=len(keys))

    async def swap(
        self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]], *, operation: str = "swap"
    ) -> list[bool]:
        first = items[0][0] if len(items) == 1 else None
        return await self._run(operation, self._store.swap(items), first, nkeys=len(items))
