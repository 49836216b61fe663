"""``SortedKeys``: the KV table's sorted key set, as a list of sorted chunks.

A single sorted ``list`` costs O(n) per insertion in the middle (``bisect.insort`` shifts every
later element): with a million keys written in random order that is ~0.5 ms per new key.  Here
the keys are cut into chunks of at most ``2 * LOAD`` keys, with the last key of each chunk in
``_maxes``: an insertion or removal costs a bisection over the chunks plus a shift inside one
chunk, O(log n + LOAD).

Invariants: every chunk is non-empty and sorted; the chunks in order form the sorted sequence
of distinct keys (the last key of chunk ``i`` is below the first of chunk ``i + 1``);
``_maxes[i] == _lists[i][-1]``; ``_len`` is the total count.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from itertools import chain

LOAD = 1000


class SortedKeys:
    """See the module docstring.  ``freeze`` hands out the current chunks without copying them;
    while frozen, a chunk about to change is first replaced by a copy (copy-on-write), so the
    frozen chunks keep the order they had."""

    __slots__ = ("_lists", "_maxes", "_len", "_shared")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        """From any iterable of distinct keys (sorted here)."""
        s = sorted(keys)
        self._lists: list[list[str]] = [s[i : i + LOAD] for i in range(0, len(s), LOAD)]
        self._maxes: list[str] = [lst[-1] for lst in self._lists]
        self._len = len(s)
        #: ids of the chunks handed out by ``freeze`` and not copied since (None: not frozen).
        #: The frozen view holds those lists, so their ids cannot be reused meanwhile.
        self._shared: set[int] | None = None

    def _own(self, i: int) -> list[str]:
        """Chunk ``i``, copied first if a frozen view shares it."""
        lst = self._lists[i]
        shared = self._shared
        if shared and id(lst) in shared:
            shared.discard(id(lst))
            lst = self._lists[i] = lst[:]
        return lst

    def freeze(self) -> list[list[str]] | None:
        """The current chunks, shared with this set until ``thaw`` (O(number of chunks));
        None if another freeze is active (the caller copies with ``chunks`` instead)."""
        if self._shared is not None:
            return None
        self._shared = {id(lst) for lst in self._lists}
        return list(self._lists)

    def thaw(self) -> None:
        """End the sharing started by ``freeze``."""
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
            lists.append([key])
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            lst = self._own(i)
            lst.append(key)
            maxes[i] = key
        else:
            lst = self._own(i)
            insort(lst, key)
        if len(lst) > 2 * LOAD:
            lists[i : i + 1] = [lst[:LOAD], lst[LOAD:]]
            maxes[i : i + 1] = [lst[LOAD - 1], lst[-1]]

    def discard(self, key: str) -> bool:
        """Remove ``key``; whether it was present."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return False
        lst = self._lists[i]
        j = bisect_left(lst, key)
        if lst[j] != key:
            return False
        lst = self._own(i)
        del lst[j]
        self._len -= 1
        if not lst:
            del self._lists[i]
            del maxes[i]
        elif j == len(lst):
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

    def chunks(self) -> list[list[str]]:
        """A copy of the sorted chunks (a frozen view for a snapshot: O(n) in C, the chunks are
        copied so later writes do not show through)."""
        return [lst[:] for lst in self._lists]
