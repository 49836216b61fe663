"""Building blocks for driving :class:`~muster.raft.core.RaftCore` in tests.

:class:`SimDisk` models a disk with a page cache: writes go to the cache
(visible immediately to the running node) and reach the durable image only at
``sync()``.  A crash discards the cache and, optionally, persists a random
*prefix* of the unsynced writes (what a write-ahead log with a torn tail
gives).  :class:`SimNode` wires a core, a disk and a :class:`SimFSM` together
and implements the Ready loop exactly as the production driver does
(``muster.server.raftlog``): write -> send the early messages (a leader's
MsgApp/heartbeats) -> apply what is committed -> fsync -> send the rest ->
advance.  The fsync may be *deferred* to a later simulator step
(``handle_ready(defer=True)``), which models the leader's fsync running in
parallel with replication: followers receive, persist and acknowledge the
entries meanwhile, and a crash before the deferred fsync loses them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from muster.raft.core import RaftConfig, RaftCore, Ready
from muster.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Snapshot,
    decode_conf_change,
)
from muster.raft.storage import DiskStorage, MemoryStorage

__all__ = [
    "SimDisk",
    "SimFSM",
    "SimNode",
    "fmt_entries",
    "fmt_entry",
    "fmt_hard_state",
    "fmt_msg",
    "fmt_ready",
]


def clone_storage(s: MemoryStorage) -> MemoryStorage:
    c = MemoryStorage()
    c.hard, c.snap, c.ci, c.ct, c.ents = s.hard, s.snap, s.ci, s.ct, list(s.ents)
    return c


class SimDisk:
    """Durable image + unsynced write queue for one node's :class:`MemoryStorage`."""

    def __init__(self, conf: ConfState) -> None:
        self.durable = MemoryStorage(conf)
        self.mem = clone_storage(self.durable)
        self.pending: list[tuple[str, tuple[Any, ...]]] = []
        self.syncs = 0

    def write(self, op: str, *args: Any) -> None:
        getattr(self.mem, op)(*args)
        self.pending.append((op, args))

    def sync(self) -> None:
        for op, args in self.pending:
            getattr(self.durable, op)(*args)
        self.pending.clear()
        self.syncs += 1

    def crash(self, rng: random.Random | None = None) -> int:
        """Lose the page cache.  With ``rng``, a random prefix of the unsynced
        writes survives (as if the OS had flushed part of them).  Returns the
        number of unsynced writes lost."""
        keep = rng.randrange(len(self.pending) + 1) if rng is not None and self.pending else 0
        for op, args in self.pending[:keep]:
            getattr(self.durable, op)(*args)
        lost = len(self.pending) - keep
        self.pending.clear()
        self.mem = clone_storage(self.durable)
        return lost


class RealDisk:
    """The :class:`SimDisk` interface over a real :class:`DiskStorage` directory.

    A crash models power loss: the current WAL segment is cut at a random
    byte between what was last fsynced and what was written (a torn tail), or
    exactly at the synced size without ``rng``; the storage is then reopened,
    exercising its recovery path.
    """

    def __init__(self, path: Path, conf: ConfState) -> None:
        self.path = path
        self.mem = DiskStorage(path)
        if conf.voters or conf.learners:
            self.mem.bootstrap(conf)
        self.syncs = 0

    def write(self, op: str, *args: Any) -> None:
        getattr(self.mem, op)(*args)

    def sync(self) -> None:
        self.mem.sync()
        self.syncs += 1

    def crash(self, rng: random.Random | None = None) -> int:
        seg, durable, written = self.mem.segment()
        self.mem.close()
        cut = rng.randint(durable, written) if rng is not None else durable
        if cut < written:
            with open(seg, "r+b") as f:
                f.truncate(cut)
        self.mem = DiskStorage(self.path)
        return written - cut


class SimFSM:
    """A state machine whose state is a hash chain over applied commands.

    Two replicas that applied the same commands at the same indexes in the same
    order have equal ``digest``; anything else makes them differ.
    """

    def __init__(self) -> None:
        self.index = 0
        self.digest = b"\0" * 16
        self.count = 0
        self.data: list[bytes] = []  # only the commands applied in this incarnation

    def apply(self, index: int, data: bytes) -> object:
        if index <= self.index:
            raise AssertionError(f"FSM applied index {index} after {self.index}")
        self.index = index
        self.count += 1
        self.digest = hashlib.blake2b(self.digest + index.to_bytes(8, "big") + data, digest_size=16).digest()
        self.data.append(data)
        return self.count

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode([self.index, self.digest, self.count])

    def restore(self, data: bytes) -> None:
        self.data = []
        if not data:
            self.index, self.digest, self.count = 0, b"\0" * 16, 0
            return
        idx, digest, count = msgspec.msgpack.decode(data)
        self.index, self.digest, self.count = int(idx), bytes(digest), int(count)


