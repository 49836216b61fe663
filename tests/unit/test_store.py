"""State store and FSM invariants (hypothesis), snapshot/restore, watches, blocking queries."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.errors import FatalApplyError, StateError
from muster.fsm import FSM
from muster.runtime import Rng
from muster.server.blocking import QueryOptions, blocking_query, effective_wait
from muster.state.store import StateStore
from muster.state.txn import apply_ops
from muster.state.watch import WatchSet
from muster.structs import KVSCommand, TxnCommand, TxnOp, encode_command

KEYS = st.sampled_from(["a", "a/b", "a/c", "b", "b/x/y", "c", ""])
VALUES = st.one_of(st.none(), st.binary(max_size=4))

kv_ops = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUES, st.integers(0, 3)),
    st.tuples(st.just("cas"), KEYS, VALUES, st.integers(0, 40)),
    st.tuples(st.just("delete"), KEYS, st.none(), st.just(0)),
    st.tuples(st.just("delete-tree"), st.sampled_from(["a", "b/", ""]), st.none(), st.just(0)),
    st.tuples(st.just("delete-cas"), KEYS, st.none(), st.integers(0, 40)),
)


def kv_set(s: StateStore, idx: int, key: str, value: bytes | None, flags: int) -> None:
    with s.write(idx) as tx:
        s.tables.kv.set(tx, key, value, flags)


def apply_op(fsm: FSM, idx: int, op: tuple[str, str, bytes | None, int]) -> object:
    verb, key, value, n = op
    if verb in ("set",):
        cmd = KVSCommand(op="set", key=key, value=value, flags=n)
    elif verb in ("cas", "delete-cas"):
        cmd = KVSCommand(op=verb, key=key, value=value, index=n)
    else:
        cmd = KVSCommand(op=verb, key=key)
    return fsm.apply(idx, encode_command(cmd))


@settings(max_examples=150, deadline=None)
@given(st.lists(kv_ops, max_size=40))
def test_indexes_never_go_backwards(ops: list[tuple[str, str, bytes | None, int]]) -> None:
    fsm = FSM()
    s = fsm.store
    prefixes = ["", "a", "a/", "b/", "c"]
    last_table = 0
    last_prefix = {p: 0 for p in prefixes}
    last_key: dict[str, int] = {}
    for i, op in enumerate(ops, start=1):
        apply_op(fsm, i, op)
        t = s.kv_table_index()
        assert t >= last_table
        last_table = t
        for p in prefixes:
            idx, _ = s.kv_list(None, p)
            assert idx >= last_prefix[p], (p, idx, last_prefix[p])
            last_prefix[p] = idx
        for k in ("a", "a/b", "b"):
            idx, e = s.kv_get(None, k)
            if e is not None:
                assert e.create_index <= e.modify_index <= i
        # the sorted key list always mirrors the table
        assert s.kv_keys == sorted(s.kvs)
        for k, e in s.kvs.items():
            last_key[k] = e.modify_index


@settings(max_examples=100, deadline=None)
@given(st.lists(kv_ops, max_size=20), st.lists(kv_ops, min_size=1, max_size=6))
def test_failed_txn_leaves_store_identical(setup: list[tuple[str, str, bytes | None, int]], txn: list[tuple[str, str, bytes | None, int]]) -> None:
    fsm = FSM()
    for i, op in enumerate(setup, start=1):
        apply_op(fsm, i, op)
    before = fsm.store.snapshot()
    ops = [TxnOp(kind="KV", verb=v, kv=KVSCommand(op=v, key=k, value=val, index=n, flags=0)) for v, k, val, n in txn]
    ops.append(TxnOp(kind="KV", verb="get", kv=KVSCommand(op="get", key="never-exists")))
    with fsm.store.write(len(setup) + 1) as tx:
        results, errors = apply_ops(tx, ops, 0.0)
    assert results is None and errors is not None
    assert 0 <= errors[0]["OpIndex"] <= len(ops) - 1  # a cas may already fail earlier
    assert fsm.store.snapshot() == before


def test_snapshot_restore_roundtrip_and_wakes_waiters() -> None:
    async def main() -> None:
        fsm = FSM()
        for i, op in enumerate([("set", "a", b"1", 0), ("set", "b/c", None, 5), ("delete", "a", None, 0)], start=1):
            apply_op(fsm, i, op)
        blob = fsm.snapshot()
        other = FSM()
        ws = WatchSet()
        ws.add(other.store.abandon_watch)
        waiter = asyncio.create_task(ws.wait(5))
        await asyncio.sleep(0)
        other.restore(blob, 3)
        assert await waiter is True
        assert other.store.snapshot() == blob
        assert other.last_applied == 3
        assert other.store.kv_list(None, "")[0] == fsm.store.kv_list(None, "")[0]

    asyncio.run(main())


def test_restore_refuses_garbage() -> None:
    with pytest.raises(StateError):
        StateStore().restore(b"\xc1garbage")


def test_unknown_command_type_is_fatal() -> None:
    fsm = FSM()
    with pytest.raises(FatalApplyError):
        fsm.apply(1, bytes([200]) + b"\x90")
    with pytest.raises(FatalApplyError):
        fsm.apply(1, b"")


def test_out_of_order_apply_is_fatal() -> None:
    fsm = FSM()
    fsm.apply(5, encode_command(KVSCommand(op="set", key="a", value=b"1")))
    with pytest.raises(FatalApplyError):
        fsm.apply(5, encode_command(KVSCommand(op="set", key="a", value=b"1")))


def test_refused_command_is_a_result_not_a_crash() -> None:
    fsm = FSM()
    res = fsm.apply(1, encode_command(KVSCommand(op="lock", key="k", value=b"v", session="nope")))
    assert isinstance(res, StateError) and str(res) == 'invalid session "nope"'
    assert fsm.store.kvs == {}


def test_txn_command_through_fsm_is_atomic() -> None:
    fsm = FSM()
    ok = TxnCommand(ops=[TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key="x", value=b"1"))])
    results, errors = fsm.apply(1, encode_command(ok))
    assert errors is None and results and results[0]["KV"][0] == "x"  # (key, value, ...) rendered by http/txn.py


def test_watch_fires_only_for_affected_keys() -> None:
    async def main() -> None:
        s = StateStore()
        ws_key, ws_other, ws_prefix = WatchSet(), WatchSet(), WatchSet()
        s.kv_get(ws_key, "a/b")
        s.kv_get(ws_other, "zzz")
        s.kv_list(ws_prefix, "a/")
        t_key = asyncio.create_task(ws_key.wait(1))
        t_other = asyncio.create_task(ws_other.wait(0.2))
        t_prefix = asyncio.create_task(ws_prefix.wait(1))
        await asyncio.sleep(0)
        kv_set(s, 1, "a/b", b"v", 0)
        assert await t_key is True
        assert await t_prefix is True
        assert await t_other is False
        assert s.waiter_count() == 0  # finished wait sets leave nothing behind

    asyncio.run(main())


def test_blocking_query_semantics() -> None:
    async def main() -> None:
        s = StateStore()
        kv_set(s, 5, "k", b"1", 0)
        rng = Rng(7)

        def run(ws: WatchSet | None) -> tuple[int, object]:
            idx, e = s.kv_get(ws, "k")
            return idx, e

        # index 0: immediate
        idx, _ = await blocking_query(s, QueryOptions(min_index=0), run, rng)
        assert idx == 5
        # same index: waits, wakes on change strictly greater
        task = asyncio.create_task(blocking_query(s, QueryOptions(min_index=5, wait=5), run, rng))
        await asyncio.sleep(0.01)
        assert not task.done()
        kv_set(s, 6, "other", b"x", 0)  # unrelated key: no wake-up result
        await asyncio.sleep(0.01)
        assert not task.done()
        kv_set(s, 7, "k", b"2", 0)
        idx, _ = await asyncio.wait_for(task, 1)
        assert idx == 7
        # index ahead of the store (a restore moved it back): keeps blocking until timeout
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        idx, _ = await blocking_query(s, QueryOptions(min_index=100, wait=0.05), run, rng)
        assert idx == 7 and loop.time() - t0 >= 0.05

    asyncio.run(main())


def test_index_is_never_zero() -> None:
    async def main() -> None:
        s = StateStore()
        idx, _ = await blocking_query(s, QueryOptions(), lambda ws: s.kv_get(ws, "x"), Rng(1))
        assert idx == 1

    asyncio.run(main())


@given(st.floats(min_value=-10, max_value=10_000, allow_nan=False))
def test_wait_is_capped_with_bounded_jitter(wait: float) -> None:
    w = effective_wait(wait, Rng(3))
    base = 300.0 if wait <= 0 else min(wait, 600.0)
    assert base <= w < base + base / 16 + 1e-9


def _monolithic(s: StateStore) -> bytes:
    """The snapshot as it was encoded before it was produced in steps: one map, sorted keys."""
    import msgspec

    t = s.tables
    kv = t.kv
    cat = t.catalog
    data = {
        "version": 1,
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


def _fill_store(fsm: FSM, n: int) -> int:
    from muster.structs import RegisterCommand

    idx = 0
    for i in range(n):
        idx += 1
        apply_op(fsm, idx, ("set", f"k/{(i * 7919) % n:05d}", bytes([i % 256]) * (i % 5), i % 3))
    for i in range(0, n, 3):
        idx += 1
        apply_op(fsm, idx, ("delete", f"k/{i:05d}", None, 0))
    for i in range(n // 4):
        idx += 1
        fsm.apply_decoded(idx, RegisterCommand(
            node={"Node": f"n{i % 7}", "Address": "10.0.0.1"},
            service={"ID": f"s{i}", "Service": f"svc{i % 3}", "Tags": ["a"], "Port": i},
            checks=[{"Node": f"n{i % 7}", "CheckID": f"c{i}", "Name": "c", "Status": "passing", "ServiceID": f"s{i}"}],
        ))
    return idx


@pytest.mark.parametrize("n", [0, 5, 40, 300])
@pytest.mark.parametrize("step", [1, 3, 17, 4096])
def test_snapshot_in_steps_is_the_canonical_encoding(n: int, step: int) -> None:
    """However the snapshot is cut into steps, its bytes are the one-map encoding of the tables
    (equal state, equal bytes), and it loads back into the same state."""
    fsm = FSM()
    idx = _fill_store(fsm, n)
    pieces = list(fsm.store.snapshot_stream(step))
    blob = b"".join(pieces)
    assert blob == _monolithic(fsm.store) == fsm.store.snapshot()
    other = FSM()
    other.restore(blob, idx)
    assert other.store.snapshot() == blob
    assert other.store.kv_keys == fsm.store.kv_keys


def test_snapshot_stream_is_the_state_when_it_was_taken() -> None:
    """Writes applied while the pieces are being produced (the event loop runs between them) do
    not show in the snapshot: it is the state at the moment ``snapshot_stream`` was called."""
    fsm = FSM()
    idx = _fill_store(fsm, 200)
    before = fsm.store.snapshot()
    stream = fsm.store.snapshot_stream(10)
    pieces = [next(stream)]
    for i, op in enumerate(
        [("set", "k/00001", b"new", 1), ("set", "zz/new", b"x", 0), ("delete", "k/00002", None, 0),
         ("delete-tree", "k/001", None, 0)],
        start=idx + 1,
    ):
        apply_op(fsm, i, op)
        pieces.append(next(stream))
    pieces.extend(stream)
    assert b"".join(pieces) == before
    assert fsm.store.snapshot() != before


def test_restore_refuses_an_unknown_version() -> None:
    import msgspec

    fsm = FSM()
    blob = msgspec.msgpack.decode(fsm.store.snapshot())
    blob["version"] = 2
    with pytest.raises(StateError, match="unknown format version"):
        StateStore().restore(msgspec.msgpack.encode(blob))
    with pytest.raises(StateError, match="unknown format version"):
        StateStore().restore(msgspec.msgpack.encode([1, 2]))
    blob["version"] = 1
    blob["kvs"] = [["k", "not bytes", 0, "", 0, 1, 1]]
    with pytest.raises(StateError, match="corrupt"):
        StateStore().restore(msgspec.msgpack.encode(blob))


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_snapshot_headers_are_msgspecs(n: int) -> None:
    import msgspec

    from muster.state.store import _body, _header

    arr = msgspec.msgpack.encode(list(range(n)))
    assert _header(n, 0x90, 0xDC) + _body(arr, n) == arr
    m = msgspec.msgpack.encode({str(i): 0 for i in range(n)})
    assert _header(n, 0x80, 0xDE) + _body(m, n) == m


def test_restore_reads_services_with_null_members() -> None:
    """A snapshot whose service rows carry ``null`` members (Go's zero value, as dict-shaped
    rows could) still loads: the typed decode falls back to reading the rows one by one."""
    import msgspec

    fsm = FSM()
    _fill_store(fsm, 8)
    data = msgspec.msgpack.decode(fsm.store.snapshot())
    row = data["services"]["n0"]["s0"]
    row["Weights"] = None
    other = StateStore()
    other.restore(msgspec.msgpack.encode(data))
    assert other.services["n0"]["s0"] == fsm.store.services["n0"]["s0"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(kv_ops, st.tuples(st.just("reap"), st.just(""), st.none(), st.integers(0, 40))), max_size=40))
def test_prefix_index_counts_tombstones_under_the_prefix_only(ops: list[tuple[str, str, bytes | None, int]]) -> None:
    """The prefix index of a recurse read (largest ModifyIndex under the prefix, deletions
    included) computed from the sorted tombstone keys equals a scan of every tombstone."""
    fsm = FSM()
    for i, op in enumerate(ops, start=1):
        if op[0] == "reap":
            with fsm.store.write(i) as tx:
                fsm.store.tables.kv.reap_tombstones(tx, op[3])
            fsm.last_applied = i
        else:
            apply_op(fsm, i, op)
        kv = fsm.store.tables.kv
        assert list(kv.tomb_keys) == sorted(kv.tombstones)
        for prefix in ("a", "a/", "b/x", "c", "zz"):
            found = fsm.store.kv_list(None, prefix)[1]
            naive = max([0] + [e.modify_index for e in found] + [t for k, t in kv.tombstones.items() if k.startswith(prefix)])
            assert fsm.store.kv_list(None, prefix)[0] == (naive or kv.table_index())
    restored = StateStore()
    restored.restore(fsm.store.snapshot())
    assert list(restored.tables.kv.tomb_keys) == sorted(restored.tables.kv.tombstones)


def test_snapshot_views_copy_on_write_and_release() -> None:
    """A view records the KV entries changed after it (copy-on-write) and stops when it is
    finished or dropped; a second view taken meanwhile copies instead; a write rolled back
    while a view is open changes neither view."""
    import gc

    fsm = FSM()
    idx = _fill_store(fsm, 50)
    kv = fsm.store.tables.kv
    before = fsm.store.snapshot()
    assert kv.frozen is None
    first = fsm.store.snapshot_stream(5)
    assert kv.frozen == {}
    pieces = [next(first)]
    apply_op(fsm, idx + 1, ("set", "k/00001", b"changed", 0))
    second = fsm.store.snapshot_stream(5)  # taken after the write: it must see it
    mid = fsm.store.snapshot()
    # A transaction that changes a key, then fails, is rolled back.
    bad = TxnCommand(ops=[TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key="k/00004", value=b"x")),
                          TxnOp(kind="KV", verb="cas", kv=KVSCommand(op="cas", key="k/00004", value=b"y", index=999))])
    fsm.apply(idx + 2, encode_command(bad))
    pieces.extend(first)
    assert b"".join(pieces) == before
    assert b"".join(second) == mid != before
    assert kv.frozen is None and kv.keys._shared is None and fsm.store.tables.kv_history.keys._shared is None
    dropped = fsm.store.snapshot_stream(5)
    assert kv.frozen is not None
    del dropped
    gc.collect()
    assert kv.frozen is None and kv.keys._shared is None
