"""``Tables``: one complete state (every table, its secondary indexes, the index table).

A store holds exactly one ``Tables`` at a time; a snapshot restore builds a new one and swaps it
in whole, so a reader never sees a mix of old and new tables.  Tables reach each other through
this object (``self._t.sessions`` from the KV table...), as Consul's tables all live in one
memdb transaction: a session destroy releases KV locks, a critical check destroys sessions.
"""

from __future__ import annotations

from .acl import ACLTable
from .autopilot import AutopilotTable
from .catalog import CatalogTable
from .config_entries import ConfigEntryTable
from .connect_ca import ConnectCATable
from .coordinates import CoordinateTable
from .kv import KVTable
from .kvhistory import HistoryPolicy, KVHistory
from .prepared_queries import PreparedQueryTable
from .sessions import SessionTable
from .watch import Watches


class Tables:
    def __init__(self, watches: Watches, history: HistoryPolicy | None = None) -> None:
        #: Shared with the store: it survives restores, the tables do not.
        self.watches = watches
        #: Index name (a table, or ``svc:<service>``) -> the last log index that changed it.
        self.indexes: dict[str, int] = {}
        #: The KV history (written by the KV table in the same transaction as each change).
        self.kv_history = KVHistory(history if history is not None else HistoryPolicy())
        self.kv = KVTable(self)
        self.catalog = CatalogTable(self)
        self.sessions = SessionTable(self)
        self.autopilot = AutopilotTable(self)
        self.coordinates = CoordinateTable(self)
        self.prepared_queries = PreparedQueryTable(self)
        self.config_entries = ConfigEntryTable(self)
        self.connect_ca = ConnectCATable(self)
        self.acl = ACLTable(self)

    def index(self, *names: str) -> int:
        """The highest index among ``names`` (0 if none was ever written)."""
        get = self.indexes.get
        return max((get(t, 0) for t in names), default=0)
