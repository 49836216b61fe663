"""Hand-built schedules for the Raft pitfalls of docs/compat/raft.md.

Each test drives real :class:`RaftCore` instances through :class:`MiniCluster`
(SimNodes + an in-memory network with partitions and message filters) and
asserts the property the pitfall is about.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from muster.raft.core import RaftConfig, RaftCore, ReadState, Role
from muster.raft.errors import ConfChangeRejected, NotLeader, ProposalDropped
from muster.raft.messages import ConfChangeType, ConfState, Entry, EntryType, HardState, Message, MsgType
from muster_testkit.raft.simnode import SimDisk, SimFSM, SimNode, clone_storage


class MiniCluster:
    def __init__(self, n: int, voters: int | None = None, **cfg: object) -> None:
        self.config = RaftConfig(**cfg)  # type: ignore[arg-type]
        ids = [str(i) for i in range(1, n + 1)]
        conf = ConfState(tuple(ids[: voters or n]))
        self.nodes = {
            nid: SimNode(nid, conf if nid in conf.voters else ConfState(), self.config, seed=i)
            for i, nid in enumerate(ids, 1)
        }
        self.queue: list[Message] = []
        self.groups: list[set[str]] | None = None
        self.drop: Callable[[Message], bool] = lambda m: False
        self.applied: dict[int, tuple[int, bytes]] = {}
        self.read_states: dict[str, list[ReadState]] = {nid: [] for nid in ids}
        self.leaders: dict[int, str] = {}
        for node in self.nodes.values():
            node.on_apply = self._on_apply

    def _on_apply(self, node: SimNode, e: Entry, fsm: SimFSM) -> None:
        if e.type is EntryType.NORMAL:
            old = self.applied.setdefault(e.index, (e.term, e.data))
            assert old == (e.term, e.data), f"index {e.index} applied as {(e.term, e.data)} and {old}"

    def core(self, nid: str) -> RaftCore:
        c = self.nodes[nid].core
        assert c is not None, f"{nid} is down"
        return c

    def connected(self, a: str, b: str) -> bool:
        return self.groups is None or any(a in g and b in g for g in self.groups)

    def partition(self, *groups: str) -> None:
        self.groups = [set(g.split(",")) for g in groups]

    def check_leaders(self) -> None:
        for n in self.nodes.values():
            if n.core is not None and n.core.role is Role.LEADER:
                prev = self.leaders.setdefault(n.core.term, n.id)
                assert prev == n.id, f"two leaders in term {n.core.term}: {prev} and {n.id}"

    def pump(self, on_step: Callable[[], None] | None = None) -> None:
        """Handle Readys and deliver messages until quiet."""
        for _ in range(10_000):
            for n in self.nodes.values():
                rd = n.handle_ready(self.queue.append)
                if rd is not None:
                    self.read_states[n.id].extend(rd.read_states)
            self.check_leaders()
            if not self.queue:
                return
            msgs, self.queue = self.queue, []
            for m in msgs:
                dst = self.nodes[m.to]
                if dst.core is None or not self.connected(m.frm, m.to) or self.drop(m):
                    continue
                dst.core.step(m)
                if on_step is not None:
                    on_step()
        raise AssertionError("network did not quiesce")

    def tick_all(self, n: int = 1, on_step: Callable[[], None] | None = None) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                if node.core is not None:
                    node.core.tick()
            self.pump(on_step)

    def leader(self) -> str | None:
        ls = [n.id for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
        return ls[0] if len(ls) == 1 else None

    def elect(self, nid: str) -> None:
        self.core(nid).campaign()
        self.pump()
        assert self.leader() == nid

    def preload(self, nid: str, log: list[tuple[int, int]], term: int, commit: int) -> None:
        """Replace ``nid``'s durable state with ``log`` [(term, index)] and restart it."""
        node = self.nodes[nid]
        node.crash()
        assert isinstance(node.disk, SimDisk)
        d = node.disk.durable
        d.ents, d.ci, d.ct = [], 0, 0
        d.append([Entry(t, i, EntryType.NORMAL, f"i{i}t{t}".encode()) for t, i in log])
        d.set_hard_state(HardState(term, "", commit))
        node.disk.mem = clone_storage(d)
        node.restart()


