"""KV history: the last versions of every key, replicated with the KV table (a Muster extension,
docs/kv-history.md; Consul has no equivalent).

Every KV write or delete that changes a key appends one ``KVVersion`` to that key's history, in
the same write transaction as the change itself (``KVTable._put``/``_remove`` call ``record``),
so a refused or rolled-back command leaves no version behind and a version exists exactly when
its change does.  What a version holds comes from the log entry only: the new value and flags
(references to the bytes the entry holds, never copies), the log index (the entry's
ModifyIndex, or the deletion index), the operation, and the leader-stamped time and the
caller's identity the command carries (``WriteTxn.meta``).  The FSM never reads a clock, so
every replica that applies the same log holds the same history.

Bounds (``HistoryPolicy``): at most ``versions`` per key (the newest, the current value
included), and, on each write of a key, versions older than ``max_age`` before the command's
time are dropped.  ``prune`` (run by the leader's periodic reap command, with the leader's time)
applies the age bound to keys no longer written; it keeps the newest version of a key that still
exists, since that one describes the current value.  A key's history outlives the key (a deleted
key can be restored), until its versions age out.

The policy is local configuration (``kv_history`` block) and must be the same on every server,
as the bounds shape replicated state.  ``versions == 0`` turns recording off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .sortedkeys import SortedKeys

if TYPE_CHECKING:
    from .write import WriteTxn

#: The operations a version may record: the KV verbs, a session invalidation releasing or
#: deleting a key it held, and a rollback (a CAS write, or a CAS delete when the restored
#: version is a deletion).
WRITE_OPS = frozenset({"set", "cas", "lock", "unlock", "session-release", "rollback"})
DELETE_OPS = frozenset({"delete", "delete-cas", "delete-tree", "session-delete", "rollback-delete"})

DEFAULT_VERSIONS = 10
DEFAULT_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class HistoryPolicy:
    """How much history each key keeps.  ``versions`` 0 disables recording; ``max_age`` 0 means
    no age bound."""

    versions: int = DEFAULT_VERSIONS
    max_age: float = DEFAULT_MAX_AGE

    @property
    def enabled(self) -> bool:
        return self.versions > 0


class KVVersion(msgspec.Struct, gc=False, array_like=True, frozen=True):
    """One version of a key.  ``index`` is the log index that made it (the entry's ModifyIndex,
    or the index of the delete); ``value`` None with op ``delete*`` means the key was removed.
    ``ts`` is the leader's wall time when the command was proposed; ``accessor`` the caller's
    token AccessorID (empty when ACLs are off or the change came from the servers themselves,
    e.g. a session invalidation); ``addr`` the client address the HTTP request came from;
    ``rollback_of`` the index of the version a rollback restored."""

    index: int
    op: str
    ts: float
    value: bytes | None
    flags: int = 0
    session: str = ""
    accessor: str = ""
    addr: str = ""
    rollback_of: int = 0

    @property
    def deleted(self) -> bool:
        """True for a version that removed the key (as opposed to one with an empty value)."""
        return self.op in DELETE_OPS


class Versions(msgspec.Struct, gc=False, frozen=True):
    """A key's versions, oldest first (``all``), as the value of ``KVHistory.rows``.

    Why a struct around the tuple: a dict is tracked by the garbage collector as soon as a
    tracked object is stored in it, and a new tuple is tracked until a collection looks at it.
    With bare tuples every history write re-tracked the dict of all keys, and the next full
    collection walked all of it on the event loop (~28 ms at 1M keys in process).  This struct
    is never tracked (``gc=False``; it cannot be part of a cycle: it holds a tuple of
    ``gc=False`` versions), so the dict never is.  Costs one small object per key."""

    all: tuple[KVVersion, ...]


class KVHistory:
    """Per-key tuples of versions, oldest first (``rows[key].all``).  Rows change only through
    ``tx`` (a row is replaced, never mutated), so a rollback of the transaction restores them
    exactly."""

    __slots__ = ("policy", "rows", "keys", "frozen")

    def __init__(self, policy: HistoryPolicy) -> None:
        self.policy = policy
        self.rows: dict[str, Versions] = {}
        self.keys = SortedKeys()  # for prefix reads and snapshots, O(log n) inserts
        #: Copy-on-write while a snapshot view is open (as ``KVTable.frozen``): the versions
        #: each key changed since had when the view was taken (None: no history then).
        self.frozen: dict[str, Versions | None] | None = None

    def _cow(self, key: str) -> None:
        fr = self.frozen
        if fr is not None and key not in fr:
            fr[key] = self.rows.get(key)

    # ------------------------------------------------------------------ writes

    def record(self, tx: WriteTxn, key: str, op: str, value: bytes | None, flags: int, session: str) -> None:
        """Append the version written at ``tx.index`` (called by the KV table, once per change)."""
        ts, accessor, addr, rollback_of = tx.meta
        v = KVVersion(tx.index, op, ts, value, flags, session, accessor, addr, rollback_of)
        rows = self.rows
        old = rows.get(key)
        self._cow(key)
        if old is None:
            tx.insort(self.keys, key)
            tx.put(rows, key, Versions((v,)))
            return
        pol = self.policy
        keep = old.all[1 - pol.versions :] if pol.versions > 1 else ()
        if keep and pol.max_age and ts and keep[0].ts < ts - pol.max_age:
            cutoff = ts - pol.max_age
            keep = tuple(x for x in keep if x.ts >= cutoff)
        tx.put(rows, key, Versions((*keep, v)))

    def prune(self, tx: WriteTxn, now: float, live: dict[str, Any]) -> int:
        """Drop versions older than ``max_age`` before ``now`` (a leader-stamped time), keeping
        the newest version of every key present in ``live``; returns how many were dropped."""
        pol = self.policy
        if not pol.max_age or not now:
            return 0
        cutoff = now - pol.max_age
        dropped = 0
        for key in [k for k, row in self.rows.items() if row.all[0].ts < cutoff]:
            vs = self.rows[key].all
            keep = tuple(x for x in vs if x.ts >= cutoff)
            if not keep and key in live:
                keep = vs[-1:]
            dropped += len(vs) - len(keep)
            self._cow(key)
            if keep:
                tx.put(self.rows, key, Versions(keep))
            else:
                tx.pop(self.rows, key)
                tx.sorted_remove(self.keys, key)
        return dropped

    def prunable(self, now: float, live: dict[str, Any]) -> bool:
        """Whether ``prune(now)`` would drop anything (the leader asks before proposing it)."""
        pol = self.policy
        if not pol.max_age or not now:
            return False
        cutoff = now - pol.max_age
        return any(
            row.all[0].ts < cutoff and (len(row.all) > 1 or k not in live) for k, row in self.rows.items()
        )

    # ------------------------------------------------------------------ reads

    def get(self, key: str) -> tuple[KVVersion, ...]:
        row = self.rows.get(key)
        return row.all if row is not None else ()

    def scan(self, prefix: str) -> list[tuple[str, tuple[KVVersion, ...]]]:
        """Every key under ``prefix`` that has history, in key order."""
        rows = self.rows
        if not prefix:
            return [(k, rows[k].all) for k in self.keys]
        above = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix[-1] != "\U0010ffff" else None
        return [(k, rows[k].all) for k in self.keys.irange(prefix, above)]

    def version_count(self) -> int:
        return sum(len(row.all) for row in self.rows.values())

    # ------------------------------------------------------------------ snapshots

    def dump(self) -> list[Any]:
        """Canonical snapshot form: ``[[key, [version tuple, ...]], ...]`` in key order."""
        return [[k, [msgspec.structs.astuple(v) for v in self.rows[k].all]] for k in self.keys]

    def load(self, rows: list[Any]) -> None:
        """From ``dump``'s form; the versions may already be decoded ``KVVersion``s."""
        for key, versions in rows:
            self.rows[key] = Versions(tuple(v if isinstance(v, KVVersion) else KVVersion(*v) for v in versions))
        self.keys = SortedKeys(self.rows)
