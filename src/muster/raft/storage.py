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
``raft_trailing_logs``, pitfall P6).
"""

from __future__ import annotations

from .errors import CompactedError, UnavailableError
from .log import limit_size
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta

__all__ = ["MemoryStorage"]


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

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` (which must be covered by the snapshot)."""
        if index <= self.ci:
            return
        if index > self.snap.meta.index:
            raise ValueError(f"cannot compact to {index} beyond snapshot {self.snap.meta.index}")
        t = self.term(index)
        del self.ents[: index - self.ci]
        self.ci, self.ct = index, t
