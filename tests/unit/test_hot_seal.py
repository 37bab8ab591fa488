"""Issue 13 items 1-2, pure logic: the hot record seal, the lifetime rule of hot reads, and the bounds
on decoding (``hot_max_bytes`` per hot record, ``mget_max_bytes`` per batch). Services: none."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest
from pydantic import SecretStr

from tests.records import CODEC, k, rec
from tiermem import (
    ConfigurationError,
    CorruptValueError,
    Policy,
    RecordKind,
    ResultTooLargeError,
    Tier,
    ValueTooLargeError,
)
from tiermem._codec import Record, lease, make_record, tombstone
from tiermem._engine.budget import DecodeBudget
from tiermem._engine.hot import ABSENT, MISS, PINNED_EPOCH, Lifetimes, classify
from tiermem._engine.writes import Layout, Route, plan
from tiermem._seal import TAG_BYTES, HotSeal, SealKeys

KEY = SecretStr("k" * 32)
OLD = SecretStr("o" * 32)
NAME = b"tm:acme:ns:{}doc"
_MIB = 1024 * 1024


def bomb(decoded: int) -> Record:
    """A BYTES record whose gzip payload inflates to ``decoded`` zero bytes (a few KiB stored)."""
    payload = zlib.compress(bytes(decoded), 9, wbits=31)
    return make_record(RecordKind.BYTES, payload, compressed=True)


# -- the seal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seal", [HotSeal(), HotSeal.from_secrets(KEY)], ids=["unkeyed", "keyed"])
def test_a_sealed_record_round_trips_and_sealing_is_deterministic(seal: HotSeal) -> None:
    record = rec({"a": 1, "text": "x" * 5000}, ttl=60).for_hot(2e9, 7)
    data = seal.seal(NAME, record)
    assert data == seal.seal(NAME, record)  # compare-and-swap compares these bytes
    assert len(data) == record.size + TAG_BYTES
    opened = seal.open(NAME, data)
    assert opened == record
    assert seal.seal(NAME, opened) == data


@pytest.mark.parametrize("seal", [HotSeal(), HotSeal.from_secrets(KEY)], ids=["unkeyed", "keyed"])
def test_the_seal_binds_the_name_and_every_byte(seal: HotSeal) -> None:
    data = seal.seal(NAME, rec("value").for_hot(2e9, 3))
    with pytest.raises(CorruptValueError, match="fails its seal"):
        seal.open(b"tm:other:ns:{}doc", data)  # another tenant's key
    with pytest.raises(CorruptValueError, match="fails its seal"):
        seal.open(b"tm:acme:ns:{}doc2", data)
    for offset in range(3, len(data) - TAG_BYTES):  # kind, flags, expiry, crc, epoch, payload
        edited = bytearray(data)
        edited[offset] ^= 0x40
        with pytest.raises(CorruptValueError):
            seal.open(NAME, bytes(edited))
    far = bytearray(data)
    struct.pack_into(">d", far, 5, 4e9)  # the expiry field
    with pytest.raises(CorruptValueError, match="fails its seal"):
        seal.open(NAME, bytes(far))


def test_unsealed_and_foreign_records_are_refused() -> None:
    record = rec("planted")
    keyed, unkeyed = HotSeal.from_secrets(KEY), HotSeal()
    for seal in (keyed, unkeyed):
        with pytest.raises(CorruptValueError, match="no seal"):
            seal.open(NAME, record.to_bytes())  # a valid CRC is not a seal
    with pytest.raises(CorruptValueError, match="fails its seal"):
        keyed.open(NAME, unkeyed.seal(NAME, record))  # anyone can compute the unkeyed tag
    with pytest.raises(CorruptValueError, match="fails its seal"):
        unkeyed.open(NAME, keyed.seal(NAME, record))
    with pytest.raises(CorruptValueError, match="fails its seal"):
        keyed.open(NAME, HotSeal.from_secrets(OLD).seal(NAME, record))


def test_rotation_signs_with_the_new_key_and_accepts_the_previous() -> None:
    record = rec("v")
    rotated = HotSeal.from_secrets(KEY, [OLD])
    assert rotated.open(NAME, HotSeal.from_secrets(OLD).seal(NAME, record)) == record
    assert rotated.seal(NAME, record) == HotSeal.from_secrets(KEY).seal(NAME, record)
    with pytest.raises(CorruptValueError):
        HotSeal.from_secrets(OLD).open(NAME, rotated.seal(NAME, record))


def test_mac_key_mistakes_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        HotSeal.from_secrets(SecretStr("short"))
    with pytest.raises(ConfigurationError, match="need a current one"):
        HotSeal.from_secrets(None, [OLD])
    with pytest.raises(ConfigurationError, match="mac_key must be"):
        SealKeys(b"bytes")  # type: ignore[arg-type]


class _Source:
    """A rotating secret source (what ``KeyVaultSecret`` is to the seal)."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def get_secret(self) -> SecretStr:
        return SecretStr(self.value)