def test_p1_figure8_old_term_entry_not_committed_by_counting() -> None:
    """Raft Figure 8: an entry from an earlier term that reaches a majority is
    NOT committed by counting replicas; a later leader may legitimately
    overwrite it, and no node ever applies it."""
    c = MiniCluster(5, pre_vote=False, check_quorum=False, max_msg_bytes=1)
    c.preload("1", [(1, 1), (2, 2)], term=3, commit=1)
    c.preload("2", [(1, 1), (2, 2)], term=3, commit=1)
    c.preload("3", [(1, 1)], term=3, commit=1)
    c.preload("4", [(1, 1)], term=3, commit=1)
    c.preload("5", [(1, 1), (3, 2)], term=3, commit=1)

    # (c) S1 leads term 4 and copies entry 2 (term 2) to S3, but its own no-op
    # at index 3 (term 4) reaches only S2: S3 loses every MsgApp carrying it
    # once it holds entry 2 (it must still see the probe that it rejects).
    c.partition("1,2,3", "4", "5")
    c.drop = lambda m: (
        m.to == "3" and m.type is MsgType.APP and m.index >= 2 and c.core("3").log.last_index() >= 2
    )
    c.elect("1")
    s1 = c.core("1")
    assert s1.term == 4
    for nid in ("1", "2", "3"):
        assert c.core(nid).log.term(2) == 2  # on a majority of 5 ...
    assert s1.committed == 1  # ... but not committed: its term is not the leader's
    assert 2 not in c.applied

    # (d) S1 crashes; S5 (last term 3) wins with S3 and S4 and overwrites index 2.
    c.nodes["1"].crash()
    c.groups = None
    c.drop = lambda m: False
    c.core("5").campaign()
    c.pump()
    if c.leader() != "5":
        c.core("5").campaign()
        c.pump()
    assert c.leader() == "5"
    c.core("5").propose(b"after")
    c.pump()
    assert c.applied[2] == (3, b"i2t3")
    for nid in ("2", "3", "4", "5"):
        assert c.core(nid).log.term(2) == 3


def test_p1_old_term_entry_committed_with_current_term_entry() -> None:
    """Counterpart: once an entry of the leader's term is on a majority, the
    earlier-term entry before it commits too (indirectly)."""
    c = MiniCluster(5, pre_vote=False, check_quorum=False)
    c.preload("1", [(1, 1), (2, 2)], term=3, commit=1)
    c.preload("2", [(1, 1), (2, 2)], term=3, commit=1)
    for nid in ("3", "4", "5"):
        c.preload(nid, [(1, 1)], term=3, commit=1)
    c.elect("1")
    assert c.core("1").committed == 3
    assert c.applied[2] == (2, b"i2t2")


def test_p2_conf_change_refused_until_own_term_entry_commits() -> None:
    """50 add/remove cycles of a fourth server with the leader crashed after
    every cycle; every new leader refuses membership changes until its no-op
    commits; never two leaders in a term."""
    c = MiniCluster(4, voters=3)
    refusals = 0

    def probe_new_leader() -> None:
        nonlocal refusals
        for n in c.nodes.values():
            core = n.core
            if core is None or core.role is not Role.LEADER:
                continue
            if core.log.term(core.committed) != core.term:
                with pytest.raises(ConfChangeRejected, match="not yet committed an entry in its term"):
                    core.propose_conf_change(ConfChangeType.ADD_VOTER, "4")
                refusals += 1

    c.tick_all(30, on_step=probe_new_leader)
    for cycle in range(50):
        lead = c.leader()
        for _ in range(100):
            if lead is not None:
                break
            c.tick_all(1, on_step=probe_new_leader)
            lead = c.leader()
        assert lead is not None, f"no leader in cycle {cycle}"
        core = c.core(lead)
        op = ConfChangeType.REMOVE if "4" in core.voters else ConfChangeType.ADD_VOTER
        core.propose_conf_change(op, "4")
        c.pump(probe_new_leader)
        assert ("4" in c.core(lead).voters) == (op is ConfChangeType.ADD_VOTER)
        # Kill the leader and bring it back once someone else leads.
        c.nodes[lead].crash()
        for _ in range(100):
            c.tick_all(1, on_step=probe_new_leader)
            if c.leader() not in (None, lead):
                break
        c.nodes[lead].restart()
        c.pump(probe_new_leader)
    assert refusals >= 50
    assert len(c.leaders) >= 50


