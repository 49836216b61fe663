"""Stateless client agents (``server/remote.py``): 3 servers on 127.0.0.1-3, 2 clients on .4/.5.

A client holds no replica: it forwards reads and writes to a server it learned from gossip,
tries another when one dies, syncs its own services into the catalog through a server, and its
DNS interface answers from its catalog cache for as long as ``dns_config.max_stale`` allows,
also while no server answers at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from .harness import Cluster, env_ok, free_port_on_all, running, wait_until

pytestmark = pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable")

MAX_STALE = "20s"


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running(Cluster(tmp_path), request) as c:
        yield c


def dns_query(ip: str, port: int, name: str, rdtype: str) -> dns.message.Message | None:
    try:
        return dns.query.udp(dns.message.make_query(name, rdtype), ip, port=port, timeout=2)
    except (OSError, dns.exception.Timeout):
        return None


def srv_targets(resp: dns.message.Message | None) -> set[str]:
    if resp is None or resp.rcode() != dns.rcode.NOERROR:
        return set()
    return {str(rd.target) for rrset in resp.answer for rd in rrset}


def test_clients_forward_sync_fail_over_and_answer_dns_from_cache(cluster: Cluster) -> None:
    leader = cluster.wait_leader(timeout=60)
    dns_port = free_port_on_all(["127.0.0.4", "127.0.0.5"])
    hcl = f'dns_config {{\n  allow_stale = true\n  max_stale = "{MAX_STALE}"\n}}\n'
    clients = [
        cluster.add_client(ip, name, extra=[f"-dns-port={dns_port}", "-domain=cluster.local", "-hcl", hcl])
        for ip, name in (("127.0.0.4", "client-a"), ("127.0.0.5", "client-b"))
    ]
    for ci in clients:
        cluster.start(ci)
    a, b = clients
    for ci in clients:
        # /v1/status/leader is a server's answer, forwarded
        wait_until(lambda ci=ci: cluster.leader(ci) != "", 60, f"client {ci} to reach a server")

    # writes and reads through the clients
    assert cluster.put(a, "from-a", b"1")
    code, _h, body = cluster.request(b, "GET", "/v1/kv/from-a")
    assert code == 200 and json.loads(body)[0]["Key"] == "from-a"
    code, _h, _b = cluster.request(b, "GET", "/v1/kv/from-a?consistent")
    assert code == 200
    code, _h, _b = cluster.request(b, "GET", "/v1/kv/missing")
    assert code == 404

    # a client's own service reaches the catalog through anti-entropy
    svc = {"Name": "web", "Port": 8080, "Check": {"TTL": "300s", "Status": "passing"}}
    code, _h, body = cluster.request(a, "PUT", "/v1/agent/service/register", json.dumps(svc).encode())
    assert code == 200, body

    def web_nodes(i: int) -> set[str]:
        return {e["Node"] for e in cluster.get_json(i, "/v1/catalog/service/web")}

    wait_until(lambda: web_nodes(leader) == {"client-a"}, 30, "client-a's service in the catalog")
    assert web_nodes(b) == {"client-a"}
    wait_until(lambda: any(c["CheckID"] == "serfHealth" and c["Status"] == "passing"
                           for c in cluster.get_json(leader, "/v1/health/node/client-b")), 30,
               "client-b's serfHealth")

    # stateless: no Raft data on disk, not in the configuration
    for ci in clients:
        assert not (cluster.nodes[ci].data_dir / "raft").exists()
    conf = cluster.get_json(leader, "/v1/operator/raft/configuration")
    assert {s["Node"] for s in conf["Servers"]} == {"s0", "s1", "s2"}

    # DNS on a client answers from its catalog cache
    wait_until(lambda: srv_targets(dns_query("127.0.0.5", dns_port, "web.service.cluster.local", "SRV")) != set(), 30,
               "web.service on client-b's DNS")

    # every server paused (no leader, no server answers): the cache still answers...
    for i in range(3):
        cluster.pause(i)
    try:
        assert srv_targets(dns_query("127.0.0.5", dns_port, "web.service.cluster.local", "SRV")), \
            "the client's DNS should answer from its cache while no server answers"

        # ...until it is older than max_stale: then SERVFAIL, not an answer of unknown age
        def servfail() -> bool:
            r = dns_query("127.0.0.5", dns_port, "web.service.cluster.local", "SRV")
            return r is not None and r.rcode() == dns.rcode.SERVFAIL

        wait_until(servfail, 90, "SERVFAIL once the cache is older than max_stale")
    finally:
        for i in range(3):
            cluster.resume(i)
    wait_until(lambda: srv_targets(dns_query("127.0.0.5", dns_port, "web.service.cluster.local", "SRV")) != set(), 60,
               "answers again once the servers are back")

    # the leader dies: the clients go on through the other servers
    leader = cluster.wait_leader(among=[0, 1, 2], timeout=60)
    cluster.kill(leader)
    survivors = [i for i in range(3) if i != leader]
    wait_until(lambda: cluster.put(a, "after-kill", b"2", timeout=5), 60, "a write through client-a after the kill")
    wait_until(lambda: cluster.request(b, "GET", "/v1/kv/after-kill", timeout=5)[0] == 200, 30,
               "a read through client-b after the kill")
    new_leader = cluster.wait_leader(among=survivors, timeout=60)
    assert cluster.kv_dump(new_leader).get("after-kill") is not None
    # a service registered after the kill still reaches the catalog
    svc2 = {"Name": "api", "Port": 9090}
    code, _h, body = cluster.request(b, "PUT", "/v1/agent/service/register", json.dumps(svc2).encode())
    assert code == 200, body
    wait_until(lambda: {e["Node"] for e in cluster.get_json(new_leader, "/v1/catalog/service/api")} == {"client-b"},
               30, "client-b's service in the catalog after the kill")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if srv_targets(dns_query("127.0.0.4", dns_port, "api.service.cluster.local", "SRV")):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("api.service never appeared on client-a's DNS")


def test_client_answers_connect_ptr_and_alias_of_other_nodes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """What a client's cache must follow beyond named services and nodes, on a server+client
    pair: ``<service>.connect`` (the proxies), PTR (nodes and services by address) and an alias
    check of a node the client knows nothing else about (``server/remote.py`` CatalogMirror)."""
    with running(Cluster(tmp_path, size=1, expect=1), request) as cluster:
        cluster.wait_leader(timeout=60)
        dns_port = free_port_on_all(["127.0.0.4"])
        ci = cluster.add_client("127.0.0.4", "client-a", extra=[f"-dns-port={dns_port}", "-domain=cluster.local"])
        cluster.start(ci)
        wait_until(lambda: cluster.leader(ci) != "", 60, "the client to reach the server")

        def register(body: dict[str, object]) -> None:
            code, _h, out = cluster.request(0, "PUT", "/v1/catalog/register", json.dumps(body).encode())
            assert code == 200, out

        def api_check(status: str) -> dict[str, object]:
            return {"Node": "ext", "Address": "10.1.2.3", "Service": {"ID": "api", "Service": "api", "Port": 80},
                    "Check": {"CheckID": "api-up", "Name": "api up", "ServiceID": "api", "Status": status,
                              "Output": status}}

        register(api_check("passing"))
        register({"Node": "ext2", "Address": "10.1.2.4",
                  "Service": {"ID": "api-sidecar-proxy", "Service": "api-sidecar-proxy", "Kind": "connect-proxy",
                              "Port": 21000, "Proxy": {"DestinationServiceName": "api"}}})

        def answer(name: str, rdtype: str) -> list[str]:
            r = dns_query("127.0.0.4", dns_port, name, rdtype)
            if r is None or r.rcode() != dns.rcode.NOERROR:
                return []
            return sorted(rd.to_text() for rrset in r.answer for rd in rrset)

        wait_until(lambda: answer("api.connect.cluster.local", "A") == ["10.1.2.4"], 30, "api.connect on the client")
        assert answer("3.2.1.10.in-addr.arpa", "PTR") == ["ext.node.dc1.cluster.local."]

        alias = {"Name": "ext-api", "AliasNode": "ext", "AliasService": "api"}
        code, _h, out = cluster.request(ci, "PUT", "/v1/agent/check/register", json.dumps(alias).encode())
        assert code == 200, out

        def alias_status() -> str:
            return str(cluster.get_json(ci, "/v1/agent/checks")["ext-api"]["Status"])

        wait_until(lambda: alias_status() == "passing", 30, "the alias check passing")
        register(api_check("critical"))
        wait_until(lambda: alias_status() == "critical", 30, "the alias check following the remote check")
