"""Namespace-wide listings: collection names and key-value keys (admin reads for usage and erasure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tiermem._collection._api import backend_for, check_prefix
from tiermem._errors import ConfigurationError
from tiermem._types import Tier

if TYPE_CHECKING:
    from tiermem._engine.core import Engine

__all__ = ["collection_names", "kv_keys"]


def collection_names(engine: Engine, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
    """Names of the namespace's collections that hold at least one item (validated before any I/O)."""
    clean = check_prefix(prefix)
    backend = backend_for(engine)
    return backend.store.names(tenant, namespace, clean)


async def _filtered(source: AsyncIterator[Any], prefix: str) -> AsyncIterator[str]:
    async for mk in source:
        if mk.key.startswith(prefix):
            yield mk.key


def kv_keys(engine: Engine, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
    """Key-value keys of the namespace from the durable tier's ``scan`` (collection items never appear:
    they live in their own table, partitions or names)."""
    clean = check_prefix(prefix)
    durable = engine.guard(Tier.WARM) or engine.guard(Tier.COLD)
    if durable is None:
        raise ConfigurationError(
            "keys() lists the durable tier; a hot-only client has none", operation="keys"
        )
    store: Any = durable.store
    return _filtered(store.scan(tenant, namespace), clean)
