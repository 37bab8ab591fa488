"""The value codec: envelope header, JSON/str/bytes serialization, gzip, and corruption detection."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import gzip
import math
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiermem import (
    Codec,
    CorruptValueError,
    InvalidInputError,
    InvalidValueError,
    Record,
    RecordKind,
    ValueTooLargeError,
)
from tiermem._codec import checksum

# The envelope layout from the module docstring:
#   magic "TM" | version u8 | kind u8 | flags u8 | expires_at f64 | crc32 u32 | payload
HEADER_SIZE = 2 + 1 + 1 + 1 + 8 + 4
VERSION_OFFSET = 2
KIND_OFFSET = 3
FLAGS_OFFSET = 4

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also compares types, so 1 != 1.0 != True and lists are not tuples."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def round_trip(value: Any, codec: Codec | None = None) -> Any:
    codec = codec or Codec()
    record, _ = codec.encode(value)
    # Through the stored byte form too, as every single-blob tier does.
    return codec.decode(Record.from_bytes(record.to_bytes()))


def with_payload(record: Record, payload: bytes) -> Record:
    """The record with another payload and a *correct* CRC, so only deeper checks can catch damage."""
    return dataclasses.replace(
        record, payload=payload, checksum=checksum(record.kind, record.compressed, payload)
    )


def compressed_record(codec: Codec) -> tuple[Record, bytes]:
    raw = ("tiermem compresses this sentence nicely. " * 300).encode()
    record, _ = codec.encode(raw)
    assert record.compressed
    return record, raw


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        INT64_MIN,
        UINT64_MAX,
        0.1,
        -0.0,
        1e308,
        5e-324,
        {"a": 1},
        [1, "two", 3.5, None, True],
        {"nested": {"list": [{"deep": [1, [2, [3, {"x": "y"}]]]}], "empty": {}, "none": None}},
        {"unicode": "żółć 日本語 😀 \u2028", "key 😀": ["ü", "\x00 ok in JSON strings"]},
        [[], {}, [[]], [{}]],
    ],
)
def test_json_round_trip(value: Any) -> None:
    record, raw_size = Codec().encode(value)
    assert record.kind is RecordKind.JSON
    assert raw_size > 0
    assert strict_equal(round_trip(value), value)


@pytest.mark.parametrize("value", ["", "plain", "ü", "日本語", "😀𝄞𐍈", "\x00\n\t", "a" * 10_000])
def test_str_round_trip(value: str) -> None:
    record, raw_size = Codec().encode(value)
    assert record.kind is RecordKind.STR
    assert raw_size == len(value.encode("utf-8"))
    decoded = round_trip(value)
    assert type(decoded) is str
    assert decoded == value


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\xff\x80",
        bytearray(b"mutable bytes"),
        memoryview(b"viewed bytes"),
        memoryview(b"0123456789")[2:7],
        os.urandom(10_000),
        b"\x00" * 10_000,
    ],
)
def test_bytes_round_trip(value: bytes | bytearray | memoryview) -> None:
    record, raw_size = Codec().encode(value)
    assert record.kind is RecordKind.BYTES
    assert raw_size == len(bytes(value))
    decoded = round_trip(value)
    assert type(decoded) is bytes
    assert decoded == bytes(value)


def test_tuples_come_back_as_lists() -> None:
    assert strict_equal(round_trip({"t": (1, (2, 3))}), {"t": [1, [2, 3]]})


def test_str_that_looks_like_json_stays_a_str() -> None:
    for text in ['{"a": 1}', "1", "null", "true", '"quoted"']:
        assert round_trip(text) == text
        assert type(round_trip(text)) is str


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=UINT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_property_json_round_trip(value: Any) -> None:
    assert strict_equal(round_trip(value), value)
    # The same with compression switched on for almost everything.
    assert strict_equal(round_trip(value, Codec(compress_min_bytes=1, min_saving=0.0)), value)


@settings(max_examples=200, deadline=None)
@given(st.text() | st.binary())
def test_property_str_and_bytes_round_trip(value: str | bytes) -> None:
    decoded = round_trip(value, Codec(compress_min_bytes=16))
    assert type(decoded) is type(value)
    assert decoded == value


# -- values that cannot be stored --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        [1.0, float("nan")],
        [None, float("inf")],
        {"a": float("nan")},
        {"a": None, "b": {"c": [1, 2, {"d": float("-inf")}]}},
        ("tuple", float("nan")),
        [[[[[float("inf")]]]]],
    ],
)
def test_non_finite_floats_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidValueError):
        Codec().encode(value)


@dataclasses.dataclass
class _Point:
    x: int
    y: int


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset({1}),
        object(),
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 1),
        _Point(1, 2),
        complex(1, 2),
        decimal.Decimal("1.5"),
        2**64,
        INT64_MIN - 1,
        {1: "int key"},
        {("a",): "tuple key"},
        {None: "none key"},
        ["bytes nested in JSON", b"raw"],
        {"a": {"b": [{1, 2}]}},
        {"a": object()},
        [2**70],
    ],
    ids=repr,
)
def test_non_json_values_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidValueError):
        Codec().encode(value)


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_nesting_beyond_the_serializer_limit_is_rejected(depth: int) -> None:
    with pytest.raises(InvalidValueError):
        Codec().encode(_nested_list(depth))
    with pytest.raises(InvalidValueError):
        Codec().encode(_nested_dict(depth))


def test_moderate_nesting_round_trips() -> None:
    value = _nested_list(100)
    assert round_trip(value) == value


@pytest.mark.parametrize("value", ["\ud800", "ok\udfffok", ["\ud83d"], {"k": "\udc00"}, {"\ud800": 1}])
def test_lone_surrogates_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidValueError):
        Codec().encode(value)


def test_invalid_value_error_is_a_value_error_and_chains_its_cause() -> None:
    with pytest.raises(InvalidValueError) as info:
        Codec().encode({1, 2})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InvalidInputError)
    assert info.value.__cause__ is not None


# -- compression ---------------------------------------------------------------------------------------


def test_compressible_value_at_threshold_is_gzip() -> None:
    codec = Codec()
    text = ("abc" * 2000)[: codec.compress_min_bytes]
    record, raw_size = codec.encode(text)
    assert raw_size == codec.compress_min_bytes
    assert record.compressed
    assert len(record.payload) <= 0.9 * raw_size
    # A real gzip stream that any gzip reader accepts.
    assert gzip.decompress(record.payload) == text.encode()
    assert record.payload[:2] == b"\x1f\x8b"
    assert codec.decode(record) == text


def test_value_just_below_threshold_is_never_compressed() -> None:
    codec = Codec()
    text = "a" * (codec.compress_min_bytes - 1)
    record, _ = codec.encode(text)
    assert not record.compressed
    assert record.payload == text.encode()


@pytest.mark.parametrize("threshold", [0, 1, 100, 4096, 1 << 20])
def test_custom_threshold(threshold: int) -> None:
    codec = Codec(compress_min_bytes=threshold)
    below = b"z" * max(threshold - 1, 0)
    at = b"z" * max(threshold, 64)
    if threshold > 0:
        assert not codec.encode(below)[0].compressed
    assert codec.encode(at)[0].compressed


def test_incompressible_value_of_the_same_size_is_stored_raw() -> None:
    codec = Codec()
    data = os.urandom(8192)
    record, raw_size = codec.encode(data)
    assert raw_size == len(data)
    assert not record.compressed
    assert record.payload == data


def test_compression_must_save_at_least_ten_percent() -> None:
    codec = Codec()
    # ~4% of zeros: gzip cannot save 10% of 5000 random-dominated bytes at any level.
    small_saving = os.urandom(4800) + b"\x00" * 200
    # ~20% of zeros: every gzip level saves well over 10%.
    big_saving = os.urandom(4000) + b"\x00" * 1000
    assert not codec.encode(small_saving)[0].compressed
    assert codec.encode(big_saving)[0].compressed
    assert round_trip(small_saving) == small_saving
    assert round_trip(big_saving) == big_saving


def test_compressed_json_and_str_round_trip() -> None:
    codec = Codec()
    value = {"rows": [{"id": i, "name": "row"} for i in range(500)]}
    record, _ = codec.encode(value)
    assert record.compressed
    assert codec.decode(record) == value
    text = "compressible text 😀 " * 500
    record, _ = codec.encode(text)
    assert record.compressed
    assert codec.decode(record) == text


def test_empty_value_is_never_compressed() -> None:
    codec = Codec(compress_min_bytes=0, min_saving=0.0)
    record, raw_size = codec.encode(b"")
    assert raw_size == 0
    assert not record.compressed
    assert codec.decode(record) == b""


@pytest.mark.parametrize(
    "kwargs",
    [{"compress_min_bytes": -1}, {"compress_level": 10}, {"compress_level": -1}, {"min_saving": 1.0}],
)
def test_codec_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Codec(**kwargs)


# -- the header --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RecordKind))
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("expires_at", [None, 1_700_000_000.123456, 1.0, 4e9])
def test_header_round_trip_preserves_every_field(
    kind: RecordKind, compressed: bool, expires_at: float | None
) -> None:
    payload = b"payload \x00\xff"
    record = Record(kind, payload, compressed, expires_at, checksum(kind, compressed, payload))
    data = record.to_bytes()
    assert len(data) == HEADER_SIZE + len(payload) == record.size
    assert data[:2] == b"TM"
    assert data[KIND_OFFSET] == int(kind)
    for form in (data, bytearray(data), memoryview(data)):
        back = Record.from_bytes(form)
        assert back == record
        assert back.kind is kind
        assert back.expires_at == expires_at
        assert back.etag is None
    assert Record.from_bytes(data, etag="v1").etag == "v1"


def test_header_keeps_expiry_none_apart_from_a_time() -> None:
    codec = Codec()
    never, _ = codec.encode("v")
    later, _ = codec.encode("v", expires_at=1234.5)
    assert Record.from_bytes(never.to_bytes()).expires_at is None
    assert Record.from_bytes(later.to_bytes()).expires_at == 1234.5
    assert not Record.from_bytes(never.to_bytes()).is_expired(1e12)
    assert Record.from_bytes(later.to_bytes()).is_expired(1234.5)
    assert not Record.from_bytes(later.to_bytes()).is_expired(1234.4)


def test_with_expiry_keeps_the_record_decodable() -> None:
    codec = Codec()
    record, _ = codec.encode({"a": 1})
    moved = Record.from_bytes(record.with_expiry(99.0).to_bytes())
    assert moved.expires_at == 99.0
    assert codec.decode(moved) == {"a": 1}


# -- corruption ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a string", {"json": [1, 2, 3]}, b"\x00bytes\xff"])
@pytest.mark.parametrize("position", [0, -1])
def test_flipped_payload_byte_fails_the_crc(value: Any, position: int) -> None:
    codec = Codec()
    data = bytearray(codec.encode(value)[0].to_bytes())
    index = HEADER_SIZE if position == 0 else len(data) - 1
    data[index] ^= 0x01
    with pytest.raises(CorruptValueError):
        codec.decode(Record.from_bytes(bytes(data)))


def test_flipped_byte_in_a_compressed_payload_fails() -> None:
    codec = Codec()
    record, _ = compressed_record(codec)
    data = bytearray(record.to_bytes())
    data[HEADER_SIZE + 20] ^= 0xFF
    with pytest.raises(CorruptValueError):
        codec.decode(Record.from_bytes(bytes(data)))


@pytest.mark.parametrize("magic", [b"XX", b"tm", b"\x00\x00", b"MT"])
def test_bad_magic(magic: bytes) -> None:
    data = Codec().encode("v")[0].to_bytes()
    with pytest.raises(CorruptValueError):
        Record.from_bytes(magic + data[2:])


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(version: int) -> None:
    data = bytearray(Codec().encode("v")[0].to_bytes())
    data[VERSION_OFFSET] = version
    with pytest.raises(CorruptValueError):
        Record.from_bytes(bytes(data))


@pytest.mark.parametrize("kind", [0, max(RecordKind) + 1, 255])
def test_unknown_kind(kind: int) -> None:
    data = bytearray(Codec().encode("v")[0].to_bytes())
    data[KIND_OFFSET] = kind
    with pytest.raises(CorruptValueError):
        Record.from_bytes(bytes(data))


@pytest.mark.parametrize("length", [0, 1, 2, HEADER_SIZE - 1])
def test_too_short(length: int) -> None:
    data = Codec().encode("")[0].to_bytes()
    assert len(data) == HEADER_SIZE
    with pytest.raises(CorruptValueError):
        Record.from_bytes(data[:length])


def test_header_only_record_is_valid() -> None:
    codec = Codec()
    assert codec.decode(Record.from_bytes(codec.encode(b"")[0].to_bytes())) == b""


def test_compressed_flag_on_a_plain_payload() -> None:
    codec = Codec()
    data = bytearray(codec.encode("not gzip at all")[0].to_bytes())
    data[FLAGS_OFFSET] |= 0x01
    with pytest.raises(CorruptValueError):
        codec.decode(Record.from_bytes(bytes(data)))


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 100])
def test_truncated_gzip_with_a_valid_crc(cut: int) -> None:
    codec = Codec()
    record, _ = compressed_record(codec)
    damaged = with_payload(record, record.payload[:-cut])
    with pytest.raises(CorruptValueError):
        codec.decode(Record.from_bytes(damaged.to_bytes()))


@pytest.mark.parametrize("garbage", [b"\x00", b"trailing garbage", gzip.compress(b"second member")])
def test_gzip_with_trailing_data_and_a_valid_crc(garbage: bytes) -> None:
    codec = Codec()
    record, _ = compressed_record(codec)
    damaged = with_payload(record, record.payload + garbage)
    with pytest.raises(CorruptValueError):
        codec.decode(Record.from_bytes(damaged.to_bytes()))


def test_gzip_internal_crc_is_checked() -> None:
    codec = Codec()
    record, _ = compressed_record(codec)
    # The gzip trailer is CRC32 of the original data (4 bytes) then its size (4 bytes).
    payload = bytearray(record.payload)
    payload[-8] ^= 0xFF
    with pytest.raises(CorruptValueError):
        codec.decode(with_payload(record, bytes(payload)))


def test_gzip_bomb_beyond_max_value_bytes() -> None:
    codec = Codec(max_value_bytes=10_000)
    bomb = gzip.compress(b"\x00" * 5_000_000)
    assert len(bomb) < 10_000
    record = Record(RecordKind.BYTES, bomb, True, None, checksum(RecordKind.BYTES, True, bomb))
    with pytest.raises(CorruptValueError):
        codec.decode(record)


def test_inflated_size_limit_is_exact() -> None:
    limit = 10_000
    codec = Codec(max_value_bytes=limit)
    at_limit = gzip.compress(b"a" * limit)
    over = gzip.compress(b"a" * (limit + 1))
    assert (
        codec.decode(
            Record(RecordKind.BYTES, at_limit, True, None, checksum(RecordKind.BYTES, True, at_limit))
        )
        == b"a" * limit
    )
    with pytest.raises(CorruptValueError):
        codec.decode(Record(RecordKind.BYTES, over, True, None, checksum(RecordKind.BYTES, True, over)))


def test_unparseable_json_payload() -> None:
    payload = b'{"unterminated": '
    with pytest.raises(CorruptValueError):
        Codec().decode(
            Record(RecordKind.JSON, payload, False, None, checksum(RecordKind.JSON, False, payload))
        )


def test_invalid_utf8_str_payload() -> None:
    payload = b"\xff\xfe not utf-8"
    with pytest.raises(CorruptValueError):
        Codec().decode(Record(RecordKind.STR, payload, False, None, checksum(RecordKind.STR, False, payload)))


@pytest.mark.parametrize("kind", [RecordKind.TOMBSTONE, RecordKind.POINTER])
def test_tombstone_and_pointer_hold_no_value(kind: RecordKind) -> None:
    payload = b"" if kind is RecordKind.TOMBSTONE else b'{"blob": "t/n/k", "size": 1}'
    record = Record(kind, payload, False, 10.0, checksum(kind, False, payload))
    with pytest.raises(CorruptValueError):
        Codec().decode(record)
    with pytest.raises(CorruptValueError):
        Codec().decode(Record.from_bytes(record.to_bytes()))


# -- size limit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x" * 101, b"x" * 101, ["x" * 200]])
def test_value_above_max_value_bytes(value: Any) -> None:
    codec = Codec(max_value_bytes=100)
    with pytest.raises(ValueTooLargeError) as info:
        codec.encode(value)
    assert info.value.limit == 100
    assert info.value.size > 100
    assert isinstance(info.value, ValueError)


def test_value_at_max_value_bytes_is_accepted() -> None:
    codec = Codec(max_value_bytes=100)
    record, raw_size = codec.encode(b"x" * 100)
    assert raw_size == 100
    assert codec.decode(record) == b"x" * 100
    with pytest.raises(ValueTooLargeError) as info:
        codec.encode(b"x" * 101)
    assert info.value.size == 101


def test_header_kind_is_covered_by_the_checksum() -> None:
    record, _ = Codec().encode({"a": 1})
    raw = bytearray(record.to_bytes())
    raw[3] = RecordKind.BYTES  # the kind byte: JSON -> BYTES would hand back raw JSON bytes
    with pytest.raises(CorruptValueError):
        Codec().decode(Record.from_bytes(bytes(raw)))
