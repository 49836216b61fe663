"""Serf semantics over the core: status ints, intents, user events, reaping, identity."""

from __future__ import annotations

import pytest
from gossipnet import FakeNet

from muster.gossip.core import GossipConfig
from muster.gossip.serf import (
    LamportClock,
    MemberEvent,
    MemberStatus,
    Serf,
    SerfConfig,
    SerfEventType,
    UserEvent,
    _enc,
    _LeaveIntent,
    _UserEventMsg,
)
from muster.runtime import Rng


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.0.{i + 1}", 8301)


def make(n: int, scfg: SerfConfig | None = None, seed: int = 3) -> tuple[FakeNet, list[Serf]]:
    net = FakeNet()
    out = []
    for i in range(n):
        a = addr(i)
        s = Serf(name=f"n{i}", node_id=f"id-{i}", addr=a[0], port=a[1], rng=Rng(seed * 100 + i), now=net.now,
                 tags={"role": "node", "dc": "dc1"}, config=scfg)
        out.append(s)
        net.add(a, s)
        if i:
            s.join([addr(0)], net.now)
            net.flush(a)
    net.run(5.0)
    for s in out:
        assert [m.status for m in s.members()].count(MemberStatus.ALIVE) == n
    return net, out


def status(s: Serf, name: str) -> MemberStatus | None:
    m = s.member(name)
    return m.status if m is not None else None


def member_events(net: FakeNet, i: int, kind: SerfEventType, name: str) -> list[MemberEvent]:
    return [e for e in net.events[addr(i)] if isinstance(e, MemberEvent) and e.type == kind
            and e.member.name == name]


def test_lamport_clock() -> None:
    c = LamportClock()
    assert c.increment() == 1 and c.time() == 1
    c.witness(10)
    assert c.time() == 11
    c.witness(3)
    assert c.time() == 11


def test_graceful_leave_is_left_3_and_crash_is_failed_4() -> None:
    net, serfs = make(5)
    serfs[4].leave(net.now)
    net.flush(addr(4))
    net.run(2.0)
    assert serfs[4].leave_propagated()
    net.down.add(addr(4))
    net.down.add(addr(3))  # crash
    net.run(40.0)
    for i in range(3):
        assert status(serfs[i], "n4") == MemberStatus.LEFT == 3
        assert status(serfs[i], "n3") == MemberStatus.FAILED == 4
        assert len(member_events(net, i, SerfEventType.MEMBER_LEAVE, "n4")) == 1
        assert len(member_events(net, i, SerfEventType.MEMBER_FAILED, "n3")) == 1
    api = serfs[0].member("n4")
    assert api is not None and api.to_api()["Status"] == 3 and api.to_api()["Tags"]["dc"] == "dc1"


def test_user_events_reach_everyone_once_including_the_sender() -> None:
    net, serfs = make(6)
    lt = serfs[2].user_event("deploy", b"v1", net.now)
    serfs[5].user_event("deploy", b"v2", net.now)
    net.flush(addr(2))
    net.flush(addr(5))
    net.run(5.0)
    for i in range(6):
        evs = [(e.name, e.payload) for e in net.events[addr(i)] if isinstance(e, UserEvent)]
        assert sorted(evs) == [("deploy", b"v1"), ("deploy", b"v2")], f"n{i}: {evs}"
    # A replayed copy of an event already seen is suppressed.
    before = serfs[0].counters["events_dup"]
    serfs[0].notify_user(_enc.encode(_UserEventMsg(lt, "deploy", b"v1")))
    assert serfs[0].counters["events_dup"] == before + 1


def test_user_event_size_limit() -> None:
    net, serfs = make(1)
    with pytest.raises(ValueError, match="limit"):
        serfs[0].user_event("big", bytes(600), net.now)


