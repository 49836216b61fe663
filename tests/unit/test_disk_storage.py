"""DiskStorage: durability, torn tails at every offset, corruption in the middle, ENOSPC."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from muster.raft.disk import DiskStorage
from muster.raft.errors import CorruptLogError
from muster.raft.messages import ConfState, Entry, HardState


def ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=f"v{i}".encode()) for i in range(lo, hi + 1)]


def test_reopen_restores_entries_hard_state_and_snapshot(tmp_path: Path) -> None:
    st = DiskStorage(str(tmp_path))
    st.append(ents(1, 10))
    st.set_hard_state(HardState(term=3, vote="b", commit=7))
    st.sync()
    st.create_snapshot(5, ConfState(voters=("a", "b", "c")), b"state@5")
    st.compact(4)
    st.append(ents(8, 12, term=2))  # truncates 8..10 of term 1
    st.sync()
    st.close()
    again = DiskStorage(str(tmp_path))
    assert again.hard == HardState(term=3, vote="b", commit=7)
    assert again.snapshot().data == b"state@5" and again.snapshot().meta.conf.voters == ("a", "b", "c")
    assert again.first_index() == 5 and again.last_index() == 12
    assert again.term(9) == 2 and again.term(7) == 1
    assert [e.data for e in again.entries(5, 13)] == [b"v5", b"v6", b"v7", b"v8", b"v9", b"v10", b"v11", b"v12"]
    again.close()


def test_torn_tail_at_every_offset_is_truncated(tmp_path: Path) -> None:
    base = tmp_path / "base"
    st = DiskStorage(str(base))
    st.append(ents(1, 3))
    st.sync()
    good_size = os.path.getsize(st.wal_path)
    st.append(ents(4, 4))
    st.sync()
    st.close()
    full = (base / "wal").read_bytes()
    for cut in range(good_size, len(full)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "wal").write_bytes(full[:cut])
        s2 = DiskStorage(str(d))
        assert s2.last_index() == 3, cut
        assert os.path.getsize(s2.wal_path) == good_size
        s2.append(ents(4, 5))  # the log keeps working after the repair
        s2.sync()
        s2.close()
        assert DiskStorage(str(d)).last_index() == 5


def test_bit_flip_in_the_middle_refuses_to_start(tmp_path: Path) -> None:
    st = DiskStorage(str(tmp_path))
    for i in range(1, 6):
        st.append(ents(i, i))
    st.sync()
    st.close()
    data = bytearray((tmp_path / "wal").read_bytes())
    data[12] ^= 0x40  # inside the first record's payload
    (tmp_path / "wal").write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as info:
        DiskStorage(str(tmp_path))
    assert info.value.offset == 0


def test_damaged_newest_snapshot_falls_back_to_older(tmp_path: Path) -> None:
    st = DiskStorage(str(tmp_path))
    st.append(ents(1, 20))
    st.sync()
    st.create_snapshot(5, ConfState(voters=("a",)), b"five")
    st.create_snapshot(10, ConfState(voters=("a",)), b"ten")
    st.close()
    newest = tmp_path / "snap-1-10"
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 1
    newest.write_bytes(bytes(raw))
    again = DiskStorage(str(tmp_path))
    assert again.snapshot().data == b"five"


def test_snapshot_retention(tmp_path: Path) -> None:
    st = DiskStorage(str(tmp_path))
    st.append(ents(1, 40))
    for i in (10, 20, 30, 40):
        st.create_snapshot(i, ConfState(voters=("a",)), b"x")
    assert sorted(p.name for p in tmp_path.glob("snap-*")) == ["snap-1-30", "snap-1-40"]


def test_failed_write_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = DiskStorage(str(tmp_path))
    st.append(ents(1, 2))
    st.sync()
    size = os.path.getsize(st.wal_path)
    real_write = st._f.write

    def full_disk(b: bytes) -> int:
        real_write(b[: len(b) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st._f, "write", full_disk)
    with pytest.raises(OSError):
        st.append(ents(3, 3))
    monkeypatch.undo()
    assert st.last_index() == 2
    assert os.path.getsize(st.wal_path) == size
    st.append(ents(3, 3))
    st.sync()
    st.close()
    assert DiskStorage(str(tmp_path)).last_index() == 3
