"""KV tables: entries, tombstones, locks and lock-delays (Consul's ``state/kvs.go`` semantics).

Rules a client can observe (contract §2.1, §9):
- a plain set keeps an existing lock (``Session``/``LockIndex``); an identical re-set changes
  nothing, not even ``ModifyIndex``;
- a delete leaves a tombstone carrying the deletion index, so that the index of a prefix never
  goes backwards when a key under it disappears (recurse watchers rely on it);
- ``LockIndex`` counts acquisitions by a *new* holder; a release clears ``Session`` and writes the
  request's value; lock-delay (a wall time stamped by the leader into the command) makes
  ``acquire`` answer false until it passes.
Every method validates before it mutates: a refused operation leaves the store untouched.
"""

from __future__ import annotations

import bisect
from typing import Any

from ..errors import StateError
from .base import DirEntry, StoreBase
from .watch import WatchSet

MAX_LOCK_DELAY = 60.0


class KVStore(StoreBase):
    # ------------------------------------------------------------------ reads

    def kv_table_index(self) -> int:
        return self.index("kvs", "tombstones")

    def kv_get(self, ws: WatchSet | None, key: str) -> tuple[int, DirEntry | None]:
        """The entry and the index a blocking read of it reports (its ModifyIndex if present)."""
        self.watch_key(ws, key)
        e = self.kvs.get(key)
        if e is not None:
            return e.modify_index, e
        return self.kv_table_index(), None

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        keys = self.kv_keys
        lo = bisect.bisect_left(keys, prefix)
        if not prefix:
            return lo, len(keys)
        hi = bisect.bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1)) if prefix[-1] != "\U0010ffff" else len(keys)
        return lo, hi

    def _prefix_index(self, prefix: str, entries: list[DirEntry]) -> int:
        if not prefix:
            return self.kv_table_index()
        idx = max((e.modify_index for e in entries), default=0)
        for k, t in self.tombstones.items():
            if t > idx and k.startswith(prefix):
                idx = t
        return idx or self.kv_table_index()

    def kv_list(self, ws: WatchSet | None, prefix: str) -> tuple[int, list[DirEntry]]:
        self.watch_prefix(ws, prefix)
        lo, hi = self._prefix_range(prefix)
        kvs = self.kvs
        entries = [kvs[k] for k in self.kv_keys[lo:hi]]
        return self._prefix_index(prefix, entries), entries

    def kv_list_keys(self, ws: WatchSet | None, prefix: str, separator: str) -> tuple[int, list[str]]:
        idx, entries = self.kv_list(ws, prefix)
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

    def _kv_put(self, e: DirEntry, old: DirEntry | None) -> None:
        key = e.key
        if old is None:
            bisect.insort(self.kv_keys, key)
            self._record(lambda: self._kv_keys_remove(key))
        self._dict_set(self.kvs, key, e)
        if old is not None and old.session and old.session != e.session:
            self._set_discard(self.locks_by_session, old.session, key)
        if e.session:
            self._set_add(self.locks_by_session, e.session, key)
        self._bump("kvs", e.modify_index)
        self._fire_key(key)

    def _kv_keys_remove(self, key: str) -> None:
        i = bisect.bisect_left(self.kv_keys, key)
        if i < len(self.kv_keys) and self.kv_keys[i] == key:
            del self.kv_keys[i]

    def _kv_remove(self, idx: int, key: str) -> bool:
        old = self.kvs.get(key)
        if old is None:
            return False
        self._dict_del(self.kvs, key)
        self._kv_keys_remove(key)
        self._record(lambda: bisect.insort(self.kv_keys, key))
        if old.session:
            self._set_discard(self.locks_by_session, old.session, key)
        self._dict_set(self.tombstones, key, idx)
        self._bump("kvs", idx)
        self._bump("tombstones", idx)
        self._fire_key(key)
        return True

    # ------------------------------------------------------------------ writes

    def kv_set(self, idx: int, key: str, value: bytes | None, flags: int) -> bool:
        old = self.kvs.get(key)
        if old is not None:
            if old.value == value and old.flags == flags:
                return True
            e = DirEntry(key, value, flags, old.session, old.lock_index, old.create_index, idx)
        else:
            e = DirEntry(key, value, flags, "", 0, idx, idx)
        self._kv_put(e, old)
        return True

    def kv_cas(self, idx: int, key: str, value: bytes | None, flags: int, cas: int) -> bool:
        old = self.kvs.get(key)
        if cas == 0 and old is not None:
            return False
        if cas > 0 and (old is None or old.modify_index != cas):
            return False
        return self.kv_set(idx, key, value, flags)

    def kv_delete(self, idx: int, key: str) -> bool:
        self._kv_remove(idx, key)
        return True

    def kv_delete_cas(self, idx: int, key: str, cas: int) -> bool:
        old = self.kvs.get(key)
        if old is None:
            return True
        if old.modify_index != cas:
            return False
        self._kv_remove(idx, key)
        return True

    def kv_delete_tree(self, idx: int, prefix: str) -> bool:
        lo, hi = self._prefix_range(prefix)
        for key in self.kv_keys[lo:hi]:
            self._kv_remove(idx, key)
        return True

    def kv_lock(self, idx: int, key: str, value: bytes | None, flags: int, session: str, ts: float) -> bool:
        if session not in self.sessions:
            raise StateError(f'invalid session "{session}"')
        if self.lock_delays.get(key, 0.0) > ts:
            return False
        old = self.kvs.get(key)
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
        self._kv_put(e, old)
        return True

    def kv_unlock(self, idx: int, key: str, value: bytes | None, flags: int, session: str) -> bool:
        old = self.kvs.get(key)
        if old is None or not session or old.session != session:
            return False
        e = DirEntry(key, value, flags, "", old.lock_index, old.create_index, idx)
        self._kv_put(e, old)
        return True

    def kv_reap_tombstones(self, idx: int, upto: int) -> int:
        """Forget tombstones deleted at or before ``upto``; returns how many were reaped."""
        dead = [k for k, t in self.tombstones.items() if t <= upto]
        for k in dead:
            self._dict_del(self.tombstones, k)
        return len(dead)

    def _release_session_locks(self, idx: int, session: dict[str, Any], ts: float) -> None:
        """Invalidation of ``session``: release (or delete) every key it holds, with lock-delay."""
        sid = str(session["ID"])
        keys = sorted(self.locks_by_session.get(sid, ()))
        delay = min(float(session.get("LockDelay", 0) or 0) / 1e9, MAX_LOCK_DELAY)
        delete = session.get("Behavior") == "delete"
        for key in keys:
            old = self.kvs.get(key)
            if old is None or old.session != sid:
                continue
            if delete:
                self._kv_remove(idx, key)
            else:
                e = DirEntry(key, old.value, old.flags, "", old.lock_index, old.create_index, idx)
                self._kv_put(e, old)
            if delay > 0:
                self._dict_set(self.lock_delays, key, ts + delay)
        if sid in self.locks_by_session:
            self._dict_del(self.locks_by_session, sid)
