"""LangGraph checkpointer scenarios: ``aget_tuple`` (latest), ``alist(limit=10)`` and ``aput`` on a
thread that already holds 1,000 checkpoints (20 with ``--quick``).

* embedded: ``TierMemSaver`` on the embedded default against langgraph-checkpoint-sqlite's
  ``AsyncSqliteSaver`` on a SQLite file (the embedded peer).
* services: ``TierMemSaver`` on Redis + Cosmos DB (+ Blob) against the raw Cosmos DB calls a
  Cosmos-only saver makes on one partition per thread (the best case for such a saver): ``aget_tuple``
  is a ``TOP 1 ... ORDER BY checkpoint_id DESC`` query plus the query for its pending writes,
  ``alist(limit=10)`` a ``TOP 10`` query plus one writes query per checkpoint, ``aput`` one
  ``upsert_item`` of the checkpoint with its channel values inline.

Every checkpoint carries a message list channel that changes each step and a settings channel
that does not, as a chat graph's checkpoints do.
"""

from __future__ import annotations

import base64
import tempfile
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import SecretStr

from benchmarks._harness import BenchmarkError, Comparison, Scenario, Target, Variant, timer
from benchmarks._services import Endpoints
from tiermem import FileColdMemory, LocalHotMemory, MemoryBuilder, SqliteWarmMemory
from tiermem.langgraph import TierMemSaver

__all__ = ["LangGraphBench", "langgraph_scenarios", "open_langgraph"]

DATABASE = "tiermem-bench"
THREAD = "bench-thread"


@dataclass(slots=True)
class LangGraphBench:
    tiermem: TierMemSaver
    peer: Any  # AsyncSqliteSaver, or _RawCosmosSaver on the services
    peer_name: str
    embedded: bool
    checkpoints: int
    tiermem_head: dict[str, Any]
    peer_head: dict[str, Any]


