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

import weakref
from collections.abc import Iterator
from typing import Any

import msgspec

from ..coordinate import Coordinate
from ..errors import StateError
from ..structs import TxnOp
from .catalog import service_row
from .kv import DirEntry
from .kvhistory import HistoryPolicy, KVVersion, Versions
from .rows import Check, Node, Service, Session
from .sortedkeys import SortedKeys
from .tables import Tables
from .txn import TxnResult, apply_ops
from .watch import Watch, Watches, WatchSet
from .write import WriteTxn

SNAPSHOT_VERSION = 1
#: Rows encoded per step of ``snapshot_stream``: ~1-4 ms of the event loop for KV rows (4,096
#: took 5-15 ms, added to every request in flight once per loop turn it waited through; a
#: smaller step makes a snapshot take more turns, not more CPU).
SNAPSHOT_STEP = 1024


class _Snapshot(msgspec.Struct):
    """The snapshot map (version 1) as it is decoded: the large tables typed, so their rows are
    built in C; the rest as plain data.  Keys an older snapshot lacks have defaults."""

    version: int
    kvs: list[DirEntry]
    tombstones: dict[str, int]
    lock_delays: dict[str, Any]
    nodes: dict[str, Node]
    services: Any  # dict[str, dict[str, Service]] (typed in _SnapshotTyped)
    checks: dict[str, dict[str, Check]]
    sessions: Any
    indexes: dict[str, int]
    autopilot: Any = None
    coordinates: Any = None
    prepared_queries: Any = None
    config_entries: Any = None
    connect_ca: Any = None
    acl: Any = None
    kv_history: list[tuple[str, tuple[KVVersion, ...]]] | None = None


class _SnapshotTyped(_Snapshot):
    services: dict[str, dict[str, Service]]


class _SnapshotCompat(_Snapshot):
    """Services as plain dicts: a snapshot written before services were typed rows may hold a
    ``null`` member (Go's zero value), which ``service_row`` reads."""

    services: dict[str, dict[str, dict[str, Any]]]


_snapshot_decoder = msgspec.msgpack.Decoder(_SnapshotTyped)
_compat_decoder = msgspec.msgpack.Decoder(_SnapshotCompat)
_encode = msgspec.msgpack.Encoder(order="sorted").encode


def _header(n: int, fix: int, b16: int) -> bytes:
    """The msgpack header of an array (``fix`` 0x90) or map (0x80) of ``n`` items, in the
    shortest form, as msgspec writes it."""
    if n < 16:
        return bytes((fix | n,))
    if n < 0x10000:
        return bytes((b16,)) + n.to_bytes(2, "big")
    return bytes((b16 + 1,)) + n.to_bytes(4, "big")


def _body(encoded: bytes, n: int) -> bytes:
    """``encoded`` (an array or map of ``n`` items) without its header: its items' bytes."""
    return encoded[1 if n < 16 else 3 if n < 0x10000 else 5 :]


