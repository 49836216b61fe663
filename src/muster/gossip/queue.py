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
    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._items: dict[int, _Item] = {}
        self._by_key: dict[str, int] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, data: bytes, key: str | None = None) -> int:
        """Add a broadcast, dropping an older one with the same key.  Returns its id."""
        if key is not None:
            old = self._by_key.pop(key, None)
            if old is not None:
                self._items.pop(old, None)
        self._next_id += 1
        self._items[self._next_id] = _Item(self._next_id, key, data)
        if key is not None:
            self._by_key[key] = self._next_id
        return self._next_id

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
        order = sorted(self._items.values(), key=lambda it: (it.transmits, -it.id))
        out: list[bytes] = []
        used = 0
        for it in order:
            cost = len(it.data) + overhead
            if used + cost > limit:
                continue
            used += cost
            out.append(it.data)
            it.transmits += 1
            if it.transmits >= max_tx:
                self._remove(it)
        return out

    def _remove(self, it: _Item) -> None:
        self._items.pop(it.id, None)
        if it.key is not None and self._by_key.get(it.key) == it.id:
            del self._by_key[it.key]
