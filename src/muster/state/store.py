"""``StateStore``: every table, transactions (``/v1/txn``), snapshot and restore.

A transaction runs its operations in order against the live tables with the undo log switched
on (see ``base.py``); the first failing operation reverts all earlier ones, so a transaction is
applied entirely or not at all, at one index.  Snapshots are msgpack of the tables; a restore
replaces them and fires every watch, so each blocking query re-runs against the new state.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import MusterError, StateError
from ..structs import KVSCommand, TxnOp
from .acl import ACLTables
from .base import DirEntry
from .session import SessionStore, session_check_ids

SNAPSHOT_VERSION = 1


class TxnFailed(Exception):
    def __init__(self, op_index: int, what: str) -> None:
        super().__init__(what)
        self.op_index = op_index
        self.what = what


class StateStore(SessionStore):
    def __init__(self) -> None:
        super().__init__()
        #: The ACL tables: one object for the store's lifetime (a restore refills it in place,
        #: so the token resolver may hold it).
        self.acl = ACLTables()
        self.acl.on_change = lambda idx: self._bump("acl", idx)

    # ------------------------------------------------------------------ transactions

    def txn_apply(self, idx: int, ops: list[TxnOp], ts: float) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        """Apply all ``ops`` or none.  Returns (results, None) or (None, errors)."""
        assert self._undo is None, "transactions do not nest"
        self._undo = []
        results: list[dict[str, Any]] = []
        try:
            for i, op in enumerate(ops):
                try:
                    r = self._txn_op(idx, op, ts)
                except MusterError as err:
                    raise TxnFailed(i, err.message) from err
                if r is not None:
                    results.append(r)
        except TxnFailed as err:
            undo, self._undo = self._undo, None
            for fn in reversed(undo):
                fn()
            return None, [{"OpIndex": err.op_index, "What": err.what}]
        self._undo = None
        return results, None

    def txn_read(self, ops: list[TxnOp]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        """A read-only transaction: no index, no log entry."""
        return self.txn_apply(0, ops, 0.0)

    def _txn_op(self, idx: int, op: TxnOp, ts: float) -> dict[str, Any] | None:
        if op.kind == "KV":
            assert op.kv is not None
            return self._txn_kv(idx, op.verb, op.kv, ts)
        if op.kind == "Node":
            return self._txn_node(idx, op.verb, op.node or {}, ts)
        if op.kind == "Service":
            return self._txn_service(idx, op.verb, op.node or {}, op.service or {}, ts)
        if op.kind == "Check":
            return self._txn_check(idx, op.verb, op.check or {}, ts)
        raise StateError(f"unknown transaction operation kind {op.kind!r}")

    def _kv_result(self, e: DirEntry | None, with_value: bool) -> dict[str, Any] | None:
        if e is None:
            return None
        d = e.as_dict()
        if not with_value:
            d["Value"] = None
        return {"KV": d}

    def _txn_kv(self, idx: int, verb: str, c: KVSCommand, ts: float) -> dict[str, Any] | None:
        key = c.key
        if verb == "set":
            self.kv_set(idx, key, c.value, c.flags)
            return self._kv_result(self.kvs.get(key), False)
        if verb == "cas":
            if not self.kv_cas(idx, key, c.value, c.flags, c.index):
                raise StateError(f'failed to set key "{key}", index is stale')
            return self._kv_result(self.kvs.get(key), False)
        if verb == "lock":
            if not self.kv_lock(idx, key, c.value, c.flags, c.session, ts):
                raise StateError(f'failed to lock key "{key}", lock is already held')
            return self._kv_result(self.kvs.get(key), False)
        if verb == "unlock":
            if not self.kv_unlock(idx, key, c.value, c.flags, c.session):
                raise StateError(f'failed to unlock key "{key}", lock isn\'t held, or is held by another session')
            return self._kv_result(self.kvs.get(key), False)
        if verb == "get":
            e = self.kvs.get(key)
            if e is None:
                raise StateError(f'key "{key}" doesn\'t exist')
            return self._kv_result(e, True)
        if verb == "get-or-empty":
            return self._kv_result(self.kvs.get(key), True)
        if verb == "get-tree":
            # A tree read yields one result per entry; the caller flattens it.
            _, entries = self.kv_list(None, key)
            return {"_tree": [self._kv_result(e, True) for e in entries]}
        if verb == "check-index":
            e = self.kvs.get(key)
            if e is None:
                raise StateError(f'failed to check index, key "{key}" doesn\'t exist')
            if e.modify_index != c.index:
                raise StateError(f'failed index check for key "{key}", current modify index {e.modify_index} != {c.index}')
            return self._kv_result(e, False)
        if verb == "check-session":
            e = self.kvs.get(key)
            if e is None:
                raise StateError(f'failed session check for key "{key}", key doesn\'t exist')
            if e.session != c.session:
                raise StateError(f'failed session check for key "{key}", current session "{e.session}" != "{c.session}"')
            return self._kv_result(e, False)
        if verb == "check-not-exists":
            if key in self.kvs:
                raise StateError(f'key "{key}" exists')
            return None
        if verb == "delete":
            self.kv_delete(idx, key)
            return None
        if verb == "delete-tree":
            self.kv_delete_tree(idx, key)
            return None
        if verb == "delete-cas":
            if not self.kv_delete_cas(idx, key, c.index):
                raise StateError(f'failed to delete key "{key}", index is stale')
            return None
        raise StateError(f'unknown KV verb "{verb}"')

    def _txn_node(self, idx: int, verb: str, node: dict[str, Any], ts: float) -> dict[str, Any] | None:
        name = node.get("Node", "")
        cur = self.nodes.get(name)
        if verb == "get":
            if cur is None:
                raise StateError(f'node "{name}" doesn\'t exist')
            return {"Node": cur}
        if verb in ("set", "cas"):
            if verb == "cas":
                want = int(node.get("ModifyIndex", 0))
                if (cur is None and want != 0) or (cur is not None and cur["ModifyIndex"] != want):
                    raise StateError(f'failed to set node "{name}", index is stale')
            self.ensure_node(idx, {k: v for k, v in node.items() if k not in ("CreateIndex", "ModifyIndex")})
            return {"Node": self.nodes[name]}
        if verb in ("delete", "delete-cas"):
            if verb == "delete-cas" and cur is not None and cur["ModifyIndex"] != int(node.get("ModifyIndex", 0)):
                raise StateError(f'failed to delete node "{name}", index is stale')
            self.delete_node(idx, name, ts)
            return None
        raise StateError(f'unknown Node verb "{verb}"')

    def _txn_service(self, idx: int, verb: str, nodeop: dict[str, Any], svc: dict[str, Any], ts: float) -> dict[str, Any] | None:
        node = nodeop.get("Node", "")
        sid = svc.get("ID", "")
        cur = self.services.get(node, {}).get(sid)
        if verb == "get":
            if cur is None:
                raise StateError(f'service "{sid}" on node "{node}" doesn\'t exist')
            return {"Service": cur}
        if verb in ("set", "cas"):
            if verb == "cas":
                want = int(svc.get("ModifyIndex", 0))
                if (cur is None and want != 0) or (cur is not None and cur["ModifyIndex"] != want):
                    raise StateError(f'failed to set service "{sid}" on node "{node}", index is stale')
            self.ensure_service(idx, node, {k: v for k, v in svc.items() if k not in ("CreateIndex", "ModifyIndex")})
            return {"Service": self.services[node][sid]}
        if verb in ("delete", "delete-cas"):
            if verb == "delete-cas" and cur is not None and cur["ModifyIndex"] != int(svc.get("ModifyIndex", 0)):
                raise StateError(f'failed to delete service "{sid}" on node "{node}", index is stale')
            self.delete_service(idx, node, sid, ts)
            return None
        raise StateError(f'unknown Service verb "{verb}"')

    def _txn_check(self, idx: int, verb: str, chk: dict[str, Any], ts: float) -> dict[str, Any] | None:
        node = chk.get("Node", "")
        cid = chk.get("CheckID", "")
        cur = self.checks.get(node, {}).get(cid)
        if verb == "get":
            if cur is None:
                raise StateError(f'check "{cid}" on node "{node}" doesn\'t exist')
            return {"Check": cur}
        if verb in ("set", "cas"):
            if verb == "cas":
                want = int(chk.get("ModifyIndex", 0))
                if (cur is None and want != 0) or (cur is not None and cur["ModifyIndex"] != want):
                    raise StateError(f'failed to set check "{cid}" on node "{node}", index is stale')
            self.ensure_check(idx, {k: v for k, v in chk.items() if k not in ("CreateIndex", "ModifyIndex")}, ts)
            return {"Check": self.checks[node][cid]}
        if verb in ("delete", "delete-cas"):
            if verb == "delete-cas" and cur is not None and cur["ModifyIndex"] != int(chk.get("ModifyIndex", 0)):
                raise StateError(f'failed to delete check "{cid}" on node "{node}", index is stale')
            self.delete_check(idx, node, cid, ts)
            return None
        raise StateError(f'unknown Check verb "{verb}"')

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> bytes:
        data = {
            "version": SNAPSHOT_VERSION,
            "kvs": [self.kvs[k].to_tuple() for k in self.kv_keys],
            "tombstones": self.tombstones,
            "lock_delays": self.lock_delays,
            "nodes": self.nodes,
            "services": self.services,
            "checks": self.checks,
            "sessions": self.sessions,
            "autopilot": self.autopilot,
            "acl": self.acl.snapshot(),
            "indexes": self.indexes,
        }
        # Sorted keys: two replicas with the same state produce the same bytes, whatever order
        # their dicts were filled in (an undone transaction re-inserts keys at the end).
        return msgspec.msgpack.encode(data, order="sorted")

    def restore(self, blob: bytes) -> None:
        """Replace every table with the snapshot's, then wake every waiter."""
        try:
            data = msgspec.msgpack.decode(blob)
        except msgspec.DecodeError as err:
            raise StateError(f"snapshot is corrupt: {err}") from err
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise StateError("snapshot has an unknown format version")
        self._init_tables()
        for t in data["kvs"]:
            e = DirEntry(t[0], t[1], t[2], t[3], t[4], t[5], t[6])
            self.kvs[e.key] = e
            if e.session:
                self.locks_by_session.setdefault(e.session, set()).add(e.key)
        self.kv_keys = sorted(self.kvs)
        self.tombstones = dict(data["tombstones"])
        self.lock_delays = dict(data["lock_delays"])
        self.nodes = data["nodes"]
        self.services = data["services"]
        self.checks = data["checks"]
        for node, per in self.services.items():
            for sid, svc in per.items():
                self.service_instances.setdefault(svc["Service"], set()).add((node, sid))
        self.sessions = data["sessions"]

        for sid, sess in self.sessions.items():
            self.sessions_by_node.setdefault(sess["Node"], set()).add(sid)
            for cid in session_check_ids(sess):
                self.sessions_by_check.setdefault((sess["Node"], cid), set()).add(sid)
        self.autopilot = data.get("autopilot", {})
        self.acl.restore(data.get("acl"))
        self.indexes = dict(data["indexes"])
        self.fire_all()

    def summary(self) -> dict[str, int]:
        """Row counts per table (``snapshot inspect``)."""
        return {
            "KVS": len(self.kvs),
            "Tombstone": len(self.tombstones),
            "Register": len(self.nodes),
            "Service": sum(len(p) for p in self.services.values()),
            "Check": sum(len(p) for p in self.checks.values()),
            "Session": len(self.sessions),
            **self.acl.summary(),
        }