def test_p3_isolated_leader_steps_down_and_serves_no_reads() -> None:
    c = MiniCluster(3)
    c.elect("1")
    c.partition("1", "2,3")
    c.core("1").read_index(b"after-isolation")
    ticks = 0
    while c.core("1").role is Role.LEADER:
        c.core("1").tick()
        c.pump()
        ticks += 1
        assert ticks <= 2 * c.config.election_ticks
    assert c.read_states["1"] == []
    with pytest.raises(NotLeader):
        c.core("1").propose(b"x")
    # Reads issued now cannot be served either: no leader is known.
    with pytest.raises(NotLeader):
        c.core("1").read_index(b"later")


def test_p5_rejoining_follower_does_not_depose_leader() -> None:
    """Isolate a follower for 10 election timeouts, heal: same leader, same
    term, writes keep committing, and the follower catches up."""
    c = MiniCluster(3)
    c.elect("1")
    term = c.core("1").term
    c.partition("1,2", "3")
    for i in range(10 * c.config.election_ticks):
        c.tick_all()
        if i % 3 == 0:
            c.core("1").propose(f"w{i}".encode())
            c.pump()
    assert c.core("3").term == term, "pre-vote must keep the isolated follower's term"
    c.groups = None
    committed_before = c.core("1").committed
    for i in range(3 * c.config.election_ticks):
        c.tick_all()
        c.core("1").propose(f"h{i}".encode())
        c.pump()
        assert c.leader() == "1"
        assert c.core("1").term == term
    assert c.core("1").committed > committed_before
    assert c.core("3").applied == c.core("1").applied


def test_p5_without_pre_vote_the_rejoining_follower_disrupts() -> None:
    """Control experiment: the same schedule without pre-vote changes the term,
    which is exactly what pre-vote prevents."""
    c = MiniCluster(3, pre_vote=False)
    c.elect("1")
    term = c.core("1").term
    c.partition("1,2", "3")
    c.tick_all(10 * c.config.election_ticks)
    assert c.core("3").term > term
    c.groups = None
    c.tick_all(3 * c.config.election_ticks)
    assert max(n.core.term for n in c.nodes.values() if n.core) > term


def test_p10_second_concurrent_change_refused() -> None:
    c = MiniCluster(5, voters=3)
    c.elect("1")
    core = c.core("1")
    core.propose_conf_change(ConfChangeType.ADD_VOTER, "4")
    with pytest.raises(ConfChangeRejected, match="not yet applied"):
        core.propose_conf_change(ConfChangeType.ADD_VOTER, "5")
    with pytest.raises(ConfChangeRejected):
        core.propose_conf_change(ConfChangeType.REMOVE, "3")
    c.pump()
    assert core.voters == ("1", "2", "3", "4")
    core.propose_conf_change(ConfChangeType.ADD_VOTER, "5")
    c.pump()
    assert all(c.core(n).voters == ("1", "2", "3", "4", "5") for n in "12345")


def test_learner_replicated_but_never_counted() -> None:
    c = MiniCluster(4, voters=3)
    c.elect("1")
    core = c.core("1")
    core.propose_conf_change(ConfChangeType.ADD_NONVOTER, "4")
    c.pump()
    assert core.learners == ("4",)
    # Two voters down: the learner's ack must not make a quorum.
    c.nodes["2"].crash()
    c.nodes["3"].crash()
    before = core.committed
    core.propose(b"needs-a-voter-quorum")
    c.pump()
    assert core.committed == before
    assert c.core("4").log.last_index() == core.log.last_index()
    # A learner never campaigns.
    c.tick_all(5 * c.config.election_ticks)
    assert c.core("4").role is Role.FOLLOWER


def test_uncommitted_bytes_cap_on_a_leader_without_quorum() -> None:
    """A leader cut off from its quorum stops accepting proposals once
    ``max_uncommitted_bytes`` are pending, rather than growing its log without bound."""
    c = MiniCluster(3, check_quorum=False, max_uncommitted_bytes=100)
    c.elect("1")
    core = c.core("1")
    c.partition("1", "2,3")
    accepted = 0
    with pytest.raises(ProposalDropped, match="not yet committed"):
        for _ in range(50):
            core.propose(b"x" * 30)
            accepted += 1
            c.pump()
    assert accepted == 3  # 3 x 30 bytes pending; a 4th would exceed 100
    c.groups = None
    c.tick_all(2)
    assert core.committed == core.log.last_index()
    core.propose(b"y" * 30)  # room again once the backlog committed
