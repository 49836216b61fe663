#!/usr/bin/env python3
"""Gossip at scale in the simulator: 100 .. 1,000 members, next to memberlist's formulas.

Runs the seeded discrete-event simulator of the gossip layer (``muster_testkit.gossip.sim``:
real ``Serf``/SWIM cores, a simulated network with 1-15 ms latency, LAN timings) for each size:

1. **join**: the members start within 2 s and join through member 0; *convergence* is the time
   from the last join until every member sees every other alive (checked every 0.5 s of
   simulated time);
2. **steady state**: ``--window`` simulated seconds with nothing happening, ``--settle`` seconds
   after convergence; *packets per member
   per second* are the UDP packets sent in that window / members / seconds (push/pull exchanges
   are streams and counted separately: the ones each member started, memberlist's rate being one
   per scaled interval; the members' timers start together at the join, so a window shorter
   than the interval can see none);
3. **failure**: one member crashes; *detection* is the time until the first and until the last
   live member declares it failed.

Next to each figure, what memberlist's formulas (``memberlist/util.go``, ``suspicion.go``,
``config.go`` defaults) give for that size: suspicion timeout ``min = SuspicionMult *
max(1, log10 N) * ProbeInterval`` (the detection floor; ``max = 6 * min`` without
confirmations), retransmits ``RetransmitMult * ceil(log10(N + 1))``, the push/pull interval
scaled above 32 members, and the steady-state packet rate (one ping and one ack per member per
probe interval; gossip packets only carry pending broadcasts, so none in steady state).

Bounded: every phase has a simulated-time limit, and ``--max-wall`` seconds of wall time per
size (a size that runs out reports what it measured so far).  Nothing touches the network.

    .venv/bin/python bench/gossip_scale.py                     # 100, 300, 1000 members, seed 1
    .venv/bin/python bench/gossip_scale.py --sizes 1000 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from muster.gossip.core import GossipConfig, push_pull_scale, suspicion_timeout
from muster.gossip.queue import retransmit_limit
from muster.gossip.serf import MemberStatus
from muster_testkit.gossip.sim import SimConfig, Simulation


@dataclass
class Result:
    nodes: int
    seed: int
    join_convergence_s: float | None = None
    packets_per_member_s: float | None = None
    push_pulls_per_member_s: float | None = None
    detect_first_s: float | None = None
    detect_all_s: float | None = None
    detected_by: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    formulas: dict[str, float] = field(default_factory=dict)


def formulas(n: int, g: GossipConfig) -> dict[str, float]:
    lo = suspicion_timeout(g.suspicion_mult, n, g.probe_interval)
    return {
        "suspicion_min_s": lo,
        "suspicion_max_s": g.suspicion_max_timeout_mult * lo,
        "retransmits": float(retransmit_limit(g.retransmit_mult, n)),
        "push_pull_interval_s": push_pull_scale(g.push_pull_interval, n),
        # one ping sent and (on average) one ack sent per member per probe interval
        "steady_packets_per_member_s": 2.0 / g.probe_interval,
        # first probe of the dead member (<= 1 interval), its round (1 interval), then the
        # suspicion timeout once k = SuspicionMult - 2 peers confirmed: min .. min + 2 intervals
        "detect_expected_s": lo + 2 * g.probe_interval,
    }


def alive_counts_converged(sim: Simulation) -> bool:
    """Cheap agreement test: every live member sees exactly as many alive members as there are
    live ones, and none of the crashed ones alive (names are unique, so with the count equal
    and no crashed one alive the sets are equal)."""
    live = sim.live()
    crashed = {n.name for n in sim.nodes.values() if n.crashed}
    for n in live:
        alive = [m.name for m in n.serf.members() if m.status == MemberStatus.ALIVE]
        if len(alive) != len(live) or crashed.intersection(alive):
            return False
    return True


def run_size(n: int, seed: int, window: float, max_wall: float, settle: float = 60.0) -> Result:
    g = GossipConfig.lan()
    res = Result(n, seed, formulas=formulas(n, g))
    started = time.monotonic()

    def out_of_time() -> bool:
        if time.monotonic() - started > max_wall:
            res.notes.append(f"stopped after {max_wall:.0f} s of wall time")
            return True
        return False

    sim = Simulation(SimConfig(seed=seed, nodes=n, gossip=g))
    seed_node = sim.add_node(0)
    for i in range(1, n):
        sim.run_until(sim.now + sim.rnd.uniform(0.0, 2.0 / n))
        node = sim.add_node(i)
        node.serf.join([seed_node.addr], sim.now)
        sim._drain(node)
    t_joined = sim.now
    while sim.now < t_joined + 120.0:
        if alive_counts_converged(sim):
            res.join_convergence_s = sim.now - t_joined
            break
        if out_of_time():
            break
        sim.run_until(sim.now + 0.5)
    if res.join_convergence_s is None:
        res.notes.append("join did not converge")
        res.wall_s = time.monotonic() - started
        return res

    # Steady state: let the join's broadcasts drain and the push/pull timers armed while the
    # members knew few others (unscaled interval) run out, then count a window.
    sim.run_until(sim.now + settle)
    p0 = sim.packets
    pp0 = sum(x.serf.core.counters["push_pulls"] for x in sim.nodes.values())
    t0 = sim.now
    while sim.now < t0 + window and not out_of_time():
        sim.run_until(min(t0 + window, sim.now + 5.0))
    span = sim.now - t0
    if span > 0:
        res.packets_per_member_s = (sim.packets - p0) / n / span
        pp1 = sum(x.serf.core.counters["push_pulls"] for x in sim.nodes.values())
        res.push_pulls_per_member_s = (pp1 - pp0) / n / span

    # Failure detection.
    victim = sim.nodes[f"node{1 + sim.rnd.randrange(n - 1)}"]
    victim.crashed = True
    t_crash = sim.now
    limit = t_crash + res.formulas["suspicion_max_s"] + 20.0
    live = len(sim.live())
    while sim.now < limit and not out_of_time():
        sim.run_until(sim.now + 1.0)
        if len(sim.failed_seen.get(victim.name, {})) >= live:
            break
    seen = sorted(t - t_crash for t in sim.failed_seen.get(victim.name, {}).values())
    res.detected_by = len(seen)
    if seen:
        res.detect_first_s = seen[0]
        if len(seen) >= live:
            res.detect_all_s = seen[-1]
        else:
            res.notes.append(f"only {len(seen)} of {live} members declared the crash")
    if sim.false_positives:
        res.notes.append(f"{sim.false_positives} false failure declarations")
    res.wall_s = time.monotonic() - started
    return res


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--sizes", default="100,300,1000", help="comma-separated member counts")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per size (1, 2, ...)")
    ap.add_argument("--window", type=float, default=60.0, help="steady-state seconds counted (simulated)")
    ap.add_argument("--settle", type=float, default=60.0, help="simulated seconds between convergence and the window")
    ap.add_argument("--max-wall", type=float, default=900.0, help="wall-clock bound per size and seed")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    results: list[Result] = []
    for n in sizes:
        for seed in range(1, args.seeds + 1):
            r = run_size(n, seed, args.window, args.max_wall, args.settle)
            results.append(r)
            print(json.dumps(r.__dict__), flush=True)
    print()
    print("| members | seed | join converged | packets/member/s (memberlist: 2) | push/pull per member/s (memberlist) "
          "| detection first / all | memberlist: suspicion min / max, expected | retransmits | notes | wall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        f: dict[str, Any] = r.formulas
        print(f"| {r.nodes:,} | {r.seed} | {fmt(r.join_convergence_s)} s | {fmt(r.packets_per_member_s, '.2f')} "
              f"| {fmt(r.push_pulls_per_member_s, '.4f')} ({1 / f['push_pull_interval_s']:.4f}) "
              f"| {fmt(r.detect_first_s)} / {fmt(r.detect_all_s)} s "
              f"| {f['suspicion_min_s']:.1f} / {f['suspicion_max_s']:.0f} s, ~{f['detect_expected_s']:.0f} s "
              f"| {f['retransmits']:.0f} | {'; '.join(r.notes) or '-'} | {r.wall_s:.0f} s |")
    return 0 if all(math.isfinite(r.join_convergence_s or math.inf) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
