"""Pure unit tests: quorum math, inflights, progress, log view, codecs."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.raft.core import RaftCore, Ready
from muster.raft.errors import CompactedError
from muster.raft.log import RaftLog
from muster.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    SnapshotMeta,
    decode_conf_change,
    decode_message,
    encode_conf_change,
    encode_message,
)
from muster.raft.progress import Inflights, Progress, ProgressState, VoteResult, committed_index, vote_result
from muster.raft.storage import MemoryStorage

ids = st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7, unique=True)


@given(ids, st.data())
def test_committed_index_is_largest_index_on_a_majority(voters: list[str], data: st.DataObject) -> None:
    match = {v: data.draw(st.integers(0, 20)) for v in voters}
    ci = committed_index(voters, match)
    q = len(voters) // 2 + 1
    # Brute force: the largest i such that some majority all have match >= i.
    best = max(
        (min(match[v] for v in group) for group in itertools.combinations(voters, q)),
        default=0,
    )
    assert ci == best


def test_committed_index_ignores_non_voters() -> None:
    assert committed_index(["a", "b", "c"], {"a": 5, "b": 5, "c": 1, "learner": 9}) == 5
    assert committed_index(["a", "b", "c"], {"a": 5, "learner": 9, "x": 9}) == 0
    assert committed_index([], {}) == 0


@given(ids, st.data())
def test_vote_result_matches_counting(voters: list[str], data: st.DataObject) -> None:
    votes = {v: data.draw(st.sampled_from([True, False, None])) for v in voters}
    cast = {v: b for v, b in votes.items() if b is not None}
    q = len(voters) // 2 + 1
    granted = sum(1 for b in cast.values() if b)
    rejected = len(cast) - granted
    expect = (
        VoteResult.WON
        if granted >= q
        else VoteResult.LOST
        if len(voters) - rejected < q
        else VoteResult.PENDING
    )
    assert vote_result(voters, cast) is expect


def test_inflights_count_and_bytes() -> None:
    inf = Inflights(3, max_bytes=100)
    inf.add(1, 10)
    inf.add(2, 10)
    assert not inf.full()
    inf.add(5, 90)
    assert inf.full()  # by count (3) and by bytes (110 >= 100)
    with pytest.raises(AssertionError):
        inf.add(6, 1)
    inf.free_le(2)
    assert len(inf) == 1 and inf.bytes == 90 and not inf.full()
    inf.add(7, 10)
    assert inf.full()  # by bytes only
    inf.free_first_one()
    inf.free_first_one()
    assert len(inf) == 0 and inf.bytes == 0


def test_progress_probe_and_replicate_transitions() -> None:
    pr = Progress(next_index=11, max_inflight=2, max_inflight_bytes=0, is_learner=False)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(12, 10)
    assert pr.is_paused()  # one probe in flight
    assert not pr.maybe_decr_to(5, 3)  # stale rejection (not for next-1)
    assert pr.maybe_decr_to(10, 3) and pr.next == 4 and not pr.is_paused()
    assert pr.maybe_update(7)
    pr.become_replicate()
    assert pr.next == 8
    pr.sent_entries(9, 1)
    pr.sent_entries(10, 1)
    assert pr.is_paused() and pr.next == 11  # inflight window full
    pr.inflights.free_le(9)
    assert not pr.is_paused()
    assert not pr.maybe_decr_to(6, 0)  # rejection at or below match is stale
    assert pr.maybe_decr_to(9, 0) and pr.next == 8


def _log(entries: list[tuple[int, int]], unstable: list[tuple[int, int]] | None = None) -> RaftLog:
    ms = MemoryStorage()
    ms.append([Entry(t, i) for t, i in entries])
    lg = RaftLog(ms)
    if unstable:
        lg.append([Entry(t, i) for t, i in unstable])
    return lg


def test_log_term_lookup_across_storage_and_unstable() -> None:
    lg = _log([(1, 1), (1, 2), (2, 3)], [(3, 4), (3, 5)])
    assert [lg.term(i) for i in range(0, 7)] == [0, 1, 1, 2, 3, 3, 0]
    assert lg.last_index() == 5 and lg.last_term() == 3
    assert [e.index for e in lg.slice(2, 6)] == [2, 3, 4, 5]


def test_log_conflicting_append_replaces_unstable_suffix() -> None:
    lg = _log([(1, 1), (1, 2)], [(1, 3), (1, 4)])
    assert lg.maybe_append(2, 1, 0, (Entry(2, 3), Entry(2, 4), Entry(2, 5))) == 5
    assert [lg.term(i) for i in (3, 4, 5)] == [2, 2, 2]
    # A stale duplicate of an old MsgApp truncates nothing.
    assert lg.maybe_append(2, 1, 0, (Entry(2, 3),)) == 3
    assert lg.last_index() == 5
    # Mismatched previous entry: rejected.
    assert lg.maybe_append(5, 1, 0, ()) is None


def test_log_never_truncates_committed_entries() -> None:
    lg = _log([(1, 1), (1, 2), (1, 3)])
    lg.commit_to(3)
    with pytest.raises(AssertionError):
        lg.maybe_append(1, 1, 3, (Entry(2, 2),))


def test_find_conflict_by_term_skips_whole_terms() -> None:
    lg = _log([(1, 1), (1, 2), (4, 3), (4, 4), (4, 5), (6, 6)])
    assert lg.find_conflict_by_term(6, 5) == 5
    assert lg.find_conflict_by_term(6, 3) == 2
    assert lg.find_conflict_by_term(10, 9) == 6


def test_compacted_term_lookup_raises() -> None:
    ms = MemoryStorage()
    ms.append([Entry(1, i) for i in range(1, 11)])
    ms.create_snapshot(6, ConfState(("a",)), b"")
    ms.compact(5)
    lg = RaftLog(ms)
    assert lg.first_index() == 6 and lg.term(5) == 1
    assert lg.applied == 6 and lg.committed == 6  # restart from the snapshot, not the compaction point
    with pytest.raises(CompactedError):
        lg.term(4)


entries = st.builds(
    Entry,
    term=st.integers(0, 2**40),
    index=st.integers(0, 2**40),
    type=st.sampled_from(list(EntryType)),
    data=st.binary(max_size=64),
)
messages = st.builds(
    Message,
    type=st.sampled_from(list(MsgType)),
    to=st.uuids().map(str),
    frm=st.uuids().map(str),
    term=st.integers(0, 2**40),
    log_term=st.integers(0, 2**40),
    index=st.integers(0, 2**40),
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=st.integers(0, 2**40),
    reject=st.booleans(),
    reject_hint=st.integers(0, 2**40),
    context=st.binary(max_size=16),
    snapshot=st.none()
    | st.builds(SnapshotMeta, st.integers(0, 99), st.integers(0, 99), st.just(ConfState(("a",)))),
    snap_offset=st.integers(0, 2**32),
    snap_data=st.binary(max_size=32),
    snap_done=st.booleans(),
)


@given(messages)
def test_message_msgpack_roundtrip(m: Message) -> None:
    assert decode_message(encode_message(m)) == m


def test_message_decode_rejects_garbage() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_message(b"\x81\xa4type\xa3bad")


def test_conf_change_roundtrip() -> None:
    cc = ConfChange(ConfChangeType.ADD_NONVOTER, "n4", ConfState(("n1", "n2"), ("n4",)))
    assert decode_conf_change(encode_conf_change(cc)) == cc


def _follower(log: list[tuple[int, int]], commit: int) -> RaftCore:
    ms = MemoryStorage(ConfState(("l", "f")))
    ms.append([Entry(t, i, EntryType.NORMAL, f"{i}/{t}".encode()) for t, i in log])
    ms.set_hard_state(HardState(5, "", commit))
    return RaftCore("f", ms, random.Random(0))


def _install(core: RaftCore, meta: SnapshotMeta, data: bytes = b"S") -> list[Message]:
    core.step(
        Message(type=MsgType.SNAP, to="f", frm="l", term=5, snapshot=meta, snap_data=data, snap_done=True)
    )
    rd = core.ready()
    ms = core.log.storage
    assert isinstance(ms, MemoryStorage)
    if rd.snapshot is not None:
        ms.apply_snapshot(rd.snapshot)
    ms.append(rd.entries)
    core.advance(rd)
    return rd.messages


def test_snapshot_conflicting_at_last_included_index_discards_log() -> None:
    """Figure 13 rule 7 (P6): a log that conflicts at the snapshot's last
    index is discarded entirely."""
    core = _follower([(1, 1), (1, 2), (2, 3), (2, 4), (2, 5)], commit=2)
    msgs = _install(core, SnapshotMeta(4, 3, ConfState(("l", "f"))))
    assert core.log.first_index() == 5 and core.log.last_index() == 4
    assert core.committed == 4 and core.applied == 4
    assert [(m.type, m.index) for m in msgs] == [(MsgType.APP_RESP, 4)]


def test_snapshot_matching_log_keeps_suffix() -> None:
    """Figure 13 rule 6: if the log has the snapshot's last entry, keep the
    entries after it and only fast-forward the commit index."""
    core = _follower([(1, 1), (1, 2), (2, 3), (2, 4), (2, 5)], commit=2)
    msgs = _install(core, SnapshotMeta(4, 2, ConfState(("l", "f"))))
    assert core.log.last_index() == 5 and core.log.term(5) == 2
    assert core.committed == 4
    assert [(m.type, m.index) for m in msgs] == [(MsgType.APP_RESP, 4)]


def test_stale_snapshot_is_acknowledged_not_installed() -> None:
    core = _follower([(1, 1), (1, 2), (2, 3)], commit=3)
    msgs = _install(core, SnapshotMeta(2, 1, ConfState(("l", "f"))))
    assert core.log.first_index() == 1 and core.committed == 3
    assert [(m.type, m.index) for m in msgs] == [(MsgType.APP_RESP, 3)]


def test_out_of_order_snapshot_chunk_asks_for_resend() -> None:
    core = _follower([(1, 1)], commit=1)
    meta = SnapshotMeta(9, 3, ConfState(("l", "f")))
    core.step(
        Message(type=MsgType.SNAP, to="f", frm="l", term=5, snapshot=meta, snap_offset=4, snap_data=b"xx")
    )
    rd = core.ready()
    core.advance(rd)
    (m,) = rd.messages
    assert (m.type, m.reject, m.snap_offset) == (MsgType.SNAP_RESP, True, 0)


def test_follower_commit_is_clamped_to_the_verified_prefix() -> None:
    """A MsgApp only proves our log matches the leader's up to its last entry;
    entries beyond it may be stale, so the leader's commit index must not
    commit them (etcd's ``min(committed, lastnewi)``)."""
    core = _follower([(1, 1), (1, 2), (1, 3)], commit=0)
    core.step(Message(type=MsgType.APP, to="f", frm="l", term=5, index=1, log_term=1, commit=3))
    assert core.committed == 1
    core.step(Message(type=MsgType.HEARTBEAT, to="f", frm="l", term=5, commit=2))
    assert core.committed == 2  # heartbeats carry min(match, commit): safe to take


def _done(core: RaftCore, st: MemoryStorage, rd: Ready) -> None:
    """The driver's part of a Ready: persist its entries and hard state, then advance."""
    if rd.entries:
        st.append(rd.entries)
    if rd.hard_state is not None:
        st.set_hard_state(rd.hard_state)
    core.advance(rd)


def _elected_leader_of_three() -> tuple[RaftCore, MemoryStorage]:
    """n1 leads {n1, n2, n3}; its no-op is durable and committed, nothing in flight."""
    st = MemoryStorage(ConfState(("n1", "n2", "n3")))
    core = RaftCore("n1", st, random.Random(1))
    core.campaign()
    _done(core, st, core.ready())  # pre-vote round out
    for peer in ("n2", "n3"):
        core.step(Message(type=MsgType.PRE_VOTE_RESP, to="n1", frm=peer, term=1))
    _done(core, st, core.ready())  # vote round out
    core.step(Message(type=MsgType.VOTE_RESP, to="n1", frm="n2", term=1))
    rd = core.ready()  # the no-op and its MsgApps
    _done(core, st, rd)
    for peer in ("n2", "n3"):
        core.step(Message(type=MsgType.APP_RESP, to="n1", frm=peer, term=1, index=rd.entries[-1].index))
    _done(core, st, core.ready())
    assert core.committed == rd.entries[-1].index
    return core, st


def test_leader_counts_its_own_entry_only_once_durable() -> None:
    """The leader's MsgApps may leave before its own fsync (Ready.early_messages), so its
    own copy joins the quorum in advance(), never at append time."""
    core, st = _elected_leader_of_three()
    idx, _term = core.propose(b"x")
    assert core.prs["n1"].match == idx - 1
    rd = core.ready()
    early, late = rd.early_messages()
    assert {m.to for m in early if m.type is MsgType.APP and m.entries} == {"n2", "n3"}
    assert not any(m.type is MsgType.APP for m in late)
    # One follower acknowledges while the leader's fsync is still running: with the
    # leader's copy not yet durable that is one durable copy out of three, not a quorum.
    core.step(Message(type=MsgType.APP_RESP, to="n1", frm="n2", term=1, index=idx))
    assert core.committed == idx - 1
    _done(core, st, rd)  # the fsync finished
    assert core.prs["n1"].match == idx
    assert core.committed == idx


def test_two_followers_commit_while_the_leader_still_syncs() -> None:
    """Two durable follower copies are a quorum of three without the leader's own."""
    core, st = _elected_leader_of_three()
    idx, _term = core.propose(b"y")
    rd = core.ready()
    for peer in ("n2", "n3"):
        core.step(Message(type=MsgType.APP_RESP, to="n1", frm=peer, term=1, index=idx))
    assert core.prs["n1"].match == idx - 1
    assert core.committed == idx
    _done(core, st, rd)


def test_vote_messages_wait_for_the_fsync() -> None:
    """A candidate's vote requests state its durable term and vote: never early."""
    core = RaftCore("n1", MemoryStorage(ConfState(("n1", "n2", "n3"))), random.Random(1))
    core.campaign()
    rd = core.ready()
    early, late = rd.early_messages()
    assert not early
    assert {m.type for m in late} == {MsgType.PRE_VOTE}


def _read_heartbeats(core: RaftCore, st: MemoryStorage) -> dict[str, bytes]:
    rd = core.ready()
    _done(core, st, rd)
    return {m.to: m.context for m in rd.messages if m.type is MsgType.HEARTBEAT}


def test_read_rounds_ask_the_last_quorum_and_fall_back_to_everyone() -> None:
    """A ReadIndex round asks every follower until one round completes; later rounds ask only
    the followers that completed it (a quorum with the leader).  If they stop answering, the
    next periodic heartbeat carries the pending read to everyone and any quorum answers it."""
    core, st = _elected_leader_of_three()
    core.read_index(b"r1")
    assert _read_heartbeats(core, st) == {"n2": b"r1", "n3": b"r1"}
    core.step(Message(type=MsgType.HEARTBEAT_RESP, to="n1", frm="n3", term=1, context=b"r1"))
    rd = core.ready()
    assert [rs.context for rs in rd.read_states] == [b"r1"]
    _done(core, st, rd)
    # n3 made the quorum: the next round asks n3 only, and n3 alone answers it.
    core.read_index(b"r2")
    assert _read_heartbeats(core, st) == {"n3": b"r2"}
    core.step(Message(type=MsgType.HEARTBEAT_RESP, to="n1", frm="n3", term=1, context=b"r2"))
    rd = core.ready()
    assert [rs.context for rs in rd.read_states] == [b"r2"]
    _done(core, st, rd)
    # n3 goes silent: the read waits for the periodic heartbeat, which asks everyone, and n2's
    # answer to it completes the round (and makes n2 the one asked next).
    core.read_index(b"r3")
    assert _read_heartbeats(core, st) == {"n3": b"r3"}
    for _ in range(core.cfg.heartbeat_ticks):
        core.tick()
    assert _read_heartbeats(core, st) == {"n2": b"r3", "n3": b"r3"}
    core.step(Message(type=MsgType.HEARTBEAT_RESP, to="n1", frm="n2", term=1, context=b"r3"))
    rd = core.ready()
    assert [rs.context for rs in rd.read_states] == [b"r3"]
    _done(core, st, rd)
    core.read_index(b"r4")
    assert _read_heartbeats(core, st) == {"n2": b"r4"}
    # One acknowledgement of a heartbeat sent before the request never answers it.
    core.step(Message(type=MsgType.HEARTBEAT_RESP, to="n1", frm="n3", term=1, context=b"r3"))
    assert not core.ready().read_states
