"""Real 3-server clusters on 127.0.0.1-3: formation, failover, crash recovery, pauses.

These are the process-level checks of the Raft issue: no acknowledged write is ever lost
(kill -9 of the leader under load, kill -9 of every server at once), a new leader takes writes
within a few seconds, a paused leader is replaced and then steps down, and a leader cut off
from its followers serves no ``?consistent`` read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster, env_ok, running, wait_until

pytestmark = pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable")


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running(Cluster(tmp_path), request) as c:
        yield c


class Writer(threading.Thread):
    """Writes unique keys round-robin over the given servers; records what was acknowledged."""

    def __init__(self, c: Cluster, servers: list[int], prefix: str) -> None:
        super().__init__(daemon=True)
        self.c, self.servers, self.prefix = c, servers, prefix
        self.acked: dict[str, float] = {}
        self.stop_flag = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop_flag.is_set() and self.n < 20_000:
            self.n += 1
            key = f"{self.prefix}/{self.n:06d}"
            srv = self.servers[self.n % len(self.servers)]
            if self.c.nodes[srv].proc is None:
                continue
            try:
                if self.c.put(srv, key, key.encode(), timeout=5):
                    self.acked[key] = time.monotonic()
            except OSError:
                time.sleep(0.02)


def test_formation_bootstraps_one_configuration(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    for i in range(3):
        peers = cluster.get_json(i, "/v1/status/peers")
        assert len(peers) == 3
    conf = cluster.get_json(leader, "/v1/operator/raft/configuration")
    assert sorted(s["Node"] for s in conf["Servers"]) == ["s0", "s1", "s2"]
    assert sum(1 for s in conf["Servers"] if s["Leader"]) == 1
    assert all(s["Voter"] for s in conf["Servers"])
    ids = {(n.data_dir / "raft" / "cluster-id").read_text() for n in cluster.nodes}
    assert len(ids) == 1
    time.sleep(0.5)
    follower = (leader + 1) % 3
    for i in (leader, follower):  # a follower answers with the leader's view
        code, _h, body = cluster.request(i, "GET", "/v1/operator/autopilot/health")
        health = json.loads(body)
        assert code == 200 and health["Healthy"] is True and health["FailureTolerance"] == 1, (i, health)
    me = cluster.get_json(follower, "/v1/agent/self")
    assert me["Stats"]["raft"]["num_peers"] == "2" and me["Stats"]["raft"]["state"] == "Follower"
    assert me["Stats"]["consul"]["leader_addr"] == f"{cluster.nodes[leader].ip}:{cluster.server_port}"
    conf_f = cluster.get_json(follower, "/v1/operator/raft/configuration")
    assert all(s["LastIndex"] > 0 for s in conf_f["Servers"]), conf_f
    # the leader registers every server in the catalog as the `consul` service
    def all_registered() -> bool:
        svc = cluster.get_json(leader, "/v1/catalog/service/consul")
        return sorted(e["Node"] for e in svc) == ["s0", "s1", "s2"] and all(e["ServicePort"] == cluster.server_port for e in svc)

    wait_until(all_registered, 15, "three servers in the catalog")
    members = cluster.get_json(leader, "/v1/agent/members")
    assert sorted(m["Name"] for m in members) == ["s0", "s1", "s2"]
    assert all(m["Status"] == 1 and m["Tags"]["role"] == "consul" for m in members)


def test_writes_anywhere_consistent_reads_everywhere(cluster: Cluster) -> None:
    cluster.wait_leader()
    for i in range(3):
        assert cluster.put(i, f"k{i}", f"v{i}".encode())
    for i in range(3):
        for j in range(3):
            code, headers, body = cluster.request(i, "GET", f"/v1/kv/k{j}?consistent")
            assert code == 200, (i, j, code, body)
            assert headers["X-Consul-KnownLeader"] == "true"


def test_kill_leader_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    w = Writer(cluster, [0, 1, 2], "load")
    w.start()
    wait_until(lambda: len(w.acked) > 200, 30, "200 acknowledged writes")
    killed_at = time.monotonic()
    cluster.kill(leader)
    survivors = [i for i in range(3) if i != leader]
    new_leader = cluster.wait_leader(survivors, timeout=15)
    assert new_leader != leader
    wait_until(lambda: any(t > killed_at for t in w.acked.values()), 15, "a write acknowledged after the kill")
    first_after = min(t for t in w.acked.values() if t > killed_at)
    gap = first_after - killed_at
    time.sleep(1)
    w.stop_flag.set()
    w.join(15)
    cluster.start(leader)
    cluster.wait_leader(timeout=20)
    acked = set(w.acked)

    def converged() -> bool:
        dumps = [cluster.kv_dump(i) for i in range(3)]
        return all(acked <= set(d) for d in dumps) and dumps[0] == dumps[1] == dumps[2]

    wait_until(converged, 30, "every acknowledged write on every server")
    assert gap < 10, f"first acknowledged write came {gap:.2f}s after the kill"
    print(f"acked={len(acked)} gap_after_kill={gap:.2f}s")


def test_kill_all_servers_at_once_and_restart(cluster: Cluster) -> None:
    cluster.wait_leader()
    w = Writer(cluster, [0, 1, 2], "crash")
    w.start()
    wait_until(lambda: len(w.acked) > 300, 30, "300 acknowledged writes")
    for i in range(3):
        cluster.kill(i)
    w.stop_flag.set()
    w.join(15)
    acked = set(w.acked)
    cluster.start_all()
    cluster.wait_leader(timeout=30)

    def converged() -> bool:
        dumps = [cluster.kv_dump(i) for i in range(3)]
        return all(acked <= set(d) for d in dumps) and dumps[0] == dumps[1] == dumps[2]

    wait_until(converged, 30, "every acknowledged write on every server after a full restart")
    # the restarted cluster still takes writes
    assert cluster.put(0, "after-restart", b"1")


def test_paused_leader_is_replaced_and_steps_down(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    cluster.put(leader, "before", b"1")
    cluster.pause(leader)
    others = [i for i in range(3) if i != leader]
    new_leader = cluster.wait_leader(others, timeout=15)
    assert new_leader != leader
    assert cluster.put(new_leader, "during", b"1")
    # the paused server turns unhealthy in the new leader's autopilot view
    wait_until(lambda: cluster.request(new_leader, "GET", "/v1/operator/autopilot/health")[0] == 429, 10, "autopilot 429")
    cluster.resume(leader)
    cluster.wait_leader(timeout=15)  # all three, the resumed one included, agree on one leader
    wait_until(lambda: "during" in cluster.kv_dump(leader), 15, "the old leader catching up")


def test_isolated_leader_serves_no_consistent_read(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    assert cluster.put(leader, "x", b"1")
    followers = [i for i in range(3) if i != leader]
    for f in followers:
        cluster.pause(f)
    try:
        time.sleep(1.5)  # longer than the election timeout: check-quorum makes it step down
        code, _h, body = cluster.request(leader, "GET", "/v1/kv/x?consistent", timeout=15)
        assert code == 500 and body == b"No cluster leader", (code, body)
        # ?stale is still served locally
        code, headers, _b = cluster.request(leader, "GET", "/v1/kv/x?stale", timeout=5)
        assert code == 200
        assert headers["X-Consul-KnownLeader"] == "false"
    finally:
        for f in followers:
            cluster.resume(f)
    cluster.wait_leader(timeout=20)


def test_status_leader_json(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    code, _h, body = cluster.request(0, "GET", "/v1/status/leader")
    assert code == 200
    assert json.loads(body) == f"{cluster.nodes[leader].ip}:{cluster.server_port}"


def test_lagging_follower_catches_up_through_a_snapshot(tmp_path: Path) -> None:
    c = Cluster(tmp_path, extra=["-hcl", "raft_snapshot_threshold = 50\nraft_snapshot_interval = \"100ms\"\nraft_trailing_logs = 10\n"])
    c.start_all()
    try:
        leader = c.wait_leader()
        lagging = next(i for i in range(3) if i != leader)
        c.kill(lagging)
        others = [i for i in range(3) if i != lagging]
        for k in range(300):
            assert c.put(others[k % 2], f"snap/{k:04d}", b"v")
        c.start(lagging)
        want = {f"snap/{k:04d}" for k in range(300)}
        wait_until(lambda: want <= set(c.kv_dump(lagging)), 30, "the restarted follower to catch up")
        snaps = list((c.nodes[lagging].data_dir / "raft").rglob("snap-*"))
        assert snaps, "the follower should hold a snapshot (installed from the leader or its own)"
    finally:
        c.close()


def test_every_server_returns_on_a_new_address(tmp_path: Path) -> None:
    """All pods re-created at once with new IPs: same node ids and volumes, new addresses."""
    c = Cluster(tmp_path, join_ips=[f"127.0.0.{i}" for i in range(1, 7)])
    c.start_all()
    try:
        c.wait_leader()
        for k in range(100):
            assert c.put(k % 3, f"move/{k:03d}", b"v")
        for i in range(3):
            c.kill(i)
        for i in range(3):
            c.move(i, f"127.0.0.{i + 4}")
        c.start_all()
        t0 = time.monotonic()
        leader = c.wait_leader(timeout=30)
        elapsed = time.monotonic() - t0
        want = {f"move/{k:03d}" for k in range(100)}
        wait_until(lambda: all(want <= set(c.kv_dump(i)) for i in range(3)), 30, "every write on every server")
        conf = c.get_json(leader, "/v1/operator/raft/configuration")
        assert sorted(s["Address"].split(":")[0] for s in conf["Servers"]) == ["127.0.0.4", "127.0.0.5", "127.0.0.6"]
        print(f"leader {elapsed:.2f}s after all servers came back on new addresses")
    finally:
        c.close()


def test_no_quorum_write_fails_with_no_cluster_leader(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    survivor = (leader + 1) % 3
    for i in range(3):
        if i != survivor:
            cluster.kill(i)
    t0 = time.monotonic()
    code, _h, body = cluster.request(survivor, "PUT", "/v1/kv/nope", b"x", timeout=20)
    waited = time.monotonic() - t0
    assert code == 500 and body == b"No cluster leader", (code, body)
    assert waited >= 1.5  # it held the request for rpc_hold_timeout (2 s here) first
    code, _h, _b = cluster.request(survivor, "GET", "/v1/kv/nope?stale")
    assert code == 404  # stale reads still work without a leader


def test_leader_leave_hands_over_and_shrinks_the_configuration(cluster: Cluster) -> None:
    import subprocess
    import sys

    leader = cluster.wait_leader()
    assert cluster.put(leader, "pre-leave", b"1")
    out = subprocess.run(
        [sys.executable, "-m", "muster", "leave", f"-http-addr={cluster.nodes[leader].ip}:{cluster.http_port}"],
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert b"Graceful leave complete" in out.stdout
    proc = cluster.nodes[leader].proc
    assert proc is not None
    proc.wait(15)
    cluster.nodes[leader].proc = None
    others = [i for i in range(3) if i != leader]
    new_leader = cluster.wait_leader(others, timeout=15)
    conf = cluster.get_json(new_leader, "/v1/operator/raft/configuration")
    assert len(conf["Servers"]) == 2
    assert cluster.put(new_leader, "post-leave", b"1")


def test_gossip_members_and_user_events(cluster: Cluster) -> None:
    cluster.wait_leader()

    def three_alive() -> bool:
        for i in range(3):
            ms = cluster.get_json(i, "/v1/agent/members")
            if sorted(m["Name"] for m in ms if m["Status"] == 1) != ["s0", "s1", "s2"]:
                return False
        return True

    wait_until(three_alive, 20, "three alive gossip members on every server")
    ms = cluster.get_json(2, "/v1/agent/members")
    assert {m["Port"] for m in ms} == {cluster.serf_port}
    code, _h, body = cluster.request(0, "PUT", "/v1/event/fire/deploy", b"v42")
    assert code == 200
    ev_id = json.loads(body)["ID"]

    def seen_everywhere() -> bool:
        return all(any(e["ID"] == ev_id for e in cluster.get_json(i, "/v1/event/list?name=deploy")) for i in range(3))

    # gossip delivers within a few rounds; the 30 s push/pull also replays recent events
    wait_until(seen_everywhere, 40, "the user event on every server")


def test_killed_server_turns_critical_within_10s(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    victim = (leader + 1) % 3
    wait_until(lambda: len(cluster.get_json(leader, "/v1/agent/members")) == 3, 20, "three members")
    cluster.kill(victim)
    t0 = time.monotonic()

    def critical() -> bool:
        checks = cluster.get_json(leader, f"/v1/health/node/s{victim}")
        return any(c["CheckID"] == "serfHealth" and c["Status"] == "critical" for c in checks)

    wait_until(critical, 10, "serfHealth critical for the killed server")
    print(f"serfHealth critical {time.monotonic() - t0:.1f}s after kill -9")
    cluster.start(victim)

    def passing() -> bool:
        checks = cluster.get_json(leader, f"/v1/health/node/s{victim}")
        return any(c["CheckID"] == "serfHealth" and c["Status"] == "passing" for c in checks)

    wait_until(passing, 20, "serfHealth passing again after the restart")


def test_client_agent_joins_registers_and_resolves(cluster: Cluster) -> None:
    """A client agent (no -server): joins the LAN pool, registers its own services through the
    servers, forwards reads and writes to them, answers DNS from its catalog cache, and is not a
    Raft server (tests/cluster/test_clients.py covers failover and the cache's stale window)."""
    import socket as _socket

    import dns.message
    import dns.query

    from .harness import free_port_on_all

    leader = cluster.wait_leader()
    dns_port = free_port_on_all(["127.0.0.4"])
    ci = cluster.add_client("127.0.0.4", "client-1", extra=[f"-dns-port={dns_port}", "-domain=cluster.local"])
    cluster.start(ci)
    wait_until(lambda: cluster.leader(ci) != "", 30, "the client to know the leader")
    svc = {"Name": "web", "Port": 8080, "Check": {"TTL": "30s", "Status": "passing"}}
    code, _h, body = cluster.request(ci, "PUT", "/v1/agent/service/register", json.dumps(svc).encode())
    assert code == 200, body

    def in_catalog() -> bool:
        return any(e["Node"] == "client-1" for e in cluster.get_json(leader, "/v1/catalog/service/web"))

    wait_until(in_catalog, 20, "the client's service in the catalog")
    # writes through the client are forwarded; reads on the client see them
    assert cluster.put(ci, "from-client", b"1")
    code, _h, _b = cluster.request(ci, "GET", "/v1/kv/from-client?consistent")
    assert code == 200
    # the leader's reconcile registers the client node with a passing serfHealth
    def client_healthy() -> bool:
        checks = cluster.get_json(leader, "/v1/health/node/client-1")
        return any(c["CheckID"] == "serfHealth" and c["Status"] == "passing" for c in checks)

    wait_until(client_healthy, 20, "serfHealth of the client")
    assert cluster.get_json(ci, "/v1/agent/self")["Config"]["Server"] is False
    members = cluster.get_json(ci, "/v1/agent/members")
    roles = {m["Name"]: m["Tags"]["role"] for m in members}
    assert roles.get("client-1") == "node" and roles.get("s0") == "consul"
    # not a server: absent from the Raft views
    assert len(cluster.get_json(leader, "/v1/status/peers")) == 3
    conf = cluster.get_json(leader, "/v1/operator/raft/configuration")
    assert "client-1" not in {s["Node"] for s in conf["Servers"]}
    # DNS on the client agent answers from its catalog cache
    q = dns.message.make_query("web.service.cluster.local", "SRV")
    deadline = time.monotonic() + 20
    answer: list[object] = []
    while time.monotonic() < deadline:
        try:
            r = dns.query.udp(q, "127.0.0.4", port=dns_port, timeout=2)
            answer = list(r.answer)
            if answer:
                break
        except (OSError, dns.exception.Timeout):
            pass
        time.sleep(0.5)
    assert answer, "the client's DNS interface should resolve web.service"
    del _socket


def test_cluster_over_tls_rpc(tmp_path: Path) -> None:
    """Server RPC with verify_incoming/outgoing and verify_server_hostname (server.dc1.consul)."""
    from muster.tls import CertRequest, create_ca, create_cert

    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    ca, key = create_ca(str(tls_dir))
    cert, ckey = create_cert(str(tls_dir), ca, key, CertRequest("server"))
    cfg = {
        "tls": {
            "defaults": {"ca_file": ca, "cert_file": cert, "key_file": ckey, "verify_incoming": True, "verify_outgoing": True},
            "internal_rpc": {"verify_server_hostname": True},
        }
    }
    (tmp_path / "tls.json").write_text(json.dumps(cfg))
    c = Cluster(tmp_path / "c", extra=[f"-config-file={tmp_path / 'tls.json'}"])
    c.start_all()
    try:
        leader = c.wait_leader(timeout=30)
        for i in range(3):
            assert c.put(i, f"tls/{i}", b"x")
        wait_until(lambda: all(len(c.kv_dump(i)) >= 3 for i in range(3)), 15, "replication over TLS")
        assert b"server RPC uses TLS" in c.nodes[leader].log_path.read_bytes()
    finally:
        c.close()


def test_servers_meet_on_the_wan_pool(cluster: Cluster) -> None:
    cluster.wait_leader()

    def wan_members() -> list[str]:
        return sorted(m["Name"] for m in cluster.get_json(0, "/v1/agent/members?wan=1") if m["Status"] == 1)

    wait_until(lambda: wan_members() == ["s0.dc1", "s1.dc1", "s2.dc1"], 30, "the servers in the WAN pool")
    ports = {m["Port"] for m in cluster.get_json(1, "/v1/agent/members?wan=1")}
    assert ports == {cluster.serf_wan_port}
