"""``StateStore``: the tables, the one write transaction, the read API, snapshot and restore.

Writes: ``with store.write(index) as tx:`` then table methods that take ``tx``
(``store.tables.kv.set(tx, ...)``); see ``write.py`` for the all-or-nothing rule.  Reads: the
methods below (or the tables' own read methods) run without a lock or a transaction: the single
writer runs synchronously on the event loop, so a reader between two ``await`` points always
sees a whole, committed state.

Snapshots are msgpack of the tables with sorted keys (two replicas with the same state produce
the same bytes, whatever order their dicts were filled in); a restore builds a complete new
``Tables`` and swaps it in, then fires every watch so each blocking query re-runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..coordinate import Coordinate
from ..errors import StateError
from ..structs import TxnOp
from .catalog import service_row
from .kv import DirEntry
from .kvhistory import HistoryPolicy
from .rows import Check, Node, Service, Session
from .tables import Tables
from .txn import TxnResult, apply_ops
from .watch import Watch, Watches, WatchSet
from .write import WriteTxn

SNAPSHOT_VERSION = 1


class StateStore:
    def __init__(self, history: HistoryPolicy | None = None) -> None:
        self.watches = Watches()
        #: The KV history bounds; every ``Tables`` this store builds (restores too) uses them.
        self.history_policy = history if history is not None else HistoryPolicy()
        self.tables = Tables(self.watches, self.history_policy)
        self._tx: WriteTxn | None = None

    # ------------------------------------------------------------------ writes

    def write(self, index: int) -> WriteTxn:
        """Open the write transaction of the command at log ``index`` (use as a context manager)."""
        if self._tx is not None:
            raise RuntimeError("write transactions do not nest")
        tx = self._tx = WriteTxn(self, index)
        return tx

    def txn_read(self, ops: list[TxnOp]) -> TxnResult:
        """A read-only ``/v1/txn``: no index, no log entry, and a transaction that is always
        rolled back, so it cannot change anything even by mistake."""
        tx = self.write(0)
        try:
            return apply_ops(tx, ops, 0.0)
        finally:
            tx.rollback()

    # ------------------------------------------------------------------ indexes and watches

    @property
    def indexes(self) -> dict[str, int]:
        return self.tables.indexes

    @property
    def abandon_watch(self) -> Watch:
        return self.watches.abandon

    def index(self, *names: str) -> int:
        """The highest index among ``names`` (0 if none was ever written)."""
        return self.tables.index(*names)

    def max_index(self) -> int:
        return max(self.tables.indexes.values(), default=0)

    def watch_table(self, ws: WatchSet | None, name: str) -> None:
        self.watches.table(ws, name)

    def waiter_count(self) -> int:
        return self.watches.waiter_count()

    # ------------------------------------------------------------------ rows (read-only views)

    @property
    def kvs(self) -> dict[str, DirEntry]:
        return self.tables.kv.entries

    @property
    def kv_keys(self) -> list[str]:
        return self.tables.kv.keys

    @property
    def tombstones(self) -> dict[str, int]:
        return self.tables.kv.tombstones

    @property
    def nodes(self) -> dict[str, Node]:
        return self.tables.catalog.nodes

    @property
    def services(self) -> dict[str, dict[str, Service]]:
        return self.tables.catalog.services

    @property
    def checks(self) -> dict[str, dict[str, Check]]:
        return self.tables.catalog.checks

    @property
    def service_instances(self) -> dict[str, set[tuple[str, str]]]:
        return self.tables.catalog.service_instances

    @property
    def sessions(self) -> dict[str, Session]:
        return self.tables.sessions.rows

    @property
    def autopilot(self) -> dict[str, Any]:
        return self.tables.autopilot.config

    @property
    def prepared_queries(self) -> dict[str, dict[str, Any]]:
        return self.tables.prepared_queries.rows

    # ------------------------------------------------------------------ coordinates, prepared queries

    def coordinates(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        return self.tables.coordinates.list_all(ws)

    def coordinate_get(self, ws: WatchSet | None, node: str) -> tuple[int, list[dict[str, Any]]]:
        return self.tables.coordinates.for_node(ws, node)

    def coordinate_of(self, node: str, segment: str = "") -> Coordinate | None:
        return self.tables.coordinates.coordinate_of(node, segment)

    def prepared_query_list(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        return self.tables.prepared_queries.list_all(ws)

    def prepared_query_get(self, ws: WatchSet | None, qid: str) -> tuple[int, dict[str, Any] | None]:
        return self.tables.prepared_queries.get(ws, qid)

    # ------------------------------------------------------------------ KV reads

    def kv_table_index(self) -> int:
        return self.tables.kv.table_index()

    def kv_get(self, ws: WatchSet | None, key: str) -> tuple[int, DirEntry | None]:
        return self.tables.kv.get(ws, key)

    def kv_list(self, ws: WatchSet | None, prefix: str) -> tuple[int, list[DirEntry]]:
        return self.tables.kv.scan(ws, prefix)

    def kv_list_keys(self, ws: WatchSet | None, prefix: str, separator: str) -> tuple[int, list[str]]:
        return self.tables.kv.scan_keys(ws, prefix, separator)

    def lock_delay_until(self, key: str) -> float:
        return self.tables.kv.lock_delay_until(key)

    # ------------------------------------------------------------------ catalog reads

    def catalog_index(self) -> int:
        return self.tables.catalog.catalog_index()

    def list_nodes(self, ws: WatchSet | None) -> tuple[int, list[Node]]:
        return self.tables.catalog.list_nodes(ws)

    def get_node(self, ws: WatchSet | None, name: str) -> tuple[int, Node | None]:
        return self.tables.catalog.get_node(ws, name)

    def node_services(self, ws: WatchSet | None, name: str) -> tuple[int, Node | None, list[Service]]:
        return self.tables.catalog.node_services(ws, name)

    def list_services(self, ws: WatchSet | None) -> tuple[int, dict[str, list[tuple[str, Service]]]]:
        return self.tables.catalog.list_services(ws)

    def service_names(self, ws: WatchSet | None) -> tuple[int, list[str]]:
        return self.tables.catalog.service_names(ws)

    def service_tags(self, name: str) -> list[str]:
        return self.tables.catalog.service_tags(name)

    def service_index(self, name: str) -> int:
        return self.tables.catalog.service_index(name)

    def service_instances_of(self, ws: WatchSet | None, name: str) -> tuple[int, list[tuple[Node, Service]]]:
        return self.tables.catalog.service_instances_of(ws, name)

    def checks_for_instance(self, node: str, service_id: str) -> list[Check]:
        return self.tables.catalog.checks_for_instance(node, service_id)

    def node_checks(self, ws: WatchSet | None, node: str) -> tuple[int, list[Check]]:
        return self.tables.catalog.node_checks(ws, node)

    def all_checks(self, ws: WatchSet | None) -> tuple[int, list[Check]]:
        return self.tables.catalog.all_checks(ws)

    def service_checks(self, ws: WatchSet | None, name: str) -> tuple[int, list[Check]]:
        return self.tables.catalog.service_checks(ws, name)

    # ------------------------------------------------------------------ session reads

    def session_get(self, ws: WatchSet | None, sid: str) -> tuple[int, Session | None]:
        return self.tables.sessions.get(ws, sid)

    def session_list(self, ws: WatchSet | None) -> tuple[int, list[Session]]:
        return self.tables.sessions.list_all(ws)

    def session_node(self, ws: WatchSet | None, node: str) -> tuple[int, list[Session]]:
        return self.tables.sessions.for_node(ws, node)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> bytes:
        t = self.tables
        kv = t.kv
        cat = t.catalog
        data = {
            "version": SNAPSHOT_VERSION,
            "kvs": [kv.entries[k].to_tuple() for k in kv.keys],
            "tombstones": kv.tombstones,
            "lock_delays": kv.lock_delays,
            "nodes": cat.nodes,
            "services": cat.services,
            "checks": cat.checks,
            "sessions": t.sessions.rows,
            "autopilot": t.autopilot.config,
            "coordinates": list(t.coordinates.rows.values()),
            "prepared_queries": t.prepared_queries.rows,
            "config_entries": [t.config_entries.rows[k] for k in sorted(t.config_entries.rows)],
            "connect_ca": {"config": t.connect_ca.config, "roots": t.connect_ca.roots},
            "acl": t.acl.dump(),
            "kv_history": t.kv_history.dump(),
            "indexes": t.indexes,
        }
        return msgspec.msgpack.encode(data, order="sorted")

    def load(self, blob: bytes) -> Tables:
        """A complete ``Tables`` from a snapshot (nothing in this store changes)."""
        try:
            data = msgspec.msgpack.decode(blob)
        except msgspec.DecodeError as err:
            raise StateError(f"snapshot is corrupt: {err}") from err
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise StateError("snapshot has an unknown format version")
        t = Tables(self.watches, self.history_policy)
        try:
            self._fill(t, data)
        except (msgspec.ValidationError, KeyError, IndexError, TypeError, ValueError) as err:
            raise StateError(f"snapshot is corrupt: {err}") from err
        return t

    @staticmethod
    def _fill(t: Tables, data: dict[str, Any]) -> None:
        kv = t.kv
        for row in data["kvs"]:
            e = DirEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6])
            kv.entries[e.key] = e
            if e.session:
                kv.locks_by_session.setdefault(e.session, set()).add(e.key)
        kv.keys = sorted(kv.entries)
        kv.tombstones = dict(data["tombstones"])
        kv.lock_delays = dict(data["lock_delays"])
        cat = t.catalog
        cat.nodes = {name: msgspec.convert(d, Node) for name, d in data["nodes"].items()}
        cat.services = {node: {sid: service_row(d) for sid, d in per.items()} for node, per in data["services"].items()}
        cat.checks = {
            node: {cid: msgspec.convert(d, Check) for cid, d in per.items()} for node, per in data["checks"].items()
        }
        for node, per in cat.services.items():
            for sid, svc in per.items():
                cat.service_instances.setdefault(svc.service, set()).add((node, sid))
        t.sessions.load(data["sessions"])
        t.autopilot.config = data.get("autopilot", {})
        for row in data.get("coordinates", []):
            t.coordinates.rows[(row["Node"], row["Segment"])] = row
            t.coordinates.by_node.setdefault(row["Node"], set()).add(row["Segment"])
        pq = t.prepared_queries
        pq.rows = dict(data.get("prepared_queries", {}))
        for qid, q in pq.rows.items():
            if q.get("Session"):
                pq.by_session.setdefault(q["Session"], set()).add(qid)
        for entry in data.get("config_entries", ()):
            t.config_entries.rows[(entry["Kind"], entry["Name"])] = entry
        ca = data.get("connect_ca") or {}
        t.connect_ca.config = dict(ca.get("config") or {})
        t.connect_ca.roots = list(ca.get("roots") or [])
        t.acl.load(data.get("acl"))
        t.kv_history.load(data.get("kv_history") or [])
        t.indexes = dict(data["indexes"])

    def restore(self, blob: bytes) -> None:
        """Replace every table with the snapshot's, then wake every waiter.  Outside any write
        transaction (Raft snapshot install); the FSM's restore command uses ``tx.replace_tables``."""
        if self._tx is not None:
            raise RuntimeError("restore inside a write transaction: use tx.replace_tables")
        new = self.load(blob)
        self.tables = new
        self.watches.fire_all()

    def summary(self) -> dict[str, int]:
        """Row counts per table (``snapshot inspect``)."""
        t = self.tables
        return {
            "KVS": len(t.kv.entries),
            "Tombstone": len(t.kv.tombstones),
            "Register": len(t.catalog.nodes),
            "Service": sum(len(p) for p in t.catalog.services.values()),
            "Check": sum(len(p) for p in t.catalog.checks.values()),
            "Session": len(t.sessions.rows),
            "PreparedQuery": len(t.prepared_queries.rows),
            "Coordinate": len(t.coordinates.rows),
            "ConfigEntry": len(t.config_entries.rows),
            "KVHistory": t.kv_history.version_count(),
            **t.acl.summary(),
        }
