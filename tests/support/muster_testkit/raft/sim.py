"""Seeded Raft fault simulator.

One seed fully determines a run: cluster size, fault rates, every message
delay/drop/duplicate, every crash (and how much unsynced data it loses), every
election timeout.  The network delays, drops, duplicates and reorders
messages and applies partitions; crashed nodes lose their page cache
(:class:`~muster_testkit.raft.simnode.SimDisk`) and restart from durable state.
Clients propose random commands to whichever node believes it leads.

Safety checks (a :class:`Violation` stops the run):

* **Election safety** - at most one leader per term (checked after every step).
* **Log matching** - whenever any node persists an entry, its ``(index, term)``
  must carry the same data and follow the same previous term as on every
  other node that ever persisted that ``(index, term)``.  Logs only change by
  persisting, so checking at that moment is equivalent to checking every
  pair of logs after every step.
* **Leader completeness** - after every step, every leader's log holds every
  entry committed in an earlier term (known from any node applying it), from
  the leader's first index on.
* **Linearizable reads (P4)** - a ReadIndex result released on a node is at
  least the highest commit index any node knew when the read was requested,
  and the node has applied up to it.
* **Membership (P10)** - every configuration a node applies differs from the
  one it replaces by at most one voter.  Membership changes (add/remove
  voters and learners among up to five nodes) are proposed on some seeds.
* **State machine safety** - no index is applied with two different entries,
  and replicas that applied the same index have equal FSM digests (a hash
  chain, so also the same order and no double application).
* **A leader counts only durable copies (its own included)** - after every
  step, a leader's own ``match`` never exceeds what its disk made durable
  (its fsync may lag: ``sync_lag`` leaves a leader's fsync in flight across
  steps while its MsgApps are already out, and a crash then loses it).
* **No committed entry lost / liveness after healing** - at the end all faults
  are healed and every node must converge to the same applied index and digest.

CLI::

    python -m muster_testkit.raft.sim --seed 7 [--steps 400] [--nodes 5] [--seeds 100] [--disk] [-v]

``--disk`` keeps every node's log in a real DiskStorage directory (crashes
then tear the WAL's unsynced tail at a random byte).

A failing seed prints the exact command that replays it.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from muster.raft.core import RaftConfig, ReadState, Role
from muster.raft.errors import CompactedError, RaftError
from muster.raft.messages import ConfChangeType, ConfState, Entry, EntryType, Message, decode_conf_change
from muster_testkit.raft.simnode import SimDisk, SimFSM, SimNode, fmt_msg

__all__ = ["SimOptions", "Simulation", "Violation", "main", "run_seed"]


class Violation(AssertionError):
    """A safety (or final liveness) property was broken."""


@dataclass
class SimOptions:
    nodes: int = 3
    steps: int = 300
    #: Ticks allowed after healing for the cluster to converge.
    settle_ticks: int = 400
    #: If set, nodes keep their log in real :class:`DiskStorage` directories
    #: under this path (crashes then tear the WAL tail at a random byte).
    disk_root: Path | None = None


@dataclass
class _Faults:
    """Per-seed fault profile, drawn from the seed so runs differ in character."""

    drop: float
    dup: float
    delay: float
    max_delay: int
    crash: float
    restart: float
    partition: float
    heal: float
    propose: float
    lose_unsynced: bool
    conf_change: float
    read: float
    #: Probability per step of pausing a node (SIGSTOP: no ticks, no I/O).
    pause: float
    #: Whether some nodes' clocks run slow (they skip ticks).
    skew: bool
    #: Probability per step of cutting one direction of a link (asymmetric partition).
    one_way: float
    #: Probability that a Ready's fsync is left in flight until the node's next turn.
    sync_lag: float

    @classmethod
    def draw(cls, rng: random.Random) -> _Faults:
        return cls(
            drop=rng.choice([0.0, 0.02, 0.1, 0.3]),
            dup=rng.choice([0.0, 0.02, 0.1]),
            delay=rng.choice([0.0, 0.2, 0.5]),
            max_delay=rng.choice([1, 3, 8]),
            crash=rng.choice([0.0, 0.005, 0.02, 0.05]),
            restart=rng.choice([0.05, 0.2]),
            partition=rng.choice([0.0, 0.01, 0.04]),
            heal=rng.choice([0.02, 0.1]),
            propose=rng.choice([0.2, 0.5, 1.0]),
            lose_unsynced=rng.random() < 0.5,
            conf_change=rng.choice([0.0, 0.0, 0.02, 0.1]),
            read=rng.choice([0.0, 0.1, 0.5]),
            pause=rng.choice([0.0, 0.0, 0.01, 0.03]),
            skew=rng.random() < 0.3,
            one_way=rng.choice([0.0, 0.0, 0.01]),
            sync_lag=rng.choice([0.0, 0.5, 0.9]),
        )


@dataclass
class Simulation:
    seed: int
    opts: SimOptions = field(default_factory=SimOptions)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        rng = self.rng
        self.faults = _Faults.draw(rng)
        self.ids = [f"n{i}" for i in range(1, self.opts.nodes + 1)]
        self.config = RaftConfig(
            election_ticks=rng.choice([5, 10]),
            heartbeat_ticks=1,
            pre_vote=rng.random() < 0.8,
            # Without check-quorum's leader lease a server removed from the
            # configuration can disrupt the cluster forever (thesis §4.2.3), so
            # membership changes are only simulated with it on.
            check_quorum=rng.random() < 0.8 or self.faults.conf_change > 0,
            max_msg_bytes=rng.choice([64, 1 << 20]),
            max_inflight_msgs=rng.choice([2, 256]),
            snapshot_chunk_bytes=rng.choice([16, 1 << 16]),
        )
        snapshot_every = rng.choice([0, 5, 20])
        trailing = rng.choice([0, 3, 10])
        # With membership changes on, only the first three nodes start as
        # voters; the others start empty and must be added through the log.
        initial = self.ids[:3] if self.faults.conf_change else self.ids
        self.nodes: dict[str, SimNode] = {}
        for i, nid in enumerate(self.ids):
            conf = ConfState(tuple(initial)) if nid in initial else ConfState()
            n = SimNode(
                nid,
                conf,
                self.config,
                seed=self.seed * 64 + i,
                snapshot_every=snapshot_every,
                trailing_logs=trailing,
                disk_dir=self.opts.disk_root / f"seed{self.seed}-{nid}" if self.opts.disk_root else None,
            )
            n.on_append = self._on_append
            n.on_apply = self._on_apply
            n.on_restore = self._on_restore
            self.nodes[nid] = n
        self.now = 0
        #: Paused node -> tick at which it resumes.
        self.paused: dict[str, int] = {}
        #: Probability that a node's clock advances on a simulator tick.
        self.tick_rate = {nid: rng.choice([1.0, 1.0, 0.6]) if self.faults.skew else 1.0 for nid in self.ids}
        self._seq = 0
        #: In flight: (delivery tick, random tiebreak = reordering, sequence, message).
        self.net: list[tuple[int, int, int, Message]] = []
        self.groups: dict[str, int] | None = None
        #: Directed links cut by one-way faults: (from, to).
        self.blocked: set[tuple[str, str]] = set()
        self.trace: deque[str] = deque(maxlen=400)
        self.verbose = False
        # Checker state
        self.leaders: dict[int, str] = {}
        self.logged: dict[tuple[int, int], tuple[int, EntryType, bytes]] = {}
        self.committed: dict[int, tuple[int, EntryType, bytes]] = {}
        self.digests: dict[int, bytes] = {}
        self.max_committed = 0
        self.commit_term: dict[int, int] = {}
        self.node_conf: dict[str, tuple[int, frozenset[str]]] = {
            nid: (0, frozenset(n.core.voters if n.core else ())) for nid, n in self.nodes.items()
        }
        self.leader_commit_seen = 0
        self.lc_verified: dict[tuple[int, str], int] = {}
        self.proposals = 0
        self._read_seq = 0
        #: Pending reads: context -> (node asked, highest commit index anywhere at request time).
        self.reads: dict[bytes, tuple[str, int]] = {}
        self.stats = {
            "delivered": 0,
            "reads": 0,
            "dropped": 0,
            "crashes": 0,
            "elections": 0,
            "restores": 0,
            "conf_changes": 0,
        }

    # ------------------------------------------------------------------ logging
    def log(self, s: str) -> None:
        line = f"t={self.now} {s}"
        self.trace.append(line)
        if self.verbose:
            print(line)

    def fail(self, what: str) -> None:
        raise Violation(what)

    # ------------------------------------------------------------------ checkers
    def _on_append(self, node: SimNode, ents: list[Entry]) -> None:
        core = node.core
        assert core is not None
        for e in ents:
            try:
                prev = core.log.term(e.index - 1)
            except CompactedError:
                prev = -1
            key = (e.index, e.term)
            val = (prev, e.type, e.data)
            old = self.logged.get(key)
            if old is None:
                self.logged[key] = val
            elif old[1:] != val[1:] or (old[0] != prev and -1 not in (old[0], prev)):
                self.fail(f"log matching: {node.id} persisted {key} as {val}, previously {old}")

    def _on_apply(self, node: SimNode, e: Entry, fsm: SimFSM) -> None:
        val = (e.term, e.type, e.data)
        old = self.committed.setdefault(e.index, val)
        if old != val:
            self.fail(f"state machine safety: {node.id} applied {e.index} as {val}, others applied {old}")
        self.max_committed = max(self.max_committed, e.index)
        if e.type is EntryType.CONF:
            self._check_conf_entry(node, e)
        if node.core is not None:
            # Upper bound on the term in which e was committed (refined by check()).
            self.commit_term[e.index] = min(self.commit_term.get(e.index, node.core.term), node.core.term)
        if e.type is EntryType.NORMAL:
            d = self.digests.setdefault(e.index, fsm.digest)
            if d != fsm.digest:
                self.fail(f"state machine safety: {node.id} FSM digest differs after index {e.index}")

    def _on_restore(self, node: SimNode, fsm: SimFSM) -> None:
        assert node.core is not None
        self.node_conf[node.id] = (node.core.conf_index, frozenset(node.core.voters))
        if fsm.index and self.digests.get(fsm.index, fsm.digest) != fsm.digest:
            self.fail(f"snapshot restore on {node.id}: digest differs at index {fsm.index}")
        self.stats["restores"] += 1

    def check(self) -> None:
        for n in self.nodes.values():
            c = n.core
            if c is None:
                continue
            if not (c.applied <= c.committed <= c.log.last_index()):
                self.fail(
                    f"{n.id}: applied {c.applied} <= commit {c.committed} <= last {c.log.last_index()} broken"
                )
            if c.role is not Role.LEADER:
                continue
            self._check_own_match(n)
            prev = self.leaders.setdefault(c.term, n.id)
            if prev != n.id:
                self.fail(f"election safety: {prev} and {n.id} both leaders in term {c.term}")
            if c.committed > self.leader_commit_seen:
                for idx in range(self.leader_commit_seen + 1, c.committed + 1):
                    self.commit_term[idx] = min(self.commit_term.get(idx, c.term), c.term)
                self.leader_commit_seen = c.committed
            # Leader completeness: entries committed in terms before ours must be in our log.
            key = (c.term, n.id)
            lo = max(self.lc_verified.get(key, 0) + 1, c.log.first_index())
            for idx in range(lo, self.max_committed + 1):
                want = self.committed.get(idx)
                if want is None or self.commit_term.get(idx, c.term) >= c.term:
                    continue
                if idx > c.log.last_index() or c.log.term(idx) != want[0]:
                    self.fail(
                        f"leader completeness: leader {n.id} of term {c.term} lacks entry {idx}"
                        f" (term {want[0]}) committed in term {self.commit_term[idx]}"
                    )
            self.lc_verified[key] = max(self.lc_verified.get(key, 0), self.max_committed)

    def _check_own_match(self, n: SimNode) -> None:
        """The leader's own progress covers only entries its disk made durable."""
        c = n.core
        if c is None or c.id not in c.prs or not isinstance(n.disk, SimDisk):
            return
        match = c.prs[c.id].match
        durable = n.disk.durable
        if match == 0 or match < max(durable.first_index(), c.log.first_index()):
            return
        if match > durable.last_index() or durable.term(match) != c.log.term(match):
            self.fail(
                f"leader {n.id} (term {c.term}) counts its own copy of index {match} toward the"
                f" quorum, but its disk has made durable only up to {durable.last_index()}"
            )

    def _check_conf_entry(self, node: SimNode, e: Entry) -> None:
        """P10: each configuration a node applies differs from the one it
        replaces by at most one voter, so their majorities always intersect."""
        ci, prev = self.node_conf[node.id]
        if e.index <= ci:
            return  # already adopted at startup (configurations up to commit)
        voters = frozenset(decode_conf_change(e.data).conf.voters)
        # (A joining node starts with no configuration and learns it from the log.)
        if prev and len(voters ^ prev) > 1:
            self.fail(
                f"membership: {node.id} moved from {sorted(prev)} (index {ci}) to {sorted(voters)}"
                f" (index {e.index}): more than one voter changed"
            )
        self.node_conf[node.id] = (e.index, voters)

    def change_membership(self) -> None:
        rng = self.rng
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
        if not leaders:
            return
        c = rng.choice(leaders).core
        assert c is not None
        if c.id in self.paused:
            return
        target = rng.choice(self.ids)
        if target in c.voters:
            if len(c.voters) <= 2:
                return
            op = ConfChangeType.REMOVE
        elif target in c.learners:
            op = rng.choice([ConfChangeType.ADD_VOTER, ConfChangeType.REMOVE])
        else:
            op = rng.choice([ConfChangeType.ADD_VOTER, ConfChangeType.ADD_NONVOTER])
        try:
            idx, term = c.propose_conf_change(op, target)
        except RaftError as e:
            self.log(f"conf change {op.name} {target} at {c.id} refused: {e}")
            return
        self.stats["conf_changes"] += 1
        self.log(f"conf change {op.name} {target} at {c.id} -> {term}/{idx}")

    # ------------------------------------------------------------------ network
    def send(self, m: Message) -> None:
        f = self.faults
        delay = 0
        if self.rng.random() < f.delay:
            delay = self.rng.randint(1, f.max_delay)
        self._enqueue(m, delay)
        if self.rng.random() < f.dup:
            self._enqueue(m, self.rng.randint(0, f.max_delay))

    def _enqueue(self, m: Message, delay: int) -> None:
        self._seq += 1
        # A random tiebreak reorders messages due at the same tick.
        heapq.heappush(self.net, (self.now + delay, self.rng.randrange(1 << 30), self._seq, m))

    def connected(self, a: str, b: str) -> bool:
        if (a, b) in self.blocked:
            return False
        return self.groups is None or self.groups[a] == self.groups[b]

    def deliver_due(self, lossy: bool) -> bool:
        did = False
        while self.net and self.net[0][0] <= self.now:
            m = heapq.heappop(self.net)[-1]
            dst = self.nodes[m.to]
            if m.to in self.paused:
                # A stopped process reads nothing; the message waits in its socket buffer.
                self._seq += 1
                heapq.heappush(self.net, (self.now + 1, self.rng.randrange(1 << 30), self._seq, m))
                continue
            if (
                dst.core is None
                or not self.connected(m.frm, m.to)
                or (lossy and self.rng.random() < self.faults.drop)
            ):
                self.stats["dropped"] += 1
                continue
            if self.verbose:
                self.log("deliver " + fmt_msg(m))
            self.stats["delivered"] += 1
            dst.core.step(m)
            did = True
        return did

    def process_readies(self) -> None:
        for n in self.nodes.values():
            if n.id in self.paused:
                continue
            lag = self.faults.sync_lag
            while (rd := n.handle_ready(self.send, defer=bool(lag) and self.rng.random() < lag)) is not None:
                if rd.read_states:
                    self._check_reads(n, rd.read_states)
                if n.inflight is not None:
                    break  # its fsync runs while the network delivers

    # ------------------------------------------------------------------ reads
    def read(self) -> None:
        """Issue a linearizable read (ReadIndex) on a random live node."""
        alive = [n for n in self.nodes.values() if n.core is not None]
        if not alive:
            return
        n = self.rng.choice(alive)
        assert n.core is not None
        if n.id in self.paused:
            return
        self._read_seq += 1
        ctx = f"r{self._read_seq}".encode()
        # Everything committed anywhere before the request must be visible to it.
        floor = max(m.core.committed for m in alive if m.core is not None)
        try:
            n.core.read_index(ctx)
        except RaftError:
            return
        self.reads[ctx] = (n.id, floor)

    def _check_reads(self, node: SimNode, states: list[ReadState]) -> None:
        for rs in states:
            # (A duplicated MsgReadIndex/MsgReadIndexResp can release a read
            # twice; drivers ignore contexts they no longer wait for.  Both
            # releases must still be linearizable.)
            who, floor = self.reads.get(rs.context, ("", -1))
            if who != node.id:
                self.fail(f"read {rs.context!r} released on {node.id}, requested on {who or 'nobody'}")
            if rs.index < floor:
                self.fail(
                    f"stale read on {node.id}: read index {rs.index} < commit {floor} at request time (P4)"
                )
            if node.fsm.index > 0 and node.core is not None and node.core.applied < rs.index:
                self.fail(f"read {rs.context!r} on {node.id} released before applying {rs.index}")
            self.stats["reads"] += 1

    # ------------------------------------------------------------------ faults
    def inject_faults(self) -> None:
        rng, f = self.rng, self.faults
        alive = [n for n in self.nodes.values() if n.alive]
        dead = [n for n in self.nodes.values() if not n.alive]
        if alive and rng.random() < f.crash:
            n = rng.choice(alive)
            lost = n.crash(rng if f.lose_unsynced else None)
            if not f.lose_unsynced:
                lost = 0
            self.stats["crashes"] += 1
            self.log(f"crash {n.id} (lost {lost} unsynced writes)")
        if dead and rng.random() < f.restart:
            n = rng.choice(dead)
            n.restart()
            self.log(f"restart {n.id}")
        for nid, until in list(self.paused.items()):
            if self.now >= until or not self.nodes[nid].alive:
                del self.paused[nid]
                self.log(f"resume {nid}")
        if f.pause and alive and rng.random() < f.pause:
            n = rng.choice(alive)
            if n.id not in self.paused:
                self.paused[n.id] = self.now + rng.randint(5, 4 * self.config.election_ticks)
                self.log(f"pause {n.id} until t={self.paused[n.id]}")
        if rng.random() < f.partition:
            k = rng.randint(1, len(self.ids) - 1)
            side = set(rng.sample(self.ids, k))
            self.groups = {nid: int(nid in side) for nid in self.ids}
            self.log(f"partition {sorted(side)} / {sorted(set(self.ids) - side)}")
        elif (self.groups is not None or self.blocked) and rng.random() < f.heal:
            self.groups = None
            self.blocked.clear()
            self.log("heal")
        if f.one_way and rng.random() < f.one_way:
            a, b = rng.sample(self.ids, 2)
            self.blocked.add((a, b))
            self.log(f"block {a}->{b} (one-way)")

    def propose(self) -> None:
        rng = self.rng
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
        target = rng.choice(leaders) if leaders else rng.choice(list(self.nodes.values()))
        if target.core is None or target.id in self.paused:
            return
        self.proposals += 1
        data = f"{self.seed}:{self.proposals}".encode()
        try:
            idx, term = target.core.propose(data)
            self.log(f"propose {data!r} at {target.id} -> {term}/{idx}")
        except RaftError as e:
            self.log(f"propose at {target.id} refused: {e}")

    # ------------------------------------------------------------------ main loop
    def tick(self, lossy: bool) -> None:
        self.now += 1
        for n in self.nodes.values():
            if n.core is not None and n.id not in self.paused:
                if self.tick_rate[n.id] < 1.0 and self.rng.random() >= self.tick_rate[n.id]:
                    continue  # this node's clock runs slow
                before = n.core.role
                n.core.tick()
                if n.core.role is not before and n.core.role is not Role.FOLLOWER:
                    self.stats["elections"] += 1
        for _ in range(64):
            self.process_readies()
            self.check()
            if not self.deliver_due(lossy):
                break
        self.process_readies()
        self.check()

    def run(self) -> None:
        f = self.faults
        for _ in range(self.opts.steps):
            self.inject_faults()
            if self.rng.random() < f.propose:
                self.propose()
            if f.conf_change and self.rng.random() < f.conf_change:
                self.change_membership()
            if self.rng.random() < f.read:
                self.read()
            self.tick(lossy=True)
        self.settle()

    def settle(self) -> None:
        """Heal everything and require convergence (committed entries survive)."""
        self.groups = None
        self.blocked.clear()
        self.faults.max_delay = min(self.faults.max_delay, 2)
        self.faults.dup = 0.0
        self.paused.clear()
        self.tick_rate = dict.fromkeys(self.ids, 1.0)
        for n in self.nodes.values():
            if not n.alive:
                n.restart()
        self.log("settle: healed, all nodes up")
        for _ in range(self.opts.settle_ticks):
            self.tick(lossy=False)
            if self._converged():
                return
        states = {
            n.id: (n.core.role.value, n.core.term, n.core.committed, n.core.applied)
            for n in self.nodes.values()
            if n.core
        }
        self.fail(
            f"liveness: cluster did not converge within {self.opts.settle_ticks} ticks after healing: {states}"
        )

    def _converged(self) -> bool:
        """A leader has committed an entry of its own term, every node applied
        exactly its log, and that covers everything ever committed."""
        leaders = [n.core for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
        if len(leaders) != 1 or any(n.core is None for n in self.nodes.values()):
            return False
        lead = leaders[0]
        last = lead.log.last_index()
        if lead.log.term(last) != lead.term or last < self.max_committed:
            return False
        # Nodes removed from the configuration are no longer replicated to.
        members = [self.nodes[nid] for nid in (*lead.voters, *lead.learners)]
        if any(n.core is None or n.core.applied != last for n in members):
            return False
        fsms = {(n.fsm.index, n.fsm.digest) for n in members}
        if len(fsms) != 1:
            self.fail(f"state machine safety: FSMs differ after convergence: {fsms}")
        return True


def replay_command(seed: int, opts: SimOptions) -> str:
    disk = " --disk" if opts.disk_root else ""
    return f"python -m muster_testkit.raft.sim --seed {seed} --steps {opts.steps} --nodes {opts.nodes}{disk} -v"


def run_seed(seed: int, opts: SimOptions | None = None, verbose: bool = False) -> Simulation:
    """Run one seed; raises :class:`Violation` (with the replay command) on failure."""
    opts = opts or SimOptions()
    sim = Simulation(seed, opts)
    sim.verbose = verbose
    try:
        sim.run()
    except Violation as e:
        tail = "\n".join(list(sim.trace)[-40:])
        raise Violation(
            f"seed {seed}: {e}\n--- last events ---\n{tail}\nreplay: {replay_command(seed, opts)}"
        ) from None
    return sim


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m muster_testkit.raft.sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, help="first seed (default: random, printed)")
    p.add_argument("--seeds", type=int, default=1, help="number of consecutive seeds to run")
    p.add_argument("--steps", type=int, default=SimOptions.steps)
    p.add_argument("--nodes", type=int, default=SimOptions.nodes)
    p.add_argument("-v", "--verbose", action="store_true", help="print every event")
    p.add_argument("--disk", action="store_true", help="use real DiskStorage in a temporary directory")
    a = p.parse_args(argv)
    first = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    t0 = time.monotonic()
    for seed in range(first, first + a.seeds):
        with tempfile.TemporaryDirectory(prefix="muster-sim-") as tmp:
            opts = SimOptions(nodes=a.nodes, steps=a.steps, disk_root=Path(tmp) if a.disk else None)
            try:
                sim = run_seed(seed, opts, verbose=a.verbose)
            except Violation as e:
                print(f"FAIL {e}", file=sys.stderr)
                return 1
        if a.seeds == 1 or a.verbose:
            print(f"seed {seed}: ok, committed={sim.max_committed} {sim.stats} faults={sim.faults}")
    disk = ", DiskStorage" if a.disk else ""
    took = time.monotonic() - t0
    print(f"{a.seeds} seed(s) from {first} passed in {took:.1f}s ({a.nodes} nodes, {a.steps} steps{disk})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