class SimNode:
    """A node: core + disk + FSM, with a driver loop following the Ready contract."""

    def __init__(
        self,
        id: str,
        conf: ConfState,
        config: RaftConfig,
        seed: int,
        snapshot_every: int = 0,
        trailing_logs: int = 5,
        disk_dir: Path | None = None,
    ) -> None:
        self.id = id
        self.config = config
        self.seed = seed
        self.incarnation = 0
        self.disk: SimDisk | RealDisk = SimDisk(conf) if disk_dir is None else RealDisk(disk_dir, conf)
        self.fsm = SimFSM()
        self.snapshot_every = snapshot_every
        self.trailing_logs = trailing_logs
        self.core: RaftCore | None = None
        #: A Ready whose writes were issued and early messages sent, fsync pending.
        self.inflight: Ready | None = None
        #: Hooks for checkers: called with (node, entries) / (node, entry, fsm).
        self.on_append: Callable[[SimNode, list[Entry]], None] | None = None
        self.on_apply: Callable[[SimNode, Entry, SimFSM], None] | None = None
        self.on_restore: Callable[[SimNode, SimFSM], None] | None = None
        self.start()

    @property
    def alive(self) -> bool:
        return self.core is not None

    def start(self) -> None:
        self.incarnation += 1
        rng = random.Random(self.seed * 1000 + self.incarnation)
        self.core = RaftCore(self.id, self.disk.mem, rng, self.config)
        self.fsm = SimFSM()
        self.fsm.restore(self.disk.mem.snapshot().data)
        if self.on_restore is not None:
            self.on_restore(self, self.fsm)

    def crash(self, rng: random.Random | None = None) -> int:
        self.core = None
        self.inflight = None
        return self.disk.crash(rng)

    def restart(self) -> None:
        if self.core is not None:
            raise RuntimeError(f"{self.id} is running")
        self.start()

    def handle_ready(self, send: Callable[[Message], None], defer: bool = False) -> Ready | None:
        """Run one iteration of the driver loop; returns the Ready taken, or None.

        A Ready left in flight by an earlier ``defer=True`` call is finished first
        (fsync, late messages, advance).  With ``defer`` a new Ready that needs an
        fsync is left in flight (``self.inflight``) after its writes, early
        messages and applies; the caller then lets time pass before calling again.
        """
        core = self.core
        if core is None:
            return None
        if self.inflight is not None:
            rd, self.inflight = self.inflight, None
            self._finish(core, rd, send)
        if not core.has_ready():
            return None
        rd = core.ready()
        self._start(rd, send)
        if defer and rd.must_sync:
            self.inflight = rd
        else:
            self._finish(core, rd, send)
        return rd

    def _start(self, rd: Ready, send: Callable[[Message], None]) -> None:
        # 1. write (page cache only)
        if rd.snapshot is not None:
            self.disk.write("apply_snapshot", rd.snapshot)
        if rd.entries:
            if self.on_append is not None:
                self.on_append(self, rd.entries)
            self.disk.write("append", rd.entries)
        if rd.hard_state is not None:
            self.disk.write("set_hard_state", rd.hard_state)
        # 2. a leader's replication leaves before its own fsync
        early, _late = rd.early_messages()
        for m in early:
            send(m)
        # 3. apply what is committed (durable on a quorum already); a snapshot is
        # restored only after its own fsync, in _finish
        if rd.snapshot is None:
            self._apply(rd)

    def _finish(self, core: RaftCore, rd: Ready, send: Callable[[Message], None]) -> None:
        # 4. fsync, then everything that describes our own durable state
        if rd.must_sync:
            self.disk.sync()
        _early, late = rd.early_messages()
        for m in late:
            send(m)
        if rd.snapshot is not None:
            self.fsm.restore(rd.snapshot.data)
            if self.on_restore is not None:
                self.on_restore(self, self.fsm)
            self._apply(rd)
        # 5. advance
        core.advance(rd)
        self._maybe_snapshot(core)

    def _apply(self, rd: Ready) -> None:
        for e in rd.committed_entries:
            if e.type is EntryType.NORMAL:
                self.fsm.apply(e.index, e.data)
            if self.on_apply is not None:
                self.on_apply(self, e, self.fsm)

    def _maybe_snapshot(self, core: RaftCore) -> None:
        if not self.snapshot_every:
            return
        mem = self.disk.mem
        applied = core.applied
        if applied - mem.snapshot().meta.index < self.snapshot_every or core.conf_index > applied:
            return
        self.disk.write("create_snapshot", applied, core.conf_state(), self.fsm.snapshot())
        compact_to = applied - self.trailing_logs
        if compact_to >= mem.first_index():
            self.disk.write("compact", compact_to)

    def snapshot_now(self) -> Snapshot:
        """Force a snapshot at the applied index and compact everything before it."""
        core = self.core
        if core is None:
            raise RuntimeError(f"{self.id} is down")
        self.disk.write("create_snapshot", core.applied, core.conf_state(), self.fsm.snapshot())
        self.disk.write("compact", core.applied)
        self.disk.sync()
        return self.disk.mem.snapshot()


