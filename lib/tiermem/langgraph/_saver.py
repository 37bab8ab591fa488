"""``TierMemSaver``: a LangGraph checkpointer on tiermem collections (layout: ADR 0013).

One collection per thread. Items (keys built with :mod:`tiermem._ordkey`, so byte order = tuple order):

- ``c!!ns!!checkpoint_id``: the checkpoint without channel values, its metadata and parent id; the
  scalar metadata fields are indexed attributes (``m_source``, ``m_step``, ``m_run_id``, ...).
- ``h!!ns``: a copy of the newest checkpoint of namespace ``ns`` (the read on every ``aget_tuple``).
- ``v!!ns!!channel!!version``: one channel value; immutable, so hot can keep it as long as it likes.
- ``w!!ns!!checkpoint_id!!task_path!!task_id!!idx``: pending writes, keyed in ``writes_sort_key`` order.
- ``x!!ns!!checkpoint_id``: the writes marker, 0 when the checkpoint is written and 1 with its first
  pending writes, so reading a checkpoint without writes needs no listing (listings go to warm).
- ``m``: the thread's liveness item; with ``ttl`` it expires when the thread has been idle that long.

A checkpoint, its head copy and its new channel values are one atomic ``put_many``. Thread ids that
carry run ids are indexed in one ``lg-runs`` collection so ``adelete_for_runs`` finds them.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tiermem._client import MemoryClient, client_clock
from tiermem._collection import Collection
from tiermem._errors import ConfigurationError, CorruptValueError, InvalidInputError, InvalidTTLError
from tiermem._ordkey import (
    ATTR_INCOMPLETE,
    SEP,
    check_filter,
    collection_name,
    join,
    matches,
    merge_by_key,
    scalar_attrs,
    split,
    split_filter,
)
from tiermem._syncloop import SyncLoop
from tiermem.langgraph._layout import (
    LIST_CHUNK,
    MAX_BATCH,
    META_ATTR_FIRST,
    META_KEY,
    RUNS_COLLECTION,
    THREAD_KIND,
    CheckpointRecord,
    ckey,
    cprefix,
    hkey,
    no_pickle,
    pack,
    run_config,
    unpack,
    vkey,
    wkey,
    wprefix,
    xkey,
)

__all__ = ["TierMemSaver"]


class TierMemSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer storing each thread in one tiermem collection.

    Args:
        memory: the memory view; its tenant and namespace scope everything stored.
        ttl: seconds a thread may stay idle (no checkpoint or write) before it expires as a whole;
            ``None`` keeps threads until deleted or pruned. An expired thread reads as absent and is
            dropped on the next access or by :meth:`asweep`. Data items never carry their own TTL,
            so an unchanged channel value written at step 1 is still there at step 500.
        serde: LangGraph serializer (default: LangGraph's ``JsonPlusSerializer``; never pickle).

    Sync methods run the async ones on a private event loop (see :mod:`tiermem._syncloop`).
    """

    def __init__(
        self,
        memory: MemoryClient,
        *,
        ttl: float | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        if serde is not None and getattr(serde, "pickle_fallback", False):
            raise ConfigurationError(
                "TierMemSaver never stores or loads pickle: pass a serializer without pickle_fallback"
            )
        super().__init__(serde=serde)
        if ttl is not None and (not isinstance(ttl, int | float) or not ttl > 0 or ttl == float("inf")):
            raise InvalidTTLError(f"ttl must be a positive number of seconds, got {ttl!r}", operation="saver")
        self.memory = memory
        self.ttl = float(ttl) if ttl is not None else None
        self._runs = memory.collection(RUNS_COLLECTION)
        self._heads: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._alive: OrderedDict[str, float] = OrderedDict()
        self._indexed: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._written: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._sync = SyncLoop("TierMemSaver")
        self._clock = client_clock(memory)  # the clock the client judges expiry by

    # -- plumbing ----------------------------------------------------------------------------------

    def _coll(self, thread_id: str) -> Collection:
        if not isinstance(thread_id, str):
            thread_id = str(thread_id)
        return self.memory.collection(collection_name(THREAD_KIND, thread_id))

    @staticmethod
    def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int = 4096) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)

    def _encode_record(
        self, thread_id: str, ns: str, checkpoint: dict[str, Any], metadata: Any, parent: str | None
    ) -> bytes:
        kind, data = self.serde.dumps_typed(
            {"checkpoint": checkpoint, "metadata": metadata, "parent": parent}
        )
        return pack([thread_id, ns, kind], data)

    def _decode_record(self, value: object, key: str) -> CheckpointRecord:
        (thread_id, ns, kind), data = unpack(value, 3, key)
        body = self.serde.loads_typed((no_pickle(kind, key), data))
        if not isinstance(body, dict) or "checkpoint" not in body:
            raise CorruptValueError("checkpoint record has no checkpoint", operation="aget_tuple", key=key)
        return CheckpointRecord(thread_id, ns, body["checkpoint"], body["metadata"], body["parent"])

    def _encode_value(self, value: object, parts: Sequence[str] = ()) -> bytes:
        kind, data = self.serde.dumps_typed(value)
        return pack([*parts, kind], data)

    def _decode_value(self, value: object, key: str, nparts: int = 0) -> tuple[list[str], Any]:
        parts, data = unpack(value, nparts + 1, key)
        return parts[:nparts], self.serde.loads_typed((no_pickle(parts[nparts], key), data))

    def _meta_items(self, thread_id: str) -> list[tuple[str, object]]:
        """Without a TTL the liveness item rides along in every batch (no extra round trip)."""
        return [(META_KEY, {"thread_id": thread_id})] if self.ttl is None else []

    async def _touch(self, coll: Collection, thread_id: str) -> None:
        """With a TTL, refresh the thread's liveness item when due, before any data of this call.

        It is refreshed at most every tenth of the TTL, so a thread expires between 0.9 and 1.0
        ``ttl`` after its last write.
        """
        if self.ttl is None:
            return
        now = self._clock()
        until = self._alive.get(thread_id)
        if until is not None and now < until:
            return
        await coll.put(META_KEY, {"thread_id": thread_id}, ttl=self.ttl)
        self._remember(self._alive, thread_id, now + self.ttl / 10)

    async def _expired(self, coll: Collection, thread_id: str, meta: object, has_data: bool) -> bool:
        """A thread whose liveness item is gone but whose data remains has expired: drop it."""
        if meta is not None or not has_data:
            return False
        await coll.drop()
        self._forget(thread_id)
        return True

    def _forget(self, thread_id: str) -> None:
        self._alive.pop(thread_id, None)
        for key in [k for k in self._heads if k[0] == thread_id]:
            del self._heads[key]

    # -- reads -------------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (or the newest of its namespace), or None."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        cid = get_checkpoint_id(config)
        coll = self._coll(thread_id)
        key = ckey(ns, cid) if cid else hkey(ns)
        got = await coll.get_many([key, META_KEY])
        raw = got.get(key)
        if raw is None and not cid:
            # No head (older data or a head removed by a delete): fall back to the newest record.
            async for item in coll.list(prefix=cprefix(ns), reverse=True, limit=1):
                raw = item.value
        if await self._expired(coll, thread_id, got.get(META_KEY), raw is not None) or raw is None:
            return None
        record = self._decode_record(raw, key)
        if cid is None:
            self._remember(self._heads, (thread_id, ns), record.cid)
        return (await self._tuples(coll, [record]))[0]

    async def _tuples(self, coll: Collection, records: Sequence[CheckpointRecord]) -> list[CheckpointTuple]:
        """Build tuples for records of one thread: one ``get_many`` for all values and markers."""
        keys: list[str] = []
        for r in records:
            keys.extend(vkey(r.ns, ch, ver) for ch, ver in r.checkpoint["channel_versions"].items())
            keys.append(xkey(r.ns, r.cid))
        got = await coll.get_many(list(dict.fromkeys(keys))) if keys else {}
        # Marker 0: written with the checkpoint, no writes yet. Missing (a copy in progress, data
        # from elsewhere): list to be sure. Only checkpoints with writes cost a listing.
        with_writes = [r for r in records if got.get(xkey(r.ns, r.cid)) != 0]
        writes = await asyncio.gather(*(self._writes(coll, r.ns, r.cid) for r in with_writes))
        by_cid = dict(zip([r.cid for r in with_writes], writes, strict=True))
        out: list[CheckpointTuple] = []
        for r in records:
            values: dict[str, Any] = {}
            for ch, ver in r.checkpoint["channel_versions"].items():
                vk = vkey(r.ns, ch, ver)
                raw = got.get(vk)
                if raw is not None:
                    values[ch] = self._decode_value(raw, vk)[1]
            out.append(
                CheckpointTuple(
                    config=run_config(r.thread_id, r.ns, r.cid),
                    checkpoint=cast(Checkpoint, {**r.checkpoint, "channel_values": values}),
                    metadata=cast(CheckpointMetadata, r.metadata),
                    parent_config=run_config(r.thread_id, r.ns, r.parent) if r.parent else None,
                    pending_writes=by_cid.get(r.cid, []),
                )
            )
        return out

    async def _writes(self, coll: Collection, ns: str, cid: str) -> list[PendingWrite]:
        out: list[PendingWrite] = []
        async for item in coll.list(prefix=wprefix(ns, cid)):
            task_id = split(item.key[len(wprefix(ns, cid)) :])[1]
            (channel,), value = self._decode_value(item.value, item.key, 1)
            out.append((task_id, channel, value))
        return out

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangGraph's parameter name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` on metadata and ``before`` are evaluated by the tier."""
        check_filter(filter)
        if limit is not None and limit <= 0:
            return
        if config is None:
            remaining = limit
            async for name in self.memory.collections(prefix=THREAD_KIND):
                coll = self.memory.collection(name)
                async for tup in self._list_thread(coll, None, None, None, filter, before, remaining):
                    yield tup
                    if remaining is not None:
                        remaining -= 1
                        if remaining <= 0:
                            return
            return
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        coll = self._coll(thread_id)
        async for tup in self._list_thread(
            coll, thread_id, conf.get("checkpoint_ns"), get_checkpoint_id(config), filter, before, limit
        ):
            yield tup

    async def _list_thread(
        self,
        coll: Collection,
        thread_id: str | None,
        ns: str | None,
        cid: str | None,
        flt: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncIterator[CheckpointTuple]:
        if await coll.get(META_KEY) is None:
            if [item async for item in coll.list(prefix="c" + SEP, limit=1)]:
                await coll.drop()  # expired: its liveness item is gone but its data is not
                if thread_id is not None:
                    self._forget(thread_id)
            return
        if cid is not None:
            keys = [ckey(ns, cid)] if ns is not None else [ckey(n, cid) for n in await self._namespaces(coll)]
            got = await coll.get_many(keys)
            records = [self._decode_record(v, k) for k, v in got.items() if v is not None]
            records = [r for r in records if matches(r.metadata, flt)]
            for tup in await self._tuples(coll, records[: limit if limit is not None else None]):
                yield tup
            return
        before_id = get_checkpoint_id(before) if before else None
        namespaces = [ns] if ns is not None else await self._namespaces(coll)
        streams = [self._records(coll, n, before_id, flt, limit) for n in namespaces]
        merged: AsyncIterator[CheckpointRecord] = streams[0] if len(streams) == 1 else _merge_desc(streams)
        count = 0
        chunk: list[CheckpointRecord] = []
        async for record in merged:
            chunk.append(record)
            count += 1
            if limit is not None and count >= limit:
                break
            if len(chunk) >= LIST_CHUNK:
                for tup in await self._tuples(coll, chunk):
                    yield tup
                chunk = []
        if chunk:
            for tup in await self._tuples(coll, chunk):
                yield tup

    async def _namespaces(self, coll: Collection) -> list[str]:
        return [split(item.key)[1] async for item in coll.list(prefix="h" + SEP)]

    async def _records(
        self, coll: Collection, ns: str, before_id: str | None, flt: dict[str, Any] | None, limit: int | None
    ) -> AsyncIterator[CheckpointRecord]:
        """Matching records of one namespace, newest first, filtered by the tier where it can."""
        prefix = cprefix(ns)
        bound = ckey(ns, before_id) if before_id else None
        where, exact = split_filter(flt, prefix="m_")
        page = limit if exact else None
        main = coll.list(prefix=prefix, before=bound, reverse=True, where=where or None, limit=page)
        if not where:
            source: AsyncIterator[Any] = main
        else:
            # Items whose metadata did not fit in their attributes are checked here, client-side.
            extra = coll.list(prefix=prefix, before=bound, reverse=True, where={ATTR_INCOMPLETE: True})
            source = merge_by_key([main, extra], reverse=True)
        async for item in source:
            record = self._decode_record(item.value, item.key)
            if matches(record.metadata, flt):
                yield record

    # -- writes ------------------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and its new channel values in one atomic ``put_many``."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        parent = conf.get("checkpoint_id")
        cid = checkpoint["id"]
        body = dict(checkpoint)
        values = cast(dict[str, Any], body.pop("channel_values"))
        md = get_checkpoint_metadata(config, metadata)
        record = self._encode_record(thread_id, ns, body, md, parent)
        attrs = scalar_attrs(cast(Mapping[str, object], md), prefix="m_", first=META_ATTR_FIRST)
        value_items: list[tuple[str, object]] = [
            (vkey(ns, ch, ver), self._encode_value(values[ch]))
            for ch, ver in new_versions.items()
            if ch in values
        ]
        coll = self._coll(thread_id)
        run_id = md.get("run_id")
        if isinstance(run_id, str) and run_id and (run_id, thread_id) not in self._indexed:
            # Index before the checkpoint exists, so adelete_for_runs can always find it.
            await self._runs.put(join(run_id, thread_id), thread_id)
            self._remember(self._indexed, (run_id, thread_id), None)
        await self._touch(coll, thread_id)
        head: list[tuple[str, object]] = []
        if await self._advances_head(coll, thread_id, ns, cid):
            head = [(hkey(ns), record)]

        def tail() -> list[Any]:
            # LangGraph may store a task's writes for this checkpoint before this put lands (its puts
            # run in the background). aput_writes registers them in _written before its first await,
            # and nothing awaits between this call and put_many taking the items' locks, so the
            # marker is never reset to 0 over writes that exist.
            marker = 1 if (thread_id, ns, cid) in self._written else 0
            return [
                *self._meta_items(thread_id),
                (ckey(ns, cid), record, attrs),
                (xkey(ns, cid), marker),
                *head,
            ]

        if len(value_items) + len(head) + 3 <= MAX_BATCH:
            await coll.put_many([*value_items, *tail()])
        else:
            # Too many for one batch: values first (unreferenced until the checkpoint lands), then
            # the checkpoint and its head together, so a reader never sees a checkpoint without values.
            for i in range(0, len(value_items), MAX_BATCH):
                await coll.put_many(value_items[i : i + MAX_BATCH])
            await coll.put_many(tail())
        if head:
            self._remember(self._heads, (thread_id, ns), cid)
        return run_config(thread_id, ns, cid)

    async def _advances_head(self, coll: Collection, thread_id: str, ns: str, cid: str) -> bool:
        known = self._heads.get((thread_id, ns))
        if known is None:
            raw = await coll.get(hkey(ns))
            if raw is None:
                return True
            known = self._decode_record(raw, hkey(ns)).cid
        return cid >= known

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes (and the checkpoint's writes marker) in one ``put_many``."""
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        cid = conf["checkpoint_id"]
        items: list[tuple[str, object]] = [
            (
                wkey(ns, cid, task_path, task_id, WRITES_IDX_MAP.get(channel, idx)),
                self._encode_value(value, [channel]),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        if not items:
            return
        self._remember(self._written, (thread_id, ns, cid), None)
        coll = self._coll(thread_id)
        await self._touch(coll, thread_id)
        for i in range(0, len(items), MAX_BATCH - 2):
            await coll.put_many(
                [*items[i : i + MAX_BATCH - 2], (xkey(ns, cid), 1), *self._meta_items(thread_id)]
            )

    # -- deletes, copies, retention ----------------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint, value and write of the thread (large values included)."""
        await self._coll(str(thread_id)).drop()
        self._forget(str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints (and their writes) whose metadata ``run_id`` is one of ``run_ids``."""
        for run_id in run_ids:
            prefix = join(run_id) + SEP
            index = [item async for item in self._runs.list(prefix=prefix)]
            for entry in index:
                thread_id = cast(str, entry.value)
                await self._delete_run_in_thread(thread_id, run_id)
                self._indexed.pop((run_id, thread_id), None)
            if index:
                await self._runs.delete_many([e.key for e in index])

    async def _delete_run_in_thread(self, thread_id: str, run_id: str) -> None:
        coll = self._coll(thread_id)
        flt = {"run_id": run_id}
        where, _ = split_filter(flt, prefix="m_")
        sources = [coll.list(prefix="c" + SEP, where=where or None)]
        if where:
            sources.append(coll.list(prefix="c" + SEP, where={ATTR_INCOMPLETE: True}))
        doomed: list[CheckpointRecord] = []
        for source in sources:
            async for item in source:
                record = self._decode_record(item.value, item.key)
                if matches(record.metadata, flt):
                    doomed.append(record)
        if not doomed:
            return
        keys: list[str] = []
        for r in doomed:
            keys += [ckey(r.ns, r.cid), xkey(r.ns, r.cid)]
            keys += [item.key async for item in coll.list(prefix=wprefix(r.ns, r.cid))]
        await self._delete_keys(coll, keys)
        await self._repair_heads(coll, thread_id, {r.ns for r in doomed})

    async def _repair_heads(self, coll: Collection, thread_id: str, namespaces: set[str]) -> None:
        """Point each namespace's head at its newest remaining checkpoint (or remove it)."""
        for ns in namespaces:
            newest = [item async for item in coll.list(prefix=cprefix(ns), reverse=True, limit=1)]
            if newest:
                await coll.put(hkey(ns), newest[0].value)
                self._remember(self._heads, (thread_id, ns), split(newest[0].key)[2])
            else:
                await coll.delete(hkey(ns))
                self._heads.pop((thread_id, ns), None)

    @staticmethod
    async def _delete_keys(coll: Collection, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), MAX_BATCH):
            await coll.delete_many(list(keys[i : i + MAX_BATCH]))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, value and write of a thread to another thread id (not atomic)."""
        source_id, target_id = str(source_thread_id), str(target_thread_id)
        src, dst = self._coll(source_id), self._coll(target_id)
        if await src.get(META_KEY) is None:
            return
        await self._touch(dst, target_id)
        data: list[tuple[str, object]] = []
        records: list[tuple[str, object, dict[str, Any]]] = []
        heads: list[tuple[str, object]] = []
        runs: set[str] = set()
        async for item in src.list():
            kind = item.key.split(SEP, 1)[0]
            if kind == META_KEY:
                continue
            if kind in ("c", "h"):
                r = self._decode_record(item.value, item.key)
                value = self._encode_record(target_id, r.ns, r.checkpoint, r.metadata, r.parent)
                if kind == "h":
                    heads.append((item.key, value))
                else:
                    records.append((item.key, value, dict(item.attrs or {})))
                    if isinstance(run := r.metadata.get("run_id"), str) and run:
                        runs.add(run)
            else:
                data.append((item.key, item.value))
        for run_id in sorted(runs):
            await self._runs.put(join(run_id, target_id), target_id)
        # Values and writes first, then checkpoints, heads last: a partial copy has no head.
        ordered: list[Any] = [*self._meta_items(target_id), *data, *records, *heads]
        for i in range(0, len(ordered), MAX_BATCH):
            await dst.put_many(ordered[i : i + MAX_BATCH])
        self._forget(target_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the newest checkpoint per namespace (and what it needs); ``delete``: all.

        Values no kept checkpoint references are removed too. Note LangGraph's warning on
        ``DeltaChannel`` (beta): pruning ancestors of a delta-channel checkpoint loses its history.
        """
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInputError(f"unknown prune strategy {strategy!r}", operation="aprune")
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
            else:
                await self._keep_latest(str(thread_id))

    async def _keep_latest(self, thread_id: str) -> None:
        coll = self._coll(thread_id)
        keep: set[str] = {META_KEY}
        for ns in await self._namespaces(coll):
            newest = [item async for item in coll.list(prefix=cprefix(ns), reverse=True, limit=1)]
            keep.add(hkey(ns))
            if not newest:
                continue
            r = self._decode_record(newest[0].value, newest[0].key)
            keep.update({ckey(ns, r.cid), xkey(ns, r.cid)})
            keep.update(vkey(ns, ch, ver) for ch, ver in r.checkpoint["channel_versions"].items())
            keep.update([item.key async for item in coll.list(prefix=wprefix(ns, r.cid))])
        doomed = [item.key async for item in coll.list() if item.key not in keep]
        await self._delete_keys(coll, doomed)

    async def asweep(self) -> int:
        """Drop every thread of this view whose idle TTL has passed; returns how many were dropped.

        Reads already treat expired threads as absent; this reclaims their storage. It lists the
        view's collections (a cross-partition admin query on Cosmos), so run it from a timer.
        """
        dropped = 0
        async for name in self.memory.collections(prefix=THREAD_KIND):
            coll = self.memory.collection(name)
            if await coll.get(META_KEY) is None:
                await coll.drop()
                dropped += 1
        return dropped

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Zero-padded counter plus a random fraction: increasing, and unique across forks."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- sync API (runs the async methods on the saver's own loop) ----------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync.run(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self._sync.iterate(cast(Any, self.alist(config, filter=filter, before=before, limit=limit)))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync.run(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._sync.run(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync.run(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._sync.run(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._sync.run(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._sync.run(self.aprune(thread_ids, strategy=strategy))

    def close(self) -> None:
        """Stop the private loop used by the sync methods (the memory client stays open)."""
        self._sync.close()


class _Newest:
    """Heap entry ordering records newest first (a max-heap on checkpoint id)."""

    __slots__ = ("index", "record")

    def __init__(self, record: CheckpointRecord, index: int) -> None:
        self.record = record
        self.index = index

    def __lt__(self, other: _Newest) -> bool:
        return (self.record.cid, -self.index) > (other.record.cid, -other.index)


async def _merge_desc(streams: Sequence[AsyncIterator[CheckpointRecord]]) -> AsyncIterator[CheckpointRecord]:
    """Merge per-namespace record streams, each newest first, into one newest-first stream."""
    heap: list[_Newest] = []
    for i, stream in enumerate(streams):
        first = await anext(stream, None)
        if first is not None:
            heapq.heappush(heap, _Newest(first, i))
    while heap:
        top = heapq.heappop(heap)
        yield top.record
        nxt = await anext(streams[top.index], None)
        if nxt is not None:
            heapq.heappush(heap, _Newest(nxt, top.index))
