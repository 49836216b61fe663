"""The transmit-limited broadcast queue (memberlist ``queue.go``: ``TransmitLimitedQueue``).

A broadcast is piggybacked on outgoing packets until it has been sent ``limit`` times, where
``limit = RetransmitMult * ceil(log10(n + 1))`` (memberlist ``util.go: retransmitLimit``): enough
sends for an epidemic to reach every node with high probability, no more.

Invariants:

* Broadcasts with the same ``key`` invalidate each other: only the newest message about a node
  is kept (memberlist's ``NamedBroadcast``/``Invalidates``), so a refuted suspicion never
  travels after the refutation.  ``key=None`` messages (user events) never invalidate.
* Selection order is fewest transmits first, newest first among equals, so fresh news gets out
  before old news is repeated, and a burst of messages cannot starve a new one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TransmitLimitedQueue", "retransmit_limit"]


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """memberlist ``retransmitLimit``: ``mult * ceil(log10(n + 1))``."""
    return retransmit_mult * int(math.ceil(math.log10(n + 1)))


@dataclass
class _Item:
    id: int
    key: str | None
    data: bytes
    transmits: int = 0


class TransmitLimitedQueue:
    """Broadcasts waiting to be piggybacked, kept in tiers by transmit count.

    ``_tiers[t]`` holds the ids of the broadcasts sent ``t`` times, ascending (the newest is
    last); ``_lengths`` counts the queued broadcasts by size.  :meth:`get` walks the tiers from
    the fewest transmits and each tier from its newest, and stops as soon as not even the
    smallest queued broadcast would fit: a packet costs the broadcasts it carries, not a sort of
    the whole queue (a member that has just merged a 1,000-member push/pull holds ~1,000
    broadcasts, and every packet it sends draws from them).  The order is the one stated in the
    module docstring, exactly as a full sort by ``(transmits, -id)`` would give.
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._items: dict[int, _Item] = {}
        self._by_key: dict[str, int] = {}
        self._tiers: dict[int, list[int]] = {}
        self._lengths: dict[int, int] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, data: bytes, key: str | None = None) -> int:
        """Add a broadcast, dropping an older one with the same key.  Returns its id."""
        if key is not None:
            old = self._by_key.get(key)
            if old is not None:
                self._remove(self._items[old])
        self._next_id += 1
        it = _Item(self._next_id, key, data)
        self._items[it.id] = it
        self._tiers.setdefault(0, []).append(it.id)  # the largest id so far: the tier stays sorted
        self._lengths[len(data)] = self._lengths.get(len(data), 0) + 1
        if key is not None:
            self._by_key[key] = it.id
        return it.id

    def pending(self, bid: int) -> bool:
        """Whether the broadcast is still waiting to be (re)transmitted."""
        return bid in self._items

    def get(self, overhead: int, limit: int) -> list[bytes]:
        """Pick broadcasts whose sizes (each plus ``overhead``) fit in ``limit`` bytes.

        Every picked broadcast counts one transmit; those reaching the retransmit limit leave
        the queue.
        """
        if not self._items or limit <= 0:
            return []
        max_tx = max(1, self._limit())
        smallest = min(self._lengths) + overhead
        out: list[bytes] = []
        picked: list[_Item] = []
        used = 0
        for tx in sorted(self._tiers):
            ids = self._tiers[tx]
            for k in range(len(ids) - 1, -1, -1):
                if used + smallest > limit:
                    break
                it = self._items[ids[k]]
                cost = len(it.data) + overhead
                if used + cost > limit:
                    continue
                used += cost
                out.append(it.data)
                picked.append(it)
            if used + smallest > limit:
                break
        for it in picked:  # promoted after the walk, so that no broadcast is picked twice
            self._unlink(it)
            it.transmits += 1
            if it.transmits >= max_tx:
                self._forget(it)
            else:
                bisect.insort(self._tiers.setdefault(it.transmits, []), it.id)
        return out

    def _remove(self, it: _Item) -> None:
        self._unlink(it)
        self._forget(it)

    def _unlink(self, it: _Item) -> None:
        """Take ``it`` out of its tier (it stays queued)."""
        ids = self._tiers[it.transmits]
        del ids[bisect.bisect_left(ids, it.id)]
        if not ids:
            del self._tiers[it.transmits]

    def _forget(self, it: _Item) -> None:
        """Drop ``it`` from the queue once it is out of its tier."""
        self._items.pop(it.id, None)
        n = self._lengths[len(it.data)] - 1
        if n:
            self._lengths[len(it.data)] = n
        else:
            del self._lengths[len(it.data)]
        if it.key is not None and self._by_key.get(it.key) == it.id:
            del self._by_key[it.key]
