"""tiermem: three-tier memory (hot Redis, warm Cosmos DB, cold Blob) for agents and services on Azure.

The public API is exactly ``__all__`` (checked by tests/unit/test_public_api.py).
"""

from tiermem._breaker import CircuitState
from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._codec import Codec, Record, RecordKind
from tiermem._collection import Collection, Item
from tiermem._config import Policy, TierOptions
from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    CircuitOpenError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    InvalidKeyError,
    InvalidScopeError,
    InvalidTTLError,
    InvalidValueError,
    NotProvisionedError,
    QuotaExceededError,
    ResultTooLargeError,
    ThrottledError,
    TierError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
    WriteOutcomeUnknownError,
)
from tiermem._instrumentation import Stats
from tiermem._keys import make_key
from tiermem._protocols import ColdMemory, HotMemory, MemoryKey, Tier, TierInfo, TierStore, WarmMemory
from tiermem._settings import MemorySettings
from tiermem._types import Entry
from tiermem._version import __version__
from tiermem.agents import AgentBuilder, AgentFactory, AgentHandle, MemoryAware
from tiermem.lifecycle import (
    ForgetReport,
    MaintainReport,
    Quota,
    QuotaPolicy,
    Retention,
    RetentionPolicy,
    UsageReport,
)
from tiermem.sessions import ConversationStore, SessionMetadata
from tiermem.tiers.files import FileColdMemory
from tiermem.tiers.memory import EvictionPolicy, LocalHotMemory
from tiermem.tiers.sqlite import SqliteWarmMemory

__all__ = [
    "AgentBuilder",
    "AgentFactory",
    "AgentHandle",
    "AuthenticationError",
    "BatchWriteError",
    "CircuitOpenError",
    "CircuitState",
    "ClientClosedError",
    "Codec",
    "ColdMemory",
    "Collection",
    "ConfigurationError",
    "ConflictError",
    "ConversationStore",
    "CorruptValueError",
    "Entry",
    "EvictionPolicy",
    "FileColdMemory",
    "ForgetReport",
    "HotMemory",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidScopeError",
    "InvalidTTLError",
    "InvalidValueError",
    "Item",
    "LocalHotMemory",
    "MaintainReport",
    "MemoryAware",
    "MemoryBuilder",
    "MemoryClient",
    "MemoryKey",
    "MemorySettings",
    "NotProvisionedError",
    "Policy",
    "Quota",
    "QuotaExceededError",
    "QuotaPolicy",
    "Record",
    "RecordKind",
    "ResultTooLargeError",
    "Retention",
    "RetentionPolicy",
    "SessionMetadata",
    "SqliteWarmMemory",
    "Stats",
    "ThrottledError",
    "Tier",
    "TierError",
    "TierInfo",
    "TierMemError",
    "TierOptions",
    "TierStore",
    "TierUnavailableError",
    "UsageReport",
    "ValueTooLargeError",
    "WarmMemory",
    "WriteOutcomeUnknownError",
    "__version__",
    "make_key",
]

# Public names report the public module (tracebacks, span exception.type, repr), as httpx does.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "tiermem"
del _name, _obj
