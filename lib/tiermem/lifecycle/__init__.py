"""Data lifecycle and governance: erasure, usage, retention and archival, quotas, audit (docs/adr/0014).

The operations are methods of :class:`tiermem.MemoryClient` (``forget``, ``usage``, ``maintain``,
``reconcile_quotas``); this package holds their policies, reports and the per-tier machinery.
Modules that need the client's core are imported by those methods, so importing this package never
imports the client.
"""

from tiermem.lifecycle._audit import AUDIT_LOGGER, acting_as, current_principal
from tiermem.lifecycle._governance import Governance
from tiermem.lifecycle._model import (
    DAY,
    ForgetReport,
    MaintainReport,
    Quota,
    QuotaPolicy,
    Retention,
    RetentionPolicy,
    ScopeUsage,
    TierUsage,
    UsageReport,
)

__all__ = [
    "AUDIT_LOGGER",
    "DAY",
    "ForgetReport",
    "Governance",
    "MaintainReport",
    "Quota",
    "QuotaPolicy",
    "Retention",
    "RetentionPolicy",
    "ScopeUsage",
    "TierUsage",
    "UsageReport",
    "acting_as",
    "current_principal",
]
