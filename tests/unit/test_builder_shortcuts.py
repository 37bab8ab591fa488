"""``with_redis``/``with_cosmos``/``with_blob``: the adapters' own arguments, plain-string secrets
wrapped (never shown), and mistakes refused before any I/O."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import SecretStr

from tiermem import ConfigurationError, MemoryBuilder, Tier
from tiermem.tiers.blob import BlobColdMemory, BlobOptions
from tiermem.tiers.cosmos import CosmosOptions, CosmosWarmMemory
from tiermem.tiers.redis import RedisHotMemory, RedisOptions

EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


@pytest.mark.parametrize(
    "make",
    [
        lambda **o: CosmosWarmMemory("http://127.0.0.1:8081", "db", "c", key=EMULATOR_KEY, **o),
        lambda **o: BlobColdMemory(connection_string=AZURITE, **o),
        lambda **o: RedisHotMemory.from_url("redis://127.0.0.1:6379", **o),
        lambda **o: RedisHotMemory.from_host("127.0.0.1", 6379, tls=False, **o),
        lambda **o: MemoryBuilder().with_cosmos("http://127.0.0.1:8081", "db", "c", key=EMULATOR_KEY, **o),
        lambda **o: MemoryBuilder().with_blob(connection_string=AZURITE, **o),
        lambda **o: MemoryBuilder().with_redis("redis://127.0.0.1:6379", **o),
    ],
)
def test_unknown_options_fail_like_unknown_keywords(make: Any) -> None:
    with pytest.raises(TypeError, match="max_conections"):
        make(max_conections=4)


def test_the_shortcuts_and_constructors_share_one_typed_definition_of_their_options() -> None:
    def options_of(factory: Any) -> Any:
        return inspect.signature(factory).parameters["options"].annotation

    assert options_of(MemoryBuilder.with_redis) == "Unpack[RedisOptions]"
    assert (
        options_of(RedisHotMemory.from_url) == options_of(RedisHotMemory.from_host) == "Unpack[RedisOptions]"
    )
    assert options_of(MemoryBuilder.with_cosmos) == options_of(CosmosWarmMemory) == "Unpack[CosmosOptions]"
    assert options_of(MemoryBuilder.with_blob) == options_of(BlobColdMemory) == "Unpack[BlobOptions]"
    assert {"credential", "password", "cluster", "max_connections"} <= RedisOptions.__optional_keys__
    assert {"credential", "key", "client", "max_concurrency", "clock"} <= CosmosOptions.__optional_keys__
    assert {"credential", "connection_string", "service_client", "audience"} <= BlobOptions.__optional_keys__


async def test_plain_string_secrets_are_wrapped_and_never_shown() -> None:
    builder = (
        MemoryBuilder()
        .with_redis("redis://127.0.0.1:6379", password="hunter2-secret")
        .with_cosmos("http://127.0.0.1:8081", "db", "c", key=EMULATOR_KEY)
        .with_blob(container="abc", connection_string=AZURITE)
    )
    memory = builder.build()
    async with memory:
        for tier in (Tier.HOT, Tier.WARM, Tier.COLD):
            store = memory.tier_store(tier)
            assert store is not None
            shown = repr(store) + str(vars(store))
            assert "hunter2-secret" not in shown and EMULATOR_KEY not in shown
            assert "Eby8vdM02x" not in shown
        cosmos = memory.tier_store(Tier.WARM)
        assert isinstance(cosmos, CosmosWarmMemory)
        assert isinstance(cosmos._key, SecretStr)


@pytest.mark.parametrize("connection_string", [AZURITE, "UseDevelopmentStorage=true", f" {AZURITE}"])
def test_a_connection_string_given_as_account_url_is_refused_without_echoing_it(
    connection_string: str,
) -> None:
    with pytest.raises(ConfigurationError, match="pass it as connection_string=") as info:
        MemoryBuilder().with_blob(connection_string)
    assert "Eby8vdM02x" not in str(info.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.with_cosmos("http://127.0.0.1:8081", "db", "c", key=123), "str or a pydantic.SecretStr"),
        (lambda b: b.with_blob(connection_string=b"raw"), "str or a pydantic.SecretStr"),
        (lambda b: b.with_redis("redis://127.0.0.1:6379", password=123), "str, a pydantic.SecretStr"),
    ],
)
def test_wrong_secret_types_fail_loudly(call: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        call(MemoryBuilder())
