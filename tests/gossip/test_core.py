"""SWIM/Lifeguard core on a fake network with a manual clock."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from gossipnet import FakeNet
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.gossip import codec
from muster.gossip.codec import NodeStateKind, Suspect
from muster.gossip.core import (
    EventKind,
    GossipConfig,
    SwimCore,
    push_pull_scale,
    remaining_suspicion_time,
    suspicion_timeout,
)
from muster.gossip.queue import TransmitLimitedQueue, retransmit_limit
from muster.runtime import Rng

CFG = GossipConfig.lan()


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.0.{i + 1}", 8301)


def make_cluster(n: int, cfg: GossipConfig = CFG, seed: int = 7) -> tuple[FakeNet, list[SwimCore]]:
    net = FakeNet()
    rng = Rng(seed)
    cores = []
    for i in range(n):
        a = addr(i)
        c = SwimCore(name=f"n{i}", node_id=f"id-{i}", addr=a[0], port=a[1], rng=Rng(rng.randrange(2**32)),
                     now=net.now, config=cfg)
        cores.append(c)
        net.add(a, c)
        if i:
            c.join([addr(0)], net.now)
            net.flush(a)
    net.run(5.0)
    for c in cores:
        assert c.num_alive() == n, f"{c.name} sees {c.num_alive()} of {n}"
    return net, cores


def state_of(c: SwimCore, name: str) -> NodeStateKind | None:
    m = c.member(name)
    return m.state if m is not None else None


# --- formulas, checked against memberlist's own test tables ---------------------------------

def test_suspicion_timeout_formula() -> None:
    # util_test.go TestSuspicionTimeout: mult 3, interval 1s
    assert suspicion_timeout(3, 1, 1.0) == 3.0
    assert suspicion_timeout(3, 10, 1.0) == 3.0
    assert suspicion_timeout(3, 50, 1.0) == pytest.approx(5.094)  # 3 * 1.698 (truncated)
    assert suspicion_timeout(3, 100, 1.0) == 6.0
    assert suspicion_timeout(3, 1000, 1.0) == 9.0


@pytest.mark.parametrize(("n", "k", "elapsed", "expected"), [
    (0, 3, 0.0, 30.0), (1, 3, 2.0, 14.0), (2, 3, 3.0, 4.81), (3, 3, 4.0, -2.0), (4, 3, 5.0, -3.0),
    (5, 3, 10.0, -8.0),
])
def test_remaining_suspicion_time_table(n: int, k: int, elapsed: float, expected: float) -> None:
    # suspicion_test.go TestSuspicion_remainingSuspicionTime (min 2 s, max 30 s)
    assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == pytest.approx(expected, abs=1e-3)


def test_retransmit_limit_and_push_pull_scale() -> None:
    assert [retransmit_limit(3, n) for n in (0, 1, 99, 100)] == [0, 3, 6, 9]
    assert push_pull_scale(30.0, 32) == 30.0
    assert push_pull_scale(30.0, 33) == 60.0
    assert push_pull_scale(30.0, 1000) == 30.0 * (math.ceil(math.log2(1000) - 5) + 1)


def test_queue_invalidates_by_key_and_limits_transmits() -> None:
    q = TransmitLimitedQueue(lambda: 2)
    q.queue(b"old-about-a", key="a")
    q.queue(b"new-about-a", key="a")
    q.queue(b"event", key=None)
    assert len(q) == 2
    first = q.get(3, 1000)
    assert first == [b"new-about-a", b"event"]  # largest first among equal transmit counts
    assert q.get(3, 1000) == [b"new-about-a", b"event"]
    assert q.get(3, 1000) == [] and len(q) == 0
    q.queue(b"aa", key="x")
    q.queue(b"bb", key="y")
    q.queue(b"cccc", key="z")
    assert q.get(3, 1000) == [b"cccc", b"bb", b"aa"]  # then newest first among equal sizes
    assert q.get(3, 12) == [b"cccc", b"bb"]  # the largest that fits, then what still fits
    assert q.get(3, 1000) == [b"aa"] and len(q) == 0
    q.queue(b"x" * 100)
    assert q.get(3, 50) == []  # does not fit


def test_queue_picks_as_memberlist_does() -> None:
    """The bucketed queue against memberlist's ``GetBroadcasts`` written plainly over a list:
    per transmit count (fewest first), repeatedly the largest broadcast that still fits (the
    newest among equal sizes); count a transmit, drop those at the limit.  Random sizes, keys
    that invalidate, a limit that changes with n."""
    rng = random.Random(5)
    limit = [3]
    q = TransmitLimitedQueue(lambda: limit[0])
    model: list[list[Any]] = []  # [id, key, data, transmits]
    next_id = 0
    for step in range(4000):
        if rng.random() < 0.5:
            key = rng.choice([None, "a", "b", "c", "d", "e", "f", "g", "h"])
            data = bytes([step % 251]) * rng.choice([rng.randrange(1, 120), 40, 80])
            if key is not None:
                model = [m for m in model if m[1] != key]
            next_id += 1
            model.append([next_id, key, data, 0])
            assert q.queue(data, key=key) == next_id
        else:
            if rng.random() < 0.05:
                limit[0] = rng.randrange(0, 6)
            budget = rng.randrange(0, 400)
            want: list[bytes] = []
            used = 0
            max_tx = max(1, limit[0])
            picked: list[list[Any]] = []
            for tx in sorted({m[3] for m in model}):
                while budget > 0:
                    fits = [m for m in model if m[3] == tx and m not in picked and used + len(m[2]) + 3 <= budget]
                    if not fits:
                        break
                    m = max(fits, key=lambda m: (len(m[2]), m[0]))
                    picked.append(m)
                    want.append(m[2])
                    used += len(m[2]) + 3
            for m in picked:
                m[3] += 1
            model = [m for m in model if not (m in picked and m[3] >= max_tx)]
            assert q.get(3, budget) == want, step
        assert len(q) == len(model)


# --- protocol ----------------------------------------------------------------------------

def test_probe_and_ack_keep_everyone_alive_and_healthy() -> None:
    net, cores = make_cluster(5)
    net.run(30.0)
    for c in cores:
        assert all(m.state == NodeStateKind.ALIVE for m in c.members())
        assert c.counters["suspects_raised"] == 0
        assert c.awareness == 0
    assert net.sent > 0


def test_indirect_probe_through_a_peer_when_the_direct_path_is_cut() -> None:
    net, cores = make_cluster(3)
    a, c = addr(0), addr(2)
    net.cut(a, c)
    net.run(30.0)
    assert state_of(cores[0], "n2") == NodeStateKind.ALIVE
    assert state_of(cores[2], "n0") == NodeStateKind.ALIVE
    assert cores[0].counters["indirect_probes"] > 0
    assert cores[1].counters["relayed_acks"] > 0, "n1 must have relayed n2's acks to n0"
    assert cores[0].counters["suspects_raised"] == 0


def test_crash_leads_to_suspicion_then_dead_everywhere() -> None:
    n = 6
    net, cores = make_cluster(n)
    victim = addr(5)
    net.down.add(victim)
    t0 = net.now
    lo = suspicion_timeout(CFG.suspicion_mult, n, CFG.probe_interval)
    hi = CFG.suspicion_max_timeout_mult * lo
    net.run(hi + 10 * CFG.probe_interval)
    for i, c in enumerate(cores[:5]):
        m = c.member("n5")
        assert m is not None and m.state == NodeStateKind.DEAD, f"n{i} sees {m}"
        leaves = [e for e in net.events[addr(i)] if e.kind == EventKind.LEAVE and e.member.name == "n5"]
        assert len(leaves) == 1
        # Nobody declares death before the minimum suspicion timeout has run.
        assert leaves[0].member.state_change - t0 >= lo
    assert sum(c.counters["deaths_declared"] for c in cores[:5]) >= 1


def test_false_suspicion_is_refuted_with_a_higher_incarnation() -> None:
    net, cores = make_cluster(3)
    b = cores[1]
    inc = b.incarnation
    # n2 (wrongly) tells n0 that n1 is suspect.
    cores[0].receive_packet(codec.seal(codec.encode(Suspect(inc, "n1", "n2")), None), addr(2), net.now)
    net.flush(addr(0))
    assert state_of(cores[0], "n1") == NodeStateKind.SUSPECT
    net.run(10.0)
    assert b.incarnation > inc and b.counters["refutes"] >= 1
    for c in cores:
        m = c.member("n1")
        assert m is not None and m.state == NodeStateKind.ALIVE and m.incarnation == b.incarnation
    assert not any(e.kind == EventKind.LEAVE for evs in net.events.values() for e in evs)
    # Refuting costs the accused some local health (Lifeguard).
    assert b.counters["refutes"] >= 1


def test_buddy_rule_ping_to_a_suspect_carries_the_suspicion() -> None:
    net, cores = make_cluster(2)
    a, b = cores
    # Make n1 suspect in n0's view, but keep n1 from hearing gossip: only probe packets pass.
    a.receive_packet(codec.seal(codec.encode(Suspect(b.incarnation, "n1", "x")), None), ("9.9.9.9", 1), net.now)
    seen: list[str] = []

    def spy(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bool:
        msg = codec.decode(codec.open_frame(data, None))
        parts = codec.decode_compound_parts(msg) if isinstance(msg, codec.Compound) else [msg]
        seen.extend(type(p).__name__ for p in parts if src == addr(0))
        return False

    net.drop = spy
    net.flush(addr(0))
    net.run(3.0)
    assert "Ping" in seen and "Suspect" in seen
    assert b.counters["refutes"] >= 1 and state_of(a, "n1") == NodeStateKind.ALIVE


def test_awareness_rises_without_nacks_and_scales_timeouts() -> None:
    # Six members, so an isolated node's suspicions wait for confirmations (k=2) and run for the
    # max timeout (24 s): it keeps probing "live" peers for the whole window.
    net, cores = make_cluster(6)
    a = cores[0]
    net.partition([addr(0)], [addr(i) for i in range(1, 6)])
    pings: list[float] = []

    def spy(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bool:
        msg = codec.decode(codec.open_frame(data, None))
        parts = codec.decode_compound_parts(msg) if isinstance(msg, codec.Compound) else [msg]
        if src == addr(0) and any(isinstance(p, codec.Ping) for p in parts):
            pings.append(net.now)
        return False

    net.drop = spy
    net.run(6.0)
    assert a.awareness >= 3, "failed probes with no nacks at all must lower our self-trust"
    assert a.scale_timeout(1.0) == a.awareness + 1
    pings.clear()
    net.run(14.0)
    # A healthy node probes once per second; a degraded one stretches its probe rounds.
    assert len(pings) <= 14 / 2
    net.heal()
    net.drop = None
    a.join([addr(1)], net.now)  # what Serf's reconnect does after a partition
    net.flush(addr(0))
    net.run(40.0)
    assert a.awareness == 0, "successful probes bring the score back down"


def test_nacks_keep_awareness_low_when_only_the_target_is_gone() -> None:
    net, cores = make_cluster(3)
    net.down.add(addr(2))
    worst = 0
    for _ in range(16):  # 8 s, sampling the score every half second
        net.run(0.5)
        worst = max(worst, cores[0].awareness, cores[1].awareness)
    assert cores[0].counters["indirect_probes"] > 0 and cores[1].counters["indirect_probes"] > 0
    assert cores[0].counters["nacks_sent"] > 0 and cores[1].counters["nacks_sent"] > 0
    # Each failed probe of n2 was nacked in time by the other relay: no penalty at all.
    assert worst == 0


def test_partition_then_heal_converges_after_push_pull() -> None:
    net, cores = make_cluster(6)
    left, right = [addr(i) for i in range(3)], [addr(i) for i in range(3, 6)]
    net.partition(left, right)
    net.run(40.0)
    for i, other in ((0, "n4"), (4, "n0")):
        assert any(e.kind == EventKind.LEAVE and e.member.name == other for e in net.events[addr(i)])
        assert state_of(cores[i], other) in (NodeStateKind.DEAD, None)  # dead, maybe already pruned
    net.heal()
    # What Serf's reconnect does: one push/pull across the former partition.
    cores[0].join([addr(3)], net.now)
    net.flush(addr(0))
    net.run(10.0)
    for c in cores:
        assert c.num_alive() == 6, f"{c.name}: {[(m.name, m.state.name) for m in c.members()]}"


def test_graceful_leave_is_left_not_dead() -> None:
    net, cores = make_cluster(4)
    cores[3].leave(net.now)
    net.flush(addr(3))
    net.run(2.0)
    assert cores[3].leave_propagated()
    for c in cores[:3]:
        assert state_of(c, "n3") == NodeStateKind.LEFT


def test_restart_with_same_id_on_new_address_updates_the_member() -> None:
    net, cores = make_cluster(3)
    net.down.add(addr(2))  # the old process is gone (not yet detected)
    new = ("10.0.1.99", 9000)
    reborn = SwimCore(name="n2", node_id="id-2", addr=new[0], port=new[1], rng=Rng(5), now=net.now,
                      incarnation=cores[2].incarnation + 1000)
    net.add(new, reborn)
    reborn.join([addr(0)], net.now)
    net.flush(new)
    net.run(2.0)
    for c in cores[:2]:
        m = c.member("n2")
        assert m is not None and (m.addr, m.port) == new and m.state == NodeStateKind.ALIVE
        kinds = [e.kind for e in net.events[addr(cores.index(c))] if e.member.name == "n2"]
        assert EventKind.LEAVE not in kinds and EventKind.UPDATE in kinds


def test_restart_with_a_low_incarnation_refutes_its_old_self() -> None:
    net, cores = make_cluster(3)
    old_inc = cores[2].incarnation
    net.down.add(addr(2))
    new = ("10.0.1.99", 9000)
    reborn = SwimCore(name="n2", node_id="id-2", addr=new[0], port=new[1], rng=Rng(5), now=net.now)
    net.add(new, reborn)
    reborn.join([addr(0)], net.now)
    net.flush(new)
    net.run(3.0)
    assert reborn.incarnation > old_inc
    for c in cores[:2]:
        m = c.member("n2")
        assert m is not None and (m.addr, m.port) == new and m.state == NodeStateKind.ALIVE


def test_live_duplicate_name_with_another_id_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, cores = make_cluster(3)
    dup_addr = ("10.0.9.9", 8301)
    dup = SwimCore(name="n1", node_id="someone-else", addr=dup_addr[0], port=dup_addr[1], rng=Rng(3),
                   now=net.now, incarnation=10**9)
    net.add(dup_addr, dup)
    with caplog.at_level("WARNING", logger="muster.gossip"):
        dup.join([addr(0)], net.now)
        net.flush(dup_addr)
        net.run(3.0)
    m = cores[0].member("n1")
    assert m is not None and m.node_id == "id-1" and (m.addr, m.port) == addr(1)
    assert cores[0].counters["conflicts"] >= 1
    assert any("refusing member 'n1'" in r.getMessage() for r in caplog.records)
    assert any(e.kind == EventKind.CONFLICT for e in net.events[addr(0)])


def test_dead_member_name_can_be_taken_by_a_new_id() -> None:
    net, cores = make_cluster(4)
    net.down.add(addr(3))
    net.run(20.0)
    assert state_of(cores[0], "n3") == NodeStateKind.DEAD
    new = ("10.0.1.50", 8301)
    repl = SwimCore(name="n3", node_id="new-id", addr=new[0], port=new[1], rng=Rng(9), now=net.now)
    net.add(new, repl)
    repl.join([addr(0)], net.now)
    net.flush(new)
    net.run(3.0)
    for c in cores[:3]:
        m = c.member("n3")
        assert m is not None and m.node_id == "new-id" and m.state == NodeStateKind.ALIVE


def test_ping_for_another_name_is_not_answered() -> None:
    net, cores = make_cluster(2)
    a = cores[0]
    a.receive_packet(codec.seal(codec.encode(codec.Ping(77, "someone-else", "x")), None), ("9.9.9.9", 1), net.now)
    assert a.packets_to_send() == [] and a.counters["ping_wrong_node"] == 1


def test_packets_respect_the_size_limit() -> None:
    cfg = GossipConfig(packet_size=600)
    net, cores = make_cluster(12, cfg)
    sizes: list[int] = []

    def measure(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bool:
        sizes.append(len(data))
        return False  # deliver everything

    net.drop = measure
    for i in range(30):
        cores[0].queue_user_broadcast(bytes(100) + bytes([i]))
    net.flush(addr(0))
    net.run(5.0)
    assert sizes and max(sizes) <= 600


# --- properties under arbitrary message sequences ---------------------------------------------

_names = st.sampled_from(["n0", "n1", "n2", "n3"])
_ids = st.sampled_from(["id-0", "id-1", "id-2", "id-3", "other"])
_incs = st.integers(min_value=0, max_value=6)
_msgs = st.one_of(
    st.builds(codec.Alive, _incs, _names, _ids, st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.9"]),
              st.just(8301), st.just({})),
    st.builds(Suspect, _incs, _names, _names),
    st.builds(codec.Dead, _incs, _names, _names),
    st.builds(codec.Ping, st.integers(0, 5), _names, _names),
    st.builds(codec.Ack, st.integers(0, 50)),
    st.builds(codec.Nack, st.integers(0, 50)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_msgs, st.floats(min_value=0.0, max_value=3.0)), max_size=40))
def test_core_invariants_under_arbitrary_messages(steps: list[tuple[codec.Message, float]]) -> None:
    now = 0.0
    core = SwimCore(name="n0", node_id="id-0", addr="10.0.0.1", port=8301, rng=Rng(1), now=now)
    seen: dict[tuple[str, str], tuple[int, NodeStateKind, str]] = {}
    for msg, dt in steps:
        now += dt
        core.handle_timeout(now)
        assert core.next_deadline() > now, "every due timer must have been moved on"
        core.receive_packet(codec.seal(codec.encode(msg), None), ("10.0.0.7", 8301), now)
        me = core.local_member()
        # We never accept being suspect or dead: we refute with a higher incarnation.
        assert me.state == NodeStateKind.ALIVE and me.node_id == "id-0"
        if isinstance(msg, (Suspect, codec.Dead)) and msg.node == "n0":
            assert me.incarnation > msg.incarnation
        present = {(m.name, m.node_id) for m in core.members()}
        for gone in set(seen) - present:  # pruned after GossipToTheDeadTime: forgotten for good
            del seen[gone]
        for m in core.members():
            key = (m.name, m.node_id)
            # Incarnations of one identity never go backwards, except when a dead/left member
            # comes back at another address (a restart: its counter started again).
            prev = seen.get(key)
            if prev is not None and not (prev[1] in (NodeStateKind.DEAD, NodeStateKind.LEFT) and prev[2] != m.addr):
                assert m.incarnation >= prev[0], (key, m.incarnation, prev)
            seen[key] = (m.incarnation, m.state, m.addr)
        assert all(len(p) <= core.config.packet_size for _, p in core.packets_to_send())
        core.events()


def test_tcp_fallback_ping_rescues_a_member_whose_udp_is_filtered() -> None:
    net, cores = make_cluster(2)

    def udp_1_to_2_filtered(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bool:
        return src == addr(0) and dst == addr(1)

    net.drop = udp_1_to_2_filtered
    net.run(20.0)
    a = cores[0]
    assert a.counters["tcp_ping_rescues"] > 0
    assert a.counters["suspects_raised"] == 0 and state_of(a, "n1") == NodeStateKind.ALIVE
