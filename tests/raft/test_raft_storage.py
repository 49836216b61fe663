"""Durable storage (``muster.raft.storage.DiskStorage``): group commit, torn
tails at every offset, corruption in the middle, ENOSPC, snapshots."""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import pytest

from muster.raft.core import RaftCore
from muster.raft.errors import CorruptLogError
from muster.raft.messages import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from muster.raft.storage import CorruptSnapshotError, DiskStorage, MemoryStorage, StorageFailed


def ents(lo: int, hi: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, f"{i:0{size}d}".encode()) for i in range(lo, hi + 1)]


def segment(d: Path) -> Path:
    segs = sorted((d / "wal").glob("wal-*.log"))
    assert segs
    return segs[-1]


def state(st: DiskStorage | MemoryStorage) -> tuple[object, ...]:
    return (
        st.initial_state(),
        st.first_index(),
        st.last_index(),
        st.entries(st.first_index(), st.last_index() + 1),
    )


def test_roundtrip_and_reopen(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as st:
        st.bootstrap(ConfState(("a", "b", "c")))
        st.append(ents(1, 5))
        st.set_hard_state(HardState(2, "b", 3))
        st.append(ents(4, 6, term=2))  # truncates the conflicting 4..5
        st.sync()
        before = state(st)
    with DiskStorage(tmp_path) as again:
        assert state(again) == before
        assert again.term(5) == 2 and again.term(3) == 1
        assert again.initial_state() == (HardState(2, "b", 3), ConfState(("a", "b", "c")))


def test_group_commit_one_fsync_per_ready(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as st:
        base = st.fsyncs
        st.persist(HardState(1, "a", 0), ents(1, 50), None, must_sync=True)
        assert st.fsyncs == base + 1
        # Commit-only change: written, no fsync demanded.
        st.persist(HardState(1, "a", 40), [], None, must_sync=False)
        assert st.fsyncs == base + 1


def test_term_and_vote_fsynced_before_returning(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as st:
        base = st.fsyncs
        st.set_hard_state(HardState(3, "x", 0))
        assert st.fsyncs == base + 1
        st.set_hard_state(HardState(3, "x", 0))  # unchanged term/vote
        assert st.fsyncs == base + 1


def _two_stage_log(d: Path) -> tuple[int, int, tuple[object, ...]]:
    """Write some records, note the offset, then one last record; returns
    (start of last record, end of file, state before the last record)."""
    with DiskStorage(d) as st:
        st.append(ents(1, 4))
        st.set_hard_state(HardState(1, "n1", 2))
        st.sync()
        before = state(st)
        start = segment(d).stat().st_size
        st.append(ents(5, 9, size=40))
        st.sync()
        end = segment(d).stat().st_size
    return start, end, before


def test_torn_tail_at_every_offset_is_truncated(tmp_path: Path) -> None:
    base = tmp_path / "base"
    start, end, before = _two_stage_log(base)
    assert end - start > 100
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(base, d)
        with open(segment(d), "r+b") as f:
            f.truncate(cut)
        with DiskStorage(d) as st:
            assert state(st) == before, f"cut at {cut}"
            assert segment(d).stat().st_size == start
            st.append(ents(5, 5, term=2))  # the log is usable again
            st.sync()
        with DiskStorage(d) as st:
            assert st.last_index() == 5 and st.term(5) == 2
        shutil.rmtree(d)


def test_zero_filled_tail_is_truncated(tmp_path: Path) -> None:
    start, end, before = _two_stage_log(tmp_path)
    with open(segment(tmp_path), "r+b") as f:
        f.truncate(start + 5)
        f.seek(0, os.SEEK_END)
        f.write(b"\0" * 4096)
    with DiskStorage(tmp_path) as st:
        assert state(st) == before


def test_bit_flip_in_middle_raises_corrupt_log_error(tmp_path: Path) -> None:
    start, end, _ = _two_stage_log(tmp_path)
    seg = segment(tmp_path)
    raw = bytearray(seg.read_bytes())
    rng = random.Random(1)
    for _ in range(20):
        pos = rng.randrange(8, start)  # inside an earlier record, not the last one
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << rng.randrange(8)
        seg.write_bytes(bytes(flipped))
        with pytest.raises(CorruptLogError) as ei:
            DiskStorage(tmp_path)
        assert ei.value.path == str(seg)
        assert 0 <= ei.value.offset < start
        assert str(seg) in str(ei.value)
    seg.write_bytes(bytes(raw))
    assert DiskStorage(tmp_path).last_index() == 9


def test_bit_flip_in_last_record_is_a_torn_write(tmp_path: Path) -> None:
    """A damaged final record is indistinguishable from an interrupted write of
    an unacknowledged batch: it is dropped, everything before survives."""
    start, end, before = _two_stage_log(tmp_path)
    seg = segment(tmp_path)
    raw = bytearray(seg.read_bytes())
    raw[end - 3] ^= 0x40
    seg.write_bytes(bytes(raw))
    with DiskStorage(tmp_path) as st:
        assert state(st) == before


def test_enospc_during_append_leaves_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = DiskStorage(tmp_path)
    st.append(ents(1, 3))
    st.sync()
    before = state(st)
    size = segment(tmp_path).stat().st_size

    def short_then_full(fd: int, data: memoryview) -> int:
        if len(data) > 10:
            return os.write(fd, data[:10])  # a partial write ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(DiskStorage, "_os_write", staticmethod(short_then_full))
    with pytest.raises(OSError) as ei:
        st.append(ents(4, 6))
    assert ei.value.errno == errno.ENOSPC
    assert state(st) == before
    assert segment(tmp_path).stat().st_size == size
    monkeypatch.undo()
    st.append(ents(4, 6))  # space freed: works again without a restart
    st.sync()
    st.close()
    with DiskStorage(tmp_path) as again:
        assert again.last_index() == 6


def test_failed_fsync_makes_storage_refuse_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = DiskStorage(tmp_path)
    st.append(ents(1, 1))

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError):
        st.sync()
    monkeypatch.undo()
    with pytest.raises(StorageFailed):
        st.append(ents(2, 2))
    st.close()


def test_snapshot_retention_and_compaction(tmp_path: Path) -> None:
    with DiskStorage(tmp_path, retain=2) as st:
        st.append(ents(1, 50))
        st.sync()
        for i in (10, 20, 30, 40):
            st.create_snapshot(i, ConfState(("a",)), f"fsm@{i}".encode())
            st.compact(i - 5)
        files = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
        assert len(files) == 2 and files[-1].endswith(f"{40:016x}.snap")
        assert len(list((tmp_path / "wal").glob("wal-*.log"))) == 1
        (tmp_path / "snapshots" / "snap-junk.snap.tmp").write_bytes(b"partial")
    with DiskStorage(tmp_path) as st:
        assert st.snapshot() == Snapshot(SnapshotMeta(40, 1, ConfState(("a",))), b"fsm@40")
        assert st.first_index() == 36  # trailing logs behind the snapshot survive
        assert st.last_index() == 50
        assert not list((tmp_path / "snapshots").glob("*.tmp"))


def test_snapshot_written_from_pieces_in_two_halves(tmp_path: Path) -> None:
    """``write_snapshot_parts`` (worker thread) writes the pieces and reads the data back whole;
    ``install_snapshot`` (loop) makes it current unless a newer one was installed meanwhile."""
    conf = ConfState(("a",))
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 30))
        st.sync()
        pieces = [b"head", b"", bytes(range(256)) * 300, b"tail"]
        snap = st.write_snapshot_parts(SnapshotMeta(20, 1, conf), pieces)
        assert snap.data == b"".join(pieces)
        assert st.snapshot().meta.index == 0  # written, not installed yet
        assert st.install_snapshot(snap) is True
        assert st.snapshot() == snap
        older = st.write_snapshot_parts(SnapshotMeta(10, 1, conf), [b"old"])
        assert st.install_snapshot(older) is False and st.snapshot() == snap
    with DiskStorage(tmp_path) as st:
        assert st.snapshot() == Snapshot(SnapshotMeta(20, 1, conf), b"".join(pieces))


