"""Raft storage: the in-memory :class:`MemoryStorage` (tests, simulator) and the
durable :class:`DiskStorage`.

Both implement the read-only :class:`muster.raft.log.Storage` view the core
uses, plus the write side the driver calls while handling a ``Ready``:
``append`` (truncates a conflicting suffix), ``set_hard_state``,
``apply_snapshot`` (install a snapshot received from the leader),
``create_snapshot`` (after the FSM produced one) and ``compact`` (drop entries
up to an index, keeping ``trailing`` logs behind the snapshot).

Model: a *compaction point* ``(ci, ct)`` (the dummy entry before
``first_index()``), the entries after it, and the latest snapshot whose index
is ``>= ci``.  Keeping entries behind the snapshot lets slightly lagging
followers catch up from the log instead of needing a snapshot (Consul's
``raft_trailing_logs``, pitfall P6 in docs/compat/raft.md).
"""

from __future__ import annotations

import collections
import os
import re
import struct
import zlib
from pathlib import Path

import msgspec

from .errors import CompactedError, CorruptLogError, RaftError, UnavailableError
from .log import limit_size
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta

__all__ = ["CorruptSnapshotError", "DiskStorage", "MemoryStorage", "StorageFailed"]


class MemoryStorage:
    """Everything in memory; "persisting" is immediate.  Used by tests and as
    the in-memory index of :class:`DiskStorage`."""

    def __init__(self, conf: ConfState | None = None) -> None:
        self.hard = HardState()
        self.snap = Snapshot(SnapshotMeta(0, 0, conf or ConfState()))
        self.ci = 0  # compaction point index
        self.ct = 0  # compaction point term
        self.ents: list[Entry] = []  # ents[k].index == ci + 1 + k

    # -- read side ------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard, self.snap.meta.conf

    def first_index(self) -> int:
        return self.ci + 1

    def last_index(self) -> int:
        return self.ci + len(self.ents)

    def term(self, index: int) -> int:
        if index < self.ci:
            raise CompactedError(f"index {index} compacted (compaction point {self.ci})")
        if index == self.ci:
            return self.ct
        if index > self.last_index():
            raise UnavailableError(f"index {index} beyond last index {self.last_index()}")
        return self.ents[index - self.ci - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self.ci:
            raise CompactedError(f"index {lo} compacted (compaction point {self.ci})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries [{lo}, {hi}) beyond last index {self.last_index()}")
        return limit_size(self.ents[lo - self.ci - 1 : hi - self.ci - 1], max_bytes)

    def snapshot(self) -> Snapshot:
        return self.snap

    # -- write side -------------------------------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        self.hard = hs

    def append(self, ents: list[Entry]) -> None:
        """Append ``ents``, first truncating any existing entries at or after
        ``ents[0].index`` (they conflict with the leader's log)."""
        if not ents:
            return
        first = ents[0].index
        if first > self.last_index() + 1:
            raise AssertionError(f"gap in log: appending {first} after {self.last_index()}")
        if first <= self.ci:
            ents = [e for e in ents if e.index > self.ci]
            if not ents:
                return
            first = ents[0].index
        del self.ents[first - self.ci - 1 :]
        self.ents.extend(ents)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Install a snapshot received from the leader: it replaces the whole log."""
        if snap.meta.index <= self.snap.meta.index:
            raise ValueError(f"snapshot {snap.meta.index} older than current {self.snap.meta.index}")
        self.snap = snap
        self.ci, self.ct = snap.meta.index, snap.meta.term
        self.ents = []

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot the FSM took at applied ``index``."""
        if index <= self.snap.meta.index:
            raise ValueError(f"snapshot {index} not newer than current {self.snap.meta.index}")
        if index > self.last_index():
            raise ValueError(f"snapshot {index} beyond last index {self.last_index()}")
        self.snap = Snapshot(SnapshotMeta(index, self.term(index), conf), data)
        return self.snap

    def compact(self, index: int) -> list[Entry]:
        """Drop entries up to ``index`` (which must be covered by the snapshot); returns them.

        The caller may release the returned list in steps: with hashicorp/raft's snapshot
        interval a compaction can drop a few hundred thousand entries, and freeing them all at
        once is tens of milliseconds of one C loop."""
        if index <= self.ci:
            return []
        if index > self.snap.meta.index:
            raise ValueError(f"cannot compact to {index} beyond snapshot {self.snap.meta.index}")
        t = self.term(index)
        k = index - self.ci
        dropped = self.ents[:k]
        del self.ents[:k]
        self.ci, self.ct = index, t
        return dropped


# ---------------------------------------------------------------------------
# Durable storage


class StorageFailed(RaftError):
    """An fsync failed earlier; the on-disk state is unknown, so the storage
    refuses all further writes (a node must stop and restart from disk rather
    than retry an fsync whose failure may have dropped dirty pages)."""


class CorruptSnapshotError(RaftError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"corrupt snapshot {path}: {reason}")
        self.path = path


class _Append(msgspec.Struct, tag=1, array_like=True):
    entries: list[Entry]


class _Hard(msgspec.Struct, tag=2, array_like=True):
    hs: HardState


class _Reset(msgspec.Struct, tag=3, array_like=True):
    """The log was replaced by a snapshot at (index, term)."""

    index: int
    term: int


class _Base(msgspec.Struct, tag=4, array_like=True):
    """First record of a segment written by the compaction of earlier versions (the whole
    retained state rewritten).  No longer written; still read from older data directories."""

    index: int
    term: int
    hs: HardState
    entries: list[Entry]


class _Start(msgspec.Struct, tag=5, array_like=True):
    """First record of every segment opened by rotation: the log before this segment ends at
    (index, term) and the hard state is ``hs``.  It lets the older segments be deleted: a
    replay that starts here (older segments gone) takes (index, term) as the compaction point."""

    index: int
    term: int
    hs: HardState


class _Compact(msgspec.Struct, tag=6, array_like=True):
    """Entries up to ``index`` (of ``term``) were compacted away (a snapshot covers them)."""

    index: int
    term: int


_Record = _Append | _Hard | _Reset | _Base | _Start | _Compact
_rec_encoder = msgspec.msgpack.Encoder()
_rec_decoder = msgspec.msgpack.Decoder(_Record)
_meta_decoder = msgspec.msgpack.Decoder(SnapshotMeta)

#: Record header: payload length, CRC32 of the payload, CRC32 of those 8 bytes.
#: The header's own checksum tells a corrupted length field (corruption) from a
#: record cut short by a crash (torn tail).
_HDR = struct.Struct(">III")
_MAX_RECORD = 1 << 30
_SNAP_MAGIC = b"MUSTERSNAP1\n"
#: Snapshot header after the magic: meta length, data length, CRC32(meta + data).
_SNAP_HDR = struct.Struct(">IQI")
_SEG_RE = re.compile(r"^wal-(\d{16})\.log$")
_SNAP_RE = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def _frame(payload: bytes) -> bytes:
    head = struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskStorage:
    """Raft log, hard state and snapshots in a data directory.

    Layout::

        <dir>/wal/wal-<seq>.log          append-only record segments
        <dir>/snapshots/snap-<term>-<index>.snap

    **Records.** Every record is ``length(4) | crc32(payload)(4) | crc32(header)(4) | msgpack payload``.
    Appends and hard-state updates are written without fsync; :meth:`sync` (or
    :meth:`persist` with ``must_sync``) issues one fsync for everything
    written since (group commit).  :meth:`set_hard_state` fsyncs before
    returning when the term or vote changed.

    **Recovery.** On open all segments are replayed in order.  In the *last*
    segment, a record that is cut short, or a bad record that ends exactly at
    the end of the file (or is followed only by zero bytes), is a torn write
    of an unacknowledged batch: the file is truncated there.  Any other bad
    record raises :class:`CorruptLogError` with the file and offset, because
    acknowledged data would otherwise be silently lost.

    **Failures.** If a write fails (ENOSPC, EIO, ...), the segment is truncated
    back to its previous length, the in-memory state is left unchanged, and the
    error propagates; the caller may retry later.  If an fsync fails, the
    storage enters a failed state (:class:`StorageFailed`).

    **Compaction** costs O(segments), not O(retained entries), because it runs on
    the server's event loop after every snapshot: it trims the in-memory log, appends
    a small ``_Compact`` record, and asks for a *rotation*.  The next write that finds
    the current segment fully synced opens a new segment whose first record
    (``_Start``) carries the log's last (index, term) and the hard state; the next
    :meth:`sync` (the group-commit fsync, in the driver's worker thread) also fsyncs
    the directory, after which that segment is durable.  A closed segment whose
    entries are all at or below the compaction point, and which is followed by a
    durable ``_Start``, is unlinked by a later :meth:`sync`.  Because a segment is
    only closed when nothing in it is unsynced, every segment but the last is
    complete, and a crash at any point leaves a log that replays (a lost unlink
    leaves an older segment that the next ``_Start`` supersedes).  The WAL holds the
    trailing logs plus up to about two snapshot intervals of entries.

    **Snapshots** are written to a temporary file, fsynced, renamed, and the
    directory fsynced; the newest ``retain`` are kept.  The latest snapshot's
    data is held in memory (sized for Consul-scale state).
    """

    def __init__(self, path: str | os.PathLike[str], retain: int = 2) -> None:
        if retain < 1:
            raise ValueError("retain must be >= 1")
        self.path = Path(path)
        self.wal_dir = self.path / "wal"
        self.snap_dir = self.path / "snapshots"
        self.retain = retain
        self.fsyncs = 0
        self._failed: BaseException | None = None
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.snap_dir.mkdir(parents=True, exist_ok=True)
        self.mem = MemoryStorage()
        self._load_snapshot()
        self._synced_hard = HardState()
        self._replay()
        self._synced_hard = self.mem.hard
        self._fd = os.open(self._seg_path(self._seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pos = os.fstat(self._fd).st_size
        self._synced_pos = self._pos
        self._dirty = False
        #: A compaction asked for a new segment (taken at the next write with nothing unsynced).
        self._rotate = False
        #: The directory must be fsynced by the next ``sync`` (a segment was created).
        self._dir_dirty = False
        #: Segments up to this one exist durably (their directory entries were fsynced).
        self._durable_seq = self._seq
        #: Highest entry index written to each segment (``_seg_max[seq]``), for deletion.
        self._seg_max: dict[int, int] = dict(self._replayed_max)
        #: Segments to unlink, oldest first: filled on the loop by ``compact``, emptied by
        #: ``sync`` (possibly in a worker thread; a deque is safe between the two).
        self._unlink: collections.deque[int] = collections.deque()
        self._seg_max.setdefault(self._seq, self.mem.last_index())
        #: The compaction point not written yet (``compact`` leaves it to the next write).
        self._compacted: _Compact | None = None

    # -- read side (delegated to the in-memory index) ----------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.mem.initial_state()

    def first_index(self) -> int:
        return self.mem.first_index()

    def last_index(self) -> int:
        return self.mem.last_index()

    def term(self, index: int) -> int:
        return self.mem.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        return self.mem.entries(lo, hi, max_bytes)

    def snapshot(self) -> Snapshot:
        return self.mem.snapshot()

    # -- opening ---------------------------------------------------------------------
    def _seg_path(self, seq: int) -> Path:
        return self.wal_dir / f"wal-{seq:016d}.log"

    def _segments(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.wal_dir.iterdir() if (m := _SEG_RE.match(p.name)))

    def _snapshots(self) -> list[Path]:
        """Snapshot files, newest (highest index) first."""
        snaps = [(int(m.group(2), 16), p) for p in self.snap_dir.iterdir() if (m := _SNAP_RE.match(p.name))]
        return [p for _, p in sorted(snaps, reverse=True)]

    @staticmethod
    def read_snapshot_file(path: Path) -> Snapshot:
        raw = path.read_bytes()
        head = len(_SNAP_MAGIC) + _SNAP_HDR.size
        if len(raw) < head or not raw.startswith(_SNAP_MAGIC):
            raise CorruptSnapshotError(str(path), "bad header")
        mlen, dlen, crc = _SNAP_HDR.unpack_from(raw, len(_SNAP_MAGIC))
        body = raw[head:]
        if len(body) != mlen + dlen:
            raise CorruptSnapshotError(str(path), f"size {len(body)} != {mlen + dlen}")
        if zlib.crc32(body) != crc:
            raise CorruptSnapshotError(str(path), "checksum mismatch")
        try:
            meta = _meta_decoder.decode(body[:mlen])
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise CorruptSnapshotError(str(path), f"bad metadata: {e}") from None
        return Snapshot(meta, body[mlen:])

    def _load_snapshot(self) -> None:
        for p in self.snap_dir.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink()  # an interrupted snapshot write
        snaps = self._snapshots()
        if snaps:
            # The newest snapshot must be intact: the log may already be
            # compacted past any older one.
            # The log base (compaction point) is restored by replaying the WAL;
            # trailing entries behind the snapshot survive a restart.
            self.mem.snap = self.read_snapshot_file(snaps[0])

    def _apply_record(self, rec: _Record) -> None:
        m = self.mem
        if isinstance(rec, _Append):
            m.append(rec.entries)
        elif isinstance(rec, _Hard):
            m.hard = rec.hs
        elif isinstance(rec, _Reset):
            m.ci, m.ct, m.ents = rec.index, rec.term, []
        elif isinstance(rec, _Start):
            m.hard = rec.hs
            if m.last_index() < rec.index:
                # The older segments were deleted (or never held these entries): the log
                # starts after (index, term).
                m.ci, m.ct, m.ents = rec.index, rec.term, []
            elif m.term(rec.index) != rec.term:
                raise RaftError(f"segment starts after ({rec.index}, {rec.term}) but the log has term {m.term(rec.index)} there")
        elif isinstance(rec, _Compact):
            if rec.index > m.ci:
                if rec.index <= m.last_index():
                    del m.ents[: rec.index - m.ci]
                else:
                    m.ents = []
                m.ci, m.ct = rec.index, rec.term
        else:
            m.ci, m.ct, m.hard, m.ents = rec.index, rec.term, rec.hs, list(rec.entries)

    def _replay(self) -> None:
        segs = self._segments()
        self._seq = segs[-1] if segs else 1
        self._replayed_max: dict[int, int] = {}
        for seq in segs:
            path = self._seg_path(seq)
            data = path.read_bytes()
            last = seq == segs[-1]
            off = 0
            top = self.mem.last_index()
            while off < len(data):
                bad, rec, size = self._read_record(data, off)
                if rec is None:
                    if last and self._is_torn_tail(data, off):
                        with open(path, "r+b") as f:
                            f.truncate(off)
                            f.flush()
                            os.fsync(f.fileno())
                        break
                    raise CorruptLogError(str(path), off, bad)
                try:
                    self._apply_record(rec)
                except RaftError as err:
                    raise CorruptLogError(str(path), off, str(err)) from None
                if isinstance(rec, (_Append, _Base)) and rec.entries:
                    top = max(top, rec.entries[-1].index)
                off += size
            self._replayed_max[seq] = top
        snap = self.mem.snap.meta
        m = self.mem
        if m.ci < snap.index and not (m.last_index() >= snap.index and m.term(snap.index) == snap.term):
            # The log does not lead up to the snapshot (a crash between
            # installing a leader's snapshot and recording the log reset):
            # the snapshot replaces the whole log, as apply_snapshot would.
            m.ci, m.ct, m.ents = snap.index, snap.term, []

    @staticmethod
    def _read_record(data: bytes, off: int) -> tuple[str, _Record | None, int]:
        """Decode the record at ``off``: ("", record, size) or (reason, None, 0)."""
        if len(data) - off < _HDR.size:
            return "truncated record header", None, 0
        n, crc, hcrc = _HDR.unpack_from(data, off)
        if zlib.crc32(data[off : off + 8]) != hcrc:
            return "record header checksum mismatch", None, 0
        if n > _MAX_RECORD or off + _HDR.size + n > len(data):
            return f"record length {n} runs past end of file", None, 0
        payload = data[off + _HDR.size : off + _HDR.size + n]
        if zlib.crc32(payload) != crc:
            return "checksum mismatch", None, 0
        try:
            return "", _rec_decoder.decode(payload), _HDR.size + n
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return f"undecodable record: {e}", None, 0

    @staticmethod
    def _is_torn_tail(data: bytes, off: int) -> bool:
        """Whether the bad record at ``off`` can only be an interrupted final write:
        a short header, a valid header whose payload is cut short or ends the
        file, or anything followed only by zero fill."""
        if len(data) - off < _HDR.size or not any(data[off:]):
            return True
        n, _, hcrc = _HDR.unpack_from(data, off)
        if zlib.crc32(data[off : off + 8]) != hcrc:
            # A partially written header followed by zero fill is torn; a
            # damaged header with data after it is corruption.
            return not any(data[off + _HDR.size :])
        end = off + _HDR.size + n
        if end >= len(data):
            return True  # runs to (or past) the end of the file
        return not any(data[end:])

    # -- writing ---------------------------------------------------------------------
    def _check_ok(self) -> None:
        if self._failed is not None:
            raise StorageFailed(f"storage in {self.path} failed earlier: {self._failed}")

    def _write_record(self, rec: _Record) -> None:
        """Write ``rec`` (not durable until :meth:`sync`).  Only the driver's Ready path and
        ``close`` write, never while a ``sync`` runs, so a compaction (which may run while one
        does) leaves its record and its rotation to the next write."""
        self._check_ok()
        if self._rotate and not self._dirty:
            self._rotate_segment()
        if self._compacted is not None:
            self._pos += self._write_to(self._fd, self._pos, self._compacted)
            self._dirty = True
            self._compacted = None
        self._pos += self._write_to(self._fd, self._pos, rec)
        self._dirty = True

    def _write_to(self, fd: int, start: int, rec: _Record) -> int:
        """Write one framed record at the end of ``fd`` (which is at ``start``); on a failed
        write cut the file back to ``start`` (no partial record left behind) and raise."""
        buf = _frame(_rec_encoder.encode(rec))
        try:
            view = memoryview(buf)
            while view:
                written = self._os_write(fd, view)
                view = view[written:]
        except OSError:
            # Leave no partial record behind (ENOSPC mid-write, ...).
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # the torn tail is cut on the next open instead
            raise
        return len(buf)

    def _rotate_segment(self) -> None:
        """Open the next segment with its ``_Start`` record and make it the current one.

        Called only when nothing in the current segment is unsynced (so every closed segment
        is complete on disk).  The new segment and its directory entry become durable at the
        next ``sync``.  If creating or writing it fails, the current segment stays current."""
        m = self.mem
        last = m.last_index()
        rec = _Start(last, m.term(last), m.hard)
        new_seq = self._seq + 1
        path = self._seg_path(new_seq)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            size = self._write_to(fd, 0, rec)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(self._fd)
        self._fd, self._seq = fd, new_seq
        self._pos, self._synced_pos = size, 0
        self._seg_max[new_seq] = last
        self._rotate = False
        self._dir_dirty = True
        self._dirty = True

    # Indirection point for fault injection in tests (ENOSPC, short writes).
    _os_write = staticmethod(os.write)

    def _fsync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as e:
            self._failed = e
            raise
        self.fsyncs += 1

    def sync(self) -> None:
        """Make everything written so far durable (one fsync; after a rotation also the
        directory's), then unlink the segments compaction released.  Runs in the driver's
        worker thread while the loop does not write to this storage."""
        self._check_ok()
        if self._dirty:
            self._fsync(self._fd)
            self._dirty = False
        if self._dir_dirty:
            _fsync_dir(self.wal_dir)
            self._dir_dirty = False
            self._durable_seq = self._seq
        self._synced_pos = self._pos
        self._synced_hard = self.mem.hard
        removed = False
        while self._unlink:
            seq = self._unlink.popleft()
            self._seg_path(seq).unlink(missing_ok=True)
            removed = True
        if removed:
            # Not needed for correctness (a segment that comes back is superseded by the
            # ``_Start`` after it), only so the space is not reclaimed twice after a crash.
            _fsync_dir(self.wal_dir)

    def append(self, ents: list[Entry]) -> None:
        """Append (truncating a conflicting suffix).  Not durable until :meth:`sync`."""
        if not ents:
            return
        if ents[0].index > self.mem.last_index() + 1:
            raise AssertionError(f"gap in log: appending {ents[0].index} after {self.mem.last_index()}")
        self._write_record(_Append(list(ents)))
        self.mem.append(ents)
        self._seg_max[self._seq] = max(self._seg_max.get(self._seq, 0), ents[-1].index)

    def set_hard_state(self, hs: HardState, sync: bool | None = None) -> None:
        """Record ``hs``; fsynced before returning if the term or vote changed
        (or ``sync`` is true).  A commit-only change is left for the next sync."""
        self._write_record(_Hard(hs))
        self.mem.hard = hs
        if sync is None:
            sync = (hs.term, hs.vote) != (self._synced_hard.term, self._synced_hard.vote)
        if sync:
            self.sync()

    def persist(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None, must_sync: bool
    ) -> None:
        """Persist one Ready in contract order with at most one log fsync."""
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        if entries:
            self.append(entries)
        if hard_state is not None:
            self._write_record(_Hard(hard_state))
            self.mem.hard = hard_state
        if must_sync or (
            hard_state is not None
            and (hard_state.term, hard_state.vote) != (self._synced_hard.term, self._synced_hard.vote)
        ):
            self.sync()

    def bootstrap(self, conf: ConfState) -> None:
        """Record the initial configuration of a brand-new cluster member."""
        if self.mem.last_index() or self.mem.snap.meta.index or self.mem.hard.term:
            raise ValueError(f"storage in {self.path} is not empty")
        self._write_snapshot(Snapshot(SnapshotMeta(0, 0, conf), b""))
        self.mem.snap = Snapshot(SnapshotMeta(0, 0, conf), b"")

    def _write_snapshot(self, snap: Snapshot) -> Path:
        """Write ``snap`` to its file and prune older files (see ``_write_parts``)."""
        return self._write_parts(snap.meta, [snap.data])

    def _write_parts(self, meta: SnapshotMeta, parts: list[bytes]) -> Path:
        """Write a snapshot whose data is the concatenation of ``parts`` (temp file, fsync,
        rename, directory fsync), then prune older files.  Touches only the snapshot
        directory, so it may run in a worker thread (``write_snapshot_parts``); the pieces are
        written by ``os.write`` and checksummed by ``zlib``, which release the GIL for large
        buffers, and never joined in memory."""
        self._check_ok()
        mbytes = _rec_encoder.encode(meta)
        name = f"snap-{meta.term:016x}-{meta.index:016x}.snap"
        final = self.snap_dir / name
        tmp = self.snap_dir / (name + ".tmp")
        crc = zlib.crc32(mbytes)
        dlen = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
            dlen += len(part)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for buf in (_SNAP_MAGIC + _SNAP_HDR.pack(len(mbytes), dlen, crc) + mbytes, *parts):
                view = memoryview(buf)
                while view:
                    view = view[self._os_write(fd, view[: 1 << 22]) :]
            self._fsync(fd)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.snap_dir)
        for old in self._snapshots()[self.retain :]:
            old.unlink(missing_ok=True)
        return final

    def write_snapshot_file(self, snap: Snapshot) -> None:
        """The durable half of ``create_snapshot``, safe to run in a worker thread while the
        loop keeps appending (it touches only the snapshot directory); ``install_snapshot``
        then makes it the current snapshot, on the loop."""
        self._write_snapshot(snap)

    def write_snapshot_parts(self, meta: SnapshotMeta, parts: list[bytes]) -> Snapshot:
        """``write_snapshot_file`` for data given in pieces: the file is written from the
        pieces and the data read back from it as one ``bytes`` (the read runs without the
        GIL), so no thread ever holds the GIL to join a large snapshot in memory."""
        path = self._write_parts(meta, parts)
        head = len(_SNAP_MAGIC) + _SNAP_HDR.size + len(_rec_encoder.encode(meta))
        dlen = sum(len(p) for p in parts)
        with open(path, "rb", buffering=0) as f:
            f.seek(head)
            data = f.read(dlen)
        if len(data) != dlen:
            raise OSError(f"snapshot {path} read back {len(data)} of {dlen} bytes")
        return Snapshot(meta, data)

    def install_snapshot(self, snap: Snapshot) -> bool:
        """Make ``snap`` (already written by ``write_snapshot_file``) the current snapshot,
        unless one at the same or a later index was installed meanwhile (then False)."""
        if snap.meta.index <= self.mem.snap.meta.index:
            return False
        if snap.meta.index > self.mem.last_index():
            raise ValueError(f"snapshot {snap.meta.index} beyond last index {self.mem.last_index()}")
        self.mem.snap = snap
        return True

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Install a snapshot from the leader: durable snapshot file, then a log reset."""
        if snap.meta.index <= self.mem.snap.meta.index:
            raise ValueError(f"snapshot {snap.meta.index} older than current {self.mem.snap.meta.index}")
        self._write_snapshot(snap)
        self._write_record(_Reset(snap.meta.index, snap.meta.term))
        self.sync()
        self.mem.apply_snapshot(snap)

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Durably record a snapshot the FSM took at applied ``index``."""
        if index <= self.mem.snap.meta.index:
            raise ValueError(f"snapshot {index} not newer than current {self.mem.snap.meta.index}")
        if index > self.mem.last_index():
            raise ValueError(f"snapshot {index} beyond last index {self.mem.last_index()}")
        snap = Snapshot(SnapshotMeta(index, self.mem.term(index), conf), data)
        self._write_snapshot(snap)
        self.mem.snap = snap
        return snap

    def compact(self, index: int) -> list[Entry]:
        """Drop entries up to ``index`` (covered by the snapshot) and return them (see
        ``MemoryStorage.compact``): trim the in-memory log,
        record the compaction point (a small record, durable with the next sync), ask for a
        new segment, and queue the closed segments that hold nothing above ``index`` and are
        followed by a durable ``_Start`` for unlinking by the next :meth:`sync`.  No fsync
        and no write or rewrite of the retained entries here: this runs on the event loop,
        possibly while a ``sync`` runs in a worker thread."""
        if index <= self.mem.ci:
            return []
        if index > self.mem.snap.meta.index:
            raise ValueError(f"cannot compact to {index} beyond snapshot {self.mem.snap.meta.index}")
        self._check_ok()
        m = self.mem
        self._compacted = _Compact(index, m.term(index))
        dropped = m.compact(index)
        self._rotate = True
        queued = set(self._unlink)
        for seq in sorted(self._seg_max):
            if seq >= self._durable_seq or self._seg_max[seq] > index:
                break
            if seq not in queued:
                self._unlink.append(seq)
            del self._seg_max[seq]
        return dropped

    def segment(self) -> tuple[Path, int, int]:
        """(current segment path, bytes known durable, bytes written) - for
        fault injection: a power loss may keep any prefix of the unsynced part."""
        return self._seg_path(self._seq), self._synced_pos, self._pos

    def close(self) -> None:
        if self._fd >= 0 and self._compacted is not None and self._failed is None:
            rec, self._compacted = self._compacted, None
            try:
                self._pos += self._write_to(self._fd, self._pos, rec)
            except OSError:
                pass  # only the compaction point is lost: the next open keeps more entries
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
