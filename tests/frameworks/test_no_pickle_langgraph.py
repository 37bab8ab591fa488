"""TierMemSaver never reaches an unpickler: a pickle-enabled serializer is refused, a planted pickle tag
is corrupt data."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from tiermem import ConfigurationError, CorruptValueError, FileColdMemory, MemoryBuilder, SqliteWarmMemory
from tiermem.langgraph import TierMemSaver
from tiermem.langgraph._layout import no_pickle


def test_a_serializer_with_pickle_fallback_is_refused(tmp_path: Path) -> None:
    memory = (
        MemoryBuilder()
        .with_warm(SqliteWarmMemory(tmp_path / "w.db"))
        .with_cold(FileColdMemory(tmp_path / "c"))
        .build()
    )
    with pytest.raises(ConfigurationError, match="pickle"):
        TierMemSaver(memory, serde=JsonPlusSerializer(pickle_fallback=True))
    TierMemSaver(memory, serde=JsonPlusSerializer())  # the default has no pickle fallback


def test_a_stored_pickle_tag_is_corrupt_never_loaded() -> None:
    with pytest.raises(CorruptValueError):
        no_pickle("pickle", "c|x")
    assert no_pickle("msgpack", "c|x") == "msgpack"