def test_corrupt_newest_snapshot_is_refused(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 5))
        st.create_snapshot(5, ConfState(("a",)), b"state")
    snap = sorted((tmp_path / "snapshots").iterdir())[-1]
    raw = bytearray(snap.read_bytes())
    raw[-1] ^= 1
    snap.write_bytes(bytes(raw))
    with pytest.raises(CorruptSnapshotError):
        DiskStorage(tmp_path)


def test_apply_snapshot_replaces_log_durably(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 5))
        st.apply_snapshot(Snapshot(SnapshotMeta(20, 3, ConfState(("a", "b"))), b"leader-state"))
        st.append(ents(21, 22, term=3))
        st.sync()
    with DiskStorage(tmp_path) as st:
        assert (st.first_index(), st.last_index(), st.term(20)) == (21, 22, 3)
        assert st.initial_state()[1] == ConfState(("a", "b"))


def test_core_restarts_from_disk(tmp_path: Path) -> None:
    """A single-voter core on DiskStorage: proposals commit; a restarted core
    recovers term, vote, log and commit, and re-applies from the snapshot."""
    st = DiskStorage(tmp_path)
    st.bootstrap(ConfState(("n1",)))
    core = RaftCore("n1", st, random.Random(1))
    core.campaign()
    applied: list[bytes] = []

    def drain(c: RaftCore, s: DiskStorage) -> None:
        while c.has_ready():
            rd = c.ready()
            s.persist(rd.hard_state, rd.entries, rd.snapshot, rd.must_sync)
            applied.extend(e.data for e in rd.committed_entries if e.type is EntryType.NORMAL)
            c.advance(rd)

    drain(core, st)
    for i in range(5):
        core.propose(f"v{i}".encode())
        drain(core, st)
    st.create_snapshot(core.applied - 2, core.conf_state(), b"fsm")
    hs = core.hard_state()
    st.close()

    st2 = DiskStorage(tmp_path)
    core2 = RaftCore("n1", st2, random.Random(2))
    assert (core2.term, core2.vote, core2.committed) == (hs.term, hs.vote, hs.commit)
    assert core2.applied == st2.snapshot().meta.index
    applied.clear()
    drain(core2, st2)
    assert applied == [b"v3", b"v4"]
    st2.close()


