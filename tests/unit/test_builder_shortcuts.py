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


def _keyword_options(factory: Any, *, skip: int) -> dict[str, str]:
    parameters = list(inspect.signature(factory).parameters.values())[skip:]
    return {p.name: str(p.annotation) for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize(
    ("options", "factory", "skip"),
    [(CosmosOptions, CosmosWarmMemory.__init__, 4), (BlobOptions, BlobColdMemory.__init__, 3)],
)
def test_builder_options_are_the_constructors_keywords(options: Any, factory: Any, skip: int) -> None:
    declared = {
        name: str(getattr(hint, "__forward_arg__", hint)) for name, hint in options.__annotations__.items()
    }
    assert declared == _keyword_options(factory, skip=skip)


def test_redis_options_cover_from_url_and_from_host() -> None:
    assert set(RedisOptions.__optional_keys__) >= {"credential", "password", "cluster", "max_connections"}
    assert [p.kind for p in inspect.signature(RedisHotMemory.from_url).parameters.values()][-1] is (
        inspect.Parameter.VAR_KEYWORD
    )
    with pytest.raises(TypeError, match="max_conections"):
        RedisHotMemory.from_url("redis://127.0.0.1:6379", max_conections=4)  # type: ignore[call-arg]


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
