"""Issue 13 item 10: on a real 3-node Redis Cluster, a user key's braces never choose its slot.

Redis Cluster hashes only the text inside the first ``{...}`` of a name. Before, the user key
``{x}`` made ``tm:acme:ns:{x}`` land in the slot of ``x`` (and every ``{x}...`` key with it, on one
node). The tier's names now start their first tag themselves (an empty one), so the server
hashes the whole name. Slots are asked of the server (``CLUSTER KEYSLOT``), not computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from tiermem import MemoryKey, make_key
from tiermem._codec import Codec, Record
from tiermem.tiers.redis import RedisHotMemory


def _rec(value: str) -> Record:
    record, _ = Codec().encode(value, expires_at=None)
    return record


def _slot(admin: redis.Redis, name: str) -> int:
    return int(admin.execute_command("CLUSTER KEYSLOT", name))  # type: ignore[no-untyped-call]


def _holding(admins: Sequence[redis.Redis], slot: int) -> int:
    counts = [a.execute_command("CLUSTER COUNTKEYSINSLOT", slot) for a in admins]  # type: ignore[no-untyped-call]
    return sum(int(c) for c in counts)


async def test_a_braced_user_key_does_not_pick_its_slot(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    host, port = redis_cluster_nodes[0]
    admins = [redis.Redis(host=h, port=p, socket_timeout=5) for h, p in redis_cluster_nodes]
    store = RedisHotMemory.from_url(f"redis://{host}:{port}", cluster=True)
    try:
        keys: list[MemoryKey] = [make_key("acme", "ns", "{x}")]
        keys += [make_key("acme", "ns", f"{{x}}-{i}") for i in range(200)]
        await store.mset([(mk, _rec(mk.key)) for mk in keys])
        assert await store.mget(keys) == [_rec(mk.key) for mk in keys]

        x_slot = _slot(admins[0], "x")
        slots = [_slot(admins[0], store.raw_key(mk)) for mk in keys]
        assert slots[0] != x_slot
        assert _holding(admins, x_slot) == 0  # nothing landed in the slot the braces name
        assert len(set(slots)) > 150  # the {x} keys spread over slots (200 keys, 16384 slots)
        assert all(admin.dbsize() > 0 for admin in admins)  # and over every node
    finally:
        await store.aclose()
        for admin in admins:
            admin.close()
