"""The state store's foundation: tables, per-table indexes, watches and the undo log.

Layout.  ``StoreBase`` owns every table as a plain dict (the single writer is the FSM, running
synchronously on the event loop, so readers between two ``await`` points always see a whole
state: no locks, no MVCC).  The domain files build on it in one line of inheritance:
``StoreBase`` -> ``KVStore`` (kv.py) -> ``CatalogStore`` (catalog.py) -> ``SessionStore``
(session.py) -> ``StateStore`` (store.py: snapshot and restore).

Indexes.  Every write is applied at a log index ``idx``; the table it touched records
``indexes[table] = idx``.  Indexes only move forward while the log does (a snapshot restore is
the one exception, and it wakes every waiter through ``abandon_watch``).  Beyond whole tables
there are finer indexes named ``svc:<name>`` (per service) so that a blocking query on one
service does not wake on another's change.

Watches.  Readers add the ``Watch`` of what they read (a table, a KV key, a KV prefix, a
service name) to a ``WatchSet``; writers fire them.  Firing is cheap and may be spurious
(clients tolerate that), but a write always fires every watch whose data it changed.

Undo.  A transaction (``/v1/txn``) runs several mutations and must apply all or none.  While
``_undo`` is a list, each primitive mutation pushes a closure that reverts it; on failure the
closures run in reverse.  Outside a transaction ``_undo`` is None and nothing is recorded.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from typing import Any

from .watch import Watch, WatchSet

TABLES = ("kvs", "tombstones", "nodes", "services", "checks", "sessions", "autopilot")


class DirEntry:
    """One KV entry.  ``value`` None means empty (Consul shows ``null``)."""

    __slots__ = ("key", "value", "flags", "session", "lock_index", "create_index", "modify_index", "_rendered")

    def __init__(
        self,
        key: str,
        value: bytes | None,
        flags: int = 0,
        session: str = "",
        lock_index: int = 0,
        create_index: int = 0,
        modify_index: int = 0,
    ) -> None:
        self.key = key
        self.value = value
        self.flags = flags
        self.session = session
        self.lock_index = lock_index
        self.create_index = create_index
        self.modify_index = modify_index
        self._rendered: bytes | None = None

    def copy(self) -> DirEntry:
        return DirEntry(
            self.key, self.value, self.flags, self.session, self.lock_index, self.create_index, self.modify_index
        )

    def as_dict(self) -> dict[str, Any]:
        """Consul's JSON shape: ``Value`` standard base64 or null, ``Session`` only when held."""
        d: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode() if self.value else None,
        }
        if self.session:
            d["Session"] = self.session
        d["CreateIndex"] = self.create_index
        d["ModifyIndex"] = self.modify_index
        return d

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


