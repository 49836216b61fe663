"""Sessions table: create, destroy, and invalidation when a bound check goes critical or disappears.

A session is bound to a node (which must exist) and to checks on it (``NodeChecks``, by default
``serfHealth``, and ``ServiceChecks``); each must exist and not be critical at creation.  When
any of them turns critical or is removed, or the node is deregistered, the session is destroyed
in the same transaction and its locks are released (or their keys deleted, per ``Behavior``)
with a lock-delay stamped from the command's ``ts``.  TTL expiry is decided by the leader,
outside the store, and arrives as an ordinary destroy command.

Index: ``sessions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import StateError
from .rows import Session
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn


class SessionTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.rows: dict[str, Session] = {}
        self.by_node: dict[str, set[str]] = {}
        self.by_check: dict[tuple[str, str], set[str]] = {}

    # ------------------------------------------------------------------ writes

    def create(self, tx: WriteTxn, fields: dict[str, Any]) -> str:
        """Create the session the command describes (Consul field names, as built by the HTTP
        layer); the store stamps Create/ModifyIndex."""
        try:
            sess = msgspec.convert(fields, Session)
        except msgspec.ValidationError as err:
            raise StateError(f"invalid session: {err}") from None
        catalog = self._t.catalog
        node = sess.node
        if node not in catalog.nodes:
            raise StateError("Missing node registration")
        per = catalog.checks.get(node, {})
        ids = sess.check_ids()
        for cid in ids:
            chk = per.get(cid)
            if chk is None:
                raise StateError(f"Missing check '{cid}' registration")
            if chk.status == "critical":
                raise StateError(f"Check '{cid}' is in critical state")
        sid = sess.id
        if sid in self.rows:
            raise StateError(f"session '{sid}' already exists")
        rec = msgspec.structs.replace(sess, create_index=tx.index, modify_index=tx.index)
        tx.put(self.rows, sid, rec)
        tx.add_member(self.by_node, node, sid)
        for cid in ids:
            tx.add_member(self.by_check, (node, cid), sid)
        tx.bump("sessions")
        return sid

    def destroy(self, tx: WriteTxn, sid: str, ts: float) -> bool:
        sess = self.rows.get(sid)
        if sess is None:
            return True
        self._t.kv.release_session_locks(tx, sid, sess.lock_delay, sess.behavior == "delete", ts)
        node = sess.node
        tx.pop(self.rows, sid)
        tx.discard_member(self.by_node, node, sid)
        for cid in sess.check_ids():
            tx.discard_member(self.by_check, (node, cid), sid)
        tx.bump("sessions")
        return True

    def load(self, rows: dict[str, dict[str, Any]]) -> None:
        """Fill an empty table from a snapshot's rows (Consul field names)."""
        for sid, d in rows.items():
            sess = msgspec.convert(d, Session)
            self.rows[sid] = sess
            self.by_node.setdefault(sess.node, set()).add(sid)
            for cid in sess.check_ids():
                self.by_check.setdefault((sess.node, cid), set()).add(sid)

    def invalidate_check(self, tx: WriteTxn, node: str, check_id: str, ts: float) -> None:
        for sid in sorted(self.by_check.get((node, check_id), ())):
            self.destroy(tx, sid, ts)

    def invalidate_node(self, tx: WriteTxn, node: str, ts: float) -> None:
        for sid in sorted(self.by_node.get(node, ())):
            self.destroy(tx, sid, ts)

    # ------------------------------------------------------------------ reads

    def get(self, ws: WatchSet | None, sid: str) -> tuple[int, Session | None]:
        self._t.watches.table(ws, "sessions")
        return self._t.index("sessions"), self.rows.get(sid)

    def list_all(self, ws: WatchSet | None) -> tuple[int, list[Session]]:
        self._t.watches.table(ws, "sessions")
        return self._t.index("sessions"), [self.rows[s] for s in sorted(self.rows)]

    def for_node(self, ws: WatchSet | None, node: str) -> tuple[int, list[Session]]:
        self._t.watches.table(ws, "sessions")
        ids = sorted(self.by_node.get(node, ()))
        return self._t.index("sessions"), [self.rows[i] for i in ids]