class SnapshotView:
    """The tables at one moment, captured without copying rows (rows are immutable: a write
    replaces a row in its dict, so a copied dict keeps the rows it had).  KV entries, the
    largest table, are not even copied: the table records the entry of every key changed after
    the capture (``KVTable.frozen``, copy-on-write) until the view is released; its key order
    is shared as it is (``SortedKeys`` chunks are immutable tuples).  The other large dicts are copied (C-level), the small tables
    encoded at once.  ``encode`` then produces the snapshot in steps."""

    def __init__(self, t: Tables) -> None:
        kv = t.kv
        cat = t.catalog
        self.kv = kv
        self.kv_keys = kv.keys
        frozen = kv.keys.freeze()  # the key order, shared (immutable chunks)
        self.kv_chunks = frozen if frozen is not None else kv.keys.chunks()
        self.kv_keys_frozen = frozen is not None
        self.kv_count = len(kv.keys)
        self.kv_entries = kv.entries
        self.kv_frozen: dict[str, DirEntry | None] | None = None
        if kv.frozen is None:  # copy-on-write: the table records what changes from now on
            kv.frozen = self.kv_frozen = {}
        else:  # another view is being encoded: copy instead
            self.kv_entries = kv.entries.copy()
        self.maps: dict[str, dict[Any, Any]] = {
            "tombstones": kv.tombstones.copy(),
            "nodes": cat.nodes.copy(),
            "services": {n: per.copy() for n, per in cat.services.items()},
            "checks": {n: per.copy() for n, per in cat.checks.items()},
        }
        small: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "lock_delays": kv.lock_delays,
            "sessions": t.sessions.rows,
            "autopilot": t.autopilot.config,
            "coordinates": list(t.coordinates.rows.values()),
            "prepared_queries": t.prepared_queries.rows,
            "config_entries": [t.config_entries.rows[k] for k in sorted(t.config_entries.rows)],
            "connect_ca": {"config": t.connect_ca.config, "roots": t.connect_ca.roots},
            "acl": t.acl.dump(),
            "indexes": t.indexes,
        }
        self.small = {k: _encode(v) for k, v in small.items()}
        h = self.hist = t.kv_history
        self.hist_keys = h.keys
        hfrozen = h.keys.freeze()
        self.hist_chunks = hfrozen if hfrozen is not None else h.keys.chunks()
        self.hist_keys_frozen = hfrozen is not None
        self.hist_count = len(h.keys)
        self.hist_rows = h.rows
        self.hist_frozen: dict[str, Any] | None = None
        if h.frozen is None:
            h.frozen = self.hist_frozen = {}
        else:
            self.hist_rows = h.rows.copy()

    def release(self) -> None:
        """Stop the copy-on-write of the KV entries, KV history and their key orders for this
        view (idempotent)."""
        if self.kv_frozen is not None and self.kv.frozen is self.kv_frozen:
            self.kv.frozen = None
        if self.hist_frozen is not None and self.hist.frozen is self.hist_frozen:
            self.hist.frozen = None
        if self.kv_keys_frozen:
            self.kv_keys.thaw()
            self.kv_keys_frozen = False
        if self.hist_keys_frozen:
            self.hist_keys.thaw()
            self.hist_keys_frozen = False

    def encode(self, step: int) -> Iterator[bytes]:
        """The pieces; the copy-on-write ends when they are all produced, or when the
        generator is closed or collected unfinished (``weakref.finalize`` in ``snapshot_stream``)."""
        try:
            names = sorted(["kvs", "kv_history", *self.maps, *self.small])
            yield _header(len(names), 0x80, 0xDE)
            for name in names:
                yield _encode(name)
                if name == "kvs":
                    yield from self._kvs(step)
                elif name == "kv_history":
                    yield from self._history(step)
                elif name in self.maps:
                    yield from self._map(self.maps[name], step)
                else:
                    yield self.small[name]
        finally:
            self.release()

    def _kvs(self, step: int) -> Iterator[bytes]:
        yield _header(self.kv_count, 0x90, 0xDC)
        entries = self.kv_entries
        get = entries.__getitem__
        fr = self.kv_frozen
        batch: list[str] = []

        def rows(keys: list[str]) -> list[DirEntry]:
            if not fr:
                return list(map(get, keys))
            # A key of the view changed since: its entry then is in ``fr`` (never None: the
            # key existed when the view was taken).
            return [fr.get(k) or get(k) for k in keys]

        for chunk in self.kv_chunks:
            batch.extend(chunk)
            if len(batch) >= step:
                yield _body(_encode(rows(batch)), len(batch))
                batch = []
        if batch:
            yield _body(_encode(rows(batch)), len(batch))

    def _history(self, step: int) -> Iterator[bytes]:
        """``KVHistoryTable.dump()``'s form, ``[[key, [version, ...]], ...]`` in key order
        (a ``KVVersion`` is array-like: it encodes as the tuple ``dump`` makes of it)."""
        yield _header(self.hist_count, 0x90, 0xDC)
        rows = self.hist_rows
        fr = self.hist_frozen
        batch: list[str] = []

        def items(keys: list[str]) -> list[Any]:
            if not fr:
                return [(k, rows[k].all) for k in keys]
            return [(k, (fr.get(k) or rows[k]).all) for k in keys]

        for chunk in self.hist_chunks:
            batch.extend(chunk)
            if len(batch) >= step:
                yield _body(_encode(items(batch)), len(batch))
                batch = []
        if batch:
            yield _body(_encode(items(batch)), len(batch))

    @staticmethod
    def _map(d: dict[Any, Any], step: int) -> Iterator[bytes]:
        """A map in sorted key order, a step of about ``step`` rows at a time (a value that is
        itself a map counts its items)."""
        keys = sorted(d)
        yield _header(len(keys), 0x80, 0xDE)
        part: dict[Any, Any] = {}
        rows = 0
        for k in keys:
            v = d[k]
            part[k] = v
            rows += len(v) if isinstance(v, dict) else 1
            if rows >= step:
                yield _body(_encode(part), len(part))
                part = {}
                rows = 0
        if part:
            yield _body(_encode(part), len(part))


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
        return list(self.tables.kv.keys)

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
        """The whole state as canonical msgpack (see ``snapshot_stream``)."""
        return b"".join(self.snapshot_stream())

    def snapshot_stream(self, step: int = SNAPSHOT_STEP) -> Iterator[bytes]:
        """The snapshot of the state as it is *now*, as pieces whose concatenation is the
        snapshot (``snapshot()``), encoded lazily: each ``next()`` encodes about ``step`` rows.

        The state is captured before this returns (``SnapshotView``), so writes applied while
        the pieces are produced do not show in them: the caller can hand the event loop back
        between pieces (``ReplicatedLog`` does), and no single step holds it for long.  The
        bytes are those of ``msgspec.msgpack.encode(<the tables as one map>, order="sorted")``:
        equal state gives equal bytes, however it is cut into pieces."""
        view = SnapshotView(self.tables)
        gen = view.encode(step)
        weakref.finalize(gen, view.release)  # a stream dropped before it finished
        return gen

    def load(self, blob: bytes) -> Tables:
        """A complete ``Tables`` from a snapshot (nothing in this store changes).  The rows are
        decoded into their types in C (``_Snapshot``): no per-row Python work but the indexes."""
        snap: _Snapshot
        try:
            try:
                snap = _snapshot_decoder.decode(blob)
            except msgspec.ValidationError:
                snap = _compat_decoder.decode(blob)
        except msgspec.ValidationError as err:
            try:
                data = msgspec.msgpack.decode(blob)
            except msgspec.DecodeError:
                data = None
            if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
                raise StateError("snapshot has an unknown format version") from None
            raise StateError(f"snapshot is corrupt: {err}") from err
        except msgspec.DecodeError as err:
            raise StateError(f"snapshot is corrupt: {err}") from err
        if snap.version != SNAPSHOT_VERSION:
            raise StateError("snapshot has an unknown format version")
        t = Tables(self.watches, self.history_policy)
        try:
            self._fill(t, snap)
        except (msgspec.ValidationError, KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise StateError(f"snapshot is corrupt: {err}") from err
        return t

    @staticmethod
    def _fill(t: Tables, data: _Snapshot) -> None:
        kv = t.kv
        entries = kv.entries
        for e in data.kvs:
            entries[e.key] = e
            if e.session:
                kv.locks_by_session.setdefault(e.session, set()).add(e.key)
        kv.keys = SortedKeys(entries)
        kv.tombstones = dict(data.tombstones)
        kv.tomb_keys = SortedKeys(kv.tombstones)
        kv.lock_delays = dict(data.lock_delays)
        cat = t.catalog
        cat.nodes = data.nodes
        services = data.services
        if isinstance(data, _SnapshotCompat):  # services as dicts (an older snapshot)
            services = {node: {sid: service_row(d) for sid, d in per.items()} for node, per in services.items()}
        cat.services = services
        cat.checks = data.checks
        for node, per in cat.services.items():
            for sid, svc in per.items():
                cat.service_instances.setdefault(svc.service, set()).add((node, sid))
        t.sessions.load(data.sessions)
        t.autopilot.config = data.autopilot if data.autopilot is not None else {}
        for row in data.coordinates or []:
            t.coordinates.rows[(row["Node"], row["Segment"])] = row
            t.coordinates.by_node.setdefault(row["Node"], set()).add(row["Segment"])
        pq = t.prepared_queries
        pq.rows = dict(data.prepared_queries or {})
        for qid, q in pq.rows.items():
            if q.get("Session"):
                pq.by_session.setdefault(q["Session"], set()).add(qid)
        for entry in data.config_entries or ():
            t.config_entries.rows[(entry["Kind"], entry["Name"])] = entry
        ca = data.connect_ca or {}
        t.connect_ca.config = dict(ca.get("config") or {})
        t.connect_ca.roots = list(ca.get("roots") or [])
        t.acl.load(data.acl)
        hist = data.kv_history or []
        if hist and isinstance(hist[0][1], tuple):  # decoded typed: tuples of KVVersion
            t.kv_history.rows = {k: Versions(vs) for k, vs in hist}
            t.kv_history.keys = SortedKeys(t.kv_history.rows)
        else:
            t.kv_history.load(hist)
        t.indexes = dict(data.indexes)

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
