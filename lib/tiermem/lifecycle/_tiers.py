"""Where lifecycle operations meet a client's core: its tiers' lifecycle stores and its state.

The one module that knows the client's internals, so a change in the engine is absorbed here.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tiermem._codec import Record
from tiermem._errors import ClientClosedError, ConfigurationError
from tiermem._lifecycle import ClientState
from tiermem._protocols import MemoryKey, Tier
from tiermem.lifecycle._store import HasLifecycle, ScopeStore

if TYPE_CHECKING:
    from tiermem._client import _Core

__all__ = ["check_open", "cold_version", "forget_dirty", "lifecycle_stores", "pointer_target"]


def check_open(core: _Core, operation: str) -> None:
    if core.state is ClientState.CLOSED:
        raise ClientClosedError("MemoryClient is closed", operation=operation)


def lifecycle_stores(core: _Core, operation: str) -> list[tuple[Tier, ScopeStore]]:
    """The lifecycle store of every configured tier, fastest first.

    Raises:
        ConfigurationError: a tier's adapter offers no lifecycle store (a custom adapter).
    """
    check_open(core, operation)
    out: list[tuple[Tier, ScopeStore]] = []
    for slot in core.slots:
        store = slot.store
        if not isinstance(store, HasLifecycle):
            raise ConfigurationError(
                f"the {slot.tier.value} tier ({type(store).__name__}) offers no lifecycle_store(): "
                f"{operation} needs one on every tier",
                tier=slot.tier,
                operation=operation,
            )
        out.append((slot.tier, store.lifecycle_store()))
    return out


def forget_dirty(core: _Core, tenant: str, namespace: str | None) -> None:
    """Drop remembered dirty hot keys of an erased scope: fencing them later would leave a trace."""
    for mk in [mk for mk in core.dirty if mk.tenant == tenant and namespace in (None, mk.namespace)]:
        del core.dirty[mk]


def cold_version(mk: MemoryKey, record: Record) -> tuple[MemoryKey, Record]:
    """A fresh cold object key for ``record`` and the warm pointer to it (ADR 0005)."""
    from tiermem._client import _cold_key, _pointer

    version = secrets.token_hex(8)
    return _cold_key(mk, version), _pointer(record, version)


def pointer_target(mk: MemoryKey, pointer: Record) -> MemoryKey:
    """The cold object a warm pointer names."""
    from tiermem._client import _pointer_meta

    return _pointer_meta(mk, pointer)[0]
