"""The store's write transaction: every FSM command applies entirely or not at all.

A fault is injected at the k-th primitive mutation of a command (for every k the command
reaches): the command must leave the tables, the index table and the watches exactly as they
were (no waiter woken), and the store must accept the next command.  Refusals (``StateError``)
and failed ``/v1/txn`` operations must not wake waiters either: watches fire on commit only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from muster.agent.definitions import catalog_check, catalog_service
from muster.errors import MusterError, StateError
from muster.fsm import FSM
from muster.state.watch import WatchSet
from muster.state.write import WriteTxn
from muster.structs import (
    AutopilotCommand,
    DeregisterCommand,
    KVSCommand,
    RegisterCommand,
    RestoreCommand,
    SessionCommand,
    TombstoneCommand,
    TxnCommand,
    TxnOp,
)

PRIMITIVES = ("put", "pop", "add_member", "discard_member", "insort", "sorted_remove", "bump", "record")


class Injected(Exception):
    """Not a MusterError: the FSM must roll back and let it propagate (a bug is fatal)."""


@contextmanager
def fault_at(k: int) -> Iterator[list[int]]:
    """Make the k-th primitive mutation (1-based) of any write transaction raise ``Injected``."""
    calls = [0]
    saved = {name: getattr(WriteTxn, name) for name in PRIMITIVES}

    def wrap(orig: Callable[..., Any]) -> Callable[..., Any]:
        def f(self: WriteTxn, *args: Any) -> Any:
            calls[0] += 1
            if calls[0] == k:
                raise Injected(f"fault at primitive {k}")
            return orig(self, *args)

        return f

    for name, orig in saved.items():
        setattr(WriteTxn, name, wrap(orig))
    try:
        yield calls
    finally:
        for name, orig in saved.items():
            setattr(WriteTxn, name, orig)


def node(name: str) -> dict[str, Any]:
    return {"ID": "", "Node": name, "Address": "10.0.0.1", "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}}


def build() -> tuple[FSM, int]:
    """Two nodes, services, checks, sessions holding locks (with lock-delay and delete behaviour),
    plain keys and a tombstone: a state where one command touches many tables."""
    fsm = FSM()
    cmds: list[Any] = [
        RegisterCommand(
            node=node("a"),
            service=catalog_service({"ID": "w1", "Service": "web", "Tags": ["x"]}),
            checks=[
                catalog_check({"CheckID": "serfHealth", "Name": "serf", "Status": "passing"}, "a"),
                catalog_check({"CheckID": "wc", "Name": "wc", "Status": "passing", "ServiceID": "w1"}, "a"),
            ],
        ),
        RegisterCommand(node=node("b"), service=catalog_service({"ID": "d1", "Service": "db", "Tags": []})),
        SessionCommand(op="create", session={"ID": "s1", "Node": "a", "NodeChecks": ["serfHealth"],
                                             "ServiceChecks": [{"ID": "wc", "Namespace": ""}],
                                             "LockDelay": 15_000_000_000, "Behavior": "release", "TTL": ""}),
        SessionCommand(op="create", session={"ID": "s2", "Node": "a", "NodeChecks": ["serfHealth"],
                                             "LockDelay": 0, "Behavior": "delete", "TTL": ""}),
        KVSCommand(op="lock", key="locks/one", value=b"1", session="s1", ts=100.0),
        KVSCommand(op="lock", key="locks/two", value=b"2", session="s2", ts=100.0),
        KVSCommand(op="set", key="plain/a", value=b"a"),
        KVSCommand(op="set", key="plain/gone", value=b"g"),
        KVSCommand(op="delete", key="plain/gone"),
        KVSCommand(op="set", key="plain/gone2", value=b"g"),
        KVSCommand(op="delete", key="plain/gone2"),
    ]
    idx = 0
    for c in cmds:
        idx += 1
        res = fsm.apply_decoded(idx, c)
        assert not isinstance(res, MusterError), (c, res)
    return fsm, idx


# Commands that each make many primitive mutations across tables.
COMMANDS: dict[str, Any] = {
    "deregister node (cascade: services, checks, sessions, locks)": DeregisterCommand(node="a", ts=200.0),
    "check goes critical (destroys sessions, releases locks)": RegisterCommand(
        node=node("a"),
        checks=[catalog_check({"CheckID": "serfHealth", "Name": "serf", "Status": "critical"}, "a")],
        skip_node_update=True,
        ts=200.0,
    ),
    "register new node, service and checks": RegisterCommand(
        node=node("c"),
        service=catalog_service({"ID": "c1", "Service": "web", "Tags": ["y"]}),
        checks=[catalog_check({"CheckID": "cc", "Name": "cc", "Status": "passing", "ServiceID": "c1"}, "c")],
    ),
    "session destroy": SessionCommand(op="destroy", session={"ID": "s1"}, ts=200.0),
    "kv delete-tree": KVSCommand(op="delete-tree", key=""),
    "kv set": KVSCommand(op="set", key="plain/new", value=b"n"),
    "txn": TxnCommand(ops=[
        TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key="t/1", value=b"1")),
        TxnOp(kind="KV", verb="delete", kv=KVSCommand(op="delete", key="plain/a")),
        TxnOp(kind="Node", verb="delete", node={"Node": "b"}),
    ], ts=200.0),
    "tombstone reap": TombstoneCommand(index=100),
    "autopilot": AutopilotCommand(config={"CleanupDeadServers": False}),
}


def watch_everything(fsm: FSM) -> list[WatchSet]:
    s = fsm.store
    sets = []
    for name in ("kvs", "tombstones", "nodes", "services", "checks", "sessions", "autopilot", "svc:web", "svc:db"):
        ws = WatchSet()
        s.watch_table(ws, name)
        sets.append(ws)
    for key in ("locks/one", "locks/two", "plain/a", "plain/new", "t/1"):
        ws = WatchSet()
        s.kv_get(ws, key)
        sets.append(ws)
    for prefix in ("", "locks/", "plain/"):
        ws = WatchSet()
        s.kv_list(ws, prefix)
        sets.append(ws)
    return sets


def fired(sets: list[WatchSet]) -> bool:
    return any(w.fired for ws in sets for w in ws._watches)


@pytest.mark.parametrize("what", sorted(COMMANDS))
def test_fault_at_every_step_leaves_store_indexes_and_watches_untouched(what: str) -> None:
    cmd = COMMANDS[what]
    # How many primitive mutations does the command make when nothing fails?
    ref, idx = build()
    with fault_at(0) as calls:
        ref.apply_decoded(idx + 1, cmd)
    steps = calls[0]
    assert steps >= 2, f"{what}: expected a multi-step command, got {steps} primitive(s)"
    for k in range(1, steps + 1):
        fsm, idx = build()
        before = fsm.store.snapshot()
        indexes = dict(fsm.store.indexes)
        sets = watch_everything(fsm)
        with fault_at(k), pytest.raises(Injected):
            fsm.apply_decoded(idx + 1, cmd)
        assert fsm.store.snapshot() == before, f"{what}: half-applied at step {k}/{steps}"
        assert fsm.store.indexes == indexes
        assert not fired(sets), f"{what}: a watch fired for a rolled-back change (step {k})"
        # The store is usable afterwards and reaches the same state as a clean run.
        fsm.apply_decoded(idx + 1, cmd)
        assert fsm.store.snapshot() == ref.store.snapshot()
        assert fired(sets) or isinstance(cmd, TombstoneCommand)  # reaping moves no index


def test_refused_registration_wakes_nobody() -> None:
    fsm, idx = build()
    before = fsm.store.snapshot()
    sets = watch_everything(fsm)
    bad = RegisterCommand(
        node=dict(node("a"), Meta={"changed": "yes"}),  # a real node change happens first...
        checks=[catalog_check({"CheckID": "x", "Name": "x", "Status": "passing", "ServiceID": "nope"}, "a")],
    )
    res = fsm.apply_decoded(idx + 1, bad)  # ...then the check is refused
    assert isinstance(res, StateError) and "Missing service registration" in str(res)
    assert fsm.store.snapshot() == before
    assert not fired(sets)


def test_failed_txn_wakes_nobody_and_keeps_indexes() -> None:
    fsm, idx = build()
    before = fsm.store.snapshot()
    sets = watch_everything(fsm)
    ops = [
        TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key="plain/a", value=b"changed")),
        TxnOp(kind="KV", verb="delete-tree", kv=KVSCommand(op="delete-tree", key="locks/")),
        TxnOp(kind="KV", verb="get", kv=KVSCommand(op="get", key="never-there")),
    ]
    results, errors = fsm.apply_decoded(idx + 1, TxnCommand(ops=ops))
    assert results is None and errors == [{"OpIndex": 2, "What": 'key "never-there" doesn\'t exist'}]
    assert fsm.store.snapshot() == before
    assert not fired(sets)


def test_restore_command_is_atomic_and_fires_on_commit() -> None:
    src, _ = build()
    blob = src.store.snapshot()
    fsm = FSM()
    sets = watch_everything(fsm)
    ws_abandon = WatchSet()
    ws_abandon.add(fsm.store.abandon_watch)
    with pytest.raises(Injected), fault_at(1):
        with fsm.store.write(1) as tx:
            tx.replace_tables(fsm.store.load(blob))
            tx.bump("kvs")  # a failure after the swap puts the old tables back
    assert fsm.store.kvs == {} and not fired(sets) and not fired([ws_abandon])
    assert fsm.apply_decoded(1, RestoreCommand(state=blob)) is True
    assert fsm.store.snapshot() == blob and fired(sets) and fired([ws_abandon])


def test_transactions_do_not_nest_and_read_txn_cannot_write() -> None:
    fsm, idx = build()
    s = fsm.store
    with s.write(idx + 1):
        with pytest.raises(RuntimeError):
            s.write(idx + 2)
    before = s.snapshot()
    # txn_read runs in a transaction that is always rolled back.
    results, errors = s.txn_read([TxnOp(kind="KV", verb="get", kv=KVSCommand(op="get", key="plain/a"))])
    assert errors is None and results and results[0]["KV"][0] == "plain/a"
    tx = s.write(idx + 1)
    s.tables.kv.set(tx, "x", b"1", 0)
    tx.rollback()
    assert s.snapshot() == before
