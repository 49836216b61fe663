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

from ..errors import StateError
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn


def session_check_ids(sess: dict[str, Any]) -> list[str]:
    ids = list(sess.get("NodeChecks") or [])
    ids.extend(c["ID"] for c in sess.get("ServiceChecks") or [])
    return ids


class SessionTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.rows: dict[str, dict[str, Any]] = {}
        self.by_node: dict[str, set[str]] = {}
        self.by_check: dict[tuple[str, str], set[str]] = {}

    # ------------------------------------------------------------------ writes

    def create(self, tx: WriteTxn, sess: dict[str, Any]) -> str:
        catalog = self._t.catalog
        node = sess["Node"]
        if node not in catalog.nodes:
            raise StateError("Missing node registration")
        per = catalog.checks.get(node, {})
        ids = session_check_ids(sess)
        for cid in ids:
            chk = per.get(cid)
            if chk is None:
                raise StateError(f"Missing check '{cid}' registration")
            if chk["Status"] == "critical":
                raise StateError(f"Check '{cid}' is in critical state")
        sid = sess["ID"]
        if sid in self.rows:
            raise StateError(f"session '{sid}' already exists")
        rec = dict(sess, CreateIndex=tx.index, ModifyIndex=tx.index)
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
        self._t.kv.release_session_locks(
            tx, sid, float(sess.get("LockDelay", 0) or 0), sess.get("Behavior") == "delete", ts
        )
        node = sess["Node"]
        tx.pop(self.rows, sid)
        tx.discard_member(self.by_node, node, sid)
        for cid in session_check_ids(sess):
            tx.discard_member(self.by_check, (node, cid), sid)
        tx.bump("sessions")
        return True

    def invalidate_check(self, tx: WriteTxn, node: str, check_id: str, ts: float) -> None:
        for sid in sorted(self.by_check.get((node, check_id), ())):
            self.destroy(tx, sid, ts)

    def invalidate_node(self, tx: WriteTxn, node: str, ts: float) -> None:
        for sid in sorted(self.by_node.get(node, ())):
            self.destroy(tx, sid, ts)

    # ------------------------------------------------------------------ reads

    def get(self, ws: WatchSet | None, sid: str) -> tuple[int, dict[str, Any] | None]:
        self._t.watches.table(ws, "sessions")
        return self._t.index("sessions"), self.rows.get(sid)

    def list_all(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, "sessions")
        return self._t.index("sessions"), sorted(self.rows.values(), key=lambda s: s["ID"])

    def for_node(self, ws: WatchSet | None, node: str) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, "sessions")
        ids = sorted(self.by_node.get(node, ()))
        return self._t.index("sessions"), [self.rows[i] for i in ids]
