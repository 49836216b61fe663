"""Prepared queries table (Consul's ``prepared-queries`` table).

Rows are the canonical query objects of :mod:`muster.query.definition` plus ``CreateIndex`` and
``ModifyIndex``, keyed by ID.  A create or update is checked against the other rows when it is
applied (unique names, no name aliasing an ID, one catch-all template, the session exists) so
that of two concurrent writers the log's order decides; a query bound to a session is deleted
when that session is destroyed (``sessions.py`` calls :meth:`PreparedQueryTable.delete_session`).
Index: ``prepared_queries``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import MusterError, StateError
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn


def looks_like_uuid(s: str) -> bool:
    if len(s) != 36:
        return False
    try:
        uuid.UUID(s)
    except ValueError:
        return False
    return True


def validate_against(q: dict[str, Any], existing: Iterable[Mapping[str, Any]], session_exists: bool) -> None:
    """The checks of ``q`` (with its ID set) against the stored queries (Consul
    ``state/prepared_query.go``): unique names (case-insensitive), no name that is another
    query's ID, one catch-all template at most, an existing session."""
    name = q["Name"]
    rows = list(existing)
    for other in rows:
        if other["ID"] == q["ID"]:
            continue
        if name and other["ID"] == name.lower():
            raise MusterError(f"name '{name}' aliases an existing query ID")
        if name and other["Name"].lower() == name.lower():
            raise MusterError(f"name '{name}' aliases an existing query name")
        if not name and q["Template"]["Type"] and not other["Name"] and other["Template"]["Type"]:
            raise MusterError("a query template with an empty name already exists")
    if q["Session"] and not session_exists:
        raise MusterError(f'invalid session "{q["Session"]}"')


class PreparedQueryTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.rows: dict[str, dict[str, Any]] = {}
        self.by_session: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ writes

    def set(self, tx: WriteTxn, op: str, q: dict[str, Any]) -> str:
        qid = q["ID"]
        old = self.rows.get(qid)
        if op == "create" and old is not None:
            raise StateError(f"prepared query '{qid}' already exists")
        if op == "update" and old is None:
            raise StateError(f"Cannot modify non-existent prepared query: '{qid}'")
        validate_against(q, self.rows.values(), not q["Session"] or q["Session"] in self._t.sessions.rows)
        rec = dict(q, CreateIndex=old["CreateIndex"] if old is not None else tx.index, ModifyIndex=tx.index)
        if old is not None and old["Session"]:
            tx.discard_member(self.by_session, old["Session"], qid)
        tx.put(self.rows, qid, rec)
        if q["Session"]:
            tx.add_member(self.by_session, q["Session"], qid)
        tx.bump("prepared_queries")
        return qid

    def delete(self, tx: WriteTxn, qid: str) -> None:
        old = self.rows.get(qid)
        if old is None:
            raise StateError(f"Cannot modify non-existent prepared query: '{qid}'")
        tx.pop(self.rows, qid)
        if old["Session"]:
            tx.discard_member(self.by_session, old["Session"], qid)
        tx.bump("prepared_queries")

    def delete_session(self, tx: WriteTxn, sid: str) -> None:
        for qid in sorted(self.by_session.get(sid, ())):
            self.delete(tx, qid)

    # ------------------------------------------------------------------ reads

    def list_all(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, "prepared_queries")
        return self._t.index("prepared_queries"), [self.rows[k] for k in sorted(self.rows)]

    def get(self, ws: WatchSet | None, qid: str) -> tuple[int, dict[str, Any] | None]:
        self._t.watches.table(ws, "prepared_queries")
        return self._t.index("prepared_queries"), self.rows.get(qid)