class _RawCosmosSaver:
    """The raw Cosmos DB calls of a Cosmos-only checkpointer (one partition per thread)."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.serde = JsonPlusSerializer()

    async def aput(
        self, thread: str, checkpoint: Checkpoint, metadata: dict[str, Any], parent: str | None
    ) -> None:
        kind, data = self.serde.dumps_typed(checkpoint)
        await self.container.upsert_item(
            {
                "id": f"{thread}|{checkpoint['id']}",
                "pk": thread,
                "type": "checkpoint",
                "checkpoint_id": checkpoint["id"],
                "parent": parent,
                "metadata": metadata,
                "kind": kind,
                "data": base64.b64encode(data).decode("ascii"),
            }
        )

    async def _writes(self, thread: str, checkpoint_id: str) -> list[dict[str, Any]]:
        query = "SELECT * FROM c WHERE c.type = 'write' AND c.checkpoint_id = @id"
        return [
            item
            async for item in self.container.query_items(
                query, parameters=[{"name": "@id", "value": checkpoint_id}], partition_key=thread
            )
        ]

    def _decode(self, item: dict[str, Any]) -> Any:
        return self.serde.loads_typed((item["kind"], base64.b64decode(item["data"])))

    async def latest(self, thread: str) -> Any:
        query = "SELECT TOP 1 * FROM c WHERE c.type = 'checkpoint' ORDER BY c.checkpoint_id DESC"
        items = [item async for item in self.container.query_items(query, partition_key=thread)]
        if not items:
            return None
        await self._writes(thread, items[0]["checkpoint_id"])
        return self._decode(items[0])

    async def list10(self, thread: str) -> list[Any]:
        query = "SELECT TOP 10 * FROM c WHERE c.type = 'checkpoint' ORDER BY c.checkpoint_id DESC"
        items = [item async for item in self.container.query_items(query, partition_key=thread)]
        out = []
        for item in items:
            await self._writes(thread, item["checkpoint_id"])
            out.append(self._decode(item))
        return out


def _next_checkpoint(saver: Any, head: dict[str, Any], step: int) -> tuple[Checkpoint, dict[str, Any]]:
    """The next checkpoint of the chat thread: ``messages`` changes every step, ``settings`` never."""
    checkpoint = empty_checkpoint()
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 8} for i in range(step)
    ]
    versions = dict(head.get("versions", {}))
    new = {"messages": saver.get_next_version(versions.get("messages"), None)}
    if "settings" not in versions:
        new["settings"] = saver.get_next_version(None, None)
    versions.update(new)
    checkpoint["channel_versions"] = versions
    checkpoint["channel_values"] = {
        "messages": messages[-20:],
        "settings": {"model": "gpt", "temperature": 0.2},
    }
    return checkpoint, new


async def _put(saver: BaseCheckpointSaver[Any], head: dict[str, Any], step: int) -> dict[str, Any]:
    checkpoint, new = _next_checkpoint(saver, head, step)
    conf: dict[str, Any] = {"thread_id": THREAD, "checkpoint_ns": ""}
    if head.get("id"):
        conf["checkpoint_id"] = head["id"]
    await saver.aput({"configurable": conf}, checkpoint, {"source": "loop", "step": step}, new)
    return {"id": checkpoint["id"], "versions": checkpoint["channel_versions"], "step": step + 1}


async def _put_raw(raw: _RawCosmosSaver, versions: Any, head: dict[str, Any], step: int) -> dict[str, Any]:
    checkpoint, _ = _next_checkpoint(versions, head, step)  # same payload as tiermem's
    await raw.aput(THREAD, checkpoint, {"source": "loop", "step": step}, head.get("id"))
    return {"id": checkpoint["id"], "versions": checkpoint["channel_versions"], "step": step + 1}


async def open_langgraph(stack: AsyncExitStack, endpoints: Endpoints, *, quick: bool) -> LangGraphBench:
    """Both savers on fresh storage, each with a thread of ``checkpoints`` checkpoints (untimed)."""
    count = 20 if quick else 1000
    embedded = not (endpoints.redis_url and endpoints.cosmos_endpoint and endpoints.cosmos_key)
    if embedded:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tiermem-bench-lg-")))
        memory = (
            MemoryBuilder()
            .with_hot(LocalHotMemory())
            .with_warm(SqliteWarmMemory(root / "warm.db"))
            .with_cold(FileColdMemory(root / "cold"))
            .build()
        )
        stack.push_async_callback(memory.aclose)
        peer: Any = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(root / "peer.db")))
        await peer.setup()
        peer_name = "AsyncSqliteSaver"
    else:
        from azure.cosmos import PartitionKey
        from azure.cosmos.aio import CosmosClient

        assert endpoints.redis_url
        assert endpoints.cosmos_endpoint
        assert endpoints.cosmos_key
        suffix = uuid.uuid4().hex[:12]
        builder = (
            MemoryBuilder()
            .with_redis(endpoints.redis_url, prefix=f"lg{suffix}")
            .with_cosmos(
                endpoints.cosmos_endpoint, DATABASE, f"lg-{suffix}", key=SecretStr(endpoints.cosmos_key)
            )
        )
        if endpoints.blob_connection_string:
            builder.with_blob(
                container=f"lg-{suffix}", connection_string=SecretStr(endpoints.blob_connection_string)
            )
        memory = builder.build()
        stack.push_async_callback(memory.aclose)
        await memory.setup()
        cosmos = await stack.enter_async_context(
            CosmosClient(endpoints.cosmos_endpoint, credential=endpoints.cosmos_key)
        )
        database = cosmos.get_database_client(DATABASE)
        container = await database.create_container(f"lg-raw-{suffix}", partition_key=PartitionKey("/pk"))

        async def drop() -> None:
            await database.delete_container(f"lg-raw-{suffix}")
            await database.delete_container(f"lg-{suffix}")

        stack.push_async_callback(drop)
        peer = _RawCosmosSaver(container)
        peer_name = "raw Cosmos queries"
    tiermem = TierMemSaver(memory)
    ours: dict[str, Any] = {"step": 0}
    theirs: dict[str, Any] = {"step": 0}
    for _ in range(count):
        ours = await _put(tiermem, ours, ours["step"])
        theirs = await (
            _put(peer, theirs, theirs["step"])
            if embedded
            else _put_raw(peer, tiermem, theirs, theirs["step"])
        )
    return LangGraphBench(tiermem, peer, peer_name, embedded, count, ours, theirs)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


def langgraph_scenarios(bench: LangGraphBench) -> list[Scenario]:
    config: Any = {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}
    saver, peer, embedded = bench.tiermem, bench.peer, bench.embedded

    async def ours_get(n: int) -> float:
        tup: Any = None
        start = timer()
        for _ in range(n):
            tup = await saver.aget_tuple(config)
        elapsed = timer() - start
        _expect(
            tup is not None and tup.checkpoint["id"] == bench.tiermem_head["id"], "tiermem missed the latest"
        )
        return elapsed

    async def peer_get(n: int) -> float:
        got: Any = None
        start = timer()
        for _ in range(n):
            got = await (peer.aget_tuple(config) if embedded else peer.latest(THREAD))
        elapsed = timer() - start
        _expect(got is not None, "the peer missed the latest checkpoint")
        return elapsed

    async def ours_list(n: int) -> float:
        rows: list[Any] = []
        start = timer()
        for _ in range(n):
            rows = [t async for t in saver.alist(config, limit=10)]
        elapsed = timer() - start
        _expect(len(rows) == 10, "tiermem listed the wrong number")
        return elapsed

    async def peer_list(n: int) -> float:
        rows: list[Any] = []
        start = timer()
        for _ in range(n):
            rows = [t async for t in peer.alist(config, limit=10)] if embedded else await peer.list10(THREAD)
        elapsed = timer() - start
        _expect(len(rows) == 10, "the peer listed the wrong number")
        return elapsed

    async def ours_put(n: int) -> float:
        start = timer()
        for _ in range(n):
            bench.tiermem_head = await _put(saver, bench.tiermem_head, bench.tiermem_head["step"])
        return timer() - start

    async def peer_put(n: int) -> float:
        start = timer()
        for _ in range(n):
            head = bench.peer_head
            bench.peer_head = await (
                _put(peer, head, head["step"]) if embedded else _put_raw(peer, saver, head, head["step"])
            )
        return timer() - start

    name = bench.peer_name
    thread = f"thread of {bench.checkpoints} checkpoints"
    fast = Target("max_ratio", 1.0, "< 1x (faster)")
    return [
        Scenario(
            "langgraph.get_tuple",
            "langgraph",
            [Variant("tiermem", ours_get), Variant(name, peer_get)],
            [
                Comparison(
                    "langgraph.get_tuple.peer",
                    f"aget_tuple (latest) on a {thread} vs {name}",
                    "tiermem",
                    name,
                    fast,
                    note="tiermem reads the head item and the channel values from hot",
                )
            ],
        ),
        Scenario(
            "langgraph.list10",
            "langgraph",
            [Variant("tiermem", ours_list), Variant(name, peer_list)],
            [
                Comparison(
                    "langgraph.list10.peer", f"alist(limit=10) on a {thread} vs {name}", "tiermem", name
                )
            ],
        ),
        Scenario(
            "langgraph.put",
            "langgraph",
            [Variant("tiermem", ours_put), Variant(name, peer_put)],
            [
                Comparison(
                    "langgraph.put.peer",
                    f"aput (one changed channel) vs {name}",
                    "tiermem",
                    name,
                    note="tiermem writes the changed value, the checkpoint and its head in one atomic batch",
                )
            ],
        ),
    ]