def test_restart_when_snapshot_is_ahead_of_persisted_commit(tmp_path: Path) -> None:
    """Snapshots are fsynced at once while a commit-only hard state update is
    not: after a power loss the snapshot may be ahead of the stored commit
    index.  The core must start (the snapshot's index is committed)."""
    with DiskStorage(tmp_path) as st:
        st.bootstrap(ConfState(("n1",)))
        st.append(ents(1, 10))
        st.set_hard_state(HardState(1, "n1", 4))
        st.sync()
        st.set_hard_state(HardState(1, "n1", 10))  # commit-only: not fsynced
        seg, durable, _ = st.segment()
        st.create_snapshot(8, ConfState(("n1",)), b"fsm@8")
    with open(seg, "r+b") as f:
        f.truncate(durable)  # power loss: the unsynced commit update is gone
    with DiskStorage(tmp_path) as st:
        assert st.initial_state()[0].commit == 4
        core = RaftCore("n1", st, random.Random(0))
        assert core.committed == 8 and core.applied == 8


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_match_memory_model(tmp_path: Path, seed: int) -> None:
    """DiskStorage behaves exactly like MemoryStorage under a random mix of
    appends (with conflicting suffixes), hard states, snapshots, installs and
    compactions, both live and after every clean reopen."""
    rng = random.Random(seed)
    disk = DiskStorage(tmp_path, retain=2)
    model = MemoryStorage()
    term = 1

    def check() -> None:
        assert state(disk) == state(model)
        assert disk.snapshot() == model.snapshot()

    for step in range(120):
        op = rng.random()
        if op < 0.45:
            # Raft never truncates at or below a snapshot (it covers committed entries).
            floor = max(model.first_index(), model.snapshot().meta.index + 1, model.last_index() - 3)
            lo = rng.randint(min(floor, model.last_index() + 1), model.last_index() + 1)
            term += rng.random() < 0.3
            batch = [
                Entry(term, i, EntryType.NORMAL, rng.randbytes(rng.randint(0, 40)))
                for i in range(lo, lo + rng.randint(1, 6))
            ]
            disk.append(batch)
            model.append(batch)
        elif op < 0.6:
            hs = HardState(term, rng.choice(["", "a", "b"]), rng.randint(0, model.last_index()))
            disk.set_hard_state(hs)
            model.set_hard_state(hs)
        elif op < 0.7 and model.last_index() > model.snapshot().meta.index:
            idx = rng.randint(model.snapshot().meta.index + 1, model.last_index())
            conf = ConfState((f"n{step}",))
            disk.create_snapshot(idx, conf, f"s{idx}".encode())
            model.create_snapshot(idx, conf, f"s{idx}".encode())
            to = rng.randint(model.first_index() - 1, idx)
            disk.compact(to)
            model.compact(to)
        elif op < 0.75:
            idx = max(model.last_index(), model.snapshot().meta.index) + rng.randint(1, 5)
            term += 1
            snap = Snapshot(SnapshotMeta(idx, term, ConfState(("x", "y"))), rng.randbytes(20))
            disk.apply_snapshot(snap)
            model.apply_snapshot(snap)
        elif op < 0.85:
            disk.sync()
            disk.close()
            disk = DiskStorage(tmp_path, retain=2)
        elif op < 0.93:
            disk.sync()  # makes rotated segments durable, unlinks the released ones
        check()
    disk.close()
    with DiskStorage(tmp_path, retain=2) as again:
        assert state(again) == state(model)


