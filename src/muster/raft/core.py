"""The sans-IO Raft state machine.

``RaftCore`` owns no sockets, threads, timers or files.  Its inputs are
:meth:`RaftCore.tick` (abstract time), :meth:`RaftCore.step` (a message from a
peer) and the local requests (:meth:`propose`, :meth:`read_index`,
:meth:`campaign`, :meth:`transfer_leadership`, :meth:`propose_conf_change`).
Its output is a :class:`Ready` batch obtained with :meth:`ready` and
acknowledged with :meth:`advance`.  Randomness (election jitter) comes only
from the injected ``random.Random``, so a seeded run is exactly reproducible.

Features: pre-vote (Ongaro's thesis §9.6), check-quorum (an isolated leader
steps down after one election timeout without hearing from a quorum, so within
2x), a no-op entry at the start of every term (Raft paper §5.4.2: earlier-term
entries are committed only indirectly), pipelined and batched replication with
inflight limits, ReadIndex reads (thesis §6.4), leadership transfer
(MsgTimeoutNow, thesis §3.10), single-server membership changes one at a time
(thesis §4.1 with the "own-term entry committed first" fix), non-voting
learners, and snapshot installation streamed in chunks.  The pitfalls P1-P12
these guard against are described in docs/compat/raft.md.

Role behaviour is split into ``_step_leader``, ``_step_candidate`` and
``_step_follower``; term handling common to all roles is in :meth:`step`.
Invariant breaches raise ``AssertionError`` (a node must stop rather than
diverge).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from .errors import CompactedError, ConfChangeRejected, NotLeader, ProposalDropped
from .log import RaftLog, Storage
from .messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
    decode_conf_change,
    encode_conf_change,
    entry_size,
)
from .progress import Progress, ProgressState, VoteResult, committed_index, vote_result

__all__ = ["RaftConfig", "RaftCore", "ReadState", "Ready", "Role", "SoftState", "TRANSFER_CONTEXT"]

#: ``context`` of a MsgVote sent because of MsgTimeoutNow: voters ignore their
#: leader lease for it (the old leader asked for this election).
TRANSFER_CONTEXT = b"transfer"


class Role(enum.Enum):
    FOLLOWER = "StateFollower"
    PRE_CANDIDATE = "StatePreCandidate"
    CANDIDATE = "StateCandidate"
    LEADER = "StateLeader"


@dataclass(frozen=True)
class SoftState:
    """Volatile state reported for observation (never persisted)."""

    leader: str | None
    role: Role


@dataclass(frozen=True)
class ReadState:
    """A linearizable read may be served once the FSM reflects ``index``.

    The core only releases a ReadState after the application has acknowledged
    (via :meth:`RaftCore.advance`) applying every entry up to ``index``, so the
    driver may answer the read as soon as it sees it in a Ready.
    """

    index: int
    context: bytes


@dataclass
class Ready:
    """A batch of work for the driver.  **Ordering contract** (etcd's):

    1. Persist ``snapshot`` (if any), then append ``entries`` (truncating any
       conflicting suffix in storage), then write ``hard_state`` (if any), and
       fsync if ``must_sync``.  One fsync covers the whole batch (group commit).
    2. Only then send ``messages``.  Votes, append acknowledgements and
       snapshot acknowledgements all describe state that step 1 made durable;
       sending them earlier could lose an acknowledged write or let a node vote
       twice in a term after a crash.
    3. Apply: restore the FSM from ``snapshot.data`` if a snapshot was given,
       then ``fsm.apply(e.index, e.data)`` for every NORMAL entry of
       ``committed_entries`` in order (NOOP and CONF entries are bookkeeping for
       the core and are skipped by the FSM).
    4. Call :meth:`RaftCore.advance` with this Ready.  ``read_states`` may be
       answered at any point of this sequence: their index is already applied.

    ``must_sync`` is false when nothing but the commit index changed: a lost
    commit index is re-learned from the leader after a restart, so that write
    may ride along with the next fsync.  (Term, vote, entries and snapshots
    always require the fsync before step 2.)

    ``tick``/``step``/``propose`` may be called between :meth:`RaftCore.ready`
    and :meth:`RaftCore.advance` (e.g. while an fsync is in flight), but
    ``ready()`` may not be called again before ``advance()``.

    **The leader's own write runs in parallel with replication** (etcd's
    ordering, Raft thesis §10.2.1): the messages of :meth:`early_messages` (a
    leader's MsgApp and heartbeats of a term that is already durable) may be
    sent as soon as step 1's writes are issued, *before* its fsync; the rest
    only after it.  This is safe because the leader never counts its own copy
    of an entry toward a quorum before :meth:`RaftCore.advance` reported it
    durable (its own ``match`` only moves in ``advance``), so the commit index
    those messages carry only covers entries durable on a quorum.  Committed
    entries may likewise be applied before the fsync of this Ready's new
    entries: they are durable on a quorum already.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False
    #: The term already durable before this Ready (the last one handed out and advanced).
    persisted_term: int = 0

    def early_messages(self) -> tuple[list[Message], list[Message]]:
        """Split ``messages`` into (may leave before this Ready's fsync, must wait for it).

        Early: a leader's MsgApp and heartbeats whose term was durable before this
        Ready.  They carry the leader's entries (which followers make durable
        themselves before acknowledging) and a commit index that counts only
        durable copies; they state nothing about this node's own durable state.
        Everything else (votes, acknowledgements, snapshot chunks, MsgTimeoutNow,
        read-index answers) waits for the fsync.
        """
        early: list[Message] = []
        late: list[Message] = []
        for m in self.messages:
            if m.type in _EARLY_TYPES and m.term <= self.persisted_term:
                early.append(m)
            else:
                late.append(m)
        return early, late


_EARLY_TYPES = frozenset({MsgType.APP, MsgType.HEARTBEAT})


@dataclass(frozen=True)
class RaftConfig:
    """Tuning knobs.  Defaults: 100 ms ticks -> 1 s election timeout, 100 ms heartbeats."""

    election_ticks: int = 10
    heartbeat_ticks: int = 1
    #: Run a pre-vote round before incrementing the term (thesis §9.6): a
    #: node that cannot win (partitioned, or with a stale log) never bumps
    #: the term and so never deposes a healthy leader (pitfall P5, docs/compat/raft.md).
    pre_vote: bool = True
    #: The leader steps down after an election timeout without hearing from
    #: a quorum (pitfall P3).  Also gives followers a leader lease: they ignore
    #: vote requests while they hear from a leader, which is what stops a server
    #: removed from the configuration from disrupting the cluster (thesis §4.2.3).
    check_quorum: bool = True
    #: Soft cap on entry bytes in one MsgApp (at least one entry is always sent).
    max_msg_bytes: int = 1 << 20
    #: Unacknowledged MsgApps per follower in REPLICATE state.
    max_inflight_msgs: int = 256
    #: Unacknowledged entry bytes per follower (0 = unlimited).
    max_inflight_bytes: int = 0
    #: Size of one MsgSnap chunk.
    snapshot_chunk_bytes: int = 64 * 1024
    #: Cap on the payload bytes a leader holds proposed but not yet committed
    #: (0 = unlimited).  A leader that cannot reach a quorum then refuses
    #: proposals (ProposalDropped) instead of growing its log without bound.
    max_uncommitted_bytes: int = 0


@dataclass
class _ReadRequest:
    index: int
    frm: str
    context: bytes
    acks: set[str]


class RaftCore:
    """One Raft peer.  Not thread-safe: drive it from a single task.

    ``peers`` is used only when the storage holds no configuration (a fresh
    cluster that was not bootstrapped through its storage); the durable
    configuration always wins.
    """

    def __init__(
        self,
        id: str,
        storage: Storage,
        rng: random.Random,
        config: RaftConfig | None = None,
        peers: list[str] | None = None,
    ) -> None:
        if not id:
            raise ValueError("node id must be non-empty")
        self.id = id
        self.cfg = config or RaftConfig()
        if self.cfg.heartbeat_ticks >= self.cfg.election_ticks:
            raise ValueError("heartbeat_ticks must be smaller than election_ticks")
        self.rng = rng
        self.log = RaftLog(storage)
        hs, cs = storage.initial_state()
        if not cs.voters and not cs.learners and peers:
            cs = ConfState(voters=tuple(peers))
        self.term = hs.term
        self.vote = hs.vote
        self.lead: str | None = None
        self.role = Role.FOLLOWER
        self.voters: tuple[str, ...] = ()
        self.learners: tuple[str, ...] = ()
        self.prs: dict[str, Progress] = {}
        #: Index of the last CONF entry whose configuration is in effect.
        self.conf_index = self.log.applied
        self._set_conf(cs)
        # The persisted commit index may lag the snapshot (it is written
        # without fsync, while snapshots are fsynced at once): a snapshot only
        # ever holds committed state, so the larger of the two is committed.
        if hs.commit > self.log.committed:
            if hs.commit > self.log.last_index():
                raise AssertionError(
                    f"hard state commit {hs.commit} beyond last index {self.log.last_index()}"
                )
            self.log.committed = hs.commit
        # Configuration changes take effect when applied; entries up to
        # ``committed`` are known committed, so adopt their configuration now
        # rather than campaigning with a stale one after a restart.
        self._apply_committed_conf_changes(self.log.applied + 1, self.log.committed)

        self.votes: dict[str, bool] = {}
        self.msgs: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_ticks
        self.lead_transferee: str | None = None
        self.pending_conf_index = 0
        self._read_queue: list[_ReadRequest] = []
        #: The followers whose acknowledgements completed the last ReadIndex round (the first
        #: to answer, just enough for a quorum with this leader).  The next round's heartbeat
        #: goes to them only; the others hear the pending round's context with the next
        #: periodic heartbeat, which goes to everyone, so a chosen follower that stops
        #: answering delays reads by at most one heartbeat interval.  Empty: ask everyone.
        self._read_peers: tuple[str, ...] = ()
        self._pending_read_msgs: list[tuple[str, bytes]] = []
        self._reads_waiting_apply: list[ReadState] = []
        self._reads_ready: list[ReadState] = []
        # Receiving a chunked snapshot: the stream being assembled and its bytes.
        # The stream is identified by sender, its term and the snapshot
        # position, so chunks of two encodings of the same state (from two
        # leaders) are never spliced together.
        self._snap_key: tuple[str, int, int, int] | None = None
        self._snap_buf = bytearray()

        self._prev_hard = HardState(hs.term, hs.vote, self.log.committed)
        self._prev_soft = SoftState(None, Role.FOLLOWER)
        self._ready_outstanding = False
        self._flush_pending = False
        self._become_follower(self.term, None)

    # ------------------------------------------------------------------ state
    @property
    def committed(self) -> int:
        return self.log.committed

    @property
    def applied(self) -> int:
        return self.log.applied

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners)

    def promotable(self) -> bool:
        return self.id in self.voters

    def _set_conf(self, cs: ConfState) -> None:
        self._read_peers = ()  # the quorum may have changed: the next read round asks everyone
        old = set(self.prs)
        self.voters = tuple(sorted(cs.voters))
        self.learners = tuple(sorted(cs.learners))
        members = set(self.voters) | set(self.learners)
        for gone in old - members:
            del self.prs[gone]
        last = self.log.last_index()
        for nid in sorted(members):
            pr = self.prs.get(nid)
            if pr is None:
                pr = Progress(last + 1, self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes, False)
                # New peers must not be judged inactive before they had a chance.
                pr.recent_active = True
                if nid == self.id:
                    pr.match = self._durable_last()
                self.prs[nid] = pr
            pr.is_learner = nid in self.learners

    def _apply_committed_conf_changes(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        for e in self.log.slice(lo, hi + 1):
            if e.type is EntryType.CONF and e.index > self.conf_index:
                self._apply_conf_entry(e)

    def _apply_conf_entry(self, e: Entry) -> None:
        cc = decode_conf_change(e.data)
        self.conf_index = e.index
        self._set_conf(cc.conf)

    # ------------------------------------------------------------------ sending
    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def _msg(self, type: MsgType, to: str, **kw: object) -> Message:
        kw.setdefault("term", self.term)
        return Message(type=type, to=to, frm=self.id, **kw)  # type: ignore[arg-type]

    def _send_append(self, to: str, send_if_empty: bool = True) -> bool:
        """Send one MsgApp (or start a snapshot) to ``to``; False if nothing was sent."""
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            ents = self.log.entries_from(pr.next, self.cfg.max_msg_bytes)
        except CompactedError:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            self._msg(
                MsgType.APP,
                to,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(ents),
                commit=self.log.committed,
            )
        )
        pr.sent_commit = max(pr.sent_commit, self.log.committed)
        if ents:
            pr.sent_entries(ents[-1].index, sum(entry_size(e) for e in ents))
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        if not pr.recent_active:
            # Do not stream a snapshot to a peer we have not heard from lately.
            return False
        snap = self.log.snapshot()
        if snap.meta.index == 0:
            raise AssertionError("need a non-empty snapshot to catch up a follower")
        pr.become_snapshot(snap)
        self._send_snap_chunk(to, pr)
        return True

    def _send_snap_chunk(self, to: str, pr: Progress) -> None:
        snap = pr.snap
        if snap is None:
            return
        off = pr.snap_offset
        chunk = snap.data[off : off + self.cfg.snapshot_chunk_bytes]
        done = off + len(chunk) >= len(snap.data)
        pr.snap_idle = 0
        self._send(
            self._msg(MsgType.SNAP, to, snapshot=snap.meta, snap_offset=off, snap_data=chunk, snap_done=done)
        )

    def _bcast_append(self) -> None:
        for nid in self.prs:
            if nid != self.id:
                self._send_append(nid)

    def _bcast_heartbeat(self, context: bytes = b"") -> None:
        if not context and self._read_queue:
            context = self._read_queue[-1].context
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            commit = min(pr.match, self.log.committed)
            pr.sent_commit = max(pr.sent_commit, commit)
            self._send(self._msg(MsgType.HEARTBEAT, nid, commit=commit, context=context))

    # ------------------------------------------------------------------ role changes
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_ticks + self.rng.randrange(
            self.cfg.election_ticks
        )
        self.lead_transferee = None
        self.votes = {}
        last = self.log.last_index()
        for nid, pr in self.prs.items():
            learner = pr.is_learner
            fresh = Progress(last + 1, self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes, learner)
            if nid == self.id:
                fresh.match = self._durable_last()
            self.prs[nid] = fresh
        self.pending_conf_index = 0
        self._uncommitted_bytes = 0
        self._read_queue = []
        self._read_peers = ()
        self._pending_read_msgs = []

    def _become_follower(self, term: int, lead: str | None) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise AssertionError("invalid transition leader -> pre-candidate")
        # Pre-candidacy changes neither term nor vote: that is its whole point.
        self.votes = {}
        self.lead = None
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise AssertionError("invalid transition leader -> candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        if self.role is Role.FOLLOWER:
            raise AssertionError("invalid transition follower -> leader")
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.prs[self.id].become_replicate()
        # Conservatively treat any entry already in our log as a possible
        # pending configuration change: no new change until it is applied.
        self.pending_conf_index = self.log.last_index()
        self._append_entries([Entry(0, 0, EntryType.NOOP)])

    # ------------------------------------------------------------------ elections
    def campaign(self) -> None:
        """Start an election now (the local equivalent of an election timeout).
        With pre-vote enabled this first runs a pre-vote round."""
        self._hup(transfer=False)

    def _hup(self, transfer: bool) -> None:
        if self.role is Role.LEADER:
            return
        if not self.promotable():
            return
        if self._has_unapplied_conf_changes():
            # Our configuration may be about to change; campaigning with the
            # old one could produce two leaders with disjoint quorums.
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_changes(self) -> bool:
        if self.log.applied >= self.log.committed:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        return any(e.type is EntryType.CONF for e in self.log.slice(lo, self.log.committed + 1))

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_msg, term = MsgType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_msg, term = MsgType.VOTE, self.term
        self.votes[self.id] = True
        if self._tally() is VoteResult.WON:
            # Single-voter cluster.
            if pre:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
            return
        ctx = TRANSFER_CONTEXT if transfer else b""
        for nid in self.voters:
            if nid == self.id:
                continue
            self._send(
                self._msg(
                    vote_msg,
                    nid,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=ctx,
                )
            )

    def _tally(self) -> VoteResult:
        return vote_result(self.voters, self.votes)

    # ------------------------------------------------------------------ ticks
    def tick(self) -> None:
        """Advance abstract time by one tick."""
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                if not self._quorum_active():
                    # CheckQuorum: we cannot prove we are still the leader.
                    self._become_follower(self.term, None)
                    return
                for nid, pr in self.prs.items():
                    pr.recent_active = nid == self.id
            if self.lead_transferee is not None:
                # The transfer did not finish within an election timeout.
                self.lead_transferee = None
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()
        for nid, pr in self.prs.items():
            if pr.state is ProgressState.SNAPSHOT and pr.snap is not None:
                pr.snap_idle += 1
                if pr.snap_idle >= max(2, self.cfg.election_ticks // 2):
                    # Chunk (or its ack) lost: resend from the last acknowledged offset.
                    self._send_snap_chunk(nid, pr)

    def _quorum_active(self) -> bool:
        active = {nid: True for nid, pr in self.prs.items() if pr.recent_active or nid == self.id}
        return vote_result(self.voters, active) is VoteResult.WON

    # ------------------------------------------------------------------ step
    def step(self, m: Message) -> None:
        """Process one message from a peer.  Messages not addressed to us, or from
        stale terms, are handled according to Raft's term rules."""
        if m.to != self.id:
            raise ValueError(f"message for {m.to} stepped into {self.id}")
        if m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                force = m.context == TRANSFER_CONTEXT
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead is not None
                    and self.election_elapsed < self.cfg.election_ticks
                )
                if in_lease and not force:
                    # We heard from a live leader within the election timeout;
                    # do not let a disruptive node depose it (pitfall P5).
                    return
            if m.type is MsgType.PRE_VOTE:
                pass  # never change term on a pre-vote request
            elif m.type is MsgType.PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-vote responses carry the future term
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, None)
        elif m.term < self.term:
            if m.type in (MsgType.HEARTBEAT, MsgType.APP):
                # A stale leader (healed from a partition, or removed from the
                # configuration so the new leader never contacts it) learns
                # our term and steps down.  With pre-vote/check-quorum this is
                # also what unsticks a node whose term ran ahead.
                self._send(self._msg(MsgType.APP_RESP, m.frm))
            elif m.type is MsgType.PRE_VOTE:
                self._send(self._msg(MsgType.PRE_VOTE_RESP, m.frm, reject=True))
            elif m.type is MsgType.VOTE:
                # Tell a stale candidate our term (Raft §5.1).  Without this, a
                # candidate whose only peers have a higher term but a shorter
                # log (e.g. a lagging node still on an old configuration that
                # campaigns elsewhere) would never catch up in term.
                self._send(self._msg(MsgType.VOTE_RESP, m.frm, reject=True))
            return

        if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
            return
        if self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead is None)
            or (m.type is MsgType.PRE_VOTE and m.term > self.term)
        )
        resp = MsgType.VOTE_RESP if m.type is MsgType.VOTE else MsgType.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(self._msg(resp, m.frm, term=m.term))
            if m.type is MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(self._msg(resp, m.frm, reject=True))

    # ---- leader
    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if m.type is MsgType.READ_INDEX:
            if pr is not None:
                self._handle_read_index(m.frm, m.context)
            return
        if pr is None:
            return
        if m.type is MsgType.APP_RESP:
            pr.recent_active = True
            self._handle_append_response(m, pr)
        elif m.type is MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context:
                self._read_ack(m.frm, m.context)
        elif m.type is MsgType.SNAP_RESP:
            pr.recent_active = True
            if pr.state is not ProgressState.SNAPSHOT or pr.snap is None:
                return
            if m.snapshot is None or m.snapshot.index != pr.pending_snapshot:
                return
            pr.snap_offset = m.snap_offset
            if m.snap_offset < len(pr.snap.data) or m.reject:
                self._send_snap_chunk(m.frm, pr)

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        if not pr.maybe_update(m.index) and not (pr.match == m.index and pr.state is ProgressState.PROBE):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        self._maybe_commit()
        # Further entries and commit-index updates go out when the driver next
        # asks for a Ready, so a burst of acknowledgements yields one MsgApp
        # per follower instead of one per acknowledgement.
        self._flush_pending = True
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(self._msg(MsgType.TIMEOUT_NOW, m.frm))

    def _maybe_commit(self) -> bool:
        """Advance the commit index to the highest index stored on a quorum of
        voters, but only if that entry is from the current term (Figure 8:
        counting replicas of older-term entries is unsafe)."""
        mci = committed_index(self.voters, {nid: pr.match for nid, pr in self.prs.items()})
        if mci <= self.log.committed:
            return False
        if self.log.term(mci) != self.term:
            return False
        first_own_term_commit = not self._committed_in_current_term()
        if self._uncommitted_bytes:
            done = sum(len(e.data) for e in self.log.slice(self.log.committed + 1, mci + 1))
            self._uncommitted_bytes = max(0, self._uncommitted_bytes - done)
        self.log.commit_to(mci)
        if first_own_term_commit:
            self._release_pending_read_msgs()
        return True

    def _committed_in_current_term(self) -> bool:
        try:
            return self.log.term(self.log.committed) == self.term
        except CompactedError:
            return False

    # ---- candidate
    def _step_candidate(self, m: Message) -> None:
        expected = MsgType.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            self._become_follower(m.term, m.frm)
            self._step_follower(m)
        elif m.type is expected:
            self.votes.setdefault(m.frm, not m.reject)
            res = self._tally()
            if res is VoteResult.WON and not self.promotable():
                # Our own removal was applied mid-election: never lead a
                # configuration we are not part of.
                self._become_follower(self.term, None)
            elif res is VoteResult.WON:
                if self.role is Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif res is VoteResult.LOST:
                self._become_follower(self.term, None)

    # ---- follower
    def _step_follower(self, m: Message) -> None:
        if m.type is MsgType.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif m.type is MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(self._msg(MsgType.HEARTBEAT_RESP, m.frm, context=m.context))
        elif m.type is MsgType.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot_chunk(m)
        elif m.type is MsgType.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif m.type is MsgType.READ_INDEX_RESP:
            self._reads_waiting_apply.append(ReadState(m.index, m.context))
            self._release_applied_reads()

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(self._msg(MsgType.APP_RESP, m.frm, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(self._msg(MsgType.APP_RESP, m.frm, index=last_new))
            return
        hint = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        try:
            hint_term = self.log.term(hint)
        except CompactedError:
            hint_term = 0
        self._send(
            self._msg(
                MsgType.APP_RESP, m.frm, index=m.index, reject=True, reject_hint=hint, log_term=hint_term
            )
        )

    def _handle_snapshot_chunk(self, m: Message) -> None:
        meta = m.snapshot
        if meta is None:
            return
        if meta.index <= self.log.committed:
            # Already have everything it covers (e.g. our ack got lost): report progress.
            self._snap_key = None
            self._snap_buf = bytearray()
            self._send(self._msg(MsgType.APP_RESP, m.frm, index=self.log.committed))
            return
        key = (m.frm, m.term, meta.index, meta.term)
        if m.snap_offset == 0 and self._snap_key != key:
            self._snap_key = key
            self._snap_buf = bytearray()
        if self._snap_key != key or m.snap_offset != len(self._snap_buf):
            have = len(self._snap_buf) if self._snap_key == key else 0
            self._send(self._msg(MsgType.SNAP_RESP, m.frm, snapshot=meta, snap_offset=have, reject=True))
            return
        self._snap_buf += m.snap_data
        if not m.snap_done:
            self._send(self._msg(MsgType.SNAP_RESP, m.frm, snapshot=meta, snap_offset=len(self._snap_buf)))
            return
        snap = Snapshot(meta, bytes(self._snap_buf))
        self._snap_key = None
        self._snap_buf = bytearray()
        if self._restore(snap):
            self._send(self._msg(MsgType.APP_RESP, m.frm, index=self.log.last_index()))
        else:
            self._send(self._msg(MsgType.APP_RESP, m.frm, index=self.log.committed))

    def _restore(self, snap: Snapshot) -> bool:
        """Install ``snap`` (Figure 13); False if it taught us nothing new."""
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            # Our log already contains the snapshot's last entry: keep the
            # suffix, just fast-forward the commit index (rule 6).
            self.log.commit_to(meta.index)
            return False
        # Otherwise discard the entire log (rule 7).
        self.log.restore(snap)
        self.conf_index = meta.index
        self._set_conf(meta.conf)
        return True

    # ------------------------------------------------------------------ reads
    def read_index(self, context: bytes) -> None:
        """Request a linearizable read identified by the unique ``context``.

        The answer arrives later as a :class:`ReadState` in a Ready, released
        only when (1) the leader had committed an entry of its term, (2) a
        heartbeat round started after the request was acknowledged by a quorum,
        and (3) this node applied up to the read index.  Requests are silently
        dropped if leadership is lost meanwhile; callers must time out and retry.
        Raises :class:`NotLeader` if no leader is known to forward to.
        """
        if self.role is Role.LEADER:
            self._handle_read_index(self.id, context)
        elif self.lead is not None:
            self._send(self._msg(MsgType.READ_INDEX, self.lead, context=context))
        else:
            raise NotLeader(None)

    def _handle_read_index(self, frm: str, context: bytes) -> None:
        if self.voters == (self.id,):
            self._read_respond(frm, self.log.committed, context)
            return
        if not self._committed_in_current_term():
            # The commit index we know may be behind the cluster's until our
            # no-op commits (pitfall P4); queue until then.
            self._pending_read_msgs.append((frm, context))
            return
        if any(r.context == context for r in self._read_queue):
            return
        self._read_queue.append(_ReadRequest(self.log.committed, frm, context, {self.id}))
        self._read_heartbeat(context)

    def _read_heartbeat(self, context: bytes) -> None:
        """Ask for the quorum round confirming the read ``context``: a heartbeat carrying it to
        ``_read_peers`` (a quorum with this leader) when they are still voters, else to all.

        Any quorum of acknowledgements of a heartbeat sent after the request confirms that
        no other leader had been elected by then (thesis §6.4); asking only as many followers
        as that takes saves the others the round (a CPU cost per round on every server)."""
        peers = self._read_peers
        if not peers or any(p not in self.prs or p not in self.voters for p in peers):
            self._read_peers = ()
            self._bcast_heartbeat(context)
            return
        for nid in peers:
            pr = self.prs[nid]
            commit = min(pr.match, self.log.committed)
            pr.sent_commit = max(pr.sent_commit, commit)
            self._send(self._msg(MsgType.HEARTBEAT, nid, commit=commit, context=context))

    def _release_pending_read_msgs(self) -> None:
        pending, self._pending_read_msgs = self._pending_read_msgs, []
        for frm, ctx in pending:
            self._handle_read_index(frm, ctx)

    def _read_ack(self, frm: str, context: bytes) -> None:
        pos = next((i for i, r in enumerate(self._read_queue) if r.context == context), None)
        if pos is None:
            return
        req = self._read_queue[pos]
        req.acks.add(frm)
        if vote_result(self.voters, dict.fromkeys(req.acks, True)) is not VoteResult.WON:
            return
        # A quorum acknowledged a heartbeat sent after every earlier request too.  The
        # followers that made it are asked first next time.
        self._read_peers = tuple(a for a in req.acks if a != self.id)
        done, self._read_queue = self._read_queue[: pos + 1], self._read_queue[pos + 1 :]
        for r in done:
            self._read_respond(r.frm, r.index, r.context)

    def _read_respond(self, frm: str, index: int, context: bytes) -> None:
        if frm == self.id:
            self._reads_waiting_apply.append(ReadState(index, context))
            self._release_applied_reads()
        else:
            self._send(self._msg(MsgType.READ_INDEX_RESP, frm, index=index, context=context))

    def _release_applied_reads(self) -> None:
        keep: list[ReadState] = []
        for rs in self._reads_waiting_apply:
            (self._reads_ready if rs.index <= self.log.applied else keep).append(rs)
        self._reads_waiting_apply = keep

    # ------------------------------------------------------------------ proposals
    def _append_entries(self, ents: list[Entry]) -> tuple[int, int]:
        li = self.log.last_index()
        stamped = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        last = self.log.append(stamped)
        # The leader's own ``match`` is NOT moved here: the entries are not durable
        # yet.  It moves in ``advance`` once the driver has fsynced them, so the
        # leader never counts its own vote for an entry it could still lose.
        return last, self.term

    def _durable_last(self) -> int:
        """The last index of this node's log that the driver reported durable."""
        u = self.log.unstable
        if u.entries:
            return u.offset - 1
        return self.log.last_index()

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee is not None:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        if self.id not in self.prs:
            raise ProposalDropped("leader was removed from the configuration")

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command; returns its ``(index, term)``.  The command is applied
        iff an entry with that index *and* term is later committed."""
        self._check_can_propose()
        limit = self.cfg.max_uncommitted_bytes
        if limit and self._uncommitted_bytes and self._uncommitted_bytes + len(data) > limit:
            raise ProposalDropped(
                f"{self._uncommitted_bytes} bytes of proposals not yet committed (limit {limit})"
            )
        self._uncommitted_bytes += len(data)
        res = self._append_entries([Entry(0, 0, EntryType.NORMAL, data)])
        # Replication is deferred to the next Ready: proposals made between two
        # Readys are batched into one MsgApp per follower.
        self._flush_pending = True
        return res

    def propose_conf_change(self, change: ConfChangeType, node_id: str) -> tuple[int, int]:
        """Propose adding/removing one server.  Refused (ConfChangeRejected) while
        another change is uncommitted/unapplied or before this leader's own-term
        no-op has committed (P2, P10)."""
        self._check_can_propose()
        if not self._committed_in_current_term():
            raise ConfChangeRejected("leader has not yet committed an entry in its term")
        if self.pending_conf_index > self.log.applied:
            raise ConfChangeRejected(
                f"configuration change at index {self.pending_conf_index} not yet applied"
            )
        voters, learners = set(self.voters), set(self.learners)
        if change is ConfChangeType.ADD_VOTER:
            if node_id in voters:
                raise ConfChangeRejected(f"{node_id} is already a voter")
            learners.discard(node_id)
            voters.add(node_id)
        elif change is ConfChangeType.ADD_NONVOTER:
            if node_id in voters or node_id in learners:
                raise ConfChangeRejected(f"{node_id} is already a member")
            learners.add(node_id)
        else:
            if node_id not in voters and node_id not in learners:
                raise ConfChangeRejected(f"{node_id} is not a member")
            voters.discard(node_id)
            learners.discard(node_id)
            if not voters:
                raise ConfChangeRejected("cannot remove the last voter")
        cc = ConfChange(change, node_id, ConfState(tuple(sorted(voters)), tuple(sorted(learners))))
        res = self._append_entries([Entry(0, 0, EntryType.CONF, encode_conf_change(cc))])
        self.pending_conf_index = res[0]
        self._flush_pending = True
        return res

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to`` (e.g. before a graceful shutdown, P11).
        Proposals are refused until the transfer finishes or times out after an
        election timeout."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if to == self.id:
            return
        if to not in self.voters:
            raise ValueError(f"cannot transfer leadership to non-voter {to}")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0
        pr = self.prs[to]
        if pr.match == self.log.last_index():
            self._send(self._msg(MsgType.TIMEOUT_NOW, to))
        else:
            self._send_append(to)

    # ------------------------------------------------------------------ ready / advance
    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return work.  (May generate the deferred
        MsgApps for proposals and acknowledgements received since the last Ready.)"""
        if self._ready_outstanding:
            return False
        if self._flush_pending:
            self._flush_appends()
        log, hs, ss = self.log, self._prev_hard, self._prev_soft
        # Field comparisons instead of building HardState/SoftState: this is
        # called after every input by the driver loop.
        return bool(
            self.msgs
            or log.unstable.entries
            or log.unstable.snapshot is not None
            or (log.committed > log.applied and log.has_next_committed_entries())
            or self._reads_ready
            or self.term != hs.term
            or self.vote != hs.vote
            or log.committed != hs.commit
            or self.lead != ss.leader
            or self.role is not ss.role
        )

    def ready(self) -> Ready:
        """Collect pending work; see :class:`Ready` for the ordering contract."""
        if self._ready_outstanding:
            raise RuntimeError("ready() called again before advance()")
        self._flush_appends()
        hs = self.hard_state()
        ss = self.soft_state()
        rd = Ready(
            soft_state=ss if ss != self._prev_soft else None,
            hard_state=hs if hs != self._prev_hard else None,
            entries=list(self.log.unstable.entries),
            snapshot=self.log.unstable.snapshot,
            committed_entries=self.log.next_committed_entries(),
            messages=self.msgs,
            read_states=self._reads_ready,
            persisted_term=self._prev_hard.term,
        )
        rd.must_sync = bool(
            rd.entries
            or rd.snapshot is not None
            or hs.term != self._prev_hard.term
            or hs.vote != self._prev_hard.vote
        )
        self.msgs = []
        self._reads_ready = []
        self._prev_hard = hs
        self._prev_soft = ss
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was persisted, sent and applied."""
        if not self._ready_outstanding:
            raise RuntimeError("advance() without an outstanding ready()")
        self._ready_outstanding = False
        if rd.snapshot is not None:
            self.log.unstable.stable_snap_to(rd.snapshot.meta.index)
            if rd.snapshot.meta.index > self.log.applied:
                self.log.applied = rd.snapshot.meta.index
        if rd.entries:
            last = rd.entries[-1]
            self.log.unstable.stable_to(last.index, last.term)
            if (
                self.role is Role.LEADER
                and self.id in self.prs
                and self.log.match_term(last.index, last.term)
                and self.prs[self.id].maybe_update(min(last.index, self._durable_last()))
            ):
                # Our own copy is durable now: it counts toward the quorum from here on.
                if self._maybe_commit():
                    self._flush_pending = True
        if rd.committed_entries:
            self.log.applied_to(rd.committed_entries[-1].index)
            for e in rd.committed_entries:
                if e.type is EntryType.CONF and e.index > self.conf_index:
                    self._on_conf_applied(e)
        self._release_applied_reads()

    def _on_conf_applied(self, e: Entry) -> None:
        self._apply_conf_entry(e)
        if self.role is not Role.LEADER:
            return
        if self.id not in self.voters:
            # A removed (or demoted) leader steps down; the rest elect a new one.
            self._become_follower(self.term, None)
            return
        if self.lead_transferee is not None and self.lead_transferee not in self.voters:
            self.lead_transferee = None
        self._maybe_commit()
        self._flush_pending = True

    def _flush_appends(self) -> None:
        """Send what followers are missing: entries (as far as flow control
        allows) or, if there are none, an empty MsgApp carrying a commit index
        they have not been told yet."""
        if not self._flush_pending:
            return
        self._flush_pending = False
        if self.role is not Role.LEADER:
            return
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            sent = False
            while self._send_append(nid, send_if_empty=False):
                sent = True
            if not sent and pr.sent_commit < self.log.committed:
                self._send_append(nid)

    # ------------------------------------------------------------------ introspection
    def status(self) -> dict[str, object]:
        """A snapshot of the node's state for logging/debug endpoints."""
        return {
            "id": self.id,
            "term": self.term,
            "vote": self.vote,
            "lead": self.lead,
            "role": self.role.value,
            "commit": self.log.committed,
            "applied": self.log.applied,
            "last_index": self.log.last_index(),
            "voters": list(self.voters),
            "learners": list(self.learners),
            "progress": {nid: repr(pr) for nid, pr in self.prs.items()} if self.role is Role.LEADER else {},
        }


def snapshot_meta_for(core: RaftCore, index: int) -> SnapshotMeta:
    """Metadata for a snapshot of the FSM at applied ``index`` (driver helper).

    The configuration recorded is the one in effect at ``index``; since
    configurations take effect when applied and ``index <= applied``, the
    current one is correct unless a CONF entry in ``(index, applied]`` was
    applied, in which case the caller must snapshot at ``applied`` instead.
    """
    if index > core.log.applied:
        raise ValueError(f"cannot snapshot unapplied index {index} (applied {core.log.applied})")
    if core.conf_index > index:
        raise ValueError(f"configuration changed at {core.conf_index} after {index}; snapshot at applied")
    return SnapshotMeta(index, core.log.term(index), core.conf_state())
