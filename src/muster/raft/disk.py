"""``DiskStorage``: the durable Raft log and snapshots in ``<data-dir>/raft``.

Files:

* ``wal`` - an append-only sequence of records, each ``[u32 length][u32 crc32][payload]``
  (big-endian), payload = msgpack ``[kind, ...]``: ``E`` entries (appending them truncates any
  conflicting suffix, exactly as ``MemoryStorage.append``), ``H`` hard state, ``S`` snapshot
  installed (index, term), ``C`` compaction point.
* ``snap-<term>-<index>`` - snapshot files ``[u32 crc32][msgpack Snapshot]``, written
  tmp -> fsync -> rename -> fsync(dir); the newest ``KEEP_SNAPSHOTS`` are kept.

Durability: ``append``/``set_hard_state`` write to the OS; ``sync()`` makes everything written
so far durable with one fsync (the driver calls it once per ``Ready``: group commit).  Nothing
is acknowledged to a peer or a client before that fsync returns.

Recovery (``open``): the newest snapshot whose CRC verifies is loaded, then the wal is replayed.
A torn tail - a last record that runs past the end of the file, or whose CRC fails and which is
the last record - is the trace of a crash mid-write: it is truncated away (it was never
synced, so never acknowledged).  A record with a bad CRC *followed by more data* is corruption
in the middle of the log: opening refuses with ``CorruptLogError`` naming file and offset rather
than silently losing acknowledged entries.

Errors: a failed write (ENOSPC, EIO) truncates the wal back to where that write began and
re-raises, so memory and disk never disagree and a later retry starts clean.
Compaction rewrites the wal with only the retained entries (tmp -> fsync -> rename).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from typing import Any

import msgspec

from .errors import CorruptLogError
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from .storage import MemoryStorage

__all__ = ["DiskStorage", "KEEP_SNAPSHOTS"]

KEEP_SNAPSHOTS = 2
_HEAD = struct.Struct(">II")
_enc = msgspec.msgpack.Encoder()
_dec_snap = msgspec.msgpack.Decoder(Snapshot)
_dec_any = msgspec.msgpack.Decoder()
_MAX_RECORD = 1 << 30


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskStorage(MemoryStorage):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.wal_path = os.path.join(path, "wal")
        self._load_snapshot()
        self._replay()
        self._f = open(self.wal_path, "ab")  # noqa: SIM115 - kept open for the process lifetime
        self._dirty = False

    # ------------------------------------------------------------------ recovery

    def _snapshot_files(self) -> list[tuple[int, int, str]]:
        out = []
        for name in os.listdir(self.path):
            if name.startswith("snap-") and not name.endswith(".tmp"):
                parts = name.split("-")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((int(parts[2]), int(parts[1]), name))
        return sorted(out)

    def _load_snapshot(self) -> None:
        for _index, _term, name in reversed(self._snapshot_files()):
            full = os.path.join(self.path, name)
            with open(full, "rb") as f:
                data = f.read()
            if len(data) < 4:
                continue
            (crc,) = struct.unpack(">I", data[:4])
            if zlib.crc32(data[4:]) != crc:
                continue  # damaged: fall back to an older snapshot
            # Only the snapshot itself: which entries are still in the log is the wal's
            # business (its C and S records say where the log was cut).
            self.snap = _dec_snap.decode(data[4:])
            return

    def _replay(self) -> None:
        if not os.path.exists(self.wal_path):
            return
        with open(self.wal_path, "rb") as f:
            data = f.read()
        off = 0
        n = len(data)
        while off < n:
            if off + _HEAD.size > n:
                self._truncate_tail(off)
                return
            length, crc = _HEAD.unpack_from(data, off)
            start = off + _HEAD.size
            end = start + length
            if length > _MAX_RECORD or end > n:
                self._truncate_tail(off)
                return
            payload = data[start:end]
            if zlib.crc32(payload) != crc:
                if end == n:
                    self._truncate_tail(off)
                    return
                raise CorruptLogError(self.wal_path, off, "CRC mismatch in a record followed by more data")
            try:
                self._apply_record(_dec_any.decode(payload))
            except (msgspec.DecodeError, ValueError, TypeError, IndexError) as err:
                raise CorruptLogError(self.wal_path, off, f"undecodable record: {err}") from None
            off = end

    def _truncate_tail(self, off: int) -> None:
        with open(self.wal_path, "r+b") as f:
            f.truncate(off)
            f.flush()
            os.fsync(f.fileno())

    def _apply_record(self, rec: Any) -> None:
        kind = rec[0]
        if kind == "E":
            ents = [Entry(term=t, index=i, type=k, data=d) for t, i, k, d in rec[1]]
            ents = [e for e in ents if e.index > self.ci]
            if ents and ents[0].index <= self.last_index() + 1:
                MemoryStorage.append(self, ents)
        elif kind == "H":
            MemoryStorage.set_hard_state(self, HardState(term=rec[1], vote=rec[2], commit=rec[3]))
        elif kind == "S":
            # A snapshot from the leader replaced the whole log at (index, term).
            index, term = rec[1], rec[2]
            if index > self.ci:
                if self.snap.meta.index < index:
                    raise ValueError(f"snapshot {index} was installed but its file is missing or damaged")
                self.ci, self.ct = index, term
                self.ents = []
        elif kind == "C":
            index, term = rec[1], rec[2]
            if index > self.ci:
                self.ents = [e for e in self.ents if e.index > index]
                self.ci, self.ct = index, term
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    # ------------------------------------------------------------------ writing

    def _write(self, rec: list[Any]) -> None:
        payload = _enc.encode(rec)
        frame = _HEAD.pack(len(payload), zlib.crc32(payload)) + payload
        start = self._f.tell()
        try:
            self._f.write(frame)
            self._f.flush()
        except OSError:
            with contextlib.suppress(OSError):
                self._f.truncate(start)
                self._f.seek(start)
            raise
        self._dirty = True

    def sync(self) -> None:
        """Make every record written so far durable (one fsync: group commit)."""
        if self._dirty:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._dirty = False

    def set_hard_state(self, hs: HardState) -> None:
        self._write(["H", hs.term, hs.vote, hs.commit])
        MemoryStorage.set_hard_state(self, hs)

    def append(self, ents: list[Entry]) -> None:
        if not ents:
            return
        self._write(["E", [(e.term, e.index, int(e.type), e.data) for e in ents]])
        MemoryStorage.append(self, ents)

    def _write_snapshot_file(self, snap: Snapshot) -> None:
        body = _enc.encode(snap)
        name = f"snap-{snap.meta.term}-{snap.meta.index}"
        tmp = os.path.join(self.path, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack(">I", zlib.crc32(body)) + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.path, name))
        _fsync_dir(self.path)
        for _i, _t, old in self._snapshot_files()[:-KEEP_SNAPSHOTS]:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.path, old))

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Install a snapshot from the leader (or the bootstrap one): file first, then the marker."""
        self._write_snapshot_file(snap)
        self._write(["S", snap.meta.index, snap.meta.term])
        self.sync()
        MemoryStorage.apply_snapshot(self, snap)

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        snap = Snapshot(SnapshotMeta(index, self.term(index), conf), data)
        if index <= self.snap.meta.index:
            raise ValueError(f"snapshot {index} not newer than current {self.snap.meta.index}")
        self._write_snapshot_file(snap)
        self.snap = snap
        return snap

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` and rewrite the wal with what remains."""
        if index <= self.ci:
            return
        MemoryStorage.compact(self, index)
        tmp = self.wal_path + ".tmp"
        with open(tmp, "wb") as f:
            recs: list[list[Any]] = [["C", self.ci, self.ct]]
            hs = self.hard
            recs.append(["H", hs.term, hs.vote, hs.commit])
            if self.ents:
                recs.append(["E", [(e.term, e.index, int(e.type), e.data) for e in self.ents]])
            for rec in recs:
                payload = _enc.encode(rec)
                f.write(_HEAD.pack(len(payload), zlib.crc32(payload)) + payload)
            f.flush()
            os.fsync(f.fileno())
        self._f.close()
        os.replace(tmp, self.wal_path)
        _fsync_dir(self.path)
        self._f = open(self.wal_path, "ab")  # noqa: SIM115
        self._dirty = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sync()
        self._f.close()
