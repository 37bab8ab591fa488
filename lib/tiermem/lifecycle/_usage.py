"""``usage()``: items and bytes per tenant, namespace and tier, from paged raw listings (bounded memory:
one page per tier plus one row per (tenant, namespace) and the names of its collections)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiermem._keys import validate_scope
from tiermem._protocols import Tier
from tiermem.lifecycle._model import ScopeUsage, UsageReport
from tiermem.lifecycle._tiers import lifecycle_stores

if TYPE_CHECKING:
    from tiermem.lifecycle._governance import EngineView as _Core

__all__ = ["compute_usage", "reconcile"]


async def compute_usage(core: _Core, tenant: str | None, namespace: str | None) -> UsageReport:
    """Usage of one tenant (or every tenant), optionally one namespace, read from every tier."""
    if tenant is not None:
        validate_scope(tenant, "tenant")
    if namespace is not None:
        validate_scope(namespace, "namespace")
    rows: dict[tuple[str, str], ScopeUsage] = {}
    names: dict[tuple[str, str], set[str]] = {}
    for tier, store in lifecycle_stores(core, "usage"):
        async for entry in store.entries(tenant, namespace):
            if entry.marker:
                continue  # hot tombstones and fences are not data
            scope = (entry.tenant, entry.namespace)
            row = rows.get(scope)
            if row is None:
                row = rows[scope] = ScopeUsage(entry.tenant, entry.namespace)
            used = row.tier(tier)
            used.items += 1
            used.bytes += entry.size
            if entry.collection is not None:
                names.setdefault(scope, set()).add(entry.collection)
                row.collection_items += 1
            if tier is not Tier.HOT:
                row.saw_write(entry.written_at)
    for scope, found in names.items():
        rows[scope].collections = len(found)
    return UsageReport(tuple(rows[k] for k in sorted(rows)))


async def reconcile(core: _Core, tenant: str) -> bool:
    """Bring a tenant's quota counters to its stored usage; ``False`` if another reconcile holds the lock.

    Adds ``usage - counted + in_flight`` (counts read before the scan) as one increment: writes in flight
    then may be missing from the scan and are counted again; writes reserved during the scan keep their
    own increments. The counters therefore never drop below what is stored (lifecycle/_quota.py).
    """
    counters = core.governance.counters
    async with counters.exclusive(tenant) as held:
        if not held:
            return False
        before = await counters.read(tenant)
        report = await compute_usage(core, tenant, None)
        items, nbytes = report.tenant_totals(tenant)
        await counters.add(
            tenant,
            items - before.items + before.inflight_items,
            nbytes - before.bytes + before.inflight_bytes,
            0,
            0,
        )
        return True
