"""``/v1/txn`` operations: several KV and catalog operations applied all or none, at one index.

Results are plain data (they cross RPC when a follower forwards the command): a KV entry as its
tuple, catalog rows as they are stored; the HTTP layer renders them.  The operations run in order inside the command's write transaction; the first one that fails
(``StateError``) makes ``apply_ops`` roll the transaction back to where the operations started
and report ``(None, [{"OpIndex", "What"}])``: a refused transaction is a *result*, not an error,
and nothing of it is visible.  A read-only transaction runs the same code in a transaction that
is always rolled back (``StateStore.txn_read``): it cannot change anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import MusterError, StateError
from ..structs import KVSCommand, TxnOp
from .kv import DirEntry

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn

TxnResult = tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]


class TxnFailed(Exception):
    def __init__(self, op_index: int, what: str) -> None:
        super().__init__(what)
        self.op_index = op_index
        self.what = what


def apply_ops(tx: WriteTxn, ops: list[TxnOp], ts: float) -> TxnResult:
    """Apply all ``ops`` or none.  Returns (results, None) or (None, errors)."""
    sp = tx.savepoint()
    results: list[dict[str, Any]] = []
    t = tx.tables
    try:
        for i, op in enumerate(ops):
            try:
                r = _op(tx, t, op, ts)
            except MusterError as err:
                raise TxnFailed(i, err.message) from err
            if r is not None:
                results.append(r)
    except TxnFailed as err:
        tx.rollback_to(sp)
        return None, [{"OpIndex": err.op_index, "What": err.what}]
    return results, None


def _op(tx: WriteTxn, t: Tables, op: TxnOp, ts: float) -> dict[str, Any] | None:
    if op.kind == "KV":
        assert op.kv is not None
        return _kv(tx, t, op.verb, op.kv, ts)
    if op.kind == "Node":
        return _node(tx, t, op.verb, op.node or {}, ts)
    if op.kind == "Service":
        return _service(tx, t, op.verb, op.node or {}, op.service or {}, ts)
    if op.kind == "Check":
        return _check(tx, t, op.verb, op.check or {}, ts)
    raise StateError(f"unknown transaction operation kind {op.kind!r}")


def _kv_result(e: DirEntry | None, with_value: bool) -> dict[str, Any] | None:
    """``{"KV": <entry as a tuple>}``: the result crosses RPC from the leader as plain data, and
    the HTTP layer renders it (``http/txn.py``).  Write verbs answer without the value."""
    if e is None:
        return None
    row = e.to_tuple()
    if not with_value:
        row = (row[0], None, *row[2:])
    return {"KV": row}


def _kv(tx: WriteTxn, t: Tables, verb: str, c: KVSCommand, ts: float) -> dict[str, Any] | None:
    kv = t.kv
    key = c.key
    if verb == "set":
        kv.set(tx, key, c.value, c.flags)
        return _kv_result(kv.entries.get(key), False)
    if verb == "cas":
        if not kv.cas(tx, key, c.value, c.flags, c.index):
            raise StateError(f'failed to set key "{key}", index is stale')
        return _kv_result(kv.entries.get(key), False)
    if verb == "lock":
        if not kv.lock(tx, key, c.value, c.flags, c.session, ts):
            raise StateError(f'failed to lock key "{key}", lock is already held')
        return _kv_result(kv.entries.get(key), False)
    if verb == "unlock":
        if not kv.unlock(tx, key, c.value, c.flags, c.session):
            raise StateError(f'failed to unlock key "{key}", lock isn\'t held, or is held by another session')
        return _kv_result(kv.entries.get(key), False)
    if verb == "get":
        e = kv.entries.get(key)
        if e is None:
            raise StateError(f'key "{key}" doesn\'t exist')
        return _kv_result(e, True)
    if verb == "get-or-empty":
        return _kv_result(kv.entries.get(key), True)
    if verb == "get-tree":
        # A tree read yields one result per entry; the caller flattens it.
        _, entries = kv.scan(None, key)
        return {"_tree": [_kv_result(e, True) for e in entries]}
    if verb == "check-index":
        e = kv.entries.get(key)
        if e is None:
            raise StateError(f'failed to check index, key "{key}" doesn\'t exist')
        if e.modify_index != c.index:
            raise StateError(f'failed index check for key "{key}", current modify index {e.modify_index} != {c.index}')
        return _kv_result(e, False)
    if verb == "check-session":
        e = kv.entries.get(key)
        if e is None:
            raise StateError(f'failed session check for key "{key}", key doesn\'t exist')
        if e.session != c.session:
            raise StateError(f'failed session check for key "{key}", current session "{e.session}" != "{c.session}"')
        return _kv_result(e, False)
    if verb == "check-not-exists":
        if key in kv.entries:
            raise StateError(f'key "{key}" exists')
        return None
    if verb == "delete":
        kv.delete(tx, key)
        return None
    if verb == "delete-tree":
        kv.delete_tree(tx, key)
        return None
    if verb == "delete-cas":
        if not kv.delete_cas(tx, key, c.index):
            raise StateError(f'failed to delete key "{key}", index is stale')
        return None
    raise StateError(f'unknown KV verb "{verb}"')


def _node(tx: WriteTxn, t: Tables, verb: str, node: dict[str, Any], ts: float) -> dict[str, Any] | None:
    cat = t.catalog
    name = node.get("Node", "")
    cur = cat.nodes.get(name)
    if verb == "get":
        if cur is None:
            raise StateError(f'node "{name}" doesn\'t exist')
        return {"Node": msgspec.to_builtins(cur)}
    if verb in ("set", "cas"):
        if verb == "cas":
            want = int(node.get("ModifyIndex", 0))
            if (cur is None and want != 0) or (cur is not None and cur.modify_index != want):
                raise StateError(f'failed to set node "{name}", index is stale')
        cat.ensure_node(tx, {k: v for k, v in node.items() if k not in ("CreateIndex", "ModifyIndex")})
        return {"Node": msgspec.to_builtins(cat.nodes[name])}
    if verb in ("delete", "delete-cas"):
        if verb == "delete-cas" and cur is not None and cur.modify_index != int(node.get("ModifyIndex", 0)):
            raise StateError(f'failed to delete node "{name}", index is stale')
        cat.delete_node(tx, name, ts)
        return None
    raise StateError(f'unknown Node verb "{verb}"')


def _service(tx: WriteTxn, t: Tables, verb: str, nodeop: dict[str, Any], svc: dict[str, Any], ts: float) -> dict[str, Any] | None:
    cat = t.catalog
    node = nodeop.get("Node", "")
    sid = svc.get("ID", "")
    cur = cat.services.get(node, {}).get(sid)
    if verb == "get":
        if cur is None:
            raise StateError(f'service "{sid}" on node "{node}" doesn\'t exist')
        return {"Service": msgspec.to_builtins(cur)}
    if verb in ("set", "cas"):
        if verb == "cas":
            want = int(svc.get("ModifyIndex", 0))
            if (cur is None and want != 0) or (cur is not None and cur.modify_index != want):
                raise StateError(f'failed to set service "{sid}" on node "{node}", index is stale')
        cat.ensure_service(tx, node, {k: v for k, v in svc.items() if k not in ("CreateIndex", "ModifyIndex")})
        return {"Service": msgspec.to_builtins(cat.services[node][sid])}
    if verb in ("delete", "delete-cas"):
        if verb == "delete-cas" and cur is not None and cur.modify_index != int(svc.get("ModifyIndex", 0)):
            raise StateError(f'failed to delete service "{sid}" on node "{node}", index is stale')
        cat.delete_service(tx, node, sid, ts)
        return None
    raise StateError(f'unknown Service verb "{verb}"')


def _check(tx: WriteTxn, t: Tables, verb: str, chk: dict[str, Any], ts: float) -> dict[str, Any] | None:
    cat = t.catalog
    node = chk.get("Node", "")
    cid = chk.get("CheckID", "")
    cur = cat.checks.get(node, {}).get(cid)
    if verb == "get":
        if cur is None:
            raise StateError(f'check "{cid}" on node "{node}" doesn\'t exist')
        return {"Check": msgspec.to_builtins(cur)}
    if verb in ("set", "cas"):
        if verb == "cas":
            want = int(chk.get("ModifyIndex", 0))
            if (cur is None and want != 0) or (cur is not None and cur.modify_index != want):
                raise StateError(f'failed to set check "{cid}" on node "{node}", index is stale')
        cat.ensure_check(tx, {k: v for k, v in chk.items() if k not in ("CreateIndex", "ModifyIndex")}, ts)
        return {"Check": msgspec.to_builtins(cat.checks[node][cid])}
    if verb in ("delete", "delete-cas"):
        if verb == "delete-cas" and cur is not None and cur.modify_index != int(chk.get("ModifyIndex", 0)):
            raise StateError(f'failed to delete check "{cid}" on node "{node}", index is stale')
        cat.delete_check(tx, node, cid, ts)
        return None
    raise StateError(f'unknown Check verb "{verb}"')
