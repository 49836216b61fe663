"""``?consistent`` KV operations stay linearizable while the cluster is partitioned, paused
and killed: the seed's StatefulSet in network namespaces, the workload and the checker of
``muster_testkit.history`` / ``muster_testkit.linearizability`` running in the client namespace.

Six fault rounds per run: the leader cut off the network, a follower paused, the leader's
container killed -9 and restarted, the leader paused longer than its lease, a follower cut
off, a follower killed -9.  The bound: >= 3,000 operations, 0 violations.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster_testkit.history import TimedFaults, WorkloadConfig, run_and_check
from muster_testkit.k8ssim import StatefulSet, available

WHY = available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=f"network namespaces unavailable: {WHY}")


@pytest.fixture
def sts(tmp_path: Path) -> Iterator[StatefulSet]:
    s = StatefulSet(tmp_path / "k8s", python=sys.executable)
    s.args = [*s.args]  # the seed's args; raft timings from the defaults
    s.up()
    try:
        yield s
    finally:
        s.down()


def faults(s: StatefulSet) -> TimedFaults:
    state: dict[str, int] = {}

    def leader() -> int:
        found = s.leader_here()
        return found if found is not None else 0

    def cut_leader() -> None:
        state["cut"] = leader()
        s.partition(state["cut"])

    def heal_cut() -> None:
        s.partition(state.pop("cut"), cut=False)

    def pause_follower() -> None:
        state["paused"] = (leader() + 1) % 3
        s.pause(state["paused"])

    def pause_leader() -> None:
        state["paused"] = leader()
        s.pause(state["paused"])

    def resume() -> None:
        s.pause(state.pop("paused"), stop=False)

    def cut_follower() -> None:
        state["cut"] = (leader() + 2) % 3
        s.partition(state["cut"])

    def heal_all() -> None:
        for o in range(3):
            s.pause(o, stop=False)
            s.partition(o, cut=False)

    return TimedFaults(
        [
            (2.0, "partition leader", cut_leader),
            (5.0, "heal", heal_cut),
            (7.0, "pause follower", pause_follower),
            (9.0, "resume", resume),
            (11.0, "kill -9 leader", lambda: s.restart_container(leader())),
            (16.0, "pause leader past its lease", pause_leader),
            (19.0, "resume", resume),
            (21.0, "partition follower", cut_follower),
            (24.0, "heal", heal_cut),
            (26.0, "kill -9 follower", lambda: s.restart_container((leader() + 1) % 3)),
        ],
        on_heal=heal_all,
    )


def test_consistent_kv_is_linearizable_under_faults(sts: StatefulSet) -> None:
    for o in range(3):
        sts.create_pod(o)
    sts.wait_leader(30)
    urls = [f"http://{sts.pods[o].ip}:8500" for o in range(3)]
    cfg = WorkloadConfig(clients=8, keys=10, read_mode="consistent", timeout=3.0, connect_timeout=1.0, allow_non_loopback=True, seed=7)
    assert sts.client is not None
    t0 = time.monotonic()
    # Bounded by time (every fault round happens by 26 s), with a generous op cap.
    report = sts.client.call(lambda: run_and_check(urls, ops=40_000, seconds=32, faults=faults(sts), config=cfg), timeout=300)
    print(f"\n{report.summary()}\n({time.monotonic() - t0:.0f}s with the check)")
    injected = [e for e in report.faults if e.kind.startswith(("partition", "pause", "kill"))]
    assert len(injected) >= 6, [e.kind for e in report.faults]
    assert report.ops >= 3000, report.summary()
    assert report.linearizable is True, report.summary()


@pytest.mark.soak
def test_consistent_kv_soak_100k_ops_under_repeated_faults(sts: StatefulSet) -> None:
    """``make soak``: >= 100,000 operations with the fault schedule repeated every 30 s."""
    for o in range(3):
        sts.create_pod(o)
    sts.wait_leader(30)
    urls = [f"http://{sts.pods[o].ip}:8500" for o in range(3)]
    base = faults(sts)
    rounds = [(t + 30.0 * k, name, cb) for k in range(60) for (t, name, cb) in base.schedule]
    schedule = TimedFaults(rounds, on_heal=base.on_heal)
    cfg = WorkloadConfig(clients=16, keys=50, ops_per_key=2500, read_mode="consistent", timeout=3.0, connect_timeout=1.0, allow_non_loopback=True, seed=11)
    assert sts.client is not None
    report = sts.client.call(lambda: run_and_check(urls, ops=100_000, seconds=1800, faults=schedule, config=cfg), timeout=2400)
    print(f"\n{report.summary()}")
    assert report.ops >= 100_000, report.summary()
    assert report.linearizable is True, report.summary()
