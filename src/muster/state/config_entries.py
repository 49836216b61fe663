"""Config entries table: centrally stored service-mesh configuration (``/v1/config``).

Rows are keyed by ``(kind, name)`` and hold the entry exactly as the HTTP layer normalised
and validated it (``connect/config_entries.py``), plus ``CreateIndex``/``ModifyIndex``.
Service intentions are ``service-intentions`` entries (as in Consul since 1.9), so the
intentions API reads and writes this table too.

Writes: ``set`` (``cas`` >= 0 applies only if the row's ``ModifyIndex`` equals it; 0 means
"only if absent") and ``delete`` (same ``cas`` rule; deleting a missing row is a no-op that
succeeds).  Both return whether they applied.  Index: ``config-entries`` (every write), and
``config-entries:<kind>`` so a watcher of one kind is not woken by another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tables import Tables
    from .watch import WatchSet
    from .write import WriteTxn

TABLE = "config-entries"


class ConfigEntryTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        #: (kind, name) -> entry (a fresh dict per write; never mutated in place).
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------ writes

    def set(self, tx: WriteTxn, entry: dict[str, Any], cas: int = -1) -> bool:
        key = (str(entry["Kind"]), str(entry["Name"]))
        cur = self.rows.get(key)
        if cas >= 0:
            if cas == 0 and cur is not None:
                return False
            if cas > 0 and (cur is None or int(cur.get("ModifyIndex", 0)) != cas):
                return False
        new = dict(entry)
        new["CreateIndex"] = cur["CreateIndex"] if cur is not None else tx.index
        new["ModifyIndex"] = tx.index
        tx.put(self.rows, key, new)
        tx.bump(TABLE)
        tx.bump(f"{TABLE}:{key[0]}")
        return True

    def delete(self, tx: WriteTxn, kind: str, name: str, cas: int = -1) -> bool:
        key = (kind, name)
        cur = self.rows.get(key)
        if cas >= 0 and (cur is None or int(cur.get("ModifyIndex", 0)) != cas):
            return False
        if cur is None:
            return True
        tx.pop(self.rows, key)
        tx.bump(TABLE)
        tx.bump(f"{TABLE}:{kind}")
        return True

    # ------------------------------------------------------------------ reads

    def get(self, ws: WatchSet | None, kind: str, name: str) -> tuple[int, dict[str, Any] | None]:
        self._t.watches.table(ws, f"{TABLE}:{kind}")
        return self._t.index(f"{TABLE}:{kind}"), self.rows.get((kind, name))

    def list(self, ws: WatchSet | None, kind: str = "") -> tuple[int, list[dict[str, Any]]]:
        """Entries of ``kind`` (every kind when empty), sorted by kind then name."""
        name = f"{TABLE}:{kind}" if kind else TABLE
        self._t.watches.table(ws, name)
        rows = [self.rows[k] for k in sorted(self.rows) if not kind or k[0] == kind]
        return self._t.index(name), rows
