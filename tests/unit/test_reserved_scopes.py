"""Issue 13 item 5: names tiermem keeps for its own structures are refused to plain views."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiermem import (
    AgentBuilder,
    ConversationStore,
    InvalidScopeError,
    MemoryBuilder,
    MemoryClient,
    SqliteWarmMemory,
)


def _memory(root: Path) -> MemoryClient:
    return MemoryBuilder().with_warm(SqliteWarmMemory(root / "warm.db")).build()


@pytest.mark.parametrize(("tenant", "namespace"), [(None, "sessions"), (None, "_x"), ("_tiermem", None)])
async def test_plain_views_cannot_reach_reserved_names(
    tmp_path: Path, tenant: str | None, namespace: str | None
) -> None:
    async with _memory(tmp_path) as memory:
        with pytest.raises(InvalidScopeError, match="reserved"):
            memory.scoped(tenant=tenant, namespace=namespace)
        assert memory.scoped(namespace="sessions.old").namespace == "sessions.old"  # only the exact name


def test_builders_refuse_reserved_names() -> None:
    with pytest.raises(InvalidScopeError):
        MemoryBuilder().with_scope(namespace="sessions")
    with pytest.raises(InvalidScopeError):
        MemoryBuilder().with_scope(tenant="_tiermem")
    with pytest.raises(InvalidScopeError):
        AgentBuilder().for_tenant("acme", namespace="_coherence")


async def test_the_session_store_still_uses_its_namespace(tmp_path: Path) -> None:
    async with _memory(tmp_path) as memory:
        await memory.setup()
        locked = memory.scoped(tenant="acme", lock_tenant=True)
        store = ConversationStore(locked)
        assert (store.memory.tenant, store.memory.namespace) == ("acme", "sessions")
        assert store.memory.tenant_locked
        assert await store.append_turn("s1", {"role": "user", "content": "hi"}) == 0
        assert await store.load_turns("s1") == [{"role": "user", "content": "hi"}]
        # A view made from the store's view by changing scope is a plain view again.
        with pytest.raises(InvalidScopeError):
            store.memory.scoped(namespace="_y")
