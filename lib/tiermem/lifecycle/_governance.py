"""``Governance``: what a client enforces and records on every write (quotas, audit) and the retention
rules ``maintain()`` applies. One per client core; the write path calls :meth:`Governance.guard`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Protocol

from tiermem._errors import BatchWriteError, QuotaExceededError, TierMemError, TierUnavailableError
from tiermem._protocols import TierStore
from tiermem._types import MemoryKey, Tier
from tiermem.lifecycle._audit import Audit
from tiermem.lifecycle._model import Quota, QuotaPolicy, RetentionPolicy
from tiermem.lifecycle._quota import HasCounters, LocalCounters, QuotaCounters
from tiermem.lifecycle._store import HasLifecycle
from tiermem.lifecycle._telemetry import lifecycle_metrics

if TYPE_CHECKING:
    from tiermem._config import Policy

__all__ = ["EngineView", "Existing", "Governance", "Reconciler", "TierHandle"]

Existing = Callable[[list[str]], Awaitable[AbstractSet[str]]]
"""Which of these keys (of the write's namespace) already hold a value."""

Reconciler = Callable[[str], Awaitable[None]]
"""Recounts one tenant's usage into its quota counters (set by the client: it needs the tiers)."""


class TierHandle(Protocol):
    """A configured tier as lifecycle code sees it (the engine's guard): which tier, which adapter."""

    @property
    def tier(self) -> Tier: ...

    @property
    def store(self) -> TierStore: ...


class HotView(Protocol):
    @property
    def dirty(self) -> MutableMapping[MemoryKey, int]: ...

    async def invalidate(self, keys: Sequence[MemoryKey], *, operation: str = "invalidate") -> None: ...


class EngineView(Protocol):
    """What lifecycle operations need from a client's engine (structural, so no import cycle)."""

    @property
    def closed(self) -> bool: ...

    @property
    def guards(self) -> Sequence[TierHandle]: ...

    def guard(self, tier: Tier) -> TierHandle | None: ...

    @property
    def hot(self) -> HotView: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def governance(self) -> Governance: ...

    def clock(self) -> float: ...


_WRITE_OPS: Final = frozenset({"set", "mset", "put", "put_many"})


class Governance:
    """Quota enforcement, audit events and retention rules of one client (immutable policies).

    Args:
        retention: what ``maintain()`` archives or expires.
        quotas: per-tenant budgets checked on every write.
        record_keys: put raw keys in audit events (off: a stable hash).
        logger_provider: an OpenTelemetry ``LoggerProvider`` for audit records (default: the global one).
    """

    def __init__(
        self,
        *,
        retention: RetentionPolicy | None = None,
        quotas: QuotaPolicy | None = None,
        record_keys: bool = False,
        logger_provider: object = None,
    ) -> None:
        self.retention = retention if retention is not None else RetentionPolicy()
        self.quotas = quotas if quotas is not None else QuotaPolicy()
        self.audit = Audit(record_keys=record_keys, logger_provider=logger_provider)
        self._counters: QuotaCounters | None = None
        self._reconciled: dict[str, float] = {}
        self.reconciler: Reconciler | None = None
        self._quotas_on = self.quotas.active

    def bind(self, core: EngineView) -> Governance:
        """Choose where counters live: Redis when the hot tier is Redis, else this process."""
        hot = core.guard(Tier.HOT)
        self._counters = LocalCounters()
        if hot is not None and isinstance(hot.store, HasLifecycle):
            store = hot.store.lifecycle_store()
            if isinstance(store, HasCounters):
                self._counters = store.quota_counters()
        return self

    @property
    def counters(self) -> QuotaCounters:
        if self._counters is None:
            self._counters = LocalCounters()
        return self._counters

    @property
    def watching(self) -> bool:
        """Whether writes need the guard at all (quotas configured, or someone receives audit events)."""
        return self._quotas_on or self.audit.enabled

    @asynccontextmanager
    async def guard(
        self,
        operation: str,
        tenant: str,
        namespace: str,
        writes: Sequence[tuple[str, int]],
        existing: Existing | None = None,
    ) -> AsyncIterator[None]:
        """Reserve quota for ``writes`` ((key, bytes) pairs; bytes 0 for deletes), run the block, give the
        reservation back if it fails, and emit one audit event with the outcome.

        Args:
            existing: which of the keys already hold a value (asked only when the quota refuses, so
                overwrites at the quota are not charged as new items).

        Raises:
            QuotaExceededError: the tenant's quota refuses the write (nothing was written).
        """
        keys = [k for k, _ in writes]
        charged = (0, 0)
        if self._quotas_on and operation in _WRITE_OPS:
            quota = self.quotas.for_tenant(tenant)
            if quota.limited:
                try:
                    charged = await self._reserve(tenant, quota, writes, operation, existing)
                except QuotaExceededError as exc:
                    lifecycle_metrics().quota_refused(tenant, exc.resource)
                    self.audit.emit(
                        operation,
                        "quota_exceeded",
                        tenant=tenant,
                        namespace=namespace,
                        keys=keys,
                        extra={"resource": exc.resource, "used": exc.used, "limit": exc.limit},
                    )
                    raise
        try:
            yield
        except BaseException as exc:
            if charged != (0, 0):
                refund = _refund(exc, writes)
                await self.counters.add(tenant, -refund[0], -refund[1], -charged[0], -charged[1])
            failure = {"error": type(exc).__name__}
            self.audit.emit(operation, "error", tenant=tenant, namespace=namespace, keys=keys, extra=failure)
            raise
        if charged != (0, 0):
            await self.counters.add(tenant, 0, 0, -charged[0], -charged[1])  # landed: no longer in flight
        self.audit.emit(operation, "ok", tenant=tenant, namespace=namespace, keys=keys)

    async def _reserve(
        self,
        tenant: str,
        quota: Quota,
        writes: Sequence[tuple[str, int]],
        operation: str,
        existing: Existing | None,
    ) -> tuple[int, int]:
        """Reserve what ``writes`` add; return the reservation (to settle when the write ends)."""
        charged = (len(writes), sum(n for _, n in writes))
        refusal = await self._try(tenant, quota, charged, operation)
        if refusal is None:
            return charged
        if existing is not None and refusal.resource == "items":
            present = await existing([k for k, _ in writes])
            if present:  # overwrites add no item
                charged = (charged[0] - len(present), charged[1])
                refusal = await self._try(tenant, quota, charged, operation)
                if refusal is None:
                    return charged
        last = self._reconciled.get(tenant)
        interval = self.quotas.reconcile_interval
        if self.reconciler is not None and (last is None or time.monotonic() - last >= interval):
            self._reconciled[tenant] = time.monotonic()
            await self.reconciler(tenant)  # counters over-count overwrites and deletes: recount, retry once
            refusal = await self._try(tenant, quota, charged, operation)
            if refusal is None:
                return charged
        raise refusal

    async def _try(
        self, tenant: str, quota: Quota, charged: tuple[int, int], operation: str
    ) -> QuotaExceededError | None:
        n, b = charged
        counts = await self.counters.add(tenant, n, b, n, b)
        over = None
        if quota.max_items is not None and counts.items > quota.max_items:
            over = ("items", counts.items - n, quota.max_items, n)
        elif quota.max_bytes is not None and counts.bytes > quota.max_bytes:
            over = ("bytes", counts.bytes - b, quota.max_bytes, b)
        if over is None:
            return None
        await self.counters.add(tenant, -n, -b, -n, -b)  # refused: the reservation is taken back whole
        resource, used, limit, adding = over
        return QuotaExceededError(
            f"tenant {tenant!r} would exceed its quota of {limit} {resource} "
            f"(counted {used}, adding {adding})",
            tenant=tenant,
            resource=resource,
            used=used,
            limit=limit,
            operation=operation,
        )


def _refund(exc: BaseException, writes: Sequence[tuple[str, int]]) -> tuple[int, int]:
    """What a failed write gives back: only writes known not to have landed. An unknown outcome (timeout,
    cancellation) keeps its reservation, so the counters stay an upper bound."""
    if isinstance(exc, BatchWriteError):
        failed = {k for k, e in exc.failed.items() if not isinstance(e, TierUnavailableError)}
        gone = [n for k, n in writes if k in failed]
        return len(gone), sum(gone)
    if isinstance(exc, TierMemError) and not isinstance(exc, TierUnavailableError):
        return len(writes), sum(n for _, n in writes)
    return 0, 0
