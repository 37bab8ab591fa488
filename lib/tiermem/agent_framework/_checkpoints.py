"""``TierMemCheckpointStorage``: Agent Framework workflow checkpoints in one collection (ADR 0010).

Items of the collection ``af-checkpoints``:

- ``id!!<checkpoint_id>``: the checkpoint, encoded by Agent Framework's own checkpoint encoder
  (JSON; values that are not JSON are wrapped by Agent Framework and only decoded under its
  allow-list of types, exactly as its ``FileCheckpointStorage`` does);
- ``wf!!<workflow_name>!!<UTC timestamp>!!<checkpoint_id>``: the per-workflow index, in time order.

Both are written in one atomic ``put_many``, so a checkpoint is never listed without being loadable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from agent_framework import WorkflowCheckpoint, WorkflowCheckpointException
from agent_framework._workflows._checkpoint_encoding import decode_checkpoint_value, encode_checkpoint_value

from tiermem._client import MemoryClient
from tiermem._errors import CorruptValueError, InvalidInputError, InvalidTTLError
from tiermem._ordkey import SEP, join, split

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
        allowed_checkpoint_types: extra ``"module:qualname"`` types Agent Framework may restore,
            as for its ``FileCheckpointStorage``.
    """

    def __init__(
        self,
        memory: MemoryClient,
        *,
        ttl: float | None = None,
        allowed_checkpoint_types: list[str] | None = None,
    ) -> None:
        if ttl is not None and not ttl > 0:
            raise InvalidTTLError(
                f"ttl must be a positive number of seconds, got {ttl!r}", operation="checkpoints"
            )
        self.memory = memory
        self.ttl = ttl
        self._allowed: frozenset[str] = frozenset(allowed_checkpoint_types or ())
        self._coll = memory.collection(CHECKPOINT_COLLECTION)

    def _encode(self, checkpoint: WorkflowCheckpoint) -> dict[str, Any]:
        try:
            encoded: dict[str, Any] = encode_checkpoint_value(checkpoint.to_dict())
            # Refuse at save time what load would refuse, as Agent Framework's own storages do.
            decode_checkpoint_value(encoded, allowed_types=self._allowed)
        except WorkflowCheckpointException:
            raise
        except Exception as exc:
            raise WorkflowCheckpointException(
                f"Checkpoint {checkpoint.checkpoint_id} cannot be encoded or restored under this "
                "storage's allowed types; refusing to save."
            ) from exc
        return encoded

    def _decode(self, value: object, key: str) -> WorkflowCheckpoint:
        if not isinstance(value, dict):
            raise CorruptValueError("stored checkpoint is not an object", operation="load", key=key)
        return WorkflowCheckpoint.from_dict(decode_checkpoint_value(value, allowed_types=self._allowed))

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        """Store a copy of ``checkpoint`` and return its id."""
        encoded = self._encode(checkpoint)
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
        """The checkpoint with this id; raises ``WorkflowCheckpointException`` if there is none."""
        key = _id_key(checkpoint_id)
        value = await self._coll.get(key)
        if value is None:
            raise WorkflowCheckpointException(f"No checkpoint found with ID {checkpoint_id}")
        return self._decode(value.get("checkpoint") if isinstance(value, dict) else value, key)

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
            out += [self._decode(got[k]["checkpoint"], k) for k in chunk if got.get(k) is not None]
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
                newest.append(self._decode(value["checkpoint"], _id_key(cid)))
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
