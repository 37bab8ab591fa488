"""A record keeps its payload's size in memory, not the serializer's buffer (the in-process hot tier
holds records for their whole life)."""

from __future__ import annotations

import gc
import tracemalloc

from tiermem._codec import Codec, Record

_ITEMS = 2_000
_VALUE_BYTES = 300


def test_an_encoded_json_record_retains_about_its_own_size() -> None:
    codec = Codec()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept: list[Record] = [codec.encode({"n": i, "text": "x" * _VALUE_BYTES})[0] for i in range(_ITEMS)]
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    retained = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_item = retained / _ITEMS
    payload = len(kept[0].payload)
    # A record object plus an exact-size payload is well under 3x the payload; orjson's buffer
    # alone was 1-4 KiB per value.
    assert per_item < 3 * payload, f"{per_item:.0f} B retained per {payload} B record"
