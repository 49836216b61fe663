"""``ReplicatedLog``: the asyncio driver of the sans-IO Raft core, behind the server's ``Log``.

The loop is etcd's (see ``muster.raft.core.Ready``): take a ``Ready``; write its snapshot,
entries and hard state; send the messages that may leave before the fsync (a leader's MsgApps
and heartbeats: ``Ready.early_messages``), so the followers persist the batch while the leader
does; start one fsync for the whole batch in a worker thread (group commit: proposals that
arrive meanwhile join the *next* batch) and, while it runs, apply the committed entries to the
FSM and resolve the proposers' futures (they are durable on a quorum already); once the fsync
is done, send the other messages (acknowledgements, votes) and ``advance``, which is where the
leader's own copy of the batch starts to count toward the quorum.  A batch thus costs max(leader fsync, follower
round trip + fsync) instead of their sum.

Proposals.  On the leader ``propose`` stamps the leader's wall time into commands that carry
``ts``, appends, and returns the FSM's result once the entry at that (index, term) is applied.
If a different entry lands at that index (leadership was lost), the proposer gets an error:
the write may or may not have happened, exactly as with Consul.  On a follower the command is
forwarded to the leader over RPC.  With no leader known, proposals and non-stale reads wait up
to ``rpc_hold_timeout`` (7 s) for one, then fail with ``No cluster leader``.

Reads.  ``read_barrier(consistent=True)`` is Raft's ReadIndex (the leader confirms its
leadership with a quorum heartbeat round after the request arrived, then waits until it has
applied the read index).  Rounds are batched: at most one is in flight, and every read that
arrives meanwhile waits for the next one, which starts when it ends and so was requested after
each of them arrived (one quorum round answers them all).  The reads of a batch await one
shared future (``_SharedRead``) with one expiry timer: nothing is allocated per read.  A follower asks the leader for that index and waits until it has
applied it locally, so follower reads are linearizable too.  The default mode skips the quorum
round (the leader answers with its commit index), which is Consul's documented default.

Invariant: the FSM is only touched from ``_process_ready`` (one writer), and entries reach it
in index order exactly once per process lifetime (``FSM.apply`` refuses anything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import MusterError, NoLeader
from ..fsm import FSM
from ..raft.core import RaftConfig, RaftCore, Ready, Role
from ..raft.errors import ConfChangeRejected, ProposalDropped
from ..raft.errors import NotLeader as RaftNotLeader
from ..raft.messages import (
    ConfChangeType,
    ConfState,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    decode_message,
    encode_message,
)
from ..raft.schedule import SnapshotSchedule
from ..raft.storage import DiskStorage, StorageFailed
from ..runtime import Clock
from ..structs import decode_command, encode_command
from ..telemetry.metrics import METRICS
from .log import PENDING, Log
from .rpc import ConnectionLost, RPCNode

log = logging.getLogger("muster.raft")

#: Every this many ticks the leader samples how long ago it heard from each voter.
CONTACT_SAMPLE_TICKS = 10
#: Bytes per MsgSnap sent to a follower that needs the snapshot.  A chunk waits for the previous
#: one's acknowledgement, so 64 KiB chunks made a 200 MB snapshot (1M keys) ~3,000 round trips
#: through both event loops; 1 MiB is ~200, far below the RPC frame limit (``rpc.MAX_FRAME``).
SNAPSHOT_CHUNK = 1 << 20
#: Log entries freed per loop turn after a compaction.
RELEASE_STEP = 8192


class DurableStorage(Protocol):
    """What the driver needs from storage (``muster.raft.storage``)."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...
    def first_index(self) -> int: ...
    def last_index(self) -> int: ...
    def term(self, index: int) -> int: ...
    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Any]: ...
    def snapshot(self) -> Snapshot: ...
    def set_hard_state(self, hs: HardState) -> None: ...
    def append(self, ents: list[Any]) -> None: ...
    def apply_snapshot(self, snap: Snapshot) -> None: ...
    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot: ...
    def compact(self, index: int) -> list[Any]: ...


