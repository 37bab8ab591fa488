"""Key, tenant, namespace and TTL validation, and the per-tier key encodings."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tiermem import InvalidKeyError, InvalidScopeError, InvalidTTLError, MemoryKey, make_key
from tiermem._keys import (
    blob_name,
    cosmos_id,
    file_parts,
    parse_blob_name,
    parse_cosmos_id,
    parse_file_parts,
    parse_redis_key,
    redis_key,
    validate_key,
    validate_scope,
    validate_ttl,
)

# -- validate_key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/b",
        "%2F",
        "..",
        ".",
        "~",
        " ",
        "with spaces ",
        "😀",
        "a:b:c",
        "\\",
        "?#",
        "/",
        "x" * 512,
        "é" * 256,
        "😀" * 128,
        "a" + "é" * 255 + "b",
        "\u2028",  # a line separator, but not a control character
        "\xa0",
    ],
)
def test_legal_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "x" * 513,
        "é" * 256 + "a",
        "a" + "😀" * 128,
        "x" * 511 + "é",
        "😀" * 129,
        "\x00",
        "a\x00b",
        "\x1f",
        "\n",
        "\t",
        "\r",
        "\x7f",
        "\x85",
        "\x9f",
        "ok\x9fok",
        "\ud800",
        "a\udfffb",
    ],
)
def test_illegal_keys(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


@pytest.mark.parametrize("key", [None, 1, b"bytes", ["k"], 1.5])
def test_non_str_keys(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_key_limit_is_in_utf8_bytes_not_characters() -> None:
    assert validate_key("é" * 256)  # 256 characters, 512 bytes
    with pytest.raises(InvalidKeyError):
        validate_key("é" * 257)  # 257 characters, 514 bytes
    assert validate_key("a" * 512)


@pytest.mark.parametrize("cp", [*range(0x20), *range(0x7F, 0xA0)])
def test_every_c0_c1_control_character_is_rejected(cp: int) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(f"a{chr(cp)}b")


# -- validate_scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.b-c_D9", "a", "A", "0", "-", "_", "a" * 64, "..a", ".a", "a.b"])
def test_legal_scopes(name: str) -> None:
    assert validate_scope(name, "tenant") == name


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "..",
        ".",
        "...",
        "",
        "a" * 65,
        "ü",
        "a:b",
        "a b",
        "a\\b",
        "a\x00",
        "%2F",
        "😀",
        "a\n",
        "a.",
        ".a.",
    ],
)
def test_illegal_scopes(name: str) -> None:
    with pytest.raises(InvalidScopeError):
        validate_scope(name, "tenant")


@pytest.mark.parametrize("name", [None, 1, b"abc"])
def test_non_str_scopes(name: object) -> None:
    with pytest.raises(InvalidScopeError):
        validate_scope(name, "namespace")


def test_make_key_validates_every_part() -> None:
    assert make_key("t", "n", "k") == MemoryKey("t", "n", "k")
    with pytest.raises(InvalidScopeError):
        make_key("t/x", "n", "k")
    with pytest.raises(InvalidScopeError):
        make_key("t", "..", "k")
    with pytest.raises(InvalidKeyError):
        make_key("t", "n", "")


# -- validate_ttl ----------------------------------------------------------------------------------------


def test_ttl_none_means_no_expiry() -> None:
    assert validate_ttl(None) is None


@pytest.mark.parametrize("ttl", [0.5, 1, 60, 1e-3, 86_400 * 365, 2**31])
def test_legal_ttls(ttl: float) -> None:
    result = validate_ttl(ttl)
    assert result == ttl
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "ttl", [-1, 0, 0.0, -0.0, -0.5, math.nan, math.inf, -math.inf, True, False, "5", b"5", [5]], ids=repr
)
def test_illegal_ttls(ttl: object) -> None:
    with pytest.raises(InvalidTTLError):
        validate_ttl(ttl)


@pytest.mark.parametrize("ttl", [2**31 + 1, 1e306, 1e308], ids=repr)
def test_ttl_above_2_to_the_31_seconds_is_invalid_input(ttl: float) -> None:
    # ttl=1e306 used to reach the tiers and overflow there (an HTTP 500): bounded before any I/O.
    with pytest.raises(InvalidTTLError, match="at most"):
        validate_ttl(ttl)


@pytest.mark.parametrize("ttl", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_ttl_beyond_float_range_is_invalid_input(ttl: int) -> None:
    # An int beyond float range must be rejected as bad input, not escape as OverflowError.
    with pytest.raises(InvalidTTLError):
        validate_ttl(ttl)


# -- per-tier encodings ------------------------------------------------------------------------------------

SCOPE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
scopes = st.one_of(
    st.text(st.sampled_from(SCOPE_ALPHABET), min_size=1, max_size=64),
    st.text(st.sampled_from(SCOPE_ALPHABET), min_size=60, max_size=64),
).filter(lambda s: not s.endswith("."))
key_chars = st.characters(blacklist_categories=("Cc", "Cs"))


def _fit(text: str) -> str:
    """Trim to at most 512 UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:512].decode("utf-8", errors="ignore")


