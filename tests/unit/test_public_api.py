"""The public API is exactly ``tiermem.__all__``."""

from __future__ import annotations

import importlib
import inspect

import pytest

import tiermem

REQUIRED = {
    "MemoryBuilder",
    "MemoryClient",
    "HotMemory",
    "WarmMemory",
    "ColdMemory",
    "Tier",
    "LocalHotMemory",
    "SqliteWarmMemory",
    "FileColdMemory",
    "TierMemError",
    "make_key",
    "Codec",
    "Record",
    "RecordKind",
    "MemoryKey",
    "MemorySettings",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidScopeError",
    "InvalidValueError",
    "InvalidTTLError",
    "ValueTooLargeError",
    "ConfigurationError",
    "NotProvisionedError",
    "ClientClosedError",
    "TierError",
    "TierUnavailableError",
    "WriteOutcomeUnknownError",
    "CorruptValueError",
    "ConflictError",
    "ThrottledError",
    "AuthenticationError",
    "BatchWriteError",
    "Collection",
    "Item",
    "QuotaExceededError",
    "ForgetReport",
    "UsageReport",
    "MaintainReport",
    "Quota",
    "QuotaPolicy",
    "Retention",
    "RetentionPolicy",
}

INVALID_INPUT = {
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidScopeError",
    "InvalidValueError",
    "InvalidTTLError",
}


def exception_names() -> list[str]:
    return [
        name
        for name in tiermem.__all__
        if inspect.isclass(getattr(tiermem, name)) and issubclass(getattr(tiermem, name), BaseException)
    ]


def test_all_is_sorted_and_unique() -> None:
    names = list(tiermem.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert all(isinstance(name, str) for name in names)


def test_every_name_is_importable() -> None:
    module = importlib.import_module("tiermem")
    for name in tiermem.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from tiermem import {name}", namespace)
        assert namespace[name] is getattr(tiermem, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from tiermem import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(tiermem.__all__)


def test_required_names_are_public() -> None:
    assert set(tiermem.__all__) >= REQUIRED


def test_no_private_names_leak() -> None:
    assert [name for name in tiermem.__all__ if name.startswith("_")] == ["__version__"]
    assert isinstance(tiermem.__version__, str)
    assert tiermem.__version__


def test_public_classes_are_presented_as_public() -> None:
    # Everything is defined in private modules; what is exported must not itself be a private name.
    for name in tiermem.__all__:
        obj = getattr(tiermem, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__name__ == name, (name, obj.__name__)


def test_every_exception_is_a_tiermem_error() -> None:
    names = exception_names()
    assert len(names) >= 16
    for name in names:
        assert issubclass(getattr(tiermem, name), tiermem.TierMemError), name


@pytest.mark.parametrize("name", sorted(INVALID_INPUT | {"ValueTooLargeError"}))
def test_invalid_input_errors_are_value_errors(name: str) -> None:
    cls = getattr(tiermem, name)
    assert issubclass(cls, ValueError)
    assert issubclass(cls, tiermem.InvalidInputError)


@pytest.mark.parametrize(
    "name",
    [
        "TierError",
        "TierUnavailableError",
        "WriteOutcomeUnknownError",
        "CorruptValueError",
        "ConflictError",
        "ThrottledError",
        "AuthenticationError",
        "BatchWriteError",
        "ClientClosedError",
        "ConfigurationError",
    ],
)
def test_failures_are_not_value_errors(name: str) -> None:
    assert not issubclass(getattr(tiermem, name), ValueError)


def test_tier_failures_share_a_base() -> None:
    for name in ("TierUnavailableError", "CorruptValueError", "ConflictError", "ThrottledError"):
        assert issubclass(getattr(tiermem, name), tiermem.TierError)
    assert issubclass(tiermem.AuthenticationError, tiermem.TierError)
    assert issubclass(tiermem.BatchWriteError, tiermem.TierError)


def test_no_builtin_names_are_shadowed() -> None:
    import builtins

    assert not set(tiermem.__all__) & set(dir(builtins))


def test_errors_carry_context_but_not_raw_keys() -> None:
    secret_key = "user:42:ssn"
    err = tiermem.ConflictError("boom", tier=tiermem.Tier.WARM, operation="set", key=secret_key)
    assert err.tier is tiermem.Tier.WARM
    assert err.operation == "set"
    assert err.key_hash
    assert secret_key not in str(err)
    assert err.key_hash in str(err)
    assert err.key_hash == tiermem.ConflictError("x", key=secret_key).key_hash
    assert err.key_hash != tiermem.ConflictError("x", key="other").key_hash


def test_tier_enum() -> None:
    assert {t.name for t in tiermem.Tier} == {"HOT", "WARM", "COLD"}