# ---------------------------------------------------------------------------
# Formatting (transcripts and failure traces)

_ENTRY_TYPES = {
    EntryType.NORMAL: "EntryNormal",
    EntryType.NOOP: "EntryNoop",
    EntryType.CONF: "EntryConfChange",
}


def _data(b: bytes) -> str:
    try:
        s = b.decode()
    except UnicodeDecodeError:
        return b.hex()
    return '"' + s + '"' if s.isprintable() else b.hex()


def fmt_entry(e: Entry) -> str:
    s = f"{e.term}/{e.index} {_ENTRY_TYPES[e.type]}"
    if e.type is EntryType.CONF:
        cc = decode_conf_change(e.data)
        return f"{s} {cc.type.name.lower()} {cc.node_id}"
    if e.data:
        s += " " + _data(e.data)
    return s


def fmt_entries(ents: list[Entry] | tuple[Entry, ...]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in ents) + "]"


def fmt_hard_state(hs: HardState) -> str:
    return f"HardState Term:{hs.term} Vote:{hs.vote or '-'} Commit:{hs.commit}"


def fmt_msg(m: Message) -> str:
    t = m.type
    s = f"{m.frm}->{m.to} {t.label} Term:{m.term}"
    if t in (MsgType.APP, MsgType.VOTE, MsgType.PRE_VOTE):
        s += f" Log:{m.log_term}/{m.index}"
    if t is MsgType.APP:
        s += f" Commit:{m.commit}"
        if m.entries:
            s += " Entries:" + fmt_entries(m.entries)
    elif t is MsgType.APP_RESP:
        s += f" Log:{m.log_term}/{m.index}"
        if m.reject:
            s += f" Rejected (Hint: {m.reject_hint})"
    elif t in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
        if m.reject:
            s += " Rejected"
    elif t is MsgType.HEARTBEAT:
        s += f" Commit:{m.commit}"
    elif t is MsgType.SNAP:
        assert m.snapshot is not None
        s += (
            f" Snapshot:{m.snapshot.term}/{m.snapshot.index} voters={','.join(m.snapshot.conf.voters)}"
            f" Chunk:{m.snap_offset}+{len(m.snap_data)}{' done' if m.snap_done else ''}"
        )
    elif t is MsgType.SNAP_RESP:
        s += f" Offset:{m.snap_offset}" + (" Rejected" if m.reject else "")
    elif t is MsgType.READ_INDEX_RESP:
        s += f" Index:{m.index}"
    if m.context and t is not MsgType.VOTE:
        s += f" Context:{_data(m.context)}"
    elif m.context:
        s += " (transfer)"
    return s


def fmt_ready(rd: Ready) -> list[str]:
    out = [f"Ready MustSync={str(rd.must_sync).lower()}:"]
    if rd.soft_state is not None:
        out.append(f"Lead:{rd.soft_state.leader or '-'} State:{rd.soft_state.role.value}")
    if rd.hard_state is not None:
        out.append(fmt_hard_state(rd.hard_state))
    if rd.entries:
        out.append("Entries:")
        out.extend(fmt_entry(e) for e in rd.entries)
    if rd.snapshot is not None:
        m = rd.snapshot.meta
        out.append(f"Snapshot Index:{m.index} Term:{m.term} voters={','.join(m.conf.voters)}")
    if rd.committed_entries:
        out.append("CommittedEntries:")
        out.extend(fmt_entry(e) for e in rd.committed_entries)
    if rd.messages:
        out.append("Messages:")
        out.extend(fmt_msg(m) for m in rd.messages)
    if rd.read_states:
        out.append("ReadStates:")
        out.extend(f"Index:{rs.index} Context:{_data(rs.context)}" for rs in rd.read_states)
    return out