keys = st.one_of(
    st.text(key_chars, min_size=1, max_size=40),
    st.text(st.sampled_from("./\\%~:?#aA éÉ😀-_"), min_size=1, max_size=30),
    st.text(key_chars, min_size=150, max_size=512).map(_fit),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "A", "é", "😀", "%", "/", "."]), st.integers(1, 512)
    ).map(_fit),
).filter(lambda k: k != "")
memory_keys = st.builds(MemoryKey, scopes, scopes, keys)


def _related(mk: MemoryKey, how: str, extra: str) -> MemoryKey:
    if how == "swapcase":
        return MemoryKey(mk.tenant, mk.namespace, mk.key.swapcase())
    if how == "suffix":
        return MemoryKey(mk.tenant, mk.namespace, _fit(mk.key + extra))
    if how == "prefix":
        return MemoryKey(mk.tenant, mk.namespace, mk.key[: max(1, len(mk.key) // 2)])
    if how == "tenant_case":
        return MemoryKey(mk.tenant.swapcase(), mk.namespace, mk.key)
    return MemoryKey(mk.namespace, mk.tenant, mk.key)  # swap tenant and namespace


key_pairs = st.one_of(
    st.tuples(memory_keys, memory_keys),
    st.builds(
        lambda mk, how, extra: (mk, _related(mk, how, extra)),
        memory_keys,
        st.sampled_from(["swapcase", "suffix", "prefix", "tenant_case", "swap"]),
        st.text(key_chars, min_size=1, max_size=5),
    ),
).filter(lambda pair: pair[0] != pair[1] and pair[1].key != "")

# A 125-byte key is long enough for the file tier's long form and its base32 text is exactly one
# 200-character segment; a longer key with the same first 125 bytes starts with that same segment.
LONG_FORM_KEY = "é" * 62 + "a"
LONG_FORM_PAIR = (MemoryKey("t", "n", LONG_FORM_KEY), MemoryKey("t", "n", LONG_FORM_KEY + "tail"))

ENCODING_SETTINGS = settings(max_examples=100, deadline=None)


@ENCODING_SETTINGS
@given(memory_keys)
def test_generated_keys_are_valid(mk: MemoryKey) -> None:
    assert make_key(mk.tenant, mk.namespace, mk.key) == mk


@ENCODING_SETTINGS
@given(memory_keys, st.sampled_from(["tm", "app", "x-y.z"]))
def test_redis_key_round_trips(mk: MemoryKey, prefix: str) -> None:
    raw = redis_key(mk, prefix)
    assert raw.startswith(f"{prefix}:{mk.tenant}:{mk.namespace}:")
    assert parse_redis_key(raw, prefix) == mk


def test_parse_redis_key_rejects_another_prefix() -> None:
    raw = redis_key(make_key("t", "n", "k"), "tm")
    with pytest.raises(InvalidKeyError):
        parse_redis_key(raw, "other")
    with pytest.raises(InvalidKeyError):
        parse_redis_key("no-colons-at-all", "tm")


@ENCODING_SETTINGS
@given(memory_keys)
def test_cosmos_id_round_trips_and_is_legal(mk: MemoryKey) -> None:
    item_id = cosmos_id(mk)
    assert parse_cosmos_id(item_id) == mk
    assert item_id.isascii()
    assert not set(item_id) & set("/\\?#")
    assert 1 <= len(item_id) <= 1023


@ENCODING_SETTINGS
@given(memory_keys)
def test_blob_name_round_trips_and_is_legal(mk: MemoryKey) -> None:
    name = blob_name(mk)
    assert parse_blob_name(name) == mk
    assert len(name) <= 1024
    prefix = f"{mk.tenant}/{mk.namespace}/"
    assert name.startswith(prefix)
    encoded = name[len(prefix) :]
    assert encoded
    assert "/" not in encoded
    segments = name.split("/")
    assert len(segments) == 3
    assert not {".", ".."} & set(segments)
    assert not name.endswith(".")


@ENCODING_SETTINGS
@given(memory_keys)
def test_file_parts_round_trip_and_are_safe(mk: MemoryKey) -> None:
    parts = file_parts(mk)
    assert parse_file_parts(parts) == mk
    assert len(parts) >= 3
    for part in parts:
        assert part
        assert "/" not in part
        assert "\\" not in part
        assert "\x00" not in part
        assert part not in {".", ".."}
        assert len(part.encode("utf-8")) <= 255
        assert not any(ch.isupper() for ch in part), part
        assert part.isascii()


@ENCODING_SETTINGS
@given(memory_keys, st.sampled_from("aAzZéÉßΣ"), st.integers(0, 600))
def test_keys_differing_only_by_case_have_different_file_parts(base: MemoryKey, cased: str, at: int) -> None:
    at = min(at, len(base.key))
    mk = MemoryKey(base.tenant, base.namespace, _fit(base.key[:at] + cased + base.key[at:]))
    if mk.key.swapcase() == mk.key:  # the cased letter fell beyond the 512-byte cut
        mk = MemoryKey(mk.tenant, mk.namespace, cased)
    other = MemoryKey(mk.tenant, mk.namespace, mk.key.swapcase())
    assert file_parts(mk) != file_parts(other)
    assert tuple(p.casefold() for p in file_parts(mk)) != tuple(p.casefold() for p in file_parts(other))


@pytest.mark.parametrize(
    ("a", "b"), [("Key", "key"), ("KEY", "key"), ("A", "a"), ("É", "é"), ("%2F", "%2f"), ("ß", "SS")]
)
def test_case_pairs_map_to_different_files(a: str, b: str) -> None:
    pa, pb = file_parts(make_key("t", "n", a)), file_parts(make_key("t", "n", b))
    assert [p.casefold() for p in pa] != [p.casefold() for p in pb]


def test_tenants_differing_by_case_have_different_file_parts() -> None:
    upper, lower = file_parts(make_key("Tenant", "N", "k")), file_parts(make_key("tenant", "n", "k"))
    assert upper[0].casefold() != lower[0].casefold()
    assert upper[1].casefold() != lower[1].casefold()


@settings(max_examples=100, deadline=None)
@given(key_pairs)
@example(LONG_FORM_PAIR)
def test_encodings_are_injective(pair: tuple[MemoryKey, MemoryKey]) -> None:
    a, b = pair
    assert redis_key(a) != redis_key(b)
    assert cosmos_id(a) != cosmos_id(b)
    assert blob_name(a) != blob_name(b)
    assert file_parts(a) != file_parts(b)
    # Case-insensitive file systems fold names: still distinct.
    assert tuple(p.casefold() for p in file_parts(a)) != tuple(p.casefold() for p in file_parts(b))


@settings(max_examples=100, deadline=None)
@given(key_pairs)
@example(LONG_FORM_PAIR)
@example(tuple(reversed(LONG_FORM_PAIR)))
def test_file_paths_are_prefix_free(pair: tuple[MemoryKey, MemoryKey]) -> None:
    # One key's file must never sit where another key needs a directory, or the two cannot coexist.
    a, b = (tuple(p.casefold() for p in file_parts(mk)) for mk in pair)
    assert a != b[: len(a)]
    assert b != a[: len(b)]


@settings(max_examples=50, deadline=None)
@given(memory_keys)
def test_encodings_are_deterministic(mk: MemoryKey) -> None:
    twin = MemoryKey(mk.tenant, mk.namespace, str(mk.key))
    assert redis_key(mk) == redis_key(twin)
    assert cosmos_id(mk) == cosmos_id(twin)
    assert blob_name(mk) == blob_name(twin)
    assert file_parts(mk) == file_parts(twin)


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "..", ".", "a/b", "/abs", "%2F..%2F", "~", "~x", "\\..\\"]
)
def test_path_like_keys_stay_inside_their_tenant(key: str) -> None:
    mk = make_key("t", "n", key)
    assert blob_name(mk).split("/")[:2] == ["t", "n"]
    assert len(blob_name(mk).split("/")) == 3
    parts = file_parts(mk)
    assert parts[:2] == file_parts(make_key("t", "n", "x"))[:2]
    assert all(p not in {".", ".."} and "/" not in p and not p.startswith(".") for p in parts)


@pytest.mark.parametrize("key", ["x" * 512, "é" * 256, "😀" * 128, "/" * 512, "." * 512])
def test_longest_keys_encode_within_limits(key: str) -> None:
    mk = make_key("t" * 64, "n" * 64, key)
    assert parse_blob_name(blob_name(mk)) == mk
    assert len(blob_name(mk)) <= 1024
    assert parse_cosmos_id(cosmos_id(mk)) == mk
    assert len(cosmos_id(mk)) <= 1023
    assert parse_file_parts(file_parts(mk)) == mk
    assert all(len(p) <= 255 for p in file_parts(mk))


def test_parse_file_parts_rejects_short_paths() -> None:
    with pytest.raises(InvalidKeyError):
        parse_file_parts(("t", "n"))