@dataclass
class RaftTimings:
    tick: float = 0.1  # seconds per Raft tick
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    rpc_hold_timeout: float = 7.0
    snapshot_threshold: int = 16384  # log entries past the last snapshot
    #: Seconds between threshold checks, plus a random extra of up to as much again
    #: (``muster.raft.schedule``); 0 checks on every tick.
    snapshot_interval: float = 30.0
    trailing_logs: int = 10240


class LeadershipLost(MusterError):
    def __init__(self) -> None:
        super().__init__("leadership lost while committing log")


class ReplicatedLog:
    def __init__(
        self,
        node_id: str,
        fsm: FSM,
        storage: DurableStorage,
        rpc: RPCNode,
        clock: Clock,
        rng: random.Random,
        timings: RaftTimings | None = None,
        sync: Callable[[], None] | None = None,
        on_leader_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.fsm = fsm
        self.storage = storage
        self.rpc = rpc
        self.clock = clock
        self.t = timings or RaftTimings()
        self._sync = sync
        self.core = RaftCore(
            node_id,
            storage,
            rng,
            RaftConfig(
                election_ticks=self.t.election_ticks,
                heartbeat_ticks=self.t.heartbeat_ticks,
                snapshot_chunk_bytes=SNAPSHOT_CHUNK,
            ),
        )
        snap = storage.snapshot()
        if snap.meta.index > 0 and snap.data:
            self._restore(snap)
        self._snap_index = snap.meta.index
        #: When to check the snapshot threshold.  Its jitter comes from a generator seeded by
        #: the node id, not from ``rng``: drawing from the core's generator would shift its
        #: election timeouts, and the servers of a cluster still get different schedules.
        self._snap_schedule = SnapshotSchedule(
            self.t.snapshot_interval, self.t.snapshot_threshold, random.Random(node_id), clock.monotonic()
        )
        #: The snapshot being taken (``_maybe_snapshot``), if any.
        self._snapshotting: asyncio.Future[None] | None = None
        self._pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._reads: dict[bytes, _SharedRead] = {}
        self._read_seq = 0
        self._node_id_bytes = node_id.encode()
        #: Reads waiting for the next ReadIndex round (one future shared by all of them),
        #: and how many joined it.
        self._read_next: _SharedRead | None = None
        self._read_next_count = 0
        #: Leader-side counters (``raft.leader.readIndexRounds``/``readIndexReads``): quorum
        #: rounds started for ``?consistent`` reads and the reads they answered.
        self.read_rounds = 0
        self.read_round_reads = 0
        #: Whether a ReadIndex round is in flight (at most one at a time).
        self._read_round_active = False
        #: Leader-side counters, also in the metrics (``raft.leader.fsyncs``,
        #: ``raft.leader.fsyncedLogs``, ``raft.leader.committedLogs``): log fsyncs, the
        #: entries they made durable, and entries committed, so the writes one fsync
        #: carries can be read off (bench/run.py --muster-cluster reads them).
        self.fsyncs = 0
        self.fsynced_logs = 0
        self.commits = 0
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._kick = asyncio.Event()
        self._leader_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_leader: str | None = None
        self._last_contact = clock.monotonic()
        self.on_leader_change = on_leader_change
        self._last_role: Role | None = None
        #: perf_counter() at which this leader proposed each pending index (raft.commitTime).
        self._proposed_at: dict[int, float] = {}
        #: Set while the last persist attempt failed (the disk is full or broken).
        self.persist_error = ""
        #: Monotonic time each peer was last heard from (leader's view of liveness).
        self.last_heard: dict[str, float] = {}
        self.running = False

    # ------------------------------------------------------------------ Log protocol

    def is_leader(self) -> bool:
        return self.core.role is Role.LEADER

    def leader_id(self) -> str | None:
        return self.core.lead or None

    def last_contact(self) -> float:
        if self.is_leader():
            return 0.0
        return max(0.0, self.clock.monotonic() - self._last_contact)

    def last_index(self) -> int:
        return self.core.log.last_index()

    def term(self) -> int:
        return self.core.term

    def configuration_index(self) -> int:
        return int(self.core.conf_index)

    def commit_index(self) -> int:
        return self.core.committed

    def last_snapshot(self) -> tuple[int, int]:
        meta = self.storage.snapshot().meta
        return (meta.index, meta.term)

    def propose_now(self, cmd: Any) -> Any:
        return PENDING  # a quorum must acknowledge first

    def applied_index(self) -> int:
        return self.fsm.last_applied

    def configuration(self) -> ConfState:
        return ConfState(voters=tuple(self.core.voters), learners=tuple(self.core.learners))

    async def propose(self, cmd: Any) -> Any:
        if not self.running and self.persist_error:
            raise MusterError(self.persist_error)
        deadline = self.clock.monotonic() + self.t.rpc_hold_timeout
        while True:
            lead = self.leader_id()
            try:
                if self.is_leader():
                    return await self._propose_local(cmd)
                if lead:
                    return await self._forward_apply(lead, cmd)
            except _Retry:
                pass
            if not await self._wait_leader(deadline):
                raise NoLeader()

    async def read_barrier(self, consistent: bool = True) -> None:
        deadline = self.clock.monotonic() + self.t.rpc_hold_timeout
        while True:
            if self.is_leader():
                idx = await self._read_index_local(consistent)
                await self.wait_applied(idx)
                return
            lead = self.leader_id()
            if lead:
                try:
                    idx = int(await self.rpc.call(lead, "read_index", consistent, timeout=self.t.rpc_hold_timeout))
                except MusterError as err:
                    if isinstance(err, NoLeader):
                        raise
                    idx = -1
                if idx >= 0:
                    remaining = max(0.1, deadline - self.clock.monotonic())
                    try:
                        await asyncio.wait_for(self.wait_applied(idx), remaining)
                    except TimeoutError:
                        raise NoLeader() from None
                    return
            if not await self._wait_leader(deadline):
                raise NoLeader()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.running = True
        self._tasks.append(asyncio.create_task(self._ticker(), name="raft-ticker"))
        self._tasks.append(asyncio.create_task(self._ready_loop(), name="raft-ready"))

    async def stop(self) -> None:
        self.running = False
        if self._snapshotting is not None:
            self._snapshotting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshotting
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        self._fail_all(LeadershipLost())

    def campaign(self) -> None:
        self.core.campaign()
        self._kick.set()

    def transfer_leadership(self, to: str) -> None:
        self.core.transfer_leadership(to)
        self._kick.set()

    async def change_membership(self, change: ConfChangeType, node_id: str) -> None:
        """Propose one membership change and wait until it is applied (leader only)."""
        if not self.is_leader():
            raise MusterError("node is not the leader")
        try:
            index, term = self.core.propose_conf_change(change, node_id)
        except (ConfChangeRejected, ProposalDropped, RaftNotLeader) as err:
            raise MusterError(f"membership change refused: {err}") from None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[index] = (term, fut)
        self._kick.set()
        await fut

    # ------------------------------------------------------------------ internals

    async def _wait_leader(self, deadline: float) -> bool:
        remaining = deadline - self.clock.monotonic()
        if remaining <= 0:
            return False
        self._leader_changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leader_changed.wait(), min(remaining, 0.5))
        return self.clock.monotonic() < deadline or self.leader_id() is not None

    async def _propose_local(self, cmd: Any) -> Any:
        if hasattr(cmd, "ts"):
            cmd.ts = self.clock.wall()
        try:
            index, term = self.core.propose(encode_command(cmd))
        except RaftNotLeader:
            raise _Retry() from None
        except ProposalDropped as err:
            raise MusterError(f"proposal dropped: {err}") from None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[index] = (term, fut)
        METRICS.incr("raft.apply")
        self._proposed_at[index] = perf_counter()
        self._kick.set()
        return await fut

    async def _forward_apply(self, lead: str, cmd: Any) -> Any:
        try:
            res = await self.rpc.call(lead, "apply", encode_command(cmd), timeout=self.t.rpc_hold_timeout + 5)
        except ConnectionLost as err:
            if not err.sent:
                raise _Retry() from None  # it never left: safe to look for the leader again
            # It may have been applied: retrying could apply it twice.  The caller gets an
            # error and must treat the write as unknown, as with Consul.
            raise MusterError(err.message) from None
        except MusterError as err:
            if err.message == "node is not the leader":
                raise _Retry() from None  # refused before proposing: nothing was applied
            raise
        if isinstance(res, dict) and "err" in res:
            raise MusterError(str(res["err"]), int(res.get("status", 500)))
        return res

    async def rpc_apply(self, payload: Any) -> Any:
        """Server RPC ``apply``: a follower forwards a command to this leader."""
        if not self.is_leader():
            raise MusterError("node is not the leader")
        cmd = decode_command(bytes(payload))
        try:
            res = await self._propose_local(cmd)
        except _Retry:
            raise MusterError("node is not the leader") from None  # refused before appending
        if isinstance(res, MusterError):
            return {"err": res.message, "status": res.status}
        return res

    async def rpc_read_index(self, payload: Any) -> int:
        """Server RPC ``read_index``: a follower asks this leader for a ReadIndex."""
        if not self.is_leader():
            return -1
        return await self._read_index_local(bool(payload))

    async def _read_index_local(self, consistent: bool) -> int:
        if not consistent:
            return self.core.committed
        # The hot path of ``?consistent``: no allocation per read.  Every read awaits the
        # batch's one shared future directly; its expiry is the batch's one timer.
        fut = self._read_next
        if fut is None:
            fut = self._new_read_batch()
        self._read_next_count += 1
        return await fut

    def _new_read_batch(self) -> _SharedRead:
        """The future of the next ReadIndex round, with its one expiry timer: the core drops a
        read silently when leadership moves, so nobody waits past ``rpc_hold_timeout``."""
        loop = asyncio.get_running_loop()
        fut = self._read_next = _SharedRead(loop=loop)
        self._read_next_count = 0
        expire = loop.call_later(self.t.rpc_hold_timeout, _expire_read, fut)
        fut.add_done_callback(lambda f: self._read_round_done(f, expire))
        if not self._read_round_active:
            loop.call_soon(self._start_read_round)
        return fut

    def _start_read_round(self) -> None:
        """Start one ReadIndex round for every read waiting in ``_read_next``.

        Called soon after the first read of a batch arrived (``call_soon``: reads that arrive
        in the same loop iteration join it), or when the previous round ends."""
        fut, self._read_next = self._read_next, None
        if fut is None or fut.done() or self._read_round_active:
            if fut is not None and not fut.done():
                self._read_next = fut  # a round is in flight: this batch waits for it to end
            return
        self._read_round_active = True
        self._read_seq += 1
        self.read_rounds += 1
        self.read_round_reads += self._read_next_count
        METRICS.incr("raft.leader.readIndexRounds")
        METRICS.incr("raft.leader.readIndexReads", float(self._read_next_count))
        ctx = b"%s/%d" % (self._node_id_bytes, self._read_seq)
        fut.context = ctx
        self._reads[ctx] = fut
        try:
            self.core.read_index(ctx)
        except (RaftNotLeader, ProposalDropped):
            fut.set_exception(NoLeader())
            return
        self._kick.set()

    def _read_round_done(self, fut: asyncio.Future[int], expire: asyncio.TimerHandle) -> None:
        expire.cancel()
        ctx = fut.context if isinstance(fut, _SharedRead) else None
        if ctx is not None:
            self._reads.pop(ctx, None)
            self._read_round_active = False
        if not fut.cancelled():
            fut.exception()  # retrieved here: every reader may have gone already
        if self._read_next is not None and not self._read_round_active:
            self._start_read_round()

    async def wait_applied(self, index: int) -> None:
        if self.fsm.last_applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await fut

    def on_raft(self, data: bytes) -> None:
        """A Raft message from a peer (the RPC layer's raft frames)."""
        try:
            m = decode_message(bytes(data))
        except Exception as err:  # noqa: BLE001 - a malformed peer message is dropped, never fatal
            log.warning("dropping undecodable raft message: %s", err)
            return
        now = self.clock.monotonic()
        self.last_heard[m.frm] = now
        if m.frm == self.core.lead:
            self._last_contact = now
        self.core.step(m)
        self._kick.set()

    async def _ticker(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.t.tick)
            self.core.tick()
            self._kick.set()
            ticks += 1
            if ticks % CONTACT_SAMPLE_TICKS == 0 and self.is_leader():
                self._sample_contact()

    def _sample_contact(self) -> None:
        """``consul.raft.leader.lastContact``: how long ago the leader heard from each voter."""
        now = self.clock.monotonic()
        for peer in self.core.voters:
            if peer != self.node_id and peer in self.last_heard:
                METRICS.sample("raft.leader.lastContact", (now - self.last_heard[peer]) * 1000.0)

    async def _ready_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self.core.has_ready():
                rd = self.core.ready()
                await self._process_ready(rd)
            # Between Readies (never while one is half processed: a snapshot installed from
            # the leader must have reached the FSM before ours is captured).  The ticker kicks
            # this loop every tick, so an idle server checks its schedule too.
            self._maybe_snapshot()

    def _write(self, rd: Ready) -> None:
        """Step 1 of the Ready without the fsync: the writes reach the page cache."""
        st = self.storage
        if rd.snapshot is not None and rd.snapshot.meta.index > 0:
            st.apply_snapshot(rd.snapshot)
        if rd.entries:
            st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)

    async def _process_ready(self, rd: Ready) -> None:
        # Write before anything else.  If the disk fails (full, I/O error) before the writes
        # are done nothing of this Ready leaves the process: no message is sent, nothing is
        # applied, waiting writers get the error, and we retry the same batch until the disk
        # recovers.  Meanwhile this server is silent, so the others elect a leader that can
        # still write.  Once written, the leader's MsgApps leave and the committed entries
        # are applied while the fsync runs; acknowledgements and votes wait for it.
        early, late = rd.early_messages()
        started = False
        delay = 0.1
        while True:
            try:
                self._write(rd)
                if not started:
                    for m in early:
                        self.rpc.send_raft(m.to, encode_message(m))
                # One fsync for the whole batch, in a worker thread started *before* the apply
                # below, so the two overlap (a follower's acknowledgement waits for max(apply,
                # fsync), not their sum); the loop keeps accepting proposals meanwhile, which
                # form the next batch (group commit).
                sync = (
                    asyncio.get_running_loop().run_in_executor(None, self._sync)
                    if rd.must_sync and self._sync is not None
                    else None
                )
                if not started:
                    started = True
                    if rd.snapshot is None:
                        self._apply_committed(rd)
                if sync is not None:
                    await sync
                    if self.core.role is Role.LEADER and rd.entries:
                        n = len(rd.entries)
                        self.fsyncs += 1
                        self.fsynced_logs += n
                        METRICS.incr("raft.leader.fsyncs")
                        METRICS.incr("raft.leader.fsyncedLogs", float(n))
                        METRICS.gauge("raft.leader.dispatchNumLogs", float(n))  # Consul's name
                break
            except StorageFailed as err:
                # An fsync failed: what reached the disk is unknown, so this server must not
                # acknowledge anything again until it restarts from disk.  It goes silent; the
                # others elect a leader without it.
                self.persist_error = f"raft storage failed: {err}"
                log.critical("raft: %s; this server stops taking part until it is restarted", self.persist_error)
                self._fail_all(MusterError(self.persist_error))
                self.running = False
                for t in self._tasks:
                    if t is not asyncio.current_task():
                        t.cancel()
                raise asyncio.CancelledError() from None
            except OSError as err:
                self.persist_error = f"failed to persist the raft log: {err.strerror or err}"
                log.error("raft: %s; retrying in %.1fs", self.persist_error, delay)
                self._fail_all(MusterError(self.persist_error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.persist_error = ""
        for m in late:
            self.rpc.send_raft(m.to, encode_message(m))
        if rd.snapshot is not None:
            if rd.snapshot.meta.index > 0 and rd.snapshot.data:
                self._restore(rd.snapshot)
                self._snap_index = rd.snapshot.meta.index
                for idx in [i for i in self._pending if i <= rd.snapshot.meta.index]:
                    _term, fut = self._pending.pop(idx)
                    if not fut.done():
                        fut.set_exception(LeadershipLost())
            self._apply_committed(rd)
        self.core.advance(rd)
        if rd.soft_state is not None:
            role = rd.soft_state.role
            if role is not self._last_role:
                self._last_role = role
                if role is Role.LEADER:
                    METRICS.incr("raft.state.leader")
                elif role is Role.CANDIDATE:
                    METRICS.incr("raft.state.candidate")
                if role is not Role.LEADER:
                    self._proposed_at.clear()
            self._soft_state_changed(rd.soft_state.leader, role)
        self._maybe_snapshot()

    def _apply_committed(self, rd: Ready) -> None:
        """Apply ``rd``'s committed entries, resolve their proposers and ``rd``'s reads."""
        if rd.committed_entries and self.core.role is Role.LEADER:
            n = len(rd.committed_entries)
            self.commits += n
            METRICS.incr("raft.leader.committedLogs", float(n))
            METRICS.gauge("raft.commitNumLogs", float(n))  # Consul's name
        for e in rd.committed_entries:
            res: Any = None
            proposed = self._proposed_at.pop(e.index, None) if self._proposed_at else None
            if proposed is not None:
                METRICS.measure_since("raft.commitTime", proposed)
            if e.type == EntryType.NORMAL and e.data:
                if e.index <= self.fsm.last_applied:
                    continue
                started = perf_counter()
                res = self.fsm.apply(e.index, e.data)
                METRICS.measure_since("raft.fsm.apply", started)
            elif e.index > self.fsm.last_applied:
                self.fsm.last_applied = e.index
            waiting = self._pending.pop(e.index, None)
            if waiting is not None:
                term, fut = waiting
                if not fut.done():
                    if term == e.term:
                        fut.set_result(res)
                    else:
                        fut.set_exception(LeadershipLost())
        self._wake_applied()
        for rs in rd.read_states:
            fut2 = self._reads.get(rs.context)
            if fut2 is not None and not fut2.done():
                fut2.set_result(rs.index)

    def _wake_applied(self) -> None:
        applied = self.fsm.last_applied
        if not self._applied_waiters:
            return
        keep = []
        for idx, fut in self._applied_waiters:
            if idx <= applied:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((idx, fut))
        self._applied_waiters = keep

    def _soft_state_changed(self, leader: str | None, role: Role) -> None:
        if leader != self._last_leader:
            log.info("raft: leader is now %s (term %d, this node %s)", leader or "unknown", self.core.term, role.value)
            was_leader = self._last_leader == self.node_id
            self._last_leader = leader
            self._leader_changed.set()
            if leader:
                self._last_contact = self.clock.monotonic()
            is_leader = leader == self.node_id and role is Role.LEADER
            if was_leader and not is_leader:
                self._fail_all(LeadershipLost())
            if self.on_leader_change is not None and was_leader != is_leader:
                self.on_leader_change(is_leader)

    def _fail_all(self, err: MusterError) -> None:
        for _idx, (_term, fut) in list(self._pending.items()):
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        for fut2 in self._reads.values():
            if not fut2.done():
                fut2.set_exception(NoLeader())

    def _restore(self, snap: Snapshot) -> None:
        started = perf_counter()
        self.fsm.restore(snap.data, snap.meta.index)
        log.info(
            "raft: restored snapshot at index %d (%d bytes) in %.3fs",
            snap.meta.index, len(snap.data), perf_counter() - started,
        )

    def _maybe_snapshot(self) -> None:
        """Start a snapshot if the schedule says so (``muster.raft.schedule``: every
        ``snapshot_interval`` to twice that, if the log is ``snapshot_threshold`` entries past
        the last snapshot), at the applied index.  Called between Readies (at least every tick).

        The state is captured here, synchronously, at the applied index (``snapshot_stream``:
        container copies, no encoding); the encoding then runs as a task that hands the loop
        back after every step, the file is written and fsynced in a worker thread, and only the
        install and the log compaction run on the loop again.  Writers keep being served
        meanwhile.  One snapshot at a time; a snapshot installed from the leader meanwhile
        supersedes it (it is then dropped)."""
        if self._snapshotting is not None:
            return  # hashicorp/raft's timer does not run while its snapshot is being taken either
        applied = self.fsm.last_applied
        if not self._snap_schedule.due(self.clock.monotonic(), self.core.log.last_index(), self._snap_index):
            return
        if applied <= self._snap_index:
            return  # nothing applied since the last snapshot (hashicorp's ErrNothingNewToSnapshot)
        t0 = perf_counter()
        stream = self.fsm.snapshot_stream()
        meta = SnapshotMeta(applied, self.storage.term(applied), self.configuration())
        blocked = perf_counter() - t0
        self._snapshotting = asyncio.ensure_future(self._take_snapshot(meta, stream, t0, blocked))

    async def _take_snapshot(self, meta: SnapshotMeta, stream: Iterator[bytes], t0: float, blocked: float) -> None:
        try:
            parts: list[bytes] = []
            while True:
                step = perf_counter()
                piece = next(stream, None)
                if piece is None:
                    break
                parts.append(piece)
                blocked += perf_counter() - step
                await asyncio.sleep(0)
            t1 = perf_counter()
            st = self.storage
            if isinstance(st, DiskStorage):
                # Written from the pieces and read back whole in the worker thread: the loop
                # never copies the snapshot's bytes.
                snap = await asyncio.to_thread(st.write_snapshot_parts, meta, parts)
                del parts
                step = perf_counter()
                installed = st.install_snapshot(snap)
            else:
                step = perf_counter()
                snap = Snapshot(meta, b"".join(parts))
                installed = meta.index > st.snapshot().meta.index
                if installed:
                    st.create_snapshot(meta.index, meta.conf, snap.data)
            blocked += perf_counter() - step
            t2 = perf_counter()
            if not installed:
                log.info("raft: snapshot at index %d dropped: a newer one was installed meanwhile", meta.index)
                return
            self._snap_index = max(self._snap_index, meta.index)
            compact_to = meta.index - self.t.trailing_logs
            dropped = st.compact(compact_to) if compact_to > st.first_index() else []
            t3 = perf_counter()
            blocked += t3 - t2
            log.info(
                "raft: snapshot at index %d (%d bytes; encode %.3fs, persist %.3fs, compact %.3fs, loop %.3fs)",
                meta.index, len(snap.data), t1 - t0, t2 - t1, t3 - t2, blocked,
            )
            # Free the dropped entries a slice per loop turn (a 30-60 s interval can drop a few
            # hundred thousand; freeing them in one go is tens of milliseconds).
            while dropped:
                del dropped[-RELEASE_STEP:]
                await asyncio.sleep(0)
        except StorageFailed as err:
            log.error("raft: snapshot at index %d failed: %s", meta.index, err)
        except OSError as err:
            log.error("raft: snapshot at index %d failed: %s", meta.index, err)
        finally:
            self._snapshotting = None


class _SharedRead(asyncio.Future[int]):
    """The answer of one ReadIndex round (its read index), awaited by every read of the batch.

    It refuses ``cancel``: a reader that goes away (its client hung up, so its task is
    cancelled) must not cancel the round the other readers share.  asyncio's ``Task.cancel``
    then marks the task and raises ``CancelledError`` in it once this future is done, which the
    batch's expiry timer bounds.  The driver resolves it with a result or an exception only."""

    __slots__ = ("context",)

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        #: The ReadIndex context of the round answering it; None until the round starts.
        self.context: bytes | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        return False


def _expire_read(fut: asyncio.Future[int]) -> None:
    # The core drops a read silently when leadership moves; never wait forever.
    if not fut.done():
        fut.set_exception(NoLeader())


class _Retry(Exception):
    """The leader moved while we talked to it: look it up again and retry."""


class FormingLog:
    """The log of a server that is not part of a cluster yet (still discovering its peers).

    It has no leader: writes and non-stale reads wait ``rpc_hold_timeout`` and then fail with
    ``No cluster leader``, exactly what a client of a leaderless Consul cluster sees; stale
    reads are served from the (empty) local store.
    """

    def __init__(self, clock: Clock, hold: float) -> None:
        self.clock = clock
        self.hold = hold
        self.started = clock.monotonic()

    def is_leader(self) -> bool:
        return False

    def leader_id(self) -> str | None:
        return None

    def last_contact(self) -> float:
        return self.clock.monotonic() - self.started

    def last_index(self) -> int:
        return 0

    def commit_index(self) -> int:
        return 0

    def term(self) -> int:
        return 0

    def configuration_index(self) -> int:
        return 0

    def last_snapshot(self) -> tuple[int, int]:
        return (0, 0)

    def propose_now(self, cmd: Any) -> Any:
        return PENDING

    async def propose(self, cmd: Any) -> Any:
        await asyncio.sleep(self.hold)
        raise NoLeader()

    async def read_barrier(self, consistent: bool = True) -> None:
        await asyncio.sleep(self.hold)
        raise NoLeader()


class ClusterLog:
    """The log a cluster server holds for the whole life of its process.

    Until the server is part of a configuration it is a ``FormingLog`` (no leader); once
    ``ClusterMember.form`` returns, the process root hands it the ``ReplicatedLog`` (``attach``,
    once) and every call goes there.  The server, the cluster member and the operator all hold
    this one object from construction on, so nothing is rewired when the cluster forms.
    ``replicated`` is the Raft driver once attached (``server/`` only: it exposes the core).
    """

    def __init__(self, clock: Clock, hold: float) -> None:
        self._forming = FormingLog(clock, hold)
        self._cur: Log = self._forming
        self.replicated: ReplicatedLog | None = None

    def attach(self, rlog: ReplicatedLog) -> None:
        if self.replicated is not None:
            raise RuntimeError("the replicated log is attached once")
        self.replicated = rlog
        self._cur = rlog

    # ------------------------------------------------------------------ Log protocol

    def is_leader(self) -> bool:
        return self._cur.is_leader()

    def leader_id(self) -> str | None:
        return self._cur.leader_id()

    def last_contact(self) -> float:
        return self._cur.last_contact()

    def last_index(self) -> int:
        return self._cur.last_index()

    def commit_index(self) -> int:
        return self._cur.commit_index()

    def term(self) -> int:
        return self._cur.term()

    def last_snapshot(self) -> tuple[int, int]:
        return self._cur.last_snapshot()

    def configuration_index(self) -> int:
        return self._cur.configuration_index()

    def propose_now(self, cmd: Any) -> Any:
        return PENDING

    async def propose(self, cmd: Any) -> Any:
        return await self._cur.propose(cmd)

    async def read_barrier(self, consistent: bool = True) -> None:
        await self._cur.read_barrier(consistent)

    # ------------------------------------------------------------------ server RPC

    async def rpc_apply(self, payload: Any) -> Any:
        if self.replicated is None:
            raise MusterError("node is not the leader")
        return await self.replicated.rpc_apply(payload)

    async def rpc_read_index(self, payload: Any) -> int:
        if self.replicated is None:
            return -1
        return await self.replicated.rpc_read_index(payload)

    def on_raft(self, data: bytes) -> None:
        if self.replicated is not None:  # before formation there is no Raft to deliver to
            self.replicated.on_raft(data)

    async def stop(self) -> None:
        if self.replicated is not None:
            await self.replicated.stop()


if TYPE_CHECKING:  # mypy proves every log implements the protocol the server relies on
    _LOGS: tuple[type[Log], ...] = (ReplicatedLog, FormingLog, ClusterLog)
