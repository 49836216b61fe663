"""Real sockets on 127.0.0.1: encrypted pools form, detect a crash, see a graceful leave, and
recognise a member restarted on a new port.  Waiting is event-driven (no sleep polling)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from muster.gossip.core import GossipConfig
from muster.gossip.keyring import Keyring, generate_key
from muster.gossip.serf import MemberEvent, MemberStatus, SerfConfig, SerfEvent, SerfEventType, UserEvent
from muster.gossip.transport import GossipPool, parse_join_address, resolve_join_addresses

FAST = GossipConfig(probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05, push_pull_interval=2.0,
                    gossip_to_the_dead_time=5.0, stream_timeout=1.0)
SERF = SerfConfig(broadcast_timeout=1.0, reconnect_interval=1.0, reap_interval=1.0)
KEY = generate_key()

pytestmark = pytest.mark.timeout(60)


class Cluster:
    def __init__(self) -> None:
        self.pools: list[GossipPool] = []
        self.changed = asyncio.Event()
        self.user_events: dict[str, list[UserEvent]] = {}
        self.member_events: list[tuple[str, MemberEvent]] = []

    async def start(self, name: str, node_id: str | None = None, key: str = KEY) -> GossipPool:
        def on_event(ev: SerfEvent, name: str = name) -> None:
            if isinstance(ev, UserEvent):
                self.user_events.setdefault(name, []).append(ev)
            else:
                self.member_events.append((name, ev))
            self.changed.set()

        pool = GossipPool(name=name, node_id=node_id or f"id-{name}", bind_addr="127.0.0.1", bind_port=0,
                          gossip=FAST, serf=SERF, keyring=Keyring.from_base64(key), on_event=on_event,
                          tags={"role": "node", "dc": "dc1"})
        await pool.start()
        self.pools.append(pool)
        return pool

    async def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Re-check ``cond`` after every gossip event, up to ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not cond():
            left = end - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue

    async def close(self) -> None:
        for p in self.pools:
            await p.stop()


def statuses(pool: GossipPool) -> dict[str, MemberStatus]:
    return {m.name: m.status for m in pool.members()}


@pytest.fixture
async def cluster():  # type: ignore[no-untyped-def]
    c = Cluster()
    try:
        yield c
    finally:
        await c.close()


async def form(c: Cluster, n: int) -> list[GossipPool]:
    pools = [await c.start(f"node{i}") for i in range(n)]
    for p in pools[1:]:
        assert await p.join([f"127.0.0.1:{pools[0].port}"]) == 1
    await c.wait(lambda: all(list(statuses(p).values()).count(MemberStatus.ALIVE) == n for p in pools), 10.0,
                 "the pool to form")
    return pools


async def test_pool_forms_detects_crash_and_sees_graceful_leave(cluster: Cluster) -> None:
    pools = await form(cluster, 4)
    assert all(p.counters()["auth_failures"] == 0 for p in pools)
    # Crash: close the sockets without a leave.
    await pools[3].stop()
    await cluster.wait(lambda: all(statuses(p).get("node3") == MemberStatus.FAILED for p in pools[:3]), 15.0,
                       "node3 to be marked failed")
    # Graceful leave.
    await pools[2].leave()
    await cluster.wait(lambda: all(statuses(p).get("node2") == MemberStatus.LEFT for p in pools[:2]), 10.0,
                       "node2 to be marked left")
    assert statuses(pools[0])["node3"] == MemberStatus.FAILED


async def test_user_event_travels_by_gossip(cluster: Cluster) -> None:
    pools = await form(cluster, 3)
    pools[1].fire_user_event("deploy", b"v42")
    await cluster.wait(lambda: all(any(e.name == "deploy" and e.payload == b"v42" for e in
                                       cluster.user_events.get(p.name, [])) for p in pools), 10.0,
                       "the user event everywhere")


async def test_wrong_key_cannot_join_and_is_counted(cluster: Cluster) -> None:
    pools = await form(cluster, 2)
    intruder = await cluster.start("intruder", key=generate_key())
    assert await intruder.join([f"127.0.0.1:{pools[0].port}"]) == 0
    assert pools[0].counters()["auth_failures"] >= 1
    assert "intruder" not in statuses(pools[0])


async def test_restart_same_name_and_id_on_a_new_port_updates_the_address(cluster: Cluster) -> None:
    pools = await form(cluster, 3)
    old_port = pools[2].port
    await pools[2].stop()  # abrupt, the others have not noticed yet
    reborn = await cluster.start("node2", node_id="id-node2")
    assert reborn.port != old_port
    assert await reborn.join([f"127.0.0.1:{pools[0].port}"]) == 1

    def updated() -> bool:
        for p in pools[:2]:
            m = p.member("node2")
            if m is None or m.port != reborn.port or m.status != MemberStatus.ALIVE:
                return False
        return True

    await cluster.wait(updated, 5.0, "node2's new port to be known")
    # Same member: same id, an address update (not a failure and a re-join), and it stays alive.
    m = pools[0].member("node2")
    assert m is not None and m.node_id == "id-node2"
    by_id = pools[1].member_by_id("id-node2")
    assert by_id is not None and (by_id.addr, by_id.port) == ("127.0.0.1", reborn.port)
    about = [ev.type for obs, ev in cluster.member_events if obs in ("node0", "node1") and ev.member.name == "node2"]
    assert SerfEventType.MEMBER_UPDATE in about and SerfEventType.MEMBER_FAILED not in about
    await asyncio.sleep(1.0)  # a hold of five probe rounds: the new address must answer probes
    assert all(p.member("node2").status == MemberStatus.ALIVE for p in pools[:2])  # type: ignore[union-attr]
    assert not any(ev.type == SerfEventType.MEMBER_FAILED and ev.member.name == "node2"
                   for _, ev in cluster.member_events)


async def test_join_resolves_names_and_skips_unresolvable_ones() -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        if host == "not-yet.example":
            raise OSError("NXDOMAIN")
        return ["10.1.0.1", "10.1.0.2"]

    got = await resolve_join_addresses(["consul.ns.svc", "not-yet.example:9000", "[::1]:7"], 8301, resolver)
    assert got == [("10.1.0.1", 8301), ("10.1.0.2", 8301), ("10.1.0.1", 7), ("10.1.0.2", 7)]
    again = await resolve_join_addresses(["not-yet.example"], 8301, resolver)
    assert again == [] and calls.count("not-yet.example") == 2, "negative answers are never cached"
    assert parse_join_address("h:1", 5) == ("h", 1) and parse_join_address("h", 5) == ("h", 5)


async def test_key_rotation_on_a_running_pool(cluster: Cluster) -> None:
    pools = await form(cluster, 2)
    new_key = generate_key(16)
    for p in pools:
        p.install_key(new_key)
    for p in pools:
        p.use_key(new_key)
    for p in pools:
        p.remove_key(KEY)
        assert p.list_keys() == [new_key]
    pools[0].fire_user_event("after-rotation", b"")
    await cluster.wait(lambda: any(e.name == "after-rotation" for e in cluster.user_events.get("node1", [])),
                       5.0, "an event encrypted with the new key")
    with pytest.raises(ValueError, match="primary"):
        pools[0].remove_key(new_key)


async def test_cluster_wide_keyring_list_and_install(cluster: Cluster) -> None:
    pools = await form(cluster, 3)
    r = await pools[0].keyring_operation("list", timeout=0.5)
    assert (r.num_nodes, r.num_resp, r.num_err) == (3, 3, 0) and r.keys == {KEY: 3}
    extra = generate_key()
    r = await pools[2].keyring_operation("install", extra, timeout=0.5)
    assert r.keys == {KEY: 3, extra: 3} and r.primary_keys == {KEY: 3}
    assert all(extra in p.list_keys() for p in pools)
