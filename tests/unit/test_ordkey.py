"""Order-preserving composite keys and filter splitting used by the framework adapters (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tiermem._keys import validate_key
from tiermem._ordkey import SEP, escape, join, matches, scalar_attrs, split, split_filter, unescape

# C0 controls are escaped; C1 controls (U+007F..U+009F) are not, and keys holding them are refused.
_C1 = "".join(chr(c) for c in range(0x7F, 0xA0))
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=_C1), max_size=12)
# Order is checked on every character, control characters included (below 0x21 they are escaped).
_printable = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(st.lists(_printable, min_size=1, max_size=4), st.lists(_printable, min_size=1, max_size=4))
def test_joined_keys_sort_like_the_tuples_they_encode(a: list[str], b: list[str]) -> None:
    ka, kb = join(*a).encode("utf-8"), join(*b).encode("utf-8")
    assert (ka < kb) == (tuple(a) < tuple(b))
    assert (ka == kb) == (a == b)


@given(st.lists(_printable, min_size=1, max_size=4))
def test_join_round_trips_and_never_leaks_the_separator(parts: list[str]) -> None:
    assert split(join(*parts)) == parts
    assert all(SEP not in escape(p) for p in parts)


@given(_text)
def test_escape_round_trips_and_makes_control_characters_printable(text: str) -> None:
    assert unescape(escape(text)) == text
    encoded = escape(text)
    if encoded:
        validate_key(encoded)


def test_scalar_attrs_flags_what_it_cannot_index() -> None:
    attrs = scalar_attrs(
        {"source": "loop", "step": 3, "bad-name": 1, "long": "x" * 300, "nested": {"a": 1}}, prefix="m_"
    )
    assert attrs == {"m_source": "loop", "m_step": 3, "_incomplete": True}
    assert scalar_attrs({"a": 1, "b": None}, prefix="v_") == {"v_a": 1}


def test_split_filter_pushes_what_the_tier_can_evaluate_exactly() -> None:
    assert split_filter({"source": "input", "step": {"$gte": 2}}, prefix="m_") == (
        {"m_source": "input", "m_step": {"$gte": 2}},
        True,
    )
    where, exact = split_filter({"n": {"$ne": 2}, "deep": {"x": 1}, "flag": True}, prefix="v_")
    assert (where, exact) == ({}, False)
    assert matches({"n": 3, "deep": {"x": 1, "y": 2}, "flag": True}, {"n": {"$ne": 2}, "deep": {"x": 1}})
    assert not matches({"n": "a"}, {"n": {"$gt": 1}})
