"""Embedded tiers, the zero-setup default: in-process hot, SQLite warm, local-file cold.

A re-export of :mod:`tiermem.tiers.memory`, :mod:`tiermem.tiers.sqlite` and :mod:`tiermem.tiers.files`.
They are full implementations of the tier Protocols (they pass the same contract suite as the
Azure adapters), so ``tiermem demo`` and ``tiermem serve`` work with no servers at all.
"""

from tiermem.tiers.files import FileColdMemory
from tiermem.tiers.memory import EvictionPolicy, LocalHotMemory
from tiermem.tiers.sqlite import SqliteWarmMemory

__all__ = ["EvictionPolicy", "FileColdMemory", "LocalHotMemory", "SqliteWarmMemory"]