def test_join_with_ignore_old_does_not_replay_history() -> None:
    net, serfs = make(3)
    serfs[0].user_event("old", b"x", net.now)
    net.flush(addr(0))
    net.run(3.0)
    late = Serf(name="late", node_id="id-late", addr="10.0.0.50", port=8301, rng=Rng(1), now=net.now)
    net.add(("10.0.0.50", 8301), late)
    late.join([addr(1)], net.now, ignore_old=True)
    net.flush(("10.0.0.50", 8301))
    net.run(3.0)
    assert not [e for e in net.events[("10.0.0.50", 8301)] if isinstance(e, UserEvent)]
    serfs[1].user_event("new", b"y", net.now)
    net.flush(addr(1))
    net.run(3.0)
    assert [e.name for e in net.events[("10.0.0.50", 8301)] if isinstance(e, UserEvent)] == ["new"]


def test_tags_update_reaches_everyone() -> None:
    net, serfs = make(3)
    serfs[1].set_tags({"role": "consul", "dc": "dc1", "port": "8300"}, net.now)
    net.flush(addr(1))
    net.run(3.0)
    for i in (0, 2):
        m = serfs[i].member("n1")
        assert m is not None and m.tags["role"] == "consul" and m.tags["port"] == "8300"
        assert member_events(net, i, SerfEventType.MEMBER_UPDATE, "n1")


def test_failed_members_are_reaped_after_reconnect_timeout() -> None:
    scfg = SerfConfig(reconnect_timeout=120.0, tombstone_timeout=60.0, reap_interval=5.0)
    net, serfs = make(4, scfg)
    net.down.add(addr(3))
    net.run(30.0)
    assert status(serfs[0], "n3") == MemberStatus.FAILED
    net.run(60.0)
    assert status(serfs[0], "n3") == MemberStatus.FAILED, "not before reconnect_timeout"
    net.run(60.0)
    assert status(serfs[0], "n3") is None
    assert member_events(net, 0, SerfEventType.MEMBER_REAP, "n3")


def test_force_leave_turns_failed_into_left() -> None:
    net, serfs = make(4)
    net.down.add(addr(3))
    net.run(30.0)
    assert status(serfs[1], "n3") == MemberStatus.FAILED
    assert serfs[0].force_leave("n3", net.now)
    net.flush(addr(0))
    net.run(3.0)
    for i in range(3):
        assert status(serfs[i], "n3") == MemberStatus.LEFT


def test_old_leave_intent_about_a_live_member_is_refuted() -> None:
    net, serfs = make(3)
    serfs[0].notify_user(_enc.encode(_LeaveIntent(serfs[0].clock.time() + 1, "n2")))
    net.flush(addr(0))
    net.run(3.0)
    for s in serfs:
        assert status(s, "n2") == MemberStatus.ALIVE


def test_partition_heals_by_itself_through_reconnect() -> None:
    net, serfs = make(6, SerfConfig(reconnect_interval=10.0))
    left, right = [addr(i) for i in range(3)], [addr(i) for i in range(3, 6)]
    net.partition(left, right)
    net.run(60.0)
    assert status(serfs[0], "n5") == MemberStatus.FAILED
    net.heal()
    net.run(60.0)
    for s in serfs:
        assert [m.status for m in s.members()].count(MemberStatus.ALIVE) == 6, s.name


def test_duplicate_live_name_is_refused_but_replaces_a_failed_one(caplog: pytest.LogCaptureFixture) -> None:
    net, serfs = make(3)
    dup_a = ("10.0.0.77", 8301)
    dup = Serf(name="n2", node_id="imposter", addr=dup_a[0], port=dup_a[1], rng=Rng(1), now=net.now,
               incarnation=10**9)
    net.add(dup_a, dup)
    with caplog.at_level("WARNING"):
        dup.join([addr(0)], net.now)
        net.flush(dup_a)
        net.run(3.0)
    m = serfs[0].member("n2")
    assert m is not None and m.node_id == "id-2" and m.status == MemberStatus.ALIVE
    assert any("duplicate node name" in r.getMessage() for r in caplog.records)
    # The original crashes; once failed, the new id may take the name.
    net.down.add(addr(2))
    net.down.add(dup_a)
    net.run(30.0)
    assert status(serfs[0], "n2") == MemberStatus.FAILED
    net.down.discard(dup_a)
    dup.join([addr(0)], net.now)
    net.flush(dup_a)
    net.run(3.0)
    for s in serfs[:2]:
        m = s.member("n2")
        assert m is not None and m.node_id == "imposter" and m.status == MemberStatus.ALIVE


