"""Muster's Raft: a sans-IO consensus core in the style of etcd-io/raft.

Modules
-------
* :mod:`.messages` - wire/log types (``Entry``, ``HardState``, ``ConfState``,
  ``SnapshotMeta``, ``Message`` + ``MsgType``), msgpack-encoded with msgspec.
  Peers are node-id strings (UUIDs), never addresses.
* :mod:`.log` - the log view (durable ``Storage`` prefix + unstable tail).
* :mod:`.progress` - per-follower progress (probe/replicate/snapshot), inflight
  limits, and the pure majority math for commit and votes.
* :mod:`.core` - :class:`~muster.raft.core.RaftCore`, the state machine.
* :mod:`.storage` - :class:`~muster.raft.storage.MemoryStorage` (tests,
  simulator) and :class:`~muster.raft.storage.DiskStorage` (CRC-framed WAL
  with group commit, torn-tail repair, atomic snapshot files).
* :mod:`.errors` - ``NotLeader`` (with leader hint), ``ProposalDropped``,
  ``ConfChangeRejected``, ``CorruptLogError``, ...

Stable interfaces other packages rely on
----------------------------------------
**Core.** ``RaftCore(id, storage, rng, config=RaftConfig(...), peers=None)``;
inputs ``tick()``, ``step(msg)``, ``propose(data) -> (index, term)`` (raises
``NotLeader``), ``propose_conf_change(ConfChangeType, node_id)``,
``read_index(ctx)``, ``campaign()``, ``transfer_leadership(to)``; outputs
``has_ready()``, ``ready() -> Ready``, ``advance(ready)``.  Randomness comes
only from the injected ``random.Random``; time only from ``tick()``.

**Driver loop** (``Ready`` docstring has the details)::

    while core.has_ready():
        rd = core.ready()
        storage.persist(rd.hard_state, rd.entries, rd.snapshot, rd.must_sync)  # 1. persist (one fsync)
        transport.send(rd.messages)                                             # 2. then send
        if rd.snapshot: fsm.restore(rd.snapshot.data)                           # 3. apply
        for e in rd.committed_entries:
            if e.type is EntryType.NORMAL: fsm.apply(e.index, e.data)
        answer(rd.read_states)      # their index is already applied (the core checks)
        core.advance(rd)                                                        # 4. advance

(``muster.server.raftlog`` refines this: ``rd.early_messages()`` splits out a
leader's MsgApps/heartbeats, which leave before the fsync, and committed
entries are applied while it runs; see the ``Ready`` docstring.)

A proposal ``(index, term)`` succeeded iff the entry applied at ``index`` has
that ``term``; otherwise leadership was lost and the outcome is unknown to
the client (exactly Consul's semantics).

**FSM** (implemented by ``muster.fsm``): ``apply(index: int, data: bytes) ->
object`` (deterministic, no clock or RNG), ``snapshot() -> bytes`` and
``restore(data: bytes)`` (replaces all state).  After applying, the driver may
call ``storage.create_snapshot(applied, core.conf_state(), fsm.snapshot())``
and ``storage.compact(applied - trailing_logs)``.

**Membership.** Single-server changes take effect when *applied*; the leader
accepts one only after its own-term no-op committed and the previous change
was applied.  CONF entries carry the resulting configuration, so applying is
idempotent.

Testing: transcripts in ``tests/raft/testdata``, the seeded fault simulator
``python -m muster_testkit.raft.sim --seed N`` (test kit, ``tests/support/``).
"""

from .core import RaftConfig, RaftCore, ReadState, Ready, Role, SoftState
from .errors import ConfChangeRejected, CorruptLogError, NotLeader, ProposalDropped, RaftError
from .messages import (
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "ConfChangeRejected",
    "ConfChangeType",
    "ConfState",
    "CorruptLogError",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MsgType",
    "NotLeader",
    "ProposalDropped",
    "RaftConfig",
    "RaftCore",
    "RaftError",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
]
