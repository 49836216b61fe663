"""``SortedKeys`` (the KV table's chunked sorted key set) against a plain sorted list."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.state import sortedkeys
from muster.state.sortedkeys import SortedKeys

KEYS = st.text(alphabet="ab/c", max_size=4)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 2..6 keys, so a few dozen operations split, empty and merge chunks.
    monkeypatch.setattr(sortedkeys, "LOAD", 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(KEYS, max_size=30), st.lists(st.tuples(st.booleans(), KEYS), max_size=80), KEYS, KEYS)
def test_behaves_like_a_sorted_list(initial: list[str], ops: list[tuple[bool, str]], lo: str, hi: str) -> None:
    model = sorted(set(initial))
    sk = SortedKeys(set(initial))
    for add, k in ops:
        if add:
            if k not in model:
                bisect.insort(model, k)
                sk.add(k)
        else:
            present = k in model
            if present:
                model.remove(k)
            assert sk.discard(k) is present
        assert list(sk) == model and len(sk) == len(model)
        assert all(len(c) > 0 for c in sk.chunks())
        assert (k in sk) is (k in model)
    assert sk.irange(lo, hi) == [k for k in model if lo <= k < hi]
    assert sk.irange(lo, None) == [k for k in model if lo <= k]
    assert sk == model and sk == SortedKeys(model)


def test_chunks_are_a_copy() -> None:
    sk = SortedKeys(["a", "b", "c", "d", "e", "f", "g", "h"])
    view = sk.chunks()
    sk.add("bb")
    sk.discard("g")
    assert [k for c in view for k in c] == ["a", "b", "c", "d", "e", "f", "g", "h"]


@settings(max_examples=200, deadline=None)
@given(st.lists(KEYS, max_size=30), st.lists(st.tuples(st.booleans(), KEYS), max_size=60))
def test_frozen_chunks_keep_their_order_while_the_set_changes(initial: list[str], ops: list[tuple[bool, str]]) -> None:
    """``freeze`` shares the chunks copy-on-write: whatever is added or removed afterwards, the
    frozen chunks still hold the keys as they were; a second freeze waits for ``thaw``."""
    sk = SortedKeys(set(initial))
    before = list(sk)
    frozen = sk.freeze()
    assert frozen is not None and sk.freeze() is None
    model = list(before)
    for add, k in ops:
        if add and k not in model:
            bisect.insort(model, k)
            sk.add(k)
        elif not add:
            if k in model:
                model.remove(k)
            sk.discard(k)
    assert [k for c in frozen for k in c] == before
    assert list(sk) == model
    sk.thaw()
    again = sk.freeze()
    assert again is not None and [k for c in again for k in c] == model