async def test_a_secret_source_rotates_and_keeps_the_value_it_replaced() -> None:
    source = _Source("k" * 32)
    keys = SealKeys(source)
    assert keys.fixed is None and keys.keyed
    first = await keys.current()
    assert await keys.current() is first  # unchanged value: the same seal
    data = first.seal(NAME, rec("before"))
    source.value = "n" * 32
    second = await keys.current()
    assert second.open(NAME, data) == rec("before")  # sealed just before the rotation
    assert second.seal(NAME, rec("x")) == HotSeal.from_secrets(SecretStr("n" * 32)).seal(NAME, rec("x"))


# -- the lifetime rule of hot reads ---------------------------------------------------------------------

NOW = 1_000_000.0
LIVES = Lifetimes(value=300.0, tombstone=5.0, lease=5.0)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (rec("v", expires_at=NOW + 300), "value"),
        (rec("v", expires_at=NOW + 301), "value"),  # within the clock slack
        (rec("v", expires_at=NOW + 3000), None),
        (rec("v"), None),  # no expiry: no process of this configuration wrote it
        (rec("v").for_hot(None, PINNED_EPOCH), "value"),  # stored only in hot: its own TTL
        (rec("v").for_hot(NOW + 1e6, PINNED_EPOCH), "value"),
        (tombstone(NOW + 5), ABSENT),
        (tombstone(NOW + 600), None),
        (make_record(RecordKind.TOMBSTONE, b""), None),
        (lease(NOW + 5, b"token"), MISS),
        (lease(NOW + 600, b"token"), None),  # a stray lease: take it over rather than never fill
        (make_record(RecordKind.LEASE, b"token"), None),
    ],
    ids=[
        "value-within-hot-ttl",
        "value-within-slack",
        "value-beyond-hot-ttl",
        "value-without-expiry",
        "pinned-without-expiry",
        "pinned-far",
        "tombstone-within",
        "tombstone-beyond",
        "tombstone-without-expiry",
        "lease-within",
        "lease-beyond",
        "lease-without-expiry",
    ],
)
def test_hot_records_beyond_their_lifetime_are_misses(record: Record, expected: object) -> None:
    found = classify(record, NOW, 0, LIVES)
    assert found is record if expected == "value" else found is expected, found
    assert classify(record, NOW, 0) is not None  # without bounds every one of them would be trusted


def test_the_lifetimes_follow_the_policy() -> None:
    policy = Policy(hot_ttl=60, tombstone_ttl=3, negative_ttl=30)
    assert Lifetimes.of(policy, durable=True) == Lifetimes(value=60, tombstone=30, lease=3)
    assert Lifetimes.of(Policy(hot_ttl=None), durable=True).value is None
    assert Lifetimes.of(policy, durable=False).value is None  # hot-only: every value is pinned
    assert Lifetimes.of(Policy(tombstone_ttl=3), durable=True).tombstone == 3


# -- item 2: decoding bounds ------------------------------------------------------------------------------


def test_inflating_stops_at_the_limit_with_bounded_memory() -> None:
    record = bomb(32 * _MIB)
    assert record.decoded_size == 32 * _MIB and record.size < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(CorruptValueError, match="inflates beyond"):
            CODEC.decode(record, limit=512 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * _MIB


def test_the_budget_refuses_a_value_before_inflating_it() -> None:
    budget = DecodeBudget(1 * _MIB)
    assert budget.decode(CODEC, rec(b"x" * 1000)) == b"x" * 1000
    assert budget.left == _MIB - 1000
    record = bomb(32 * _MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ResultTooLargeError, match="fewer keys") as info:
            budget.decode(CODEC, record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * _MIB and info.value.limit == _MIB
    assert isinstance(info.value, ValueError)  # an InvalidInputError: the caller asked for too much
    with pytest.raises(ResultTooLargeError):
        budget.check(_MIB)


def test_values_that_decode_beyond_hot_max_bytes_never_go_to_hot() -> None:
    policy = Policy(hot_max_bytes=64 * 1024)
    compressible, _ = CODEC.encode(b"\x00" * (1 * _MIB))
    assert compressible.size < 64 * 1024 < compressible.largest_size
    layout = Layout(hot=True, warm=True, cold=True)
    with pytest.raises(ValueTooLargeError, match="hot_max_bytes"):
        plan(k("a"), compressible, Tier.HOT, 60.0, layout, policy)
    write = plan(k("a"), compressible, None, None, layout, policy)
    assert write.route is Route.DURABLE and not write.cache
