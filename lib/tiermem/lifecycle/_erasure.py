"""``forget()``: erase a tenant (or one of its namespaces) from every tier, resumably.

Order: hot first (readers stop being served the data), then warm (key-value items, collection items,
pointers), then cold (values, old versions, collection versions), then hot again (anything a racing
read promoted meanwhile). Every step deletes whatever is left of the scope, so a crash at any point
and a rerun finish the job, and a rerun of a finished erasure deletes nothing. Writers of the scope
must be stopped first (the service's erasure route serves the caller's own tenant); a write that
lands after its tier was erased survives, and a rerun removes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiermem._errors import TierMemError
from tiermem._keys import validate_scope
from tiermem._protocols import Tier
from tiermem.lifecycle._model import ForgetReport
from tiermem.lifecycle._telemetry import lifecycle_metrics
from tiermem.lifecycle._tiers import forget_dirty, lifecycle_stores

if TYPE_CHECKING:
    from tiermem.lifecycle._governance import EngineView as _Core

__all__ = ["forget_scope"]


async def forget_scope(core: _Core, tenant: str, namespace: str | None, *, dry_run: bool) -> ForgetReport:
    """Erase (or, with ``dry_run``, count) everything of ``tenant``/``namespace`` on every tier."""
    validate_scope(tenant, "tenant")
    if namespace is not None:
        validate_scope(namespace, "namespace")
    stores = lifecycle_stores(core, "forget")
    audit = core.governance.audit
    counts: dict[Tier, int] = {tier: 0 for tier, _ in stores}
    if dry_run:
        for tier, store in stores:
            async for _ in store.entries(tenant, namespace):
                counts[tier] += 1
        return ForgetReport(tenant, namespace, True, counts)
    audit.emit("forget", "started", tenant=tenant, namespace=namespace)
    hot = [(tier, store) for tier, store in stores if tier is Tier.HOT]
    order = [*hot, *[(t, s) for t, s in stores if t is not Tier.HOT], *hot]
    try:
        for tier, store in order:
            deleted = await store.erase(tenant, namespace)
            counts[tier] += deleted
            lifecycle_metrics().erased(tier.value, deleted)
        forget_dirty(core, tenant, namespace)
        counters = core.governance.counters
        if namespace is None:
            await counters.reset(tenant)
        elif core.governance.quotas.active:
            from tiermem.lifecycle._usage import reconcile

            await reconcile(core, tenant)
    except TierMemError as exc:
        audit.emit(
            "forget",
            "error",
            tenant=tenant,
            namespace=namespace,
            extra={"error": type(exc).__name__, **{f"deleted_{t.value}": n for t, n in counts.items()}},
        )
        raise
    report = ForgetReport(tenant, namespace, False, counts)
    audit.emit(
        "forget",
        "ok",
        tenant=tenant,
        namespace=namespace,
        extra={"deleted": report.total, **{f"deleted_{t.value}": n for t, n in counts.items()}},
    )
    return report