class StoreBase:
    def __init__(self) -> None:
        self.abandon_watch = Watch()
        self._undo: list[Callable[[], None]] | None = None
        self._table_watches: dict[str, Watch] = {}
        self._key_watches: dict[str, Watch] = {}
        self._prefix_watches: dict[str, Watch] = {}
        self._prefix_lens: Counter[int] = Counter()
        self._init_tables()

    def _init_tables(self) -> None:
        self.kvs: dict[str, DirEntry] = {}
        self.kv_keys: list[str] = []  # sorted, for prefix scans
        self.tombstones: dict[str, int] = {}  # key -> index of its deletion
        self.lock_delays: dict[str, float] = {}  # key -> wall time until which acquire fails
        self.locks_by_session: dict[str, set[str]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, dict[str, Any]]] = {}  # node -> service id -> NodeService
        self.checks: dict[str, dict[str, dict[str, Any]]] = {}  # node -> check id -> HealthCheck
        self.service_instances: dict[str, set[tuple[str, str]]] = {}  # name -> {(node, id)}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.sessions_by_node: dict[str, set[str]] = {}
        self.sessions_by_check: dict[tuple[str, str], set[str]] = {}
        self.autopilot: dict[str, Any] = {}
        self.indexes: dict[str, int] = {}

    # ----------------------------------------------------------------- indexes

    def index(self, *tables: str) -> int:
        """The highest index among ``tables`` (0 if none was ever written)."""
        get = self.indexes.get
        return max((get(t, 0) for t in tables), default=0)

    def max_index(self) -> int:
        return max(self.indexes.values(), default=0)

    def _bump(self, name: str, idx: int) -> None:
        old = self.indexes.get(name)
        if old is not None and old >= idx:
            return
        if self._undo is not None:
            self._undo.append(lambda: self._restore_index(name, old))
        self.indexes[name] = idx
        w = self._table_watches.pop(name, None)
        if w is not None:
            w.fire()

    def _restore_index(self, name: str, old: int | None) -> None:
        if old is None:
            self.indexes.pop(name, None)
        else:
            self.indexes[name] = old

    # ----------------------------------------------------------------- watches

    def watch_table(self, ws: WatchSet | None, name: str) -> None:
        if ws is None:
            return
        w = self._table_watches.get(name)
        if w is None:
            w = self._table_watches[name] = Watch()
        ws.add(w)

    def watch_key(self, ws: WatchSet | None, key: str) -> None:
        if ws is None:
            return
        w = self._key_watches.get(key)
        if w is None:
            w = self._key_watches[key] = Watch()
        ws.add(w)

    def watch_prefix(self, ws: WatchSet | None, prefix: str) -> None:
        if ws is None:
            return
        w = self._prefix_watches.get(prefix)
        if w is None:
            w = self._prefix_watches[prefix] = Watch()
            self._prefix_lens[len(prefix)] += 1
        ws.add(w)

    def _fire_key(self, key: str) -> None:
        """Fire the watch of ``key`` and of every watched prefix of it."""
        w = self._key_watches.pop(key, None)
        if w is not None:
            w.fire()
        if self._prefix_watches:
            for n in list(self._prefix_lens):
                if n <= len(key):
                    p = key[:n]
                    pw = self._prefix_watches.pop(p, None)
                    if pw is not None:
                        pw.fire()
                        self._prefix_lens[n] -= 1
                        if not self._prefix_lens[n]:
                            del self._prefix_lens[n]

    def fire_all(self) -> None:
        """Wake every waiter (snapshot restore): they re-run their query on the new state."""
        for d in (self._table_watches, self._key_watches, self._prefix_watches):
            watches = list(d.values())
            d.clear()
            for w in watches:
                w.fire()
        self._prefix_lens.clear()
        old, self.abandon_watch = self.abandon_watch, Watch()
        old.fire()

    def waiter_count(self) -> int:
        return sum(len(w) for d in (self._table_watches, self._key_watches, self._prefix_watches) for w in d.values())

    # ----------------------------------------------------------------- undo

    def _record(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def _dict_set(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        if self._undo is not None:
            if key in d:
                old = d[key]
                self._undo.append(lambda: d.__setitem__(key, old))
            else:
                self._undo.append(lambda: d.pop(key, None))
        d[key] = value

    def _dict_del(self, d: dict[Any, Any], key: Any) -> None:
        if key not in d:
            return
        old = d.pop(key)
        if self._undo is not None:
            self._undo.append(lambda: d.__setitem__(key, old))

    def _set_add(self, d: dict[Any, set[Any]], key: Any, member: Any) -> None:
        s = d.get(key)
        if s is None:
            s = d[key] = set()

            def drop_if_empty() -> None:
                if not d.get(key):
                    d.pop(key, None)

            self._record(drop_if_empty)
        if member not in s:
            s.add(member)
            self._record(lambda: s.discard(member))

    def _set_discard(self, d: dict[Any, set[Any]], key: Any, member: Any) -> None:
        s = d.get(key)
        if s is None or member not in s:
            return
        s.discard(member)
        if not s:
            del d[key]
            self._record(lambda: d.__setitem__(key, s))
        self._record(lambda: s.add(member))
