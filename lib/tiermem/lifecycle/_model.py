"""Value objects of data lifecycle: retention and quota policies, and the reports operations return."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiermem._errors import ConfigurationError
from tiermem._keys import validate_scope
from tiermem._protocols import Tier

__all__ = [
    "ForgetReport",
    "MaintainReport",
    "Quota",
    "QuotaPolicy",
    "Retention",
    "RetentionPolicy",
    "ScopeUsage",
    "TierUsage",
    "UsageReport",
]

DAY = 86_400.0


def _positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0 or value == float("inf")):
        raise ConfigurationError(f"{name} must be a positive number of seconds or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class Retention:
    """What happens to key-value items nobody writes any more (seconds since the last write).

    Attributes:
        archive_after: move the value from warm to cold (a pointer stays in warm, reads keep working).
        expire_after: delete the item (on every tier).
    """

    archive_after: float | None = None
    expire_after: float | None = None

    def __post_init__(self) -> None:
        _positive("archive_after", self.archive_after)
        _positive("expire_after", self.expire_after)

    @property
    def active(self) -> bool:
        return self.archive_after is not None or self.expire_after is not None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The default :class:`Retention` plus per-namespace overrides (a namespace's rule replaces the default).

    Example::

        RetentionPolicy(Retention(archive_after=30 * DAY),
                        namespaces={"scratch": Retention(expire_after=DAY)})
    """

    default: Retention = field(default_factory=Retention)
    namespaces: Mapping[str, Retention] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.namespaces:
            validate_scope(name, "namespace")

    def for_namespace(self, namespace: str) -> Retention:
        return self.namespaces.get(namespace, self.default)

    @property
    def active(self) -> bool:
        return self.default.active or any(r.active for r in self.namespaces.values())


@dataclass(frozen=True, slots=True)
class Quota:
    """A tenant's budget. ``None`` means unlimited."""

    max_items: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_items", "max_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigurationError(f"quota {name} must be a non-negative int or None, got {value!r}")

    @property
    def limited(self) -> bool:
        return self.max_items is not None or self.max_bytes is not None


QuotaSource = Callable[[str], Quota | None]
"""Looks up the quota of a tenant (``None``: the default applies). Called on writes: keep it cheap."""


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Per-tenant quotas: a default, per-tenant overrides, or a callable (which wins when it answers)."""

    default: Quota = field(default_factory=Quota)
    tenants: Mapping[str, Quota] = field(default_factory=dict)
    lookup: QuotaSource | None = None
    reconcile_interval: float = 60.0
    """Least seconds between two recounts a refused write triggers for one tenant (per process)."""

    def for_tenant(self, tenant: str) -> Quota:
        if self.lookup is not None:
            found = self.lookup(tenant)
            if found is not None:
                return found
        return self.tenants.get(tenant, self.default)

    @property
    def active(self) -> bool:
        limited = self.default.limited or any(q.limited for q in self.tenants.values())
        return self.lookup is not None or limited


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What an erasure removed, per tier (objects deleted by this run; a rerun reports what was left)."""

    tenant: str
    namespace: str | None
    dry_run: bool
    deleted: Mapping[Tier, int]
    """Objects deleted (with ``dry_run``: found) per tier: hot keys and markers, warm items, cold objects."""

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "namespace": self.namespace,
            "dry_run": self.dry_run,
            "deleted": {t.value: n for t, n in self.deleted.items()},
            "total": self.total,
        }


@dataclass(slots=True)
class TierUsage:
    """Items and stored bytes on one tier."""

    items: int = 0
    bytes: int = 0


@dataclass(slots=True)
class ScopeUsage:
    """Usage of one (tenant, namespace).

    Attributes:
        tiers: items and bytes per tier (hot counts cached values, not markers).
        collections: collections holding at least one item.
        collection_items: items in those collections (included in the warm or cold count).
        oldest_write: earliest last-write time of a durable item (Unix seconds), when the tier records it.
        newest_write: latest last-write time of a durable item.
    """

    tenant: str
    namespace: str
    tiers: dict[Tier, TierUsage] = field(default_factory=dict)
    collections: int = 0
    collection_items: int = 0
    oldest_write: float | None = None
    newest_write: float | None = None

    def tier(self, tier: Tier) -> TierUsage:
        return self.tiers.setdefault(tier, TierUsage())

    def saw_write(self, when: float | None) -> None:
        if when is None:
            return
        self.oldest_write = when if self.oldest_write is None else min(self.oldest_write, when)
        self.newest_write = when if self.newest_write is None else max(self.newest_write, when)

    @property
    def durable_items(self) -> int:
        """Items a quota counts: warm items (key-value and collection), else cold objects."""
        warm = self.tiers.get(Tier.WARM)
        if warm is not None:
            return warm.items
        cold = self.tiers.get(Tier.COLD)
        return cold.items if cold is not None else 0

    @property
    def stored_bytes(self) -> int:
        """Bytes a quota counts: warm plus cold (pointers and the values they point to)."""
        return sum(u.bytes for t, u in self.tiers.items() if t is not Tier.HOT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "namespace": self.namespace,
            "tiers": {t.value: {"items": u.items, "bytes": u.bytes} for t, u in sorted_tiers(self.tiers)},
            "collections": self.collections,
            "collection_items": self.collection_items,
            "oldest_write": self.oldest_write,
            "newest_write": self.newest_write,
        }


def sorted_tiers(tiers: Mapping[Tier, TierUsage]) -> list[tuple[Tier, TierUsage]]:
    order = [Tier.HOT, Tier.WARM, Tier.COLD]
    return [(t, tiers[t]) for t in order if t in tiers]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage per (tenant, namespace), sorted by tenant then namespace."""

    scopes: tuple[ScopeUsage, ...]

    def tenant_totals(self, tenant: str) -> tuple[int, int]:
        """(items, bytes) a quota counts for ``tenant``."""
        rows = [s for s in self.scopes if s.tenant == tenant]
        return sum(s.durable_items for s in rows), sum(s.stored_bytes for s in rows)

    def as_dict(self) -> dict[str, Any]:
        return {"scopes": [s.as_dict() for s in self.scopes]}


@dataclass(slots=True)
class MaintainReport:
    """What one retention run did. ``skipped`` counts items changed concurrently (left for the next run);
    ``swept`` expired cold objects; ``orphans`` cold versions no warm pointer names any more."""

    scanned: int = 0
    archived: int = 0
    archived_bytes: int = 0
    expired: int = 0
    expired_bytes: int = 0
    skipped: int = 0
    swept: int = 0
    orphans: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "archived": self.archived,
            "archived_bytes": self.archived_bytes,
            "expired": self.expired,
            "expired_bytes": self.expired_bytes,
            "skipped": self.skipped,
            "swept": self.swept,
            "orphans": self.orphans,
            "dry_run": self.dry_run,
        }
