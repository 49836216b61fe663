"""Two datacenters of three real server processes each on loopback addresses (dc1 on
127.0.0.1-3, dc2 on 127.0.0.4-6), joined with ``-retry-join-wan``: ``?dc=`` forwarding over
the WAN pool and server RPC, the datacenter list, and reads of a write from the other side."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, env_ok, free_port_on_all, wait_until

pytestmark = pytest.mark.skipif(not env_ok(), reason="needs 127.0.0.2-6 on loopback")


class DC(Cluster):
    """A :class:`Cluster` on 127.0.0.<base+1>.. with its own datacenter name."""

    def __init__(self, root: Path, base: int, dc: str, extra: list[str]) -> None:
        super().__init__(root, extra=["-datacenter=" + dc, *extra])
        self.dc = dc
        for n in self.nodes:
            n.ip = f"127.0.0.{base + n.index + 1}"
        ips = [n.ip for n in self.nodes]
        taken: set[int] = set()
        ports = []
        for _ in range(5):
            p = free_port_on_all(ips)
            while p in taken:
                p = free_port_on_all(ips)
            taken.add(p)
            ports.append(p)
        self.http_port, self.server_port, self.serf_port, self.serf_wan_port, self.dns_port = ports

    def args(self, n: Any) -> list[str]:
        return [a if a != "-dns-port=-1" else f"-dns-port={self.dns_port}" for a in super().args(n)]


@pytest.fixture
def two_dcs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[DC, DC]]:
    dc1 = DC(tmp_path / "dc1", 0, "dc1", [])
    dc2 = DC(tmp_path / "dc2", 3, "dc2", [])
    dc2.extra.append(f"-retry-join-wan=127.0.0.1:{dc1.serf_wan_port}")
    dc2.extra.append("-retry-interval-wan=1s")
    dc1.add_client("127.0.0.7", "dc1-client")  # a client agent: not in the WAN pool
    dc1.start_all()
    dc2.start_all()
    ready = False
    try:
        dc1.wait_leader(among=[0, 1, 2], timeout=120)
        dc2.wait_leader(timeout=120)

        def wan_complete() -> bool:
            return all(len([m for m in dc.get_json(i, "/v1/agent/members?wan=1") if m["Status"] == 1]) == 6
                       for dc in (dc1, dc2) for i in range(3))

        wait_until(lambda: dc1.leader(3) != "", 60, "dc1's client agent to follow the log")

        wait_until(wan_complete, 60, "all six servers in every server's WAN pool")
        ready = True
        yield dc1, dc2
    finally:
        # Keep the servers' logs when the test failed, or when the datacenters never came up.
        failed = not ready or bool(getattr(request.node, "rep_call", None) and request.node.rep_call.failed)
        dc1.close(keep_logs=failed)
        dc2.close(keep_logs=failed)


def test_dc_forwarding_between_two_datacenters(two_dcs: tuple[DC, DC]) -> None:
    dc1, dc2 = two_dcs
    assert dc1.get_json(0, "/v1/catalog/datacenters") == ["dc1", "dc2"]
    assert dc2.get_json(1, "/v1/catalog/datacenters") == ["dc2", "dc1"]
    # A write for dc2 sent to every dc1 server is read back from dc2 itself.
    for i in range(3):
        code, _h, body = dc1.request(i, "PUT", f"/v1/kv/mdc/from-dc1-s{i}?dc=dc2", b"v%d" % i)
        assert (code, body) == (200, b"true"), (code, body)
    want = {f"mdc/from-dc1-s{i}": __import__("base64").b64encode(b"v%d" % i).decode() for i in range(3)}
    # kv_dump reads ?stale from a server that may be a follower still applying the last write.
    wait_until(lambda: {k: v for k, v in dc2.kv_dump(2).items() if k.startswith("mdc/")} == want, 10,
               "dc2's server 2 to apply the forwarded writes")
    assert dc1.kv_dump(0) == {}  # data is per datacenter
    # Headers come from dc2: its index, its leader.
    code, h, body = dc1.request(0, "GET", "/v1/kv/mdc/from-dc1-s0?dc=dc2")
    code2, h2, _ = dc2.request(0, "GET", "/v1/kv/mdc/from-dc1-s0")
    assert code == code2 == 200 and h["X-Consul-Index"] == h2["X-Consul-Index"]
    assert h["X-Consul-KnownLeader"] == "true"
    # A blocking query on dc2 through dc1 wakes on a write in dc2.
    idx = int(h["X-Consul-Index"])
    t0 = time.monotonic()
    assert dc2.put(1, "mdc/from-dc1-s0", b"changed")
    code, h, body = dc1.request(1, "GET", f"/v1/kv/mdc/from-dc1-s0?dc=dc2&index={idx}&wait=20s", timeout=30)
    assert code == 200 and int(h["X-Consul-Index"]) > idx and time.monotonic() - t0 < 20
    # Catalog: dc2's servers are visible from dc1 with ?dc=dc2.
    wait_until(lambda: {n["Node"] for n in dc1.get_json(2, "/v1/catalog/nodes?dc=dc2")} == {"s0", "s1", "s2"},
               30, "dc2's servers in its catalog, read through dc1")
    assert {n["Node"] for n in dc1.get_json(2, "/v1/catalog/nodes?dc=dc2&stale")} == {"s0", "s1", "s2"}
    # A client agent hands ?dc= requests to a server of its own datacenter, which forwards them.
    wait_until(lambda: dc1.request(3, "PUT", "/v1/kv/mdc/from-client?dc=dc2", b"c")[2] == b"true", 30,
               "a forwarded write through dc1's client agent")
    wait_until(lambda: "mdc/from-client" in dc2.kv_dump(0), 10, "dc2's server 0 to apply the write (a ?stale dump)")
    assert "mdc/from-client" not in dc1.kv_dump(0)
    code, _h, body = dc1.request(3, "GET", "/v1/kv/mdc/from-client?dc=dc2&consistent")
    assert code == 200 and json.loads(body)[0]["Key"] == "mdc/from-client"
    # Unknown datacenter.
    code, _h, body = dc1.request(0, "GET", "/v1/catalog/nodes?dc=dc9")
    assert (code, body) == (500, b"No path to datacenter")
    # WAN coordinates exist for both datacenters.
    wan = dc1.get_json(0, "/v1/agent/members?wan=1")
    assert {m["Tags"]["dc"] for m in wan} == {"dc1", "dc2"}
    print(json.dumps({"datacenters": dc1.get_json(0, "/v1/catalog/datacenters")}))


def _register(dc: DC, i: int, node: str, addr: str, status: str) -> None:
    body = json.dumps({"Node": node, "Address": addr, "Service": {"Service": "api", "ID": "api", "Port": 9090},
                       "Check": {"CheckID": "api-health", "Name": "api", "Status": status, "ServiceID": "api"}})
    code, _h, out = dc.request(i, "PUT", "/v1/catalog/register", body.encode())
    assert code == 200, out


def _dig(server: str, port: int, name: str) -> tuple[str, list[str]]:
    import dns.message
    import dns.query
    import dns.rcode

    r = dns.query.udp(dns.message.make_query(name, "A"), server, port=port, timeout=5)
    return dns.rcode.to_text(r.rcode()), sorted(rr.address for rrset in r.answer for rr in rrset)


def test_prepared_query_fails_over_to_dc2_then_leader_kill_under_forwarded_writes(
        two_dcs: tuple[DC, DC]) -> None:
    import threading

    dc1, dc2 = two_dcs
    # "api" is critical in dc1 and healthy in dc2.
    _register(dc1, 0, "api-dc1", "10.1.0.1", "critical")
    _register(dc2, 0, "api-dc2", "10.2.0.1", "passing")
    q = {"Name": "api", "Service": {"Service": "api", "Failover": {"Datacenters": ["dc2"]}}, "DNS": {"TTL": "5s"}}
    code, _h, body = dc1.request(1, "POST", "/v1/query", json.dumps(q).encode())
    assert code == 200, body
    res = dc1.get_json(2, "/v1/query/api/execute")
    assert res["Datacenter"] == "dc2" and res["Failovers"] == 1
    assert [e["Node"]["Node"] for e in res["Nodes"]] == ["api-dc2"]
    # The same through DNS on a dc1 server: <query>.query.<domain>, and the dc2 service by name.
    dns_port = dc1.dns_port
    assert _dig(dc1.nodes[0].ip, dns_port, "api.query.consul.") == ("NOERROR", ["10.2.0.1"])
    assert _dig(dc1.nodes[0].ip, dns_port, "api.service.dc2.consul.") == ("NOERROR", ["10.2.0.1"])
    assert _dig(dc1.nodes[0].ip, dns_port, "api.service.consul.")[0] == "NXDOMAIN"  # critical in dc1
    assert _dig(dc1.nodes[0].ip, dns_port, "api.service.dc9.consul.")[0] == "NXDOMAIN"

    # kill -9 of dc2's leader while dc1 forwards writes to dc2: no acknowledged write is lost.
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        deadline = time.monotonic() + 40
        while not stop.is_set() and time.monotonic() < deadline and n < 5000:
            key = f"load/{n:05d}"
            n += 1
            try:
                code, _h, out = dc1.request(n % 3, "PUT", f"/v1/kv/{key}?dc=dc2", b"x", timeout=15)
            except OSError:
                continue
            if code == 200 and out == b"true":
                acked.append(key)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(3)
    victim = dc2.wait_leader()
    before = len(acked)
    dc2.kill(victim)
    alive = [i for i in range(3) if i != victim]
    dc2.wait_leader(among=alive, timeout=30)
    wait_until(lambda: len(acked) > before + 20, 30, "forwarded writes to resume after the leader's death")
    stop.set()
    t.join(30)
    want = set(acked)
    for i in alive:
        wait_until(lambda i=i: want <= set(dc2.kv_dump(i)), 30, f"every acknowledged write on dc2 s{i}")
    print(json.dumps({"acked": len(acked), "before_kill": before}))
