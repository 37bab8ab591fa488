"""User code that ``mypy --strict`` must accept, or reject exactly where marked (tests/typing/test_typing.py).

Every line marked ``# error: <code>`` must get that mypy error and no line may get any other; the
file is never run.
"""

from __future__ import annotations

from typing import assert_type

from azure.identity.aio import DefaultAzureCredential
from pydantic import SecretStr

from tiermem import Entry, HotMemory, MemoryBuilder, MemoryClient
from tiermem._engine.guard import Guard

URL = "https://account.documents.azure.com:443/"


def builder_shortcuts(credential: DefaultAzureCredential) -> None:
    MemoryBuilder().with_cosmos(URL, "db", "c", key=123)  # error: arg-type
    MemoryBuilder().with_cosmos(URL, "db", "c", key="a2V5")
    MemoryBuilder().with_cosmos(URL, "db", "c", key=SecretStr("a2V5"), max_concurrency=4)
    MemoryBuilder().with_cosmos(URL, "db", "c", credential=credential, retry_total="5")  # error: arg-type
    MemoryBuilder().with_cosmos(URL, "db", "c", credentials=credential)  # error: call-arg
    MemoryBuilder().with_redis("rediss://cache.redis.azure.net", credential=credential, max_connections=8)
    MemoryBuilder().with_redis("redis://127.0.0.1", password="hunter2")
    MemoryBuilder().with_redis("redis://127.0.0.1", max_conections=8)  # error: call-arg
    MemoryBuilder().with_redis("redis://127.0.0.1", password=123)  # error: arg-type
    MemoryBuilder().with_blob("https://account.blob.core.windows.net", credential=credential)
    MemoryBuilder().with_blob(connection_string="UseDevelopmentStorage=true")
    MemoryBuilder().with_blob(connection_string=b"bytes")  # error: arg-type


async def reads(memory: MemoryClient) -> None:
    assert_type(await memory.get_entry("k"), Entry | None)
    assert_type(await memory.exists("k"), bool)


async def the_tier_seam(guard: Guard[HotMemory]) -> None:
    await guard.store.mdelete([])
    await guard.store.mdelet([])  # error: attr-defined
    await guard.gett(None)  # error: attr-defined
