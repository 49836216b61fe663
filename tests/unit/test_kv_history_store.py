"""KV history in the store and the FSM (docs/kv-history.md): one version per change, in the
change's transaction; bounds by count and by the command's time; snapshots carry it; replicas
that apply the same log hold the same history."""

from __future__ import annotations

import pytest

from muster.fsm import FSM
from muster.state.kvhistory import HistoryPolicy
from muster.state.store import StateStore
from muster.structs import (
    KVSCommand,
    RegisterCommand,
    SessionCommand,
    TombstoneCommand,
    TxnCommand,
    TxnOp,
    encode_command,
)

DAY = 86400.0


class Log:
    """Applies commands at consecutive indexes, as a replica does."""

    def __init__(self, policy: HistoryPolicy | None = None) -> None:
        self.fsm = FSM(StateStore(policy))
        self.index = 0

    def apply(self, cmd: object) -> object:
        self.index += 1
        return self.fsm.apply(self.index, encode_command(cmd))

    def versions(self, key: str) -> list[tuple[int, str, bytes | None]]:
        return [(v.index, v.op, v.value) for v in self.fsm.store.tables.kv_history.get(key)]


def kv(op: str, key: str, value: bytes | None = None, **kw: object) -> KVSCommand:
    return KVSCommand(op, key, value, **kw)  # type: ignore[arg-type]


def test_every_change_is_one_version_with_who_and_when() -> None:
    log = Log()
    log.apply(kv("set", "a", b"1", ts=100.0, accessor="acc-1", addr="127.0.0.9"))
    log.apply(kv("set", "a", b"1", ts=101.0))  # identical: no write, no version
    log.apply(kv("cas", "a", b"2", index=1, ts=102.0, flags=7))
    log.apply(kv("cas", "a", b"3", index=1, ts=103.0))  # stale: refused, no version
    log.apply(kv("delete", "a", ts=104.0))
    assert log.versions("a") == [(1, "set", b"1"), (3, "cas", b"2"), (5, "delete", None)]
    first, second, third = log.fsm.store.tables.kv_history.get("a")
    assert (first.ts, first.accessor, first.addr) == (100.0, "acc-1", "127.0.0.9")
    assert second.flags == 7 and not second.deleted and third.deleted


def test_value_bytes_are_shared_with_the_entry() -> None:
    log = Log()
    log.apply(kv("set", "k", b"x" * 1000, ts=1.0))
    e = log.fsm.store.kvs["k"]
    (v,) = log.fsm.store.tables.kv_history.get("k")
    assert v.value is e.value


def test_locks_sessions_txn_and_delete_tree() -> None:
    log = Log()
    log.apply(RegisterCommand(node={"ID": "", "Node": "a", "Address": "10.0.0.1", "Datacenter": "dc1"}))
    log.apply(SessionCommand("create", {"ID": "s1", "Node": "a", "LockDelay": 0, "Behavior": "delete", "TTL": ""}, ts=1.0))
    log.apply(kv("lock", "l", b"held", session="s1", ts=2.0))
    log.apply(kv("unlock", "l", b"free", session="s1", ts=3.0))
    log.apply(kv("lock", "l", b"again", session="s1", ts=4.0))
    log.apply(SessionCommand("destroy", {"ID": "s1"}, ts=5.0, accessor="acc-2"))
    assert [op for _, op, _ in log.versions("l")] == ["lock", "unlock", "lock", "session-delete"]
    assert log.fsm.store.tables.kv_history.get("l")[-1].accessor == "acc-2"
    ops = [TxnOp("KV", "set", kv("set", "t/1", b"a")), TxnOp("KV", "set", kv("set", "t/2", b"b"))]
    log.apply(TxnCommand(ops, ts=6.0, accessor="acc-3"))
    assert log.versions("t/1") == [(7, "set", b"a")]
    # a refused transaction leaves no version of its first operation
    bad = [TxnOp("KV", "set", kv("set", "t/1", b"zzz")), TxnOp("KV", "cas", kv("cas", "t/2", b"c", index=99))]
    log.apply(TxnCommand(bad, ts=7.0))
    assert log.versions("t/1") == [(7, "set", b"a")]
    log.apply(kv("delete-tree", "t/", ts=8.0))
    assert log.versions("t/2") == [(7, "set", b"b"), (9, "delete-tree", None)]


def test_invalid_session_lock_records_nothing() -> None:
    log = Log()
    log.apply(kv("lock", "l", b"x", session="nope", ts=1.0))
    assert log.versions("l") == []


def test_bounded_by_count_newest_kept() -> None:
    log = Log(HistoryPolicy(versions=3, max_age=0))
    for i in range(10):
        log.apply(kv("set", "k", str(i).encode(), ts=float(i)))
    assert [v for _, _, v in log.versions("k")] == [b"7", b"8", b"9"]


def test_bounded_by_age_of_the_command() -> None:
    log = Log(HistoryPolicy(versions=10, max_age=DAY))
    log.apply(kv("set", "k", b"old", ts=1000.0))
    log.apply(kv("set", "k", b"mid", ts=1000.0 + DAY / 2))
    log.apply(kv("set", "k", b"new", ts=1000.0 + DAY + 1))
    assert [v for _, _, v in log.versions("k")] == [b"mid", b"new"]


