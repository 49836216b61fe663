"""Seeded discrete-event simulator for the gossip layer (Serf over the SWIM core).

One seed determines everything: node start times, every packet's latency and loss, every random
choice of every node (each node's :class:`~muster.runtime.Rng` is derived from the seed), so a
failing run replays exactly.  Nodes are real :class:`~muster.gossip.serf.Serf` objects; the
network delivers their packets and carries their push/pull streams with a latency, a loss rate
and partitions; a crashed node neither sends nor receives; a *slow* node (Lifeguard's degraded
member) handles everything it receives ``slow_delay`` seconds late.

Scenario (all phases on one timeline):

1. ``nodes`` members start within 2 s and join through node 0; the join must converge (every
   member sees every other alive) -- the time it took is reported.
2. One node (never node 0) crashes; every other member must report it ``failed`` within
   ``detection bound = suspicion max timeout + 10 probe intervals + 5 s``.
3. ``observe`` seconds of steady state (loss and the slow member continue).
4. Optionally (``--partition``) the members are split in two halves for longer than the
   suspicion timeout, then healed; afterwards all members must again agree.
5. Final agreement: every live member sees exactly the live members as alive and the crashed one
   as failed.

Throughout, a ``member-failed`` event about a member that is neither crashed nor cut off from the
observer is a *false positive*.  They are counted under loss; without loss they are a violation.

CLI::

    python -m muster_testkit.gossip.sim --seed 7 [--nodes 30] [--loss 0.1] [--slow] [--partition] [--seeds N]
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from muster.gossip.core import GossipConfig, suspicion_timeout
from muster.gossip.serf import MemberEvent, MemberStatus, Serf, SerfEventType
from muster.runtime import Rng

__all__ = ["SimConfig", "SimResult", "Simulation", "main", "run"]

Addr = tuple[str, int]


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    nodes: int = 20
    loss: float = 0.0
    latency: tuple[float, float] = (0.001, 0.015)
    slow: bool = False
    slow_delay: float = 0.6
    partition: bool = False
    partition_time: float = 60.0
    #: Steady-state seconds after the crash was detected (false positives are counted throughout).
    observe: float = 60.0
    gossip: GossipConfig = field(default_factory=GossipConfig.lan)


@dataclass
class SimResult:
    seed: int
    violations: list[str]
    join_convergence: float
    detection_times: list[float]
    false_positives: int
    packets: int
    sim_time: float

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        det = self.detection_times
        det_s = (f"first {min(det):.1f}s, all {max(det):.1f}s" if det else "n/a")
        return (f"seed={self.seed} ok={self.ok} join-converged={self.join_convergence:.1f}s "
                f"detection[{det_s}] false-positives={self.false_positives} packets={self.packets} "
                f"sim-time={self.sim_time:.0f}s")


@dataclass
class _Node:
    name: str
    addr: Addr
    serf: Serf
    crashed: bool = False
    group: int = 0
    slow: float = 0.0
    scheduled: float = math.inf


class Simulation:
    """The network, the clock and the checkers.  ``now`` only moves forward."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rnd = random.Random(cfg.seed)
        self.now = 0.0
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.nodes: dict[str, _Node] = {}
        self.by_addr: dict[Addr, _Node] = {}
        self.packets = 0
        self.false_positives = 0
        self.fp_log: list[str] = []
        self.failed_seen: dict[str, dict[str, float]] = {}  # subject -> observer -> time

    # --- topology --------------------------------------------------------------------------

    def add_node(self, i: int) -> _Node:
        name = f"node{i}"
        addr = (f"10.0.{i // 250}.{i % 250 + 1}", 8301)
        serf = Serf(name=name, node_id=f"00000000-0000-4000-8000-{i:012d}", addr=addr[0], port=addr[1],
                    rng=Rng(self.rnd.getrandbits(64)), now=self.now, tags={"role": "node"},
                    gossip=self.cfg.gossip)
        node = _Node(name, addr, serf)
        self.nodes[name] = node
        self.by_addr[addr] = node
        self._drain(node)
        return node

    def reachable(self, a: _Node, b: _Node) -> bool:
        return not a.crashed and not b.crashed and a.group == b.group

    # --- event loop -----------------------------------------------------------------------

    def _push(self, t: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def _latency(self) -> float:
        lo, hi = self.cfg.latency
        return self.rnd.uniform(lo, hi)

    def _drain(self, node: _Node) -> None:
        """Collect a node's outputs into the network and re-arm its timer."""
        s = node.serf
        for dst, data in s.packets_to_send():
            self.packets += 1
            if self.rnd.random() < self.cfg.loss:
                continue
            peer = self.by_addr.get(dst)
            delay = self._latency() + node.slow + (peer.slow if peer is not None else 0.0)
            self._push(self.now + delay, "pkt", (node.addr, dst, data))
        for req in s.streams_to_open():
            self._push(self.now + self._latency() + node.slow, "sreq", (node.addr, req))
        for ev in s.events():
            if isinstance(ev, MemberEvent) and ev.type == SerfEventType.MEMBER_FAILED:
                self._on_failed(node, ev.member.name)
        d = s.next_deadline()
        if d < node.scheduled:
            node.scheduled = d
            self._push(d, "timer", node.name)

    def _on_failed(self, observer: _Node, subject: str) -> None:
        self.failed_seen.setdefault(subject, {}).setdefault(observer.name, self.now)
        subj = self.nodes.get(subject)
        if subj is not None and not subj.crashed and subj.group == observer.group:
            self.false_positives += 1
            self.fp_log.append(f"t={self.now:.2f}s {observer.name} declared live {subject} failed")

    def run_until(self, t_end: float) -> None:
        while self._heap and self._heap[0][0] <= t_end:
            t, _, kind, payload = heapq.heappop(self._heap)
            self.now = max(self.now, t)
            if kind == "timer":
                assert isinstance(payload, str)
                node = self.nodes[payload]
                if node.scheduled != t:
                    continue
                node.scheduled = math.inf
                if not node.crashed:
                    node.serf.handle_timeout(self.now)
                    self._drain(node)
            elif kind == "pkt":
                src, dst, data = payload
                a, b = self.by_addr.get(src), self.by_addr.get(dst)
                if a is None or b is None or not self.reachable(a, b):
                    continue
                b.serf.receive_packet(data, src, self.now)
                self._drain(b)
            elif kind == "sreq":
                src, req = payload
                a, b = self.by_addr.get(src), self.by_addr.get(req.addr)
                if a is None or b is None or not self.reachable(a, b):
                    self._push(self.now + min(1.0, self.cfg.gossip.stream_timeout), "sresp", (src, req.token, None))
                    continue
                reply = b.serf.receive_stream(req.data, src, self.now)
                self._drain(b)
                self._push(self.now + self._latency() + b.slow, "sresp", (src, req.token, reply))
            elif kind == "sresp":
                src, token, reply = payload
                a = self.by_addr[src]
                if a.crashed:
                    continue
                a.serf.stream_response(token, reply, self.now)
                self._drain(a)
        self.now = max(self.now, t_end)

    # --- views ----------------------------------------------------------------------------

    def live(self) -> list[_Node]:
        return [n for n in self.nodes.values() if not n.crashed]

    def view(self, node: _Node) -> dict[str, MemberStatus]:
        return {m.name: m.status for m in node.serf.members()}

    def agreement_errors(self) -> list[str]:
        """Every live node sees the live nodes alive and the crashed ones failed (or reaped)."""
        errs = []
        live = {n.name for n in self.live()}
        for n in self.live():
            v = self.view(n)
            alive = {k for k, s in v.items() if s == MemberStatus.ALIVE}
            if alive != live:
                errs.append(f"{n.name} sees alive={len(alive)} (missing {sorted(live - alive)[:5]}, "
                            f"extra {sorted(alive - live)[:5]})")
            for c in self.nodes.values():
                if c.crashed and v.get(c.name, MemberStatus.FAILED) != MemberStatus.FAILED:
                    errs.append(f"{n.name} sees crashed {c.name} as {v[c.name].name}")
        return errs

    def converge_time(self, deadline: float, step: float = 0.5) -> float | None:
        """Advance until :meth:`agreement_errors` is empty; returns when, or None at the deadline."""
        while self.now <= deadline:
            if not self.agreement_errors():
                return self.now
            self.run_until(self.now + step)
        return None


def run(cfg: SimConfig) -> SimResult:
    sim = Simulation(cfg)
    g = cfg.gossip
    violations: list[str] = []
    n = cfg.nodes
    seed_node = sim.add_node(0)
    for i in range(1, n):
        sim.run_until(sim.now + sim.rnd.uniform(0.0, 2.0 / n))
        node = sim.add_node(i)
        node.serf.join([seed_node.addr], sim.now)
        sim._drain(node)
    if cfg.slow:
        sim.nodes[f"node{n - 1}"].slow = cfg.slow_delay
    t_join = sim.converge_time(sim.now + 60.0)
    if t_join is None:
        violations.append("join did not converge within 60 s: " + "; ".join(sim.agreement_errors()[:3]))
        t_join = math.inf
    sim.run_until(sim.now + 10.0)

    # Crash one node (not the seed, not the slow one) and measure detection.
    victim = sim.nodes[f"node{1 + sim.rnd.randrange(max(1, n - 2))}"]
    victim.crashed = True
    t_crash = sim.now
    lo = suspicion_timeout(g.suspicion_mult, n, g.probe_interval)
    bound = g.suspicion_max_timeout_mult * lo + 10 * g.probe_interval + 5.0
    sim.run_until(t_crash + bound)
    seen = sim.failed_seen.get(victim.name, {})
    missing = [x.name for x in sim.live() if x.name not in seen]
    if missing:
        violations.append(f"{victim.name} crashed at {t_crash:.1f}s but {len(missing)} members had not "
                          f"marked it failed within {bound:.1f}s: {missing[:5]}")
    detection = sorted(t - t_crash for t in seen.values())
    sim.run_until(sim.now + cfg.observe)

    if cfg.partition:
        live = sim.live()
        for i, x in enumerate(live):
            x.group = i % 2
        sim.run_until(sim.now + cfg.partition_time)
        for x in live:
            x.group = 0
        # Heal via push/pull and serf's reconnect of failed members (both ~30 s periods).
        if sim.converge_time(sim.now + 3 * max(g.push_pull_interval, 30.0) + 30.0) is None:
            violations.append("no agreement after healing the partition: "
                              + "; ".join(sim.agreement_errors()[:3]))
    else:
        if sim.converge_time(sim.now + 30.0) is None:
            violations.append("no final agreement: " + "; ".join(sim.agreement_errors()[:3]))

    fps = sim.false_positives
    if fps and cfg.loss == 0.0 and not cfg.slow:
        violations.append(f"{fps} false failure declarations without any fault: {sim.fp_log[:3]}")
    return SimResult(cfg.seed, violations, t_join, detection, fps, sim.packets, sim.now)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m muster_testkit.gossip.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=1, help="run this many consecutive seeds")
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--slow", action="store_true", help="one member sends and handles packets 0.6 s late (RTT +1.2 s)")
    ap.add_argument("--partition", action="store_true", help="split the pool in two for 60 s, then heal")
    ap.add_argument("--wan", action="store_true", help="use the WAN timing defaults")
    ap.add_argument("--observe", type=float, default=60.0, help="steady-state seconds after detection")
    ap.add_argument("--no-tcp-ping", action="store_true", help="disable the TCP fallback ping (UDP only)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the members' warnings")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR, format="%(message)s")
    if not 2 <= args.nodes <= 1000:
        ap.error("--nodes must be between 2 and 1000")
    failed = 0
    for seed in range(args.seed, args.seed + args.seeds):
        cfg = SimConfig(seed=seed, nodes=args.nodes, loss=args.loss, slow=args.slow, partition=args.partition,
                        observe=args.observe,
                        gossip=replace(GossipConfig.wan() if args.wan else GossipConfig.lan(),
                                       disable_tcp_pings=args.no_tcp_ping))
        t0 = time.monotonic()
        res = run(cfg)
        print(f"{res.summary()} wall={time.monotonic() - t0:.1f}s")
        for v in res.violations:
            print("  VIOLATION:", v)
        if not res.ok:
            failed += 1
            flags = " ".join(f for f, on in (("--slow", args.slow), ("--partition", args.partition),
                                               ("--wan", args.wan), ("--no-tcp-ping", args.no_tcp_ping)) if on)
            print(f"  replay: python -m muster_testkit.gossip.sim --seed {seed} --nodes {args.nodes} "
                  f"--loss {args.loss} --observe {args.observe} {flags}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
