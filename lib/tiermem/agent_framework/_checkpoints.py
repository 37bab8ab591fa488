"""``TierMemCheckpointStorage``: Agent Framework workflow checkpoints in one collection (ADR 0013).

Items of the collection ``af-checkpoints``:

- ``id!!<checkpoint_id>``: the checkpoint as JSON, written by tiermem's own codec
  (``_checkpoint_codec``): Agent Framework's types and the application's registered types are
  tagged JSON, anything else is refused on save, and nothing is ever pickled or unpickled;
- ``wf!!<workflow_name>!!<UTC timestamp>!!<checkpoint_id>``: the per-workflow index, in time order.

Both are written in one atomic ``put_many``, so a checkpoint is never listed without being loadable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from agent_framework import WorkflowCheckpoint, WorkflowCheckpointException

from tiermem._client import MemoryClient
from tiermem._errors import CorruptValueError, InvalidInputError, InvalidTTLError
from tiermem._ordkey import SEP, join, split
from tiermem.agent_framework._checkpoint_codec import CheckpointCodec

__all__ = ["TierMemCheckpointStorage"]

CHECKPOINT_COLLECTION: Final = "af-checkpoints"


def _id_key(checkpoint_id: str) -> str:
    return join("id", checkpoint_id)


def _stamp(timestamp: str) -> str:
    """A fixed-width UTC form of an ISO timestamp, so key order is time order."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"checkpoint timestamp is not ISO 8601: {timestamp!r:.60}", operation="save"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _wf_prefix(workflow_name: str) -> str:
    return join("wf", workflow_name) + SEP


class TierMemCheckpointStorage:
    """Agent Framework ``CheckpointStorage`` on tiermem.

    Args:
        memory: the memory view; its tenant and namespace scope the stored checkpoints.
        ttl: seconds after which a checkpoint expires (``None``: kept until deleted).
        types: the application's classes that workflow state, messages or requests may hold
            (dataclasses, pydantic models, enums, classes with ``to_dict``/``from_dict``); only
            these and Agent Framework's own serializable types are rebuilt on load.

    Raises:
        ConfigurationError: a class in ``types`` cannot be stored as JSON.
    """

    def __init__(
        self,
        memory: MemoryClient,
        *,
        ttl: float | None = None,
        types: Iterable[type] = (),
    ) -> None:
        if ttl is not None and not ttl > 0:
            raise InvalidTTLError(
                f"ttl must be a positive number of seconds, got {ttl!r}", operation="checkpoints"
            )
        self.memory = memory
        self.ttl = ttl
        self._codec = CheckpointCodec(types)
        self._coll = memory.collection(CHECKPOINT_COLLECTION)

    def _decode(self, item: object, key: str) -> WorkflowCheckpoint:
        """The checkpoint in a stored ``id!!`` item (``CorruptValueError`` if it is not ours)."""
        if not isinstance(item, dict) or "checkpoint" not in item:
            raise CorruptValueError("stored checkpoint item has no checkpoint", operation="load", key=key)
        return self._codec.decode_checkpoint(item["checkpoint"], key)

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        """Store a copy of ``checkpoint`` and return its id.

        Raises:
            InvalidValueError: the checkpoint holds a value of a type that is neither JSON, nor
                Agent Framework's, nor registered in ``types`` (raised before anything is written).
        """
        encoded = self._codec.encode_checkpoint(checkpoint)
        cid = checkpoint.checkpoint_id
        index = join("wf", checkpoint.workflow_name, _stamp(checkpoint.timestamp), cid)
        previous = await self._coll.get(_id_key(cid))
        await self._coll.put_many(
            [(_id_key(cid), {"index": index, "checkpoint": encoded}), (index, cid)], ttl=self.ttl
        )
        if isinstance(previous, dict) and previous.get("index") not in (None, index):
            # The same id saved again under another workflow or timestamp: drop the old index entry.
            await self._coll.delete(previous["index"])
        return cid

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        """The checkpoint with this id.

        Raises:
            WorkflowCheckpointException: there is no checkpoint with this id.
            CorruptValueError: the stored checkpoint holds data this storage did not write (an
                unknown type tag, or a pickled value, which is never unpickled).
        """
        key = _id_key(checkpoint_id)
        value = await self._coll.get(key)
        if value is None:
            raise WorkflowCheckpointException(f"No checkpoint found with ID {checkpoint_id}")
        return self._decode(value, key)

    async def list_checkpoint_ids(self, *, workflow_name: str) -> list[str]:
        """Ids of the workflow's checkpoints, oldest first."""
        return [split(item.key)[-1] async for item in self._coll.list(prefix=_wf_prefix(workflow_name))]

    async def list_checkpoints(self, *, workflow_name: str) -> list[WorkflowCheckpoint]:
        """The workflow's checkpoints, oldest first."""
        ids = await self.list_checkpoint_ids(workflow_name=workflow_name)
        out: list[WorkflowCheckpoint] = []
        for start in range(0, len(ids), 100):
            chunk = [_id_key(cid) for cid in ids[start : start + 100]]
            got = await self._coll.get_many(chunk)
            out += [self._decode(got[k], k) for k in chunk if got.get(k) is not None]
        return out

    async def get_latest(self, *, workflow_name: str) -> WorkflowCheckpoint | None:
        """The newest checkpoint (ties on the timestamp resolved by lineage, then by id)."""
        newest: list[WorkflowCheckpoint] = []
        stamp: str | None = None
        async for item in self._coll.list(prefix=_wf_prefix(workflow_name), reverse=True):
            _, _, item_stamp, cid = split(item.key)
            if stamp is not None and item_stamp != stamp:
                break
            stamp = item_stamp
            value = await self._coll.get(_id_key(cid))
            if value is not None:
                newest.append(self._decode(value, _id_key(cid)))
        if not newest:
            return None
        superseded = {cp.previous_checkpoint_id for cp in newest}
        leaves = [cp for cp in newest if cp.checkpoint_id not in superseded]
        return max(leaves or newest, key=lambda cp: cp.checkpoint_id)

    async def delete(self, checkpoint_id: str) -> bool:
        """Delete a checkpoint; False if there was none."""
        key = _id_key(checkpoint_id)
        value = await self._coll.get(key)
        if value is None:
            return False
        keys = [key]
        if isinstance(value, dict) and isinstance(value.get("index"), str):
            keys.append(value["index"])
        await self._coll.delete_many(keys)
        return True