def test_prune_by_the_reap_command_keeps_current_version_of_live_keys() -> None:
    log = Log(HistoryPolicy(versions=10, max_age=DAY))
    log.apply(kv("set", "live", b"1", ts=10.0))
    log.apply(kv("set", "live", b"2", ts=20.0))
    log.apply(kv("set", "gone", b"1", ts=10.0))
    log.apply(kv("delete", "gone", ts=20.0))
    hist = log.fsm.store.tables.kv_history
    assert not hist.prunable(20.0 + DAY / 2, log.fsm.store.kvs)
    assert hist.prunable(30.0 + DAY, log.fsm.store.kvs)
    log.apply(TombstoneCommand(index=0, ts=30.0 + DAY))
    assert log.versions("live") == [(2, "set", b"2")]
    assert log.versions("gone") == []
    assert hist.keys == ["live"]
    assert not hist.prunable(30.0 + DAY, log.fsm.store.kvs)


def test_disabled_records_nothing() -> None:
    log = Log(HistoryPolicy(versions=0))
    log.apply(kv("set", "k", b"1", ts=1.0))
    assert log.versions("k") == []


def test_rollback_is_a_cas_write_recorded_as_rollback() -> None:
    log = Log()
    log.apply(kv("set", "k", b"good", ts=1.0))
    log.apply(kv("set", "k", b"bad", ts=2.0))
    assert log.apply(kv("cas", "k", b"good", index=2, ts=3.0, rollback_of=1)) is True
    assert log.apply(kv("cas", "k", b"bad", index=2, ts=4.0, rollback_of=2)) is False  # changed since
    assert log.versions("k") == [(1, "set", b"good"), (2, "set", b"bad"), (3, "rollback", b"good")]
    assert log.fsm.store.tables.kv_history.get("k")[-1].rollback_of == 1
    assert log.fsm.store.kvs["k"].modify_index == 3
    assert log.apply(kv("delete-cas", "k", index=3, ts=5.0, rollback_of=0)) is True
    log.apply(kv("set", "k", b"again", ts=6.0))
    assert log.apply(kv("delete-cas", "k", index=6, ts=7.0, rollback_of=5)) is True
    assert log.versions("k")[-1] == (7, "rollback-delete", None)


def test_snapshot_round_trip_and_replicas_agree() -> None:
    cmds: list[object] = []
    for i in range(30):
        cmds.append(kv("set", f"k{i % 4}", str(i).encode(), ts=float(i), accessor=f"a{i}", addr="127.0.0.1"))
        if i % 7 == 0:
            cmds.append(kv("delete", f"k{i % 3}", ts=float(i)))
    a, b = Log(HistoryPolicy(versions=4)), Log(HistoryPolicy(versions=4))
    for c in cmds:
        a.apply(c)
        b.apply(c)
    snap = a.fsm.snapshot()
    assert snap == b.fsm.snapshot()
    fresh = FSM(StateStore(HistoryPolicy(versions=4)))
    fresh.restore(snap, a.index)
    assert fresh.store.tables.kv_history.rows == a.fsm.store.tables.kv_history.rows
    assert fresh.snapshot() == snap
    assert fresh.store.summary()["KVHistory"] == a.fsm.store.tables.kv_history.version_count()


def test_snapshot_without_history_loads() -> None:
    import msgspec

    log = Log()
    log.apply(kv("set", "k", b"1", ts=1.0))
    data = msgspec.msgpack.decode(log.fsm.snapshot())
    del data["kv_history"]
    fresh = StateStore()
    fresh.restore(msgspec.msgpack.encode(data))
    assert fresh.kvs["k"].value == b"1" and fresh.tables.kv_history.rows == {}


@pytest.mark.parametrize("versions", [1, 2, 10])
def test_scan_by_prefix(versions: int) -> None:
    log = Log(HistoryPolicy(versions=versions))
    for key in ("a/1", "a/2", "ab", "b"):
        log.apply(kv("set", key, b"v", ts=1.0))
        log.apply(kv("set", key, b"w", ts=2.0))
    rows = log.fsm.store.tables.kv_history.scan("a/")
    assert [k for k, _ in rows] == ["a/1", "a/2"]
    assert all(len(vs) == min(versions, 2) for _, vs in rows)


def test_config_block_hcl_json_and_limits(tmp_path: object) -> None:
    from pathlib import Path

    from muster.config import ConfigError, parse_agent_flags

    cfg = parse_agent_flags(["-dev"])
    assert (cfg.kv_history.enabled, cfg.kv_history.versions, cfg.kv_history.max_age) == (True, 10, 7 * DAY)
    cfg = parse_agent_flags(["-dev", '-hcl=kv_history {\n  versions = 3\n  max_age = "36h"\n}\n'])
    assert (cfg.kv_history.versions, cfg.kv_history.max_age) == (3, 1.5 * DAY)
    p = Path(str(tmp_path)) / "h.json"
    p.write_text('{"kv_history": {"enabled": false, "max_age": "0s"}}')
    cfg = parse_agent_flags(["-dev", f"-config-file={p}"])
    assert (cfg.kv_history.enabled, cfg.kv_history.max_age) == (False, 0.0)
    with pytest.raises(ConfigError, match="kv_history.versions must be between 1 and 1000, got 0"):
        parse_agent_flags(["-dev", "-hcl=kv_history { versions = 0 }"])
    with pytest.raises(ConfigError, match="kv_history.max_age cannot be negative"):
        parse_agent_flags(["-dev", '-hcl=kv_history { max_age = "-1s" }'])