def _segs(d: Path) -> list[str]:
    return sorted(p.name for p in (d / "wal").glob("wal-*.log"))


def test_compaction_rotates_segments_and_unlinks_whole_ones(tmp_path: Path) -> None:
    """Compaction trims memory and leaves the disk to the next writes and syncs: the next
    write opens a new segment (``_Start``), a later compaction releases every closed segment
    at or below the compaction point once a durable segment follows it, and the next sync
    unlinks it.  A reopen sees exactly the live state."""
    conf = ConfState(("a",))
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 100))
        st.set_hard_state(HardState(1, "a", 100))
        st.sync()
        st.create_snapshot(80, conf, b"fsm@80")
        st.compact(70)
        assert st.first_index() == 71 and _segs(tmp_path) == ["wal-0000000000000001.log"]  # nothing written yet
        st.append(ents(101, 110))
        assert len(_segs(tmp_path)) == 2  # rotated at the first write after the compaction
        st.sync()
        st.create_snapshot(105, conf, b"fsm@105")
        st.compact(100)  # segment 1 holds 1..100: released
        assert len(_segs(tmp_path)) == 2
        st.append(ents(111, 111))
        st.sync()
        assert _segs(tmp_path) == ["wal-0000000000000002.log", "wal-0000000000000003.log"]
        live = state(st)
    with DiskStorage(tmp_path) as st:
        assert state(st) == live
        assert st.first_index() == 101 and st.last_index() == 111
        assert st.initial_state()[0] == HardState(1, "a", 100)
        assert st.entries(101, 112) == ents(101, 111)


def test_power_loss_before_a_rotated_segment_is_durable(tmp_path: Path) -> None:
    """A segment is closed only when everything in it is synced, so losing the new segment
    (never synced: its directory entry or its data) loses only unacknowledged writes."""
    conf = ConfState(("a",))
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 50))
        st.set_hard_state(HardState(2, "a", 40))
        st.sync()
        st.create_snapshot(40, conf, b"fsm@40")
        st.compact(30)
        st.append(ents(51, 60))  # rotates; not synced
        newest = tmp_path / "wal" / _segs(tmp_path)[-1]
    for damage in ("truncate", "unlink"):
        if damage == "truncate":
            with open(newest, "r+b") as f:
                f.truncate(5)  # a torn _Start
        else:
            newest.unlink(missing_ok=True)
        with DiskStorage(tmp_path) as st:
            assert st.last_index() == 50 and st.initial_state()[0] == HardState(2, "a", 40)
            st.append(ents(51, 52))
            st.sync()
        with DiskStorage(tmp_path) as st:
            assert st.last_index() == 52


def test_a_segment_that_reappears_is_superseded_by_the_next_start(tmp_path: Path) -> None:
    """An unlink lost in a crash brings an old segment back; the ``_Start`` of the segment
    after the gap wins and the log replays."""
    conf = ConfState(("a",))
    with DiskStorage(tmp_path) as st:
        st.append(ents(1, 20))
        st.sync()
        st.create_snapshot(20, conf, b"fsm@20")
        st.compact(15)
        st.append(ents(21, 30))  # segment 2
        st.sync()
        st.create_snapshot(30, conf, b"fsm@30")
        st.compact(25)
        st.append(ents(31, 40))  # segment 3; segment 1 released
        st.sync()
        st.create_snapshot(40, conf, b"fsm@40")
        st.compact(35)
        st.append(ents(41, 41))  # segment 4; segment 2 released
        st.sync()
        assert _segs(tmp_path)[0] == "wal-0000000000000003.log"
    old = tmp_path / "wal" / "wal-0000000000000001.log"
    with open(old, "wb") as f:  # segment 1 as it was (1..20), back from the dead
        f.write(b"")
    with DiskStorage(tmp_path / "src1") as st:
        st.append(ents(1, 20))
        st.sync()
        src = (tmp_path / "src1" / "wal" / "wal-0000000000000001.log").read_bytes()
    old.write_bytes(src)
    with DiskStorage(tmp_path) as st:
        assert st.first_index() == 36 and st.last_index() == 41
        assert st.entries(36, 42) == ents(36, 41)
