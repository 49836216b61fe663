"""The transmit-limited broadcast queue (memberlist ``queue.go``: ``TransmitLimitedQueue``).

A broadcast is piggybacked on outgoing packets until it has been sent ``limit`` times, where
``limit = RetransmitMult * ceil(log10(n + 1))`` (memberlist ``util.go: retransmitLimit``): enough
sends for an epidemic to reach every node with high probability, no more.

Invariants:

* Broadcasts with the same ``key`` invalidate each other: only the newest message about a node
  is kept (memberlist's ``NamedBroadcast``/``Invalidates``), so a refuted suspicion never
  travels after the refutation.  ``key=None`` messages (user events) never invalidate.
* Selection order is memberlist's (``limitedBroadcast.Less``): fewest transmits first, so fresh
  news gets out before old news is repeated and a burst of messages cannot starve a new one;
  within a transmit count, the largest broadcast that still fits, the newest among equal sizes
  (fills the packet).
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
    """Broadcasts waiting to be piggybacked, kept in tiers by transmit count and, within a
    tier, in buckets by size (memberlist keeps one btree ordered the same way).

    ``_tiers[t][size]`` holds the ids of the broadcasts of ``size`` bytes sent ``t`` times,
    ascending (the newest last); ``_sizes[t]`` is the sorted list of the sizes present in tier
    ``t``.  :meth:`get` picks each broadcast with a bisection over the sizes of a tier, so a
    packet costs the broadcasts it carries and the number of distinct sizes, never a walk over
    the queue (a member that has just merged a 1,000-member push/pull holds ~1,000 broadcasts,
    and every packet it sends draws from them).
    """

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._items: dict[int, _Item] = {}
        self._by_key: dict[str, int] = {}
        self._tiers: dict[int, dict[int, list[int]]] = {}
        self._sizes: dict[int, list[int]] = {}
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
        self._link(it)
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
        out: list[bytes] = []
        picked: list[_Item] = []
        used = 0
        for tx in sorted(self._tiers):
            while tx in self._sizes:
                free = limit - used - overhead
                sizes = self._sizes[tx]
                k = bisect.bisect_right(sizes, free) - 1
                if k < 0:
                    break  # nothing in this tier fits; a later tier may hold smaller ones
                it = self._items[self._tiers[tx][sizes[k]][-1]]
                self._unlink(it)  # out of the tiers until the walk ends: never picked twice
                picked.append(it)
                out.append(it.data)
                used += len(it.data) + overhead
        for it in picked:
            it.transmits += 1
            if it.transmits >= max_tx:
                self._forget(it)
            else:
                self._link(it)
        return out

    def _remove(self, it: _Item) -> None:
        self._unlink(it)
        self._forget(it)

    def _link(self, it: _Item) -> None:
        """Put ``it`` in the bucket of its transmit count and size."""
        tier = self._tiers.setdefault(it.transmits, {})
        size = len(it.data)
        ids = tier.get(size)
        if ids is None:
            tier[size] = [it.id]
            bisect.insort(self._sizes.setdefault(it.transmits, []), size)
        elif ids[-1] < it.id:
            ids.append(it.id)
        else:
            bisect.insort(ids, it.id)

    def _unlink(self, it: _Item) -> None:
        """Take ``it`` out of its bucket (it stays queued)."""
        tier = self._tiers[it.transmits]
        size = len(it.data)
        ids = tier[size]
        del ids[bisect.bisect_left(ids, it.id)]
        if not ids:
            del tier[size]
            sizes = self._sizes[it.transmits]
            del sizes[bisect.bisect_left(sizes, size)]
            if not sizes:
                del self._sizes[it.transmits]
                del self._tiers[it.transmits]

    def _forget(self, it: _Item) -> None:
        """Drop ``it`` from the queue once it is out of its bucket."""
        self._items.pop(it.id, None)
        if it.key is not None and self._by_key.get(it.key) == it.id:
            del self._by_key[it.key]
