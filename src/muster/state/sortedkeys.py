"""``SortedKeys``: the KV table's sorted key set, as a list of sorted chunks.

A single sorted ``list`` costs O(n) per insertion in the middle (``bisect.insort`` shifts every
later element): with a million keys written in random order that is ~0.5 ms per new key.  Here
the keys are cut into chunks of at most ``2 * LOAD`` keys, with the last key of each chunk in
``_maxes``: an insertion or removal costs a bisection over the chunks plus a shift inside one
chunk, O(log n + LOAD).

Chunks are tuples, replaced whole on every change, for two reasons.  The garbage collector
untracks a tuple that holds only strings, so a million keys cost a full collection nothing
(as lists they were ~2,000 tracked containers whose every element the collector visited:
~30 ms per full collection at 1M keys, every few seconds under writes, on the event loop).
And a chunk never changes once built, so a snapshot shares the chunks as they are
(``freeze``) with no copy-on-write bookkeeping.  The price is on inserts and removals: a
chunk of up to ``2 * LOAD`` keys is rebuilt each time (see ``LOAD``), paid once per new
key or removed key, not per write to an existing key.

Invariants: every chunk is a non-empty sorted tuple; the chunks in order form the sorted
sequence of distinct keys (the last key of chunk ``i`` is below the first of chunk ``i + 1``);
``_maxes[i] == _lists[i][-1]``; ``_len`` is the total count.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import chain

#: Chunks hold LOAD to 2 * LOAD keys.  Much smaller than a list-based set would use: a tuple
#: chunk is rebuilt on every insert and removal, touching the reference count of every key in
#: it (cache misses, the keys are scattered).  1M keys in 1,000 interleaved prefixes built
#: through the FSM in one process (loaded machine): 8.6 us per key with list
#: chunks of 1,000, 19.5 with tuple chunks of 128, 11.4 with 64.  The chunks' own containers
#: (``_lists``, ``_maxes``: ~2 * n / (3 * LOAD) entries each) are what a full collection still
#: visits.
LOAD = 64


class SortedKeys:
    """See the module docstring.  ``freeze`` hands out the current chunks (immutable, so they
    keep the order they had whatever changes afterwards); one freeze at a time, as the
    snapshot view that uses it expects."""

    __slots__ = ("_lists", "_maxes", "_len", "_shared")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        """From any iterable of distinct keys (sorted here)."""
        s = sorted(keys)
        self._lists: list[tuple[str, ...]] = [tuple(s[i : i + LOAD]) for i in range(0, len(s), LOAD)]
        self._maxes: list[str] = [lst[-1] for lst in self._lists]
        self._len = len(s)
        #: Whether a view from ``freeze`` is out (None: not frozen).
        self._shared: bool | None = None

    def freeze(self) -> list[tuple[str, ...]] | None:
        """The current chunks (O(number of chunks)); None if another freeze is active (the
        caller then uses ``chunks``)."""
        if self._shared is not None:
            return None
        self._shared = True
        return list(self._lists)

    def thaw(self) -> None:
        """End the view started by ``freeze``."""
        self._shared = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._lists)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        lst = self._lists[i]
        j = bisect_left(lst, key)
        return lst[j] == key

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SortedKeys):
            return self._len == other._len and list(self) == list(other)
        if isinstance(other, list):
            return self._len == len(other) and list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def add(self, key: str) -> None:
        """Insert ``key``, which must not be present."""
        maxes = self._maxes
        lists = self._lists
        self._len += 1
        if not maxes:
            lists.append((key,))
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            lst = lists[i] + (key,)
            maxes[i] = key
        else:
            grown = list(lists[i])
            grown.insert(bisect_left(grown, key), key)
            lst = tuple(grown)
        if len(lst) > 2 * LOAD:
            lists[i : i + 1] = [lst[:LOAD], lst[LOAD:]]
            maxes[i : i + 1] = [lst[LOAD - 1], lst[-1]]
        else:
            lists[i] = lst

    def discard(self, key: str) -> bool:
        """Remove ``key``; whether it was present."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return False
        old = self._lists[i]
        j = bisect_left(old, key)
        if old[j] != key:
            return False
        self._len -= 1
        if len(old) == 1:
            del self._lists[i]
            del maxes[i]
            return True
        lst = self._lists[i] = old[:j] + old[j + 1 :]
        if j == len(lst):
            maxes[i] = lst[-1]
        return True

    def irange(self, lo: str, hi: str | None) -> list[str]:
        """The keys ``k`` with ``lo <= k < hi`` (``hi`` None: to the end), in order."""
        maxes = self._maxes
        lists = self._lists
        i = bisect_left(maxes, lo)
        out: list[str] = []
        first = True
        while i < len(lists):
            lst = lists[i]
            a = bisect_left(lst, lo) if first else 0
            first = False
            if hi is not None and lst[-1] >= hi:
                out.extend(lst[a : bisect_left(lst, hi)])
                break
            out.extend(lst[a:] if a else lst)
            i += 1
        return out

    def chunks(self) -> list[tuple[str, ...]]:
        """The sorted chunks as they are now (immutable: later writes do not show through)."""
        return list(self._lists)
