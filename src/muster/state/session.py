"""Sessions: create, destroy, and invalidation when a bound check goes critical or disappears.

A session is bound to a node (which must exist) and to checks on it (``NodeChecks``, by default
``serfHealth``, and ``ServiceChecks``); each must exist and not be critical at creation.  When
any of them turns critical or is removed, or the node is deregistered, the session is destroyed
in the same command and its locks are released (or their keys deleted, per ``Behavior``) with a
lock-delay stamped from the command's ``ts``.  TTL expiry is decided by the leader, outside the
store, and arrives as an ordinary destroy command.
"""

from __future__ import annotations

from typing import Any

from ..errors import StateError
from .catalog import CatalogStore
from .watch import WatchSet


def session_check_ids(sess: dict[str, Any]) -> list[str]:
    ids = list(sess.get("NodeChecks") or [])
    ids.extend(c["ID"] for c in sess.get("ServiceChecks") or [])
    return ids


class SessionStore(CatalogStore):
    def session_create(self, idx: int, sess: dict[str, Any]) -> str:
        node = sess["Node"]
        if node not in self.nodes:
            raise StateError("Missing node registration")
        per = self.checks.get(node, {})
        ids = session_check_ids(sess)
        for cid in ids:
            chk = per.get(cid)
            if chk is None:
                raise StateError(f"Missing check '{cid}' registration")
            if chk["Status"] == "critical":
                raise StateError(f"Check '{cid}' is in critical state")
        sid = sess["ID"]
        if sid in self.sessions:
            raise StateError(f"session '{sid}' already exists")
        rec = dict(sess, CreateIndex=idx, ModifyIndex=idx)
        self._dict_set(self.sessions, sid, rec)
        self._set_add(self.sessions_by_node, node, sid)
        for cid in ids:
            self._set_add(self.sessions_by_check, (node, cid), sid)
        self._bump("sessions", idx)
        return sid

    def session_destroy(self, idx: int, sid: str, ts: float) -> bool:
        sess = self.sessions.get(sid)
        if sess is None:
            return True
        self._release_session_locks(idx, sess, ts)
        node = sess["Node"]
        self._dict_del(self.sessions, sid)
        self._set_discard(self.sessions_by_node, node, sid)
        for cid in session_check_ids(sess):
            self._set_discard(self.sessions_by_check, (node, cid), sid)
        self._bump("sessions", idx)
        return True

    def _invalidate_check_sessions(self, idx: int, node: str, check_id: str, ts: float) -> None:
        for sid in sorted(self.sessions_by_check.get((node, check_id), ())):
            self.session_destroy(idx, sid, ts)

    def _invalidate_node_sessions(self, idx: int, node: str, ts: float) -> None:
        for sid in sorted(self.sessions_by_node.get(node, ())):
            self.session_destroy(idx, sid, ts)

    # ------------------------------------------------------------------ reads

    def session_get(self, ws: WatchSet | None, sid: str) -> tuple[int, dict[str, Any] | None]:
        self.watch_table(ws, "sessions")
        return self.index("sessions"), self.sessions.get(sid)

    def session_list(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "sessions")
        return self.index("sessions"), sorted(self.sessions.values(), key=lambda s: s["ID"])

    def session_node(self, ws: WatchSet | None, node: str) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "sessions")
        ids = sorted(self.sessions_by_node.get(node, ()))
        return self.index("sessions"), [self.sessions[i] for i in ids]
