"""LangGraph persistence on tiermem: a checkpointer and a store (``pip install tiermem[langgraph]``).

``TierMemSaver(memory)`` is a ``langgraph.checkpoint.base.BaseCheckpointSaver`` and
``TierMemStore(memory)`` a ``langgraph.store.base.BaseStore``; both keep everything inside the
memory view's tenant and namespace. Storage layout: ADR 0013 and docs/langgraph.md.
"""

from __future__ import annotations

try:
    import langgraph.checkpoint.base
    import langgraph.store.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    raise ImportError("tiermem.langgraph needs LangGraph: pip install 'tiermem[langgraph]'") from exc

from tiermem.langgraph._saver import TierMemSaver
from tiermem.langgraph._store import TierMemStore

__all__ = ["TierMemSaver", "TierMemStore"]
