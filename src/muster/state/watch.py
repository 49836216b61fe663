"""Watches: how a blocking query learns that the data it read may have changed.

A ``Watch`` is a one-shot notification channel owned by the store (one per table, KV key, KV
prefix, service name...).  A reader registers the watches of everything it read in a
``WatchSet`` and awaits it.  When a writer changes something it *fires* the watch: every
waiter is woken and the store drops that watch object, so the next reader registers a fresh
one.  A waiter is a single future per ``WatchSet``, added to each watch's set of waiters, so
10,000 long-polls on one key cost 10,000 set entries and one loop over them on a write.

Invariants: a fired watch is never reused; a ``WatchSet`` removes its future from every watch
when it finishes (fired or timed out), so waiters of watches that never fire do not pile up.
"""

from __future__ import annotations

import asyncio


class Watch:
    __slots__ = ("_waiters", "fired")

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[bool]] = set()
        self.fired = False

    def add(self, fut: asyncio.Future[bool]) -> None:
        if self.fired:
            if not fut.done():
                fut.set_result(True)
            return
        self._waiters.add(fut)

    def discard(self, fut: asyncio.Future[bool]) -> None:
        self._waiters.discard(fut)

    def fire(self) -> None:
        self.fired = True
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    def __len__(self) -> int:
        return len(self._waiters)


class WatchSet:
    """The watches one query read through; ``wait`` returns True if any fired."""

    __slots__ = ("_watches",)

    def __init__(self) -> None:
        self._watches: list[Watch] = []

    def add(self, watch: Watch) -> None:
        self._watches.append(watch)

    def __len__(self) -> int:
        return len(self._watches)

    async def wait(self, timeout: float) -> bool:
        """Wait until one watch fires (True) or ``timeout`` seconds pass (False)."""
        if timeout <= 0:
            return any(w.fired for w in self._watches)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        for w in self._watches:
            w.add(fut)
        timer = loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            for w in self._watches:
                w.discard(fut)


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)
