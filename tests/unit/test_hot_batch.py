"""Batch reads of hot envelopes (issue 17): classified and decoded from header fields, they must agree
with the record path on every kind of stored record, and the pieces they use with their originals."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.records import CODEC, k
from tiermem import CorruptValueError, MemoryKey, Record, RecordKind, ResultTooLargeError, make_key
from tiermem._codec import HEADER_SIZE, MIN_HEADER_SIZE, lease, make_record, read_header, tombstone
from tiermem._engine.budget import DecodeBudget
from tiermem._engine.hot import (
    PINNED_EPOCH,
    UNBOUNDED,
    Lifetimes,
    Scan,
    classify,
    scan_envelopes,
    scan_records,
)
from tiermem._keys import redis_key, redis_names
from tiermem._seal import HotSeal
from tiermem._types import Value

NOW = 1_000_000.0
LATER = NOW + 60


def _value(value: Value, *, expires_at: float | None = LATER, epoch: int = 3) -> Record:
    record, _ = CODEC.encode(value, expires_at=expires_at)
    return record.for_hot(expires_at, epoch)


def _damaged(record: Record) -> Record:
    """The record with a checksum that does not match its payload."""
    return Record(
        record.kind, record.payload, record.compressed, record.expires_at, record.checksum ^ 1, None, 3
    )


STORED: dict[str, Record | None] = {
    "json": _value({"a": [1, 2.5, None, "x"]}),
    "str": _value("hello ✓"),
    "bytes": _value(b"\x00\x01raw"),
    "gzip": _value({"big": "x" * 5000}),  # compressed: the slow path
    "never-expires": _value([1, 2], expires_at=None),
    "pinned": _value("hot only", epoch=PINNED_EPOCH),
    "epoch-0": _value("filled before any epoch", epoch=0),  # written as a version-1 envelope
    "expired": _value("old", expires_at=NOW - 1),
    "stale": _value("filled under epoch 2", epoch=2),
    "lease": lease(LATER, b"token-123456"),
    "expired-lease": lease(NOW - 1, b"token-123456"),
    "tombstone": tombstone(LATER).for_hot(LATER, 3),
    "old-tombstone": tombstone(LATER).for_hot(LATER, 1),
    "fence": make_record(RecordKind.FENCE, b"", expires_at=LATER),
    "pointer": make_record(RecordKind.POINTER, b"{}", expires_at=LATER, epoch=3),
    "crc-damaged": _damaged(_value({"a": 1})),
    "missing": None,
}


# Records a process with bounded lifetimes (hot_ttl 120 s) never writes: they read as misses.
BEYOND: dict[str, Record | None] = {
    "value-beyond-hot-ttl": _value("planted", expires_at=NOW + 10_000),
    "pinned-beyond-hot-ttl": _value("hot only, own TTL", expires_at=NOW + 10_000, epoch=PINNED_EPOCH),
    "lease-beyond": lease(NOW + 10_000, b"token-123456"),
    "tombstone-forever": make_record(RecordKind.TOMBSTONE, b"", epoch=3),
    "within-slack": _value("clock skew", expires_at=NOW + 120.5),
}
BOUNDED = Lifetimes(value=120.0, tombstone=120.0, lease=120.0)


def _scan_both(
    epoch: int, stored: dict[str, Record | None] = STORED, lifetimes: Lifetimes = UNBOUNDED
) -> tuple[tuple[dict[str, Value], Scan], tuple[dict[str, Value], Scan]]:
    mks = [k(name) for name in stored]
    records = list(stored.values())
    by_records: dict[str, Value] = {}
    scanned_records = Scan()
    scan_records(scanned_records, mks, records, NOW, epoch, CODEC, by_records, lifetimes=lifetimes)
    by_envelopes: dict[str, Value] = {}
    scanned_envelopes = Scan()
    envelopes = [None if r is None else r.to_bytes() for r in records]
    scan_envelopes(scanned_envelopes, mks, envelopes, NOW, epoch, CODEC, by_envelopes, lifetimes=lifetimes)
    return (by_records, scanned_records), (by_envelopes, scanned_envelopes)


@pytest.mark.parametrize("epoch", [0, 3, 4])
def test_both_scans_apply_the_lifetime_bounds_as_classify_does(epoch: int) -> None:
    stored = STORED | BEYOND
    (out_r, scan_r), (out_e, scan_e) = _scan_both(epoch, stored, BOUNDED)
    assert out_e == out_r
    assert (scan_e.hits, scan_e.pending, scan_e.to_lease) == (scan_r.hits, scan_r.pending, scan_r.to_lease)
    for name, record in stored.items():  # the scans and classify are one rule
        found = classify(record, NOW, epoch, BOUNDED)
        assert (name in out_r) == (isinstance(found, Record) and name not in {"pointer", "crc-damaged"})
    if epoch <= 3:
        assert {"pinned-beyond-hot-ttl", "within-slack"} <= set(out_e)
    leased = {mk.key for mk, _ in scan_e.to_lease}
    assert {"value-beyond-hot-ttl", "lease-beyond", "tombstone-forever", "never-expires"} <= leased


def _scan_one_way(
    by_envelopes: bool, records: list[Record | None], found: Scan, out: dict[str, Value], **bounds: Any
) -> None:
    mks = [k(f"key-{i}") for i in range(len(records))]
    if by_envelopes:
        envelopes = [None if r is None else r.to_bytes() for r in records]
        scan_envelopes(found, mks, envelopes, NOW, 3, CODEC, out, **bounds)
    else:
        scan_records(found, mks, records, NOW, 3, CODEC, out, **bounds)


@pytest.mark.parametrize("by_envelopes", [False, True])
def test_declared_sizes_are_checked_and_counted_before_inflating(by_envelopes: bool) -> None:
    records: list[Record | None] = [_value({"big": "x" * 5000}), _value("fine")]  # gzip, declares 5 KB
    found, out = Scan(), dict[str, Value]()
    _scan_one_way(by_envelopes, records, found, out, limit=1000)
    assert out == {"key-1": "fine"}
    assert [mk.key for mk, _ in found.damaged] == ["key-0"]
    assert "hot_max_bytes=1000" in str(found.damaged[0][1])
    budget = DecodeBudget(100)
    with pytest.raises(ResultTooLargeError):
        _scan_one_way(by_envelopes, records, Scan(), {}, budget=budget)
    assert budget.left == 100  # nothing counted, nothing inflated


def test_a_damaged_envelope_costs_only_its_own_key() -> None:
    seal = HotSeal([b"k" * 32])
    names = redis_names([k("a"), k("b"), k("c")])
    good = [seal.seal(name, _value(name.decode())) for name in names]
    moved = good[0]  # a's record planted under b: the seal binds the name
    stored = [good[0], moved, good[2]]
    envelopes = seal.envelopes(names, stored)
    scan, out = Scan(), dict[str, Value]()
    scan_envelopes(scan, [k("a"), k("b"), k("c")], envelopes, NOW, 3, CODEC, out)
    assert out == {"a": names[0].decode(), "c": names[2].decode()}
    assert [mk.key for mk, _ in scan.damaged] == ["b"] and scan.pending == [k("b")]
    assert "fails its seal" in str(scan.damaged[0][1])
    assert scan.damaged[0][1].key_hash is not None


@pytest.mark.parametrize("epoch", [0, 3, 4])
def test_envelopes_and_records_get_the_same_verdict_for_every_kind_of_hot_record(epoch: int) -> None:
    (out_r, scan_r), (out_e, scan_e) = _scan_both(epoch)
    assert out_e == out_r
    assert scan_e.hits == scan_r.hits
    assert scan_e.pending == scan_r.pending
    assert scan_e.to_lease == scan_r.to_lease  # the stale copies a lease replaces, byte for byte
    assert [mk for mk, _ in scan_e.damaged] == [mk for mk, _ in scan_r.damaged]
    for _, error in scan_e.damaged:
        assert (error.tier, error.operation) == (scan_r.damaged[0][1].tier, "mget")


def test_what_the_batch_verdicts_are() -> None:
    (out, scan), _ = _scan_both(3)
    values = {"json", "str", "bytes", "gzip", "never-expires", "pinned"}
    assert set(out) == values
    assert out["gzip"] == {"big": "x" * 5000} and out["bytes"] == b"\x00\x01raw"
    assert scan.hits == len(values) + 1  # and the live tombstone
    leasable = {"epoch-0", "expired", "stale", "expired-lease", "old-tombstone", "fence", "missing"}
    assert {mk.key for mk, _ in scan.to_lease} == leasable
    seen = {mk.key: record for mk, record in scan.to_lease}
    assert seen["stale"] == STORED["stale"] and seen["fence"] == STORED["fence"]  # live stale copies
    assert seen["expired"] is None and seen["missing"] is None  # nothing live to compare with
    assert {mk.key for mk, _ in scan.damaged} == {"pointer", "crc-damaged"}
    assert {mk.key for mk in scan.pending} == leasable | {"lease", "pointer", "crc-damaged"}


def test_bytes_that_are_no_envelope_are_damaged_not_leased() -> None:
    scan = Scan()
    out: dict[str, Value] = {}
    mks = [k("short"), k("foreign"), k("v9"), k("ok")]
    ok = _value("fine").to_bytes()
    v9 = bytes([ok[0], ok[1], 9]) + ok[3:]
    scan_envelopes(scan, mks, [b"TM", b"not a tiermem envelope at all!", v9, ok], NOW, 3, CODEC, out)
    assert out == {"ok": "fine"}
    assert [mk.key for mk, _ in scan.damaged] == ["short", "foreign", "v9"]
    assert [str(e).split(" (")[0] for _, e in scan.damaged] == [
        "stored value is 2 bytes, shorter than the envelope header",
        "stored value does not start with the tiermem envelope magic",
        "unsupported envelope version 9",
    ]
    assert scan.to_lease == [] and scan.pending == mks[:3]


def test_read_header_matches_the_parser() -> None:
    for name, record in STORED.items():
        if record is None:
            continue
        data = record.to_bytes()
        header = read_header(data)
        assert header is not None, name
        kind, flags, expires_at, crc, epoch, start = header
        parsed = Record.from_bytes(data)
        assert (kind, bool(flags & 1), expires_at or None, crc, epoch) == (
            parsed.kind,
            parsed.compressed,
            parsed.expires_at,
            parsed.checksum,
            parsed.epoch,
        )
        assert data[start:] == parsed.payload
        assert start == (HEADER_SIZE if parsed.epoch or parsed.wid else MIN_HEADER_SIZE)
    assert read_header(b"") is None
    assert read_header(b"XX" + STORED["json"].to_bytes()[2:]) is None  # type: ignore[union-attr]


@given(
    st.one_of(
        st.text(),
        st.binary(),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
            max_leaves=20,
        ),
    )
)
def test_value_on_fields_is_decode(value: Value) -> None:
    record, _ = CODEC.encode(value)
    assert CODEC.value(record.kind, record.compressed, record.checksum, record.payload) == CODEC.decode(
        record
    )


def test_value_on_fields_rejects_what_decode_rejects() -> None:
    good = _value({"a": 1})
    for record in (_damaged(good), STORED["pointer"], make_record(RecordKind.JSON, b"{not json")):
        assert record is not None
        with pytest.raises(CorruptValueError) as by_record:
            CODEC.decode(record)
        with pytest.raises(CorruptValueError) as by_fields:
            CODEC.value(record.kind, record.compressed, record.checksum, record.payload)
        assert str(by_fields.value) == str(by_record.value)
    with pytest.raises(CorruptValueError, match="kind 42"):
        CODEC.value(42, False, 0, b"")


def test_redis_names_are_the_encoded_redis_keys() -> None:
    keys: list[MemoryKey] = [
        make_key("t1", "n1", "a"),
        make_key("t1", "n1", "ünï:cødé {x}"),
        make_key("t2", "n1", "a"),
        make_key("t2", "n2", "a"),
        make_key("t1", "n1", "b"),
    ]
    for prefix in ("tm", "other.prefix"):
        assert redis_names(keys, prefix) == [redis_key(mk, prefix).encode() for mk in keys]
    assert redis_names([], "tm") == []


def test_hot_copies_keep_their_fields() -> None:
    record, _ = CODEC.encode({"x": 1}, expires_at=time.time() + 5)
    wid = record.with_write_id(b"12345678")
    assert (wid.wid, wid.payload, wid.checksum, wid.etag) == (
        b"12345678",
        record.payload,
        record.checksum,
        None,
    )
    hot = wid.for_hot(7.0, 9)
    assert (hot.expires_at, hot.epoch, hot.wid, hot.payload) == (7.0, 9, b"", record.payload)
    assert hot.with_expiry(None).expires_at is None and hot.with_expiry(None).epoch == 9
    stamped, _ = CODEC.encode({"x": 1}, expires_at=7.0, epoch=9)
    assert stamped == record.for_hot(7.0, 9)


def test_batch_seal_checks_agree_with_opening_one_record() -> None:
    old, new = HotSeal([b"o" * 32]), HotSeal([b"n" * 32, b"o" * 32])  # rotated: the old key verifies
    names = redis_names([k(f"r{i}") for i in range(7)])
    record = _value({"a": 1})
    stored: list[bytes | None] = [
        new.seal(names[0], record),
        old.seal(names[1], record),  # sealed before the rotation
        new.seal(names[0], record),  # another key's record
        record.to_bytes(),  # no seal
        new.seal(names[4], record)[:-1] + b"x",  # an edited tag
        b"TM",
        None,
    ]
    found = new.envelopes(names, stored)
    for name, data, got in zip(names, stored, found, strict=True):
        if data is None:
            assert got is None
            continue
        if isinstance(got, CorruptValueError):
            with pytest.raises(CorruptValueError, match=re.escape(got.message)):
                new.open(name, data)
        else:
            assert isinstance(got, bytes) and Record.from_bytes(got) == new.open(name, data)
    assert [isinstance(f, bytes) for f in found[:6]] == [True, True, False, False, False, False]