def test_wan_defaults_are_memberlists() -> None:
    w = GossipConfig.wan()
    assert (w.probe_interval, w.probe_timeout, w.suspicion_mult, w.gossip_nodes, w.push_pull_interval) == (
        5.0, 3.0, 6, 4, 60.0)
    lan = GossipConfig.lan()
    assert (lan.probe_interval, lan.probe_timeout, lan.gossip_interval, lan.packet_size) == (1.0, 0.5, 0.2, 1400)


def make_encrypted(n: int) -> tuple[FakeNet, list[Serf]]:
    from muster.gossip.keyring import Keyring

    net = FakeNet()
    out = []
    for i in range(n):
        a = addr(i)
        s = Serf(name=f"n{i}", node_id=f"id-{i}", addr=a[0], port=a[1], rng=Rng(50 + i), now=net.now,
                 keyring=Keyring(bytes(range(32))))
        out.append(s)
        net.add(a, s)
        if i:
            s.join([addr(0)], net.now)
            net.flush(a)
    net.run(5.0)
    return net, out


def test_cluster_wide_keyring_rotation_by_queries() -> None:
    import base64

    net, serfs = make_encrypted(4)
    old = base64.b64encode(bytes(range(32))).decode()
    new = base64.b64encode(bytes(range(100, 116))).decode()

    def op(name: str, key: str | None):  # type: ignore[no-untyped-def]
        qid = serfs[1].keyring_query(name, key, net.now, timeout=2.0)
        net.flush(addr(1))
        net.run(2.0)
        return serfs[1].keyring_result(qid)

    r = op("list", None)
    assert (r.num_nodes, r.num_resp, r.num_err) == (4, 4, 0) and r.keys == {old: 4} and r.primary_keys == {old: 4}
    assert op("install", new).keys == {old: 4, new: 4}
    assert op("use", new).primary_keys == {new: 4}
    r = op("remove", old)
    assert r.keys == {new: 4} and r.num_err == 0
    # Removing the primary is refused everywhere, and said so.
    r = op("remove", new)
    assert r.num_err == 4 and all("primary" in m for m in r.messages.values())
    # Gossip still works with the new key only.
    serfs[0].user_event("after", b"", net.now)
    net.flush(addr(0))
    net.run(3.0)
    assert all(any(isinstance(e, UserEvent) and e.name == "after" for e in net.events[addr(i)]) for i in range(4))


def test_user_query_collects_answers_until_the_deadline() -> None:
    from muster.gossip.serf import QueryEvent

    net, serfs = make(4)
    qid = serfs[0].query("ping", b"?", net.now, timeout=1.0)
    net.flush(addr(0))
    answered: set[tuple[int, int, int]] = set()
    for _ in range(20):  # answer whatever queries arrive, as an application would
        net.run(0.05)
        for i, s in enumerate(serfs):
            for e in net.events[addr(i)]:
                if isinstance(e, QueryEvent) and (i, e.ltime, e.id) not in answered:
                    answered.add((i, e.ltime, e.id))
                    s.respond(e, s.name.encode())
                    net.flush(addr(i))
    assert len(answered) == 4, "each member sees the query exactly once"
    assert serfs[0].query_result(qid) == {f"n{i}": f"n{i}".encode() for i in range(4)}
    assert serfs[0].query_result(qid) == {}


def test_user_event_limit_must_fit_a_packet() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Serf(name="a", node_id="a", addr="10.0.0.1", port=1, rng=Rng(1), now=0.0,
             config=SerfConfig(user_event_size_limit=5000))
