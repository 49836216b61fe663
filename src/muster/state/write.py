"""``WriteTxn``: the one way to change the store, all or nothing, at one log index.

Every FSM command runs inside ``with store.write(index) as tx:``.  Each primitive mutation a
table makes through ``tx`` (``put``, ``pop``, ``add_member``, ``discard_member``, ``insort``,
``record``, ``bump``) pushes a closure that reverts it; the watches a change must fire are queued, not
fired.  On a clean exit the transaction *commits*: it fires the queued watches once.  On any
exception it *rolls back*: the closures run in reverse, so tables, secondary indexes and the
index table are exactly as before, and no watch fires (a blocking query never wakes on a change
that did not happen).  The exception then propagates.

Invariants:
- one transaction at a time per store (transactions do not nest; the FSM is the single writer);
- a table mutates its rows only through ``tx`` (a direct ``dict[...] = ...`` would survive a
  rollback);
- every ``bump`` stamps ``tx.index``; an index never moves backwards inside a transaction;
- ``savepoint``/``rollback_to`` undo a suffix of the transaction (``/v1/txn`` reverts its
  operations and still commits an empty result, since a refused transaction is a result).
Readers never see a half-applied transaction: a transaction runs synchronously on the event
loop, and waiters only run after the commit fired their watch.

Cost.  This is the path of every write, so an undo record is a plain tuple ``(fn, *args)`` of a
module-level function and its arguments (no closure), and a commit with nothing watched does
almost nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

    from .sortedkeys import SortedKeys
    from .store import StateStore
    from .tables import Tables


Undo = tuple[Any, ...]  # (fn, *args): rollback calls fn(*args)
NO_META: tuple[float, str, str, int] = (0.0, "", "", 0)


def _set_item(d: dict[Any, Any], key: Any, old: Any) -> None:
    d[key] = old


def _drop_item(d: dict[Any, Any], key: Any) -> None:
    d.pop(key, None)


def _drop_if_empty(d: dict[Any, set[Any]], key: Any) -> None:
    if not d.get(key):
        d.pop(key, None)


def _call(fn: Callable[[], object]) -> None:
    fn()


class WriteTxn:
    __slots__ = ("index", "tables", "meta", "_store", "_undo", "_fired_tables", "_fired_keys", "_fire_all", "_done")

    def __init__(self, store: StateStore, index: int) -> None:
        self.index = index
        self.tables: Tables = store.tables
        #: Who and when, for the KV history (``kvhistory.py``): (leader-stamped time, token
        #: AccessorID, client address, index a rollback restores).  Set by the FSM handler from
        #: the command, never from a clock.
        self.meta: tuple[float, str, str, int] = NO_META
        self._store = store
        self._undo: list[Undo] = []
        self._fired_tables: list[str] = []
        self._fired_keys: list[str] = []
        self._fire_all = False
        self._done = False

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> WriteTxn:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def commit(self) -> None:
        """Make the changes visible to waiters: fire every queued watch, once."""
        if self._done:
            raise RuntimeError("write transaction already finished")
        self._done = True
        store = self._store
        store._tx = None
        w = store.watches
        if self._fire_all:
            w.fire_all()
            return
        if self._fired_tables:
            w.fire_tables(self._fired_tables)
        if self._fired_keys:
            w.fire_keys(self._fired_keys)

    def rollback(self) -> None:
        """Revert every change of this transaction; no watch fires."""
        self._finish()
        self.rollback_to(0)

    def _finish(self) -> None:
        if self._done:
            raise RuntimeError("write transaction already finished")
        self._done = True
        self._store._tx = None

    def savepoint(self) -> tuple[int, int, int, bool]:
        return len(self._undo), len(self._fired_tables), len(self._fired_keys), self._fire_all

    def rollback_to(self, sp: tuple[int, int, int, bool] | int) -> None:
        """Undo every change made after savepoint ``sp`` (0: the whole transaction)."""
        if isinstance(sp, int):
            sp = (sp, 0, 0, False)
        n_undo, n_tables, n_keys, fire_all = sp
        undo = self._undo
        while len(undo) > n_undo:
            rec = undo.pop()
            rec[0](*rec[1:])
        del self._fired_tables[n_tables:]
        del self._fired_keys[n_keys:]
        self._fire_all = fire_all

    # ----------------------------------------------------------------- indexes and watches

    def bump(self, name: str) -> None:
        """Stamp index ``name`` (a table, or a finer name such as ``svc:<service>``) with
        ``self.index`` and queue its watch; no-op if it is already there or beyond."""
        indexes = self.tables.indexes
        old = indexes.get(name)
        idx = self.index
        if old is not None and old >= idx:
            return
        if old is None:
            self._undo.append((_drop_item, indexes, name))
        else:
            self._undo.append((_set_item, indexes, name, old))
        indexes[name] = idx
        self._fired_tables.append(name)

    def fire(self, name: str) -> None:
        """Queue the watch ``name`` without an index (a watch-only name: ``catalog.py``
        ``NODE_WATCH``); it fires on commit, never after a rollback."""
        self._fired_tables.append(name)

    def touch_key(self, key: str) -> None:
        """Queue the watch of KV ``key`` and of every watched prefix of it."""
        self._fired_keys.append(key)

    def replace_tables(self, new: Tables) -> None:
        """Swap in a whole new set of tables (snapshot restore); fires every watch on commit."""
        store = self._store
        old = store.tables

        def back() -> None:
            store.tables = old
            self.tables = old

        self._undo.append((_call, back))
        store.tables = new
        self.tables = new
        self._fire_all = True

    # ----------------------------------------------------------------- primitives

    def record(self, undo: Callable[[], object]) -> None:
        """Register a custom revert step (for a mutation the primitives below do not cover)."""
        self._undo.append((_call, undo))

    def put(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        if key in d:
            self._undo.append((_set_item, d, key, d[key]))
        else:
            self._undo.append((_drop_item, d, key))
        d[key] = value

    def pop(self, d: dict[Any, Any], key: Any) -> None:
        if key not in d:
            return
        self._undo.append((_set_item, d, key, d.pop(key)))

    def add_member(self, d: dict[Any, set[Any]], key: Any, member: Any) -> None:
        s = d.get(key)
        if s is None:
            s = d[key] = set()
            self._undo.append((_drop_if_empty, d, key))
        if member not in s:
            s.add(member)
            self._undo.append((s.discard, member))

    def discard_member(self, d: dict[Any, set[Any]], key: Any, member: Any) -> None:
        s = d.get(key)
        if s is None or member not in s:
            return
        s.discard(member)
        if not s:
            del d[key]
            self._undo.append((_set_item, d, key, s))
        self._undo.append((s.add, member))

    def insort(self, seq: list[Any] | SortedKeys, item: Any) -> None:
        """Insert ``item`` into the sorted list or ``SortedKeys`` ``seq`` (absent before)."""
        if isinstance(seq, list):
            bisect.insort(seq, item)
            self._undo.append((_sorted_remove, seq, item))
        else:
            seq.add(item)
            self._undo.append((seq.discard, item))

    def sorted_remove(self, seq: list[Any] | SortedKeys, item: Any) -> None:
        """Remove ``item`` from the sorted list or ``SortedKeys`` ``seq`` if present."""
        if isinstance(seq, list):
            if _sorted_remove(seq, item):
                self._undo.append((bisect.insort, seq, item))
        elif seq.discard(item):
            self._undo.append((seq.add, item))


def _sorted_remove(seq: list[Any], item: Any) -> bool:
    i = bisect.bisect_left(seq, item)
    if i < len(seq) and seq[i] == item:
        del seq[i]
        return True
    return False
