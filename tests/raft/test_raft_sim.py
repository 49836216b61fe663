"""Seeded fault simulation of the Raft core (see ``muster_testkit.raft.sim``).

``make test`` runs 1,000 seeds (3, 4 and 5 nodes, 200 steps each, plus up to
400 settle ticks); each failure message ends with the exact replay command.
The soak variant runs more and longer seeds (``make soak``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from muster.raft.core import RaftCore, Role
from muster.raft.messages import Entry
from muster_testkit.raft.sim import SimOptions, Simulation, Violation, run_seed

CHUNK = 100
SEEDS = 1000


def _nodes_for(seed: int) -> int:
    return (3, 3, 4, 5)[seed % 4]


@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_sim_seeds(start: int) -> None:
    committed = 0
    for seed in range(start, start + CHUNK):
        sim = run_seed(seed, SimOptions(nodes=_nodes_for(seed), steps=200))
        committed += sim.max_committed
    # Guard against a simulator that silently stops exercising the cluster.
    assert committed > CHUNK * 20


def test_sim_fresh_seeds() -> None:
    """A few never-seen seeds per run (docs/ARCHITECTURE.md#testing-tiers: a fixed seed
    list plus fresh seeds).  A failure message carries the replay command."""
    fresh = random.SystemRandom()
    for _ in range(10):
        seed = fresh.randrange(1 << 31)
        run_seed(seed, SimOptions(nodes=_nodes_for(seed), steps=200))


def test_sim_is_deterministic() -> None:
    a = run_seed(42, SimOptions(nodes=5, steps=150))
    b = run_seed(42, SimOptions(nodes=5, steps=150))
    assert (a.max_committed, a.stats, list(a.trace)) == (b.max_committed, b.stats, list(b.trace))


def test_checker_catches_two_leaders_in_a_term() -> None:
    """The election-safety checker is live: forge a second leader and expect a Violation."""
    sim = Simulation(7, SimOptions(nodes=3, steps=50))
    for _ in range(60):
        sim.tick(lossy=False)
    leaders = [n for n in sim.nodes.values() if n.core is not None and n.core.role is Role.LEADER]
    assert len(leaders) == 1
    other = next(n for n in sim.nodes.values() if n is not leaders[0])
    assert other.core is not None
    other.core.role = Role.LEADER
    other.core.term = leaders[0].core.term  # type: ignore[union-attr]
    with pytest.raises(Violation, match="election safety"):
        sim.check()


def test_leader_never_counts_its_own_undurable_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader's fsync runs in parallel with replication (its MsgApps leave before
    it), so it must count its own vote for an entry only once the entry is durable.
    The checker is live: a core that counts itself at append time (the ordering that
    was safe only while every message waited for the leader's fsync) is caught, and
    the seeds that catch it pass with the real core."""
    seeds = [s for s in range(40) if Simulation(s, SimOptions(nodes=3, steps=120)).faults.sync_lag]
    assert seeds
    for seed in seeds[:5]:
        run_seed(seed, SimOptions(nodes=3, steps=120))

    original = RaftCore._append_entries

    def count_self_at_append(self: RaftCore, ents: list[Entry]) -> tuple[int, int]:
        last, term = original(self, ents)
        self.prs[self.id].maybe_update(last)
        self._maybe_commit()
        return last, term

    monkeypatch.setattr(RaftCore, "_append_entries", count_self_at_append)
    with pytest.raises(Violation, match="counts its own copy"):
        for seed in seeds:
            run_seed(seed, SimOptions(nodes=3, steps=120))


def test_violation_message_has_replay_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Simulation) -> None:
        raise Violation("synthetic")

    monkeypatch.setattr(Simulation, "run", boom)
    with pytest.raises(
        Violation, match=r"replay: python -m muster_testkit\.raft\.sim --seed 3 --steps 10 --nodes 3"
    ):
        run_seed(3, SimOptions(nodes=3, steps=10))


@pytest.mark.soak
@pytest.mark.parametrize("start", range(100_000, 105_000, 500))
def test_sim_soak(start: int) -> None:
    for seed in range(start, start + 500):
        run_seed(seed, SimOptions(nodes=_nodes_for(seed), steps=1000, settle_ticks=1000))


def test_sim_on_real_disk_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator with every node on a real DiskStorage directory: each
    crash tears the WAL's unsynced tail at a random byte and recovery runs on
    reopen.  fsync is stubbed out for speed; durability is modelled by the
    torn-tail cut, which never goes below the last fsync."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    for seed in range(30):
        run_seed(seed, SimOptions(nodes=3, steps=150, disk_root=tmp_path / str(seed)))
