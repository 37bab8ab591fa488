"""Where lifecycle operations meet a client's core: its tiers' lifecycle stores and its state.

The one module that knows the client's internals, so a change in the engine is absorbed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tiermem._errors import ClientClosedError, ConfigurationError
from tiermem._protocols import Tier
from tiermem.lifecycle._store import HasLifecycle, ScopeStore

if TYPE_CHECKING:
    from tiermem.lifecycle._governance import EngineView as _Core

__all__ = ["check_open", "forget_dirty", "lifecycle_stores", "store_of"]


def check_open(core: _Core, operation: str) -> None:
    if core.closed:
        raise ClientClosedError("MemoryClient is closed", operation=operation)


def store_of(core: _Core, tier: Tier) -> Any:
    """The adapter of a tier, or ``None`` (lifecycle operations are admin calls: no guard in between)."""
    guard = core.guard(tier)
    return None if guard is None else guard.store


def lifecycle_stores(core: _Core, operation: str) -> list[tuple[Tier, ScopeStore]]:
    """The lifecycle store of every configured tier, fastest first.

    Raises:
        ConfigurationError: a tier's adapter offers no lifecycle store (a custom adapter).
    """
    check_open(core, operation)
    out: list[tuple[Tier, ScopeStore]] = []
    for guard in core.guards:
        store = guard.store
        if not isinstance(store, HasLifecycle):
            raise ConfigurationError(
                f"the {guard.tier.value} tier ({type(store).__name__}) offers no lifecycle_store(): "
                f"{operation} needs one on every tier",
                tier=guard.tier,
                operation=operation,
            )
        out.append((guard.tier, store.lifecycle_store()))
    return out


def forget_dirty(core: _Core, tenant: str, namespace: str | None) -> None:
    """Drop remembered dirty hot keys of an erased scope: fencing them later would leave a trace."""
    dirty = core.hot.dirty
    for mk in [mk for mk in dirty if mk.tenant == tenant and namespace in (None, mk.namespace)]:
        del dirty[mk]
