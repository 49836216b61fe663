"""The Raft log as the core sees it: a durable prefix (``Storage``) plus an
unstable tail that has been accepted but not yet persisted.

Layout (indexes grow to the right)::

    snapshot.index | storage entries ........ | unstable entries .......
                   ^ first_index()            ^ unstable.offset         ^ last_index()

Invariants (checked where cheap, relied upon everywhere):

* ``applied <= committed <= last_index()`` at all times.
* ``committed`` never decreases; entries at or below it are never overwritten
  (a follower truncates only above its commit index, and a leader never truncates).
* The unstable tail, when non-empty, starts at ``unstable.offset`` and is
  contiguous; it shadows any storage entries at the same indexes (they are
  replaced when the driver persists the tail, because ``Storage.append``
  truncates conflicting suffixes).
* An unstable snapshot, when present, replaces everything up to its index.
"""

from __future__ import annotations

from typing import Protocol

from .errors import CompactedError, UnavailableError
from .messages import ConfState, Entry, HardState, Snapshot, entry_size

__all__ = ["RaftLog", "Storage", "Unstable", "limit_size"]


class Storage(Protocol):
    """Read-only view of the durable log that the core consults.

    Writes (append, hard state, snapshot install, compaction) are made by the
    driver while handling a ``Ready``; the core never writes storage itself.
    ``term(i)`` must answer for ``first_index() - 1 <= i <= last_index()``
    (``first_index() - 1`` is the snapshot's index) and raise
    :class:`CompactedError` below and :class:`UnavailableError` above.
    """

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]: ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """Truncate ``entries`` to ``max_bytes`` but always keep at least one entry,
    so that a single oversized entry can still make progress."""
    if max_bytes is None or not entries:
        return entries
    total = entry_size(entries[0])
    for i in range(1, len(entries)):
        total += entry_size(entries[i])
        if total > max_bytes:
            return entries[:i]
    return entries


class Unstable:
    """Entries (and possibly a snapshot) accepted but not yet durable."""

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        #: index of ``entries[0]`` (or where the next appended entry would go).
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.meta.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to ``index``; drop them if still ours.

        The term check makes this safe when the tail was replaced (by a leader's
        conflicting entries) while the driver was persisting the older version.
        """
        t = self.maybe_term(index)
        if t is None or t != term or index < self.offset:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.meta.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace the whole tail; the storage suffix from ``after`` is
            # truncated when the driver persists these entries.
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)


class RaftLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # The FSM restarts from the latest snapshot, which may be newer than
        # the compaction point (trailing logs are kept behind the snapshot).
        base = max(first - 1, storage.snapshot().meta.index)
        #: Highest index known to be committed (stored on a quorum).
        self.committed = base
        #: Highest index the application has applied (acknowledged by ``advance``).
        self.applied = base

    # -- positions ----------------------------------------------------------
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """Term of entry ``i``; 0 if ``i`` is past the end; raises
        :class:`CompactedError` if ``i`` precedes the snapshot."""
        dummy = self.first_index() - 1
        if i < dummy:
            raise CompactedError(f"index {i} compacted (first index {dummy + 1})")
        if i > self.last_index():
            return 0
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        try:
            return self.storage.term(i)
        except UnavailableError:
            return 0

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except CompactedError:
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1 election restriction: the candidate's log is at least as
        up to date as ours."""
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    # -- reading ------------------------------------------------------------
    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)``; raises :class:`CompactedError` if ``lo`` is compacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(f"index {lo} compacted")
        if hi > self.last_index() + 1:
            raise ValueError(f"slice [{lo}, {hi}) out of bound (last {self.last_index()})")
        ents: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            ents = self.storage.entries(lo, min(hi, off), max_bytes)
            if len(ents) < min(hi, off) - lo:
                return ents  # size-limited by storage
        if hi > off:
            u = self.unstable.entries[max(lo, off) - off : hi - off]
            ents = ents + u if ents else list(u)
        return limit_size(ents, max_bytes)

    def entries_from(self, lo: int, max_bytes: int | None = None) -> list[Entry]:
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def next_committed_entries(self) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1)
        return []

    def has_next_committed_entries(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    # -- mutation -----------------------------------------------------------
    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise AssertionError(f"append after {after} would overwrite committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """First index in ``ents`` whose term differs from ours (or that we lack); 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest ``i <= index`` with ``term(i) <= term`` (fast log backtracking).

        Used in both directions of a rejected MsgApp: any entry with a term
        greater than ``term`` cannot match, so the probe can skip it.
        """
        i = min(index, self.last_index())
        while i > 0:
            try:
                if self.term(i) <= term:
                    return i
            except CompactedError:
                return i
            i -= 1
        return 0

    def maybe_append(self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]) -> int | None:
        """Follower side of AppendEntries.  Returns the last index of the new
        entries on success, ``None`` if the log does not contain
        ``(index, log_term)``."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise AssertionError(
                    f"entry {ci} conflicts with committed entry (committed {self.committed})"
                )
            self.append(list(ents[ci - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise AssertionError(f"applied {index} outside [{self.applied}, {self.committed}]")
        self.applied = index

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.meta.index
        self.unstable.restore(snap)
