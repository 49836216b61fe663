"""KV table: entries, tombstones, locks and lock-delays (Consul's ``state/kvs.go`` semantics).

Rules a client can observe:
- a plain set keeps an existing lock (``Session``/``LockIndex``); an identical re-set changes
  nothing, not even ``ModifyIndex``;
- a delete leaves a tombstone carrying the deletion index, so that the index of a prefix never
  goes backwards when a key under it disappears (recurse watchers rely on it);
- ``LockIndex`` counts acquisitions by a *new* holder; a release clears ``Session`` and writes the
  request's value; lock-delay (a wall time stamped by the leader into the command) makes
  ``acquire`` answer false until it passes.
A refused operation returns False or raises ``StateError``; the write transaction it ran in
reverts whatever was already done (see ``write.py``).

Every change also appends a version to the key's history (``kvhistory.py``) in the same
transaction; an identical re-set changes nothing and so records nothing.

Indexes: ``kvs`` (any entry written or deleted) and ``tombstones`` (any deletion).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import StateError
from .sortedkeys import SortedKeys
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn

MAX_LOCK_DELAY = 60.0


class DirEntry(msgspec.Struct, array_like=True, gc=False):
    """One KV entry.  ``value`` None means empty.  Immutable once stored: a write stores a new
    entry, so a reader holding one sees a consistent object.  (A msgspec struct: built in C, so
    the write path's allocation is cheap; ``gc=False`` as it holds no containers.)

    ``array_like``: it encodes as the 7-element array ``to_tuple`` returns, which is a KV row of
    a snapshot, so a snapshot encodes and decodes its rows in C, without a Python-level tuple per
    row.  Hence no other field may be added here (a cache of the HTTP layer lives there).
    """

    key: str
    value: bytes | None
    flags: int = 0
    session: str = ""
    lock_index: int = 0
    create_index: int = 0
    modify_index: int = 0

    def copy(self) -> DirEntry:
        return DirEntry(
            self.key, self.value, self.flags, self.session, self.lock_index, self.create_index, self.modify_index
        )

    def to_tuple(self) -> tuple[Any, ...]:
        return (
            self.key,
            self.value,
            self.flags,
            self.session,
            self.lock_index,
            self.create_index,
            self.modify_index,
        )


class KVTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.entries: dict[str, DirEntry] = {}
        #: Set while a snapshot view of this table is being encoded (``store.SnapshotView``):
        #: for every key changed since the view was taken, the entry it had then (None: it did
        #: not exist), recorded at its first change.  Copy-on-write: taking a view copies
        #: nothing but the key order, whatever the table's size.
        self.frozen: dict[str, DirEntry | None] | None = None
        self.keys = SortedKeys()  # for prefix scans
        self.tombstones: dict[str, int] = {}  # key -> index of its deletion
        self.tomb_keys = SortedKeys()  # the keys of ``tombstones``, for prefix reads
        self.lock_delays: dict[str, float] = {}  # key -> wall time until which acquire fails
        self.locks_by_session: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ reads

    def table_index(self) -> int:
        return self._t.index("kvs", "tombstones")

    def get(self, ws: WatchSet | None, key: str) -> tuple[int, DirEntry | None]:
        """The entry and the index a blocking read of it reports (its ModifyIndex if present)."""
        if ws is not None:
            self._t.watches.key(ws, key)
        e = self.entries.get(key)
        if e is not None:
            return e.modify_index, e
        return self.table_index(), None

    @staticmethod
    def _above(prefix: str) -> str | None:
        """The first string above every string starting with ``prefix`` (None: no bound)."""
        return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix[-1] != "\U0010ffff" else None

    def _prefix_keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix``, in order."""
        if not prefix:
            return list(self.keys)
        return self.keys.irange(prefix, self._above(prefix))

    def _prefix_index(self, prefix: str, entries: list[DirEntry]) -> int:
        """The largest ModifyIndex under ``prefix``, deletions (tombstones) included: only the
        tombstones under the prefix are visited (``tomb_keys``), not every tombstone."""
        if not prefix:
            return self.table_index()
        idx = max((e.modify_index for e in entries), default=0)
        tombstones = self.tombstones
        for k in self.tomb_keys.irange(prefix, self._above(prefix)):
            t = tombstones[k]
            if t > idx:
                idx = t
        return idx or self.table_index()

    def scan(self, ws: WatchSet | None, prefix: str) -> tuple[int, list[DirEntry]]:
        """Every entry under ``prefix``, in key order, and the prefix's index."""
        self._t.watches.prefix(ws, prefix)
        entries = self.entries
        found = [entries[k] for k in self._prefix_keys(prefix)]
        return self._prefix_index(prefix, found), found

    def scan_keys(self, ws: WatchSet | None, prefix: str, separator: str) -> tuple[int, list[str]]:
        idx, entries = self.scan(ws, prefix)
        if not separator:
            return idx, [e.key for e in entries]
        out: list[str] = []
        last = None
        plen = len(prefix)
        for e in entries:
            pos = e.key.find(separator, plen)
            k = e.key if pos < 0 else e.key[: pos + len(separator)]
            if k != last:
                out.append(k)
                last = k
        return idx, out

    def lock_delay_until(self, key: str) -> float:
        return self.lock_delays.get(key, 0.0)

    # ------------------------------------------------------------------ primitives

    def _put(self, tx: WriteTxn, e: DirEntry, old: DirEntry | None, op: str) -> None:
        key = e.key
        hist = self._t.kv_history
        if hist.policy.versions:
            hist.record(tx, key, op, e.value, e.flags, e.session)
        if old is None:
            tx.insort(self.keys, key)
        fr = self.frozen
        if fr is not None and key not in fr:
            fr[key] = self.entries.get(key)
        tx.put(self.entries, key, e)
        if old is not None and old.session and old.session != e.session:
            tx.discard_member(self.locks_by_session, old.session, key)
        if e.session:
            tx.add_member(self.locks_by_session, e.session, key)
        tx.bump("kvs")
        tx.touch_key(key)

    def _remove(self, tx: WriteTxn, key: str, op: str) -> bool:
        old = self.entries.get(key)
        if old is None:
            return False
        hist = self._t.kv_history
        if hist.policy.versions:
            hist.record(tx, key, op, None, 0, "")
        fr = self.frozen
        if fr is not None and key not in fr:
            fr[key] = old
        tx.pop(self.entries, key)
        tx.sorted_remove(self.keys, key)
        if old.session:
            tx.discard_member(self.locks_by_session, old.session, key)
        if key not in self.tombstones:
            tx.insort(self.tomb_keys, key)
        tx.put(self.tombstones, key, tx.index)
        tx.bump("kvs")
        tx.bump("tombstones")
        tx.touch_key(key)
        return True

    # ------------------------------------------------------------------ writes

    def set(self, tx: WriteTxn, key: str, value: bytes | None, flags: int, op: str = "set") -> bool:
        old = self.entries.get(key)
        idx = tx.index
        if old is not None:
            if old.value == value and old.flags == flags:
                return True
            e = DirEntry(key, value, flags, old.session, old.lock_index, old.create_index, idx)
        else:
            e = DirEntry(key, value, flags, "", 0, idx, idx)
        self._put(tx, e, old, op)
        return True

    def cas(self, tx: WriteTxn, key: str, value: bytes | None, flags: int, cas: int, op: str = "cas") -> bool:
        old = self.entries.get(key)
        if cas == 0 and old is not None:
            return False
        if cas > 0 and (old is None or old.modify_index != cas):
            return False
        return self.set(tx, key, value, flags, op)

    def delete(self, tx: WriteTxn, key: str) -> bool:
        self._remove(tx, key, "delete")
        return True

    def delete_cas(self, tx: WriteTxn, key: str, cas: int, op: str = "delete-cas") -> bool:
        old = self.entries.get(key)
        if old is None:
            return True
        if old.modify_index != cas:
            return False
        self._remove(tx, key, op)
        return True

    def delete_tree(self, tx: WriteTxn, prefix: str) -> bool:
        for key in self._prefix_keys(prefix):
            self._remove(tx, key, "delete-tree")
        return True

    def lock(self, tx: WriteTxn, key: str, value: bytes | None, flags: int, session: str, ts: float) -> bool:
        if session not in self._t.sessions.rows:
            raise StateError(f'invalid session "{session}"')
        if self.lock_delays.get(key, 0.0) > ts:
            return False
        idx = tx.index
        old = self.entries.get(key)
        if old is not None:
            if old.session and old.session != session:
                return False
            if old.session == session:
                if old.value == value and old.flags == flags:
                    return True
                e = DirEntry(key, value, flags, session, old.lock_index, old.create_index, idx)
            else:
                e = DirEntry(key, value, flags, session, old.lock_index + 1, old.create_index, idx)
        else:
            e = DirEntry(key, value, flags, session, 1, idx, idx)
        self._put(tx, e, old, "lock")
        return True

    def unlock(self, tx: WriteTxn, key: str, value: bytes | None, flags: int, session: str) -> bool:
        old = self.entries.get(key)
        if old is None or not session or old.session != session:
            return False
        e = DirEntry(key, value, flags, "", old.lock_index, old.create_index, tx.index)
        self._put(tx, e, old, "unlock")
        return True

    def reap_tombstones(self, tx: WriteTxn, upto: int) -> int:
        """Forget tombstones deleted at or before ``upto``; returns how many were reaped."""
        dead = [k for k, t in self.tombstones.items() if t <= upto]
        for k in dead:
            tx.pop(self.tombstones, k)
            tx.sorted_remove(self.tomb_keys, k)
        return len(dead)

    def release_session_locks(self, tx: WriteTxn, sid: str, lock_delay_ns: float, delete: bool, ts: float) -> None:
        """Invalidation of session ``sid``: release (or delete) every key it holds, with lock-delay."""
        keys = sorted(self.locks_by_session.get(sid, ()))
        delay = min(lock_delay_ns / 1e9, MAX_LOCK_DELAY)
        for key in keys:
            old = self.entries.get(key)
            if old is None or old.session != sid:
                continue
            if delete:
                self._remove(tx, key, "session-delete")
            else:
                e = DirEntry(key, old.value, old.flags, "", old.lock_index, old.create_index, tx.index)
                self._put(tx, e, old, "session-release")
            if delay > 0:
                tx.put(self.lock_delays, key, ts + delay)
        if sid in self.locks_by_session:
            tx.pop(self.locks_by_session, sid)
