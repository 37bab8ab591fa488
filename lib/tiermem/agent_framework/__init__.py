"""Microsoft Agent Framework persistence on tiermem (``pip install tiermem[agent-framework]``).

``TierMemHistoryProvider(memory)`` keeps chat history (a ``HistoryProvider``) and
``TierMemCheckpointStorage(memory)`` keeps workflow checkpoints (the ``CheckpointStorage``
protocol); both stay inside the memory view's tenant and namespace. Layout: ADR 0013 and
docs/agent-framework.md.
"""

from __future__ import annotations

try:
    import agent_framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    raise ImportError(
        "tiermem.agent_framework needs Agent Framework: pip install 'tiermem[agent-framework]'"
    ) from exc

from tiermem.agent_framework._checkpoints import TierMemCheckpointStorage
from tiermem.agent_framework._history import TierMemHistoryProvider

__all__ = ["TierMemCheckpointStorage", "TierMemHistoryProvider"]
