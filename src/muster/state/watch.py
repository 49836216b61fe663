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
from collections import Counter


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


class Watches:
    """The store's registry of watches: one per table (or finer index name), KV key, KV prefix.

    Readers register through ``table``/``key``/``prefix``; a committed write transaction fires
    what it changed (``fire_tables``, ``fire_keys``).  The registry outlives snapshot restores
    (the tables are replaced, the waiters are not): ``fire_all`` wakes everyone, including
    ``abandon`` which every blocking query also waits on.
    """

    __slots__ = ("abandon", "_tables", "_keys", "_prefixes", "_prefix_lens")

    def __init__(self) -> None:
        self.abandon = Watch()
        self._tables: dict[str, Watch] = {}
        self._keys: dict[str, Watch] = {}
        self._prefixes: dict[str, Watch] = {}
        self._prefix_lens: Counter[int] = Counter()

    def table(self, ws: WatchSet | None, name: str) -> None:
        if ws is None:
            return
        w = self._tables.get(name)
        if w is None:
            w = self._tables[name] = Watch()
        ws.add(w)

    def key(self, ws: WatchSet | None, key: str) -> None:
        if ws is None:
            return
        w = self._keys.get(key)
        if w is None:
            w = self._keys[key] = Watch()
        ws.add(w)

    def prefix(self, ws: WatchSet | None, prefix: str) -> None:
        if ws is None:
            return
        w = self._prefixes.get(prefix)
        if w is None:
            w = self._prefixes[prefix] = Watch()
            self._prefix_lens[len(prefix)] += 1
        ws.add(w)

    def fire_tables(self, names: list[str]) -> None:
        if not self._tables:
            return
        pop = self._tables.pop
        for name in names:
            w = pop(name, None)
            if w is not None:
                w.fire()

    def fire_keys(self, keys: list[str]) -> None:
        """Fire the watch of each key and of every watched prefix of it."""
        prefixes = self._prefixes
        if not self._keys and not prefixes:
            return
        pop = self._keys.pop
        for key in keys:
            w = pop(key, None)
            if w is not None:
                w.fire()
            if prefixes:
                for n in list(self._prefix_lens):
                    if n <= len(key):
                        pw = prefixes.pop(key[:n], None)
                        if pw is not None:
                            pw.fire()
                            self._prefix_lens[n] -= 1
                            if not self._prefix_lens[n]:
                                del self._prefix_lens[n]

    def fire_all(self) -> None:
        """Wake every waiter (snapshot restore): they re-run their query on the new state."""
        for d in (self._tables, self._keys, self._prefixes):
            watches = list(d.values())
            d.clear()
            for w in watches:
                w.fire()
        self._prefix_lens.clear()
        old, self.abandon = self.abandon, Watch()
        old.fire()

    def waiter_count(self) -> int:
        return sum(len(w) for d in (self._tables, self._keys, self._prefixes) for w in d.values())
