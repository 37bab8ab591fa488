"""``maintain()``: apply retention (archive idle values to cold, expire old ones), sweep expired cold
objects, and reconcile quota counters. Idempotent and resumable; safe beside live writers.

Every change is conditional on the ETag the listing saw (docs/adr/0014):

- archive: write the value to a fresh cold version, then replace the warm item by a pointer with
  ``if_match``; if a writer changed the item in between, the pointer is refused, the new cold version
  is deleted and the item is left for the next run. So a value written during archival is never
  replaced by the older archived copy. Hot copies stay valid (the value did not change).
- expire: delete the warm item only if its ETag still matches, invalidate hot (ADR 0006), then the
  cold version its pointer named. A write that lands in between keeps its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tiermem._codec import RecordKind
from tiermem._errors import ConfigurationError, ConflictError, TierError
from tiermem._pointers import cold_version, pointer_target
from tiermem._protocols import MemoryKey, Tier
from tiermem.lifecycle._model import MaintainReport, RetentionPolicy
from tiermem.lifecycle._store import HasLifecycle, StoredEntry, WarmScopeStore
from tiermem.lifecycle._telemetry import lifecycle_metrics
from tiermem.lifecycle._tiers import check_open, store_of

if TYPE_CHECKING:
    from tiermem.lifecycle._governance import EngineView as _Core

__all__ = ["run_maintenance"]


class _Run:
    def __init__(self, core: _Core, retention: RetentionPolicy, now: float, dry_run: bool) -> None:
        self.core = core
        self.retention = retention
        self.now = now
        self.dry_run = dry_run
        self.report = MaintainReport(dry_run=dry_run)
        self.warm: Any = store_of(core, Tier.WARM)
        self.cold: Any = store_of(core, Tier.COLD)
        self.hot: Any = store_of(core, Tier.HOT)

    async def entry(self, store: WarmScopeStore, e: StoredEntry) -> None:
        rule = self.retention.for_namespace(e.namespace)
        if e.collection is not None or not rule.active or e.written_at is None or e.etag is None:
            return  # retention covers key-value items of tiers that record write times
        age = self.now - e.written_at
        if rule.expire_after is not None and age >= rule.expire_after:
            await self.expire(store, e)
        elif rule.archive_after is not None and age >= rule.archive_after and not e.pointer and self.cold:
            await self.archive(e)

    async def archive(self, e: StoredEntry) -> None:
        mk = MemoryKey(e.tenant, e.namespace, e.key)
        rec = await self.warm.get(mk)
        if rec is None or rec.kind is RecordKind.POINTER or rec.etag != e.etag or rec.is_expired(self.now):
            self.report.skipped += 1  # changed since it was listed: not idle any more
            return
        if self.dry_run:
            self.report.archived += 1
            self.report.archived_bytes += rec.size
            return
        cmk, ptr = cold_version(mk, rec)
        await self.cold.set(cmk, rec)
        try:
            await self.warm.set(mk, ptr, if_match=rec.etag)
        except ConflictError:
            await self.cold.delete(cmk)  # a writer got there first: its value stands, ours is garbage
            self.report.skipped += 1
            return
        self.report.archived += 1
        self.report.archived_bytes += rec.size
        self.core.governance.audit.emit(
            "archive", "ok", tenant=e.tenant, namespace=e.namespace, keys=[e.key], extra={"bytes": rec.size}
        )

    async def expire(self, store: WarmScopeStore, e: StoredEntry) -> None:
        mk = MemoryKey(e.tenant, e.namespace, e.key)
        target = None
        if e.pointer:
            rec = await self.warm.get(mk)
            if rec is None or rec.etag != e.etag:
                self.report.skipped += 1
                return
            if rec.kind is RecordKind.POINTER:
                target = pointer_target(mk, rec)[0]
        if self.dry_run:
            self.report.expired += 1
            self.report.expired_bytes += e.size
            return
        if not await store.delete_if(e.tenant, e.namespace, e.key, e.etag or ""):
            self.report.skipped += 1  # rewritten since it was listed: the new value stands
            return
        # Like any write (ADR 0006): after the durable change, invalidate hot, which also voids the
        # lease of a reader that read the old value, so it can no longer fill it.
        await self.core.hot.invalidate([mk])
        if target is not None and self.cold is not None:
            await self.cold.delete(target)
        self.report.expired += 1
        self.report.expired_bytes += e.size
        self.core.governance.audit.emit(
            "expire", "ok", tenant=e.tenant, namespace=e.namespace, keys=[e.key], extra={"bytes": e.size}
        )


async def _collect_orphans(core: _Core, tenant: str | None, grace: float, dry_run: bool) -> int:
    """Delete cold versions of key-value items that no warm pointer names (left by overwriting a large or
    archived value with a small one, ADR 0005). Only versions older than ``grace`` (by the real clock):
    a younger one may belong to a large write whose pointer is not committed yet."""
    warm: Any = store_of(core, Tier.WARM)
    cold: Any = store_of(core, Tier.COLD)
    listing = cold.lifecycle_store() if isinstance(cold, HasLifecycle) else None
    if warm is None or listing is None:
        return 0
    removed = 0
    async for e in listing.entries(tenant, None):
        base, sep, _ = e.key.rpartition("\x00")
        if not sep or "\x1f" in base or e.written_at is None or core.clock() - e.written_at < grace:
            continue  # not a key-value version (collection versions are their store's), or too young
        mk = MemoryKey(e.tenant, e.namespace, base)
        rec = await warm.get(mk)
        if rec is not None and rec.kind is RecordKind.POINTER and pointer_target(mk, rec)[0].key == e.key:
            continue
        if not dry_run:
            await cold.delete(MemoryKey(e.tenant, e.namespace, e.key))
        removed += 1
    return removed


async def run_maintenance(
    core: _Core,
    *,
    retention: RetentionPolicy,
    tenant: str | None,
    now: float,
    dry_run: bool,
    sweep: bool,
    orphan_grace: float = 3600.0,
) -> MaintainReport:
    """One retention pass over the warm tier (one tenant or all), then the cold sweep."""
    check_open(core, "maintain")
    run: _Run | None = None
    tenants: set[str] = set()
    store = store_of(core, Tier.WARM)
    if store is not None and retention.active:
        lifecycle = store.lifecycle_store() if isinstance(store, HasLifecycle) else None
        if not isinstance(lifecycle, WarmScopeStore):
            raise ConfigurationError(
                f"the warm tier ({type(store).__name__}) offers no lifecycle store with delete_if()",
                tier=Tier.WARM,
                operation="maintain",
            )
        run = _Run(core, retention, now, dry_run)
        async for entry in lifecycle.entries(tenant, None):
            run.report.scanned += 1
            tenants.add(entry.tenant)
            try:
                await run.entry(lifecycle, entry)
            except TierError as exc:
                if isinstance(exc, ConflictError):
                    run.report.skipped += 1
                    continue
                raise
    report = run.report if run is not None else MaintainReport(dry_run=dry_run)
    cold: Any = store_of(core, Tier.COLD)
    if sweep and not dry_run and cold is not None:
        report.swept = int(await cold.sweep(now=now))
    report.orphans = await _collect_orphans(core, tenant, orphan_grace, dry_run)
    if not dry_run:
        metrics = lifecycle_metrics()
        metrics.retention("archive", report.archived, report.archived_bytes)
        metrics.retention("expire", report.expired, report.expired_bytes)
        if core.governance.quotas.active:
            from tiermem.lifecycle._usage import reconcile

            for name in sorted(tenants):
                await reconcile(core, name)
    return report
