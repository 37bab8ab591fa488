"""How a worker process builds its ``MemoryClient``: a JSON-serializable spec and pluggable factories.

``ClientSpec.factory`` names a function ``(spec) -> MemoryBuilder`` (default :func:`builder_for`), and
every name in ``ClientSpec.customize`` a function ``(builder, spec) -> MemoryBuilder`` applied after it.
Both are ``"module:function"`` paths imported in the worker, so a run with extra builder options is
a new function, not a harness change: :func:`near_cache` below, used as
``customize=("tests.reliability.multiproc.clients:near_cache",)``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from tiermem import MemoryBuilder, Tier

__all__ = ["ClientSpec", "builder_for", "load_callable"]

DEFAULT_FACTORY = "tests.reliability.multiproc.clients:builder_for"


@dataclass(frozen=True)
class ClientSpec:
    """Everything a process needs to build its client against the shared services.

    Endpoints may point at a per-process fault proxy; the data (Redis prefix, Cosmos container, Blob
    container, SQLite file, cold directory) is the same for every process of a run.
    """

    hot: Literal["redis", "local"] = "redis"
    warm: Literal["cosmos", "sqlite"] = "cosmos"
    cold: Literal["blob", "files"] = "blob"
    redis_url: str = ""
    redis_prefix: str = "mp"
    redis_options: dict[str, Any] = field(default_factory=dict)
    cosmos_endpoint: str = ""
    cosmos_key: str = ""
    cosmos_database: str = "multiproc"
    cosmos_container: str = ""
    cosmos_options: dict[str, Any] = field(default_factory=dict)
    blob_connection_string: str = ""
    blob_container: str = ""
    blob_options: dict[str, Any] = field(default_factory=dict)
    sqlite_path: str = ""
    files_path: str = ""
    policy: dict[str, Any] = field(default_factory=dict)
    resilience: dict[str, dict[str, float]] = field(default_factory=dict)  # tier value -> TierOptions
    factory: str = DEFAULT_FACTORY
    customize: tuple[str, ...] = ()

    def with_(self, **changes: Any) -> ClientSpec:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClientSpec:
        data = json.loads(text)
        data["customize"] = tuple(data["customize"])
        return cls(**data)


def load_callable(path: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    module, _, name = path.partition(":")
    target: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return target


def builder_for(spec: ClientSpec) -> MemoryBuilder:
    """The default factory: the tiers the spec names, its policy and per-tier resilience settings."""
    from tiermem.tiers.blob import BlobColdMemory
    from tiermem.tiers.cosmos import CosmosWarmMemory
    from tiermem.tiers.local import FileColdMemory, LocalHotMemory, SqliteWarmMemory
    from tiermem.tiers.redis import RedisHotMemory

    builder = MemoryBuilder()
    if spec.hot == "redis":
        hot = RedisHotMemory.from_url(spec.redis_url, prefix=spec.redis_prefix, **spec.redis_options)
        builder.with_hot(hot)
    else:
        builder.with_hot(LocalHotMemory())
    if spec.warm == "cosmos":
        builder.with_warm(
            CosmosWarmMemory(
                spec.cosmos_endpoint,
                spec.cosmos_database,
                spec.cosmos_container,
                key=SecretStr(spec.cosmos_key),
                **spec.cosmos_options,
            )
        )
    else:
        builder.with_warm(SqliteWarmMemory(Path(spec.sqlite_path)))
    if spec.cold == "blob":
        builder.with_cold(
            BlobColdMemory(
                container=spec.blob_container,
                connection_string=SecretStr(spec.blob_connection_string),
                **spec.blob_options,
            )
        )
    else:
        builder.with_cold(FileColdMemory(Path(spec.files_path)))
    builder.with_policy(**spec.policy)
    for tier, options in spec.resilience.items():
        threshold = options.get("failure_threshold")
        builder.with_resilience(
            Tier(tier),
            timeout=options.get("timeout"),
            failure_threshold=None if threshold is None else int(threshold),
            reset_timeout=options.get("reset_timeout"),
        )
    return builder


def build(spec: ClientSpec) -> Any:
    """The client a worker uses: the spec's factory, then each ``customize`` hook, then ``build()``."""
    builder = load_callable(spec.factory)(spec)
    for path in spec.customize:
        builder = load_callable(path)(builder, spec)
    return builder.build()


def near_cache(builder: MemoryBuilder, spec: ClientSpec) -> MemoryBuilder:
    """A ``customize`` hook: the client gets an in-process near cache over its Redis hot tier (ADR 0010)."""
    return builder.with_near_cache(max_items=10_000, max_bytes=64 << 20)
