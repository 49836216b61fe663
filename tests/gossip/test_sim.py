"""The seeded gossip simulator: detection, no false positives, convergence, determinism."""

from __future__ import annotations

from dataclasses import replace

import pytest

from muster.gossip.core import GossipConfig, suspicion_timeout
from muster_testkit.gossip.sim import SimConfig, main, run

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("seed", [1, 2])
def test_crash_is_detected_by_everyone_without_false_positives(seed: int) -> None:
    res = run(SimConfig(seed=seed, nodes=20, observe=30.0))
    assert res.ok, res.violations
    assert res.false_positives == 0
    g = GossipConfig.lan()
    lo = suspicion_timeout(g.suspicion_mult, 20, g.probe_interval)
    assert len(res.detection_times) == 19  # every surviving member reported it failed
    assert lo <= min(res.detection_times) and max(res.detection_times) <= 6 * lo + 15


@pytest.mark.parametrize("tcp_pings", [True, False], ids=["tcp-fallback", "udp-only"])
def test_ten_percent_loss_and_a_slow_member_cause_no_false_failures(tcp_pings: bool) -> None:
    gossip = replace(GossipConfig.lan(), disable_tcp_pings=not tcp_pings)
    res = run(SimConfig(seed=3, nodes=20, loss=0.1, slow=True, observe=60.0, gossip=gossip))
    assert res.ok, res.violations
    assert res.false_positives == 0, res.summary()


def test_partition_then_heal_converges() -> None:
    res = run(SimConfig(seed=4, nodes=16, partition=True, observe=10.0))
    assert res.ok, res.violations


def test_a_seed_replays_exactly() -> None:
    a = run(SimConfig(seed=9, nodes=12, loss=0.05, observe=10.0))
    b = run(SimConfig(seed=9, nodes=12, loss=0.05, observe=10.0))
    assert a.summary() == b.summary() and a.packets == b.packets


def test_cli_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "5", "--nodes", "10", "--observe", "5"]) == 0
    out = capsys.readouterr().out
    assert "seed=5 ok=True" in out
