"""Service-mesh state across a full restart of a real 3-server cluster (issue 15 item 6).

Connect registrations (a proxy with its Proxy block and Locality, an agent service with a
sidecar), config entries, intentions and the CA (a rotated root included) are written, every
server is killed with SIGKILL at once and restarted, and every server must then serve the same
state; a leaf certificate issued by one server verifies against the root another one serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .harness import Cluster, env_ok, running, wait_until

pytestmark = pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable")


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running(Cluster(tmp_path), request) as c:
        yield c


def _put(c: Cluster, i: int, path: str, body: Any) -> Any:
    code, _h, raw = c.request(i, "PUT", path, json.dumps(body).encode())
    assert code == 200, (path, code, raw)
    return json.loads(raw) if raw else None


def _state(c: Cluster, i: int) -> dict[str, Any]:
    """Everything this test wrote, as server ``i`` serves it (stale reads: its own replica)."""
    roots = c.get_json(i, "/v1/connect/ca/roots?stale")
    proxy = c.get_json(i, "/v1/catalog/connect/web?stale")
    return {
        "defaults": c.get_json(i, "/v1/config/service-defaults/web?stale"),
        "resolver": c.get_json(i, "/v1/config/service-resolver/web?stale"),
        "intentions": c.get_json(i, "/v1/connect/intentions?stale"),
        "roots": [(r["ID"], r["Active"]) for r in roots["Roots"]],
        "trust_domain": roots["TrustDomain"],
        "ca_config": c.get_json(i, "/v1/connect/ca/configuration?stale")["Config"],
        "proxy": [(e["ServiceID"], e["ServiceProxy"], e["ServiceLocality"]) for e in proxy],
    }


def test_connect_state_survives_a_full_cluster_restart(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    s = (leader + 1) % 3  # write through a follower: every write is forwarded to the leader
    _put(cluster, s, "/v1/catalog/register", {
        "Node": "edge", "Address": "10.0.0.9",
        "Service": {"Service": "web-proxy", "Kind": "connect-proxy", "Port": 21000,
                    "Proxy": {"DestinationServiceName": "web", "LocalServicePort": 8080,
                              "Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}]},
                    "Locality": {"Region": "r1", "Zone": "z1"}},
    })  # fmt: skip
    _put(cluster, s, "/v1/agent/service/register", {"Name": "api", "Port": 9000, "Connect": {"SidecarService": {}}})
    assert _put(cluster, s, "/v1/config", {"Kind": "service-defaults", "Name": "web", "Protocol": "http"}) is True
    assert _put(cluster, s, "/v1/config", {"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "15s"}) is True
    assert _put(cluster, s, "/v1/connect/intentions/exact?source=web&destination=db", {"Action": "allow"}) is True
    assert _put(cluster, s, "/v1/connect/intentions/exact?source=*&destination=db", {"Action": "deny"}) is True
    first_root = cluster.get_json(s, "/v1/connect/ca/roots")["ActiveRootID"]
    assert _put(cluster, s, "/v1/connect/ca/configuration",
                {"Provider": "consul", "Config": {"LeafCertTTL": "24h", "PrivateKeyBits": 384}}) is True  # fmt: skip

    def replicated() -> bool:
        states = [_state(cluster, i) for i in range(3)]
        return states[0] == states[1] == states[2] and len(states[0]["roots"]) == 2 and len(states[0]["proxy"]) == 1

    wait_until(replicated, 30, "the mesh state on every server")
    before = _state(cluster, 0)
    assert before["roots"][0] == (first_root, False) and before["roots"][1][1] is True
    assert before["ca_config"]["LeafCertTTL"] == "24h"
    assert [(i["SourceName"], i["Action"]) for i in before["intentions"]] == [("web", "allow"), ("*", "deny")]

    for i in range(3):
        cluster.kill(i)
    cluster.start_all()
    cluster.wait_leader(timeout=30)
    wait_until(lambda: all(_state(cluster, i) == before for i in range(3)), 30, "the same mesh state after the restart")

    # The agent's sidecar registration came back with its parent and still goes with it.
    services = cluster.get_json(s, "/v1/agent/services")
    assert services["api-sidecar-proxy"]["Proxy"]["DestinationServiceID"] == "api"
    code, _h, _b = cluster.request(s, "PUT", "/v1/agent/service/deregister/api")
    assert code == 200
    assert "api-sidecar-proxy" not in cluster.get_json(s, "/v1/agent/services")
    # A leaf issued by one server verifies against the active root another serves.
    leaf = cluster.get_json(0, "/v1/agent/connect/ca/leaf/web")
    roots = cluster.get_json(2, "/v1/connect/ca/roots")
    active = next(r for r in roots["Roots"] if r["Active"])
    x509.load_pem_x509_certificate(leaf["CertPEM"].encode()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(active["RootCert"].encode())
    )
    assert leaf["ServiceURI"] == f"spiffe://{roots['TrustDomain']}/ns/default/dc/dc1/svc/web"
    # Authorization after the restart still follows the intentions.
    td = roots["TrustDomain"]
    code, _h, raw = cluster.request(1, "POST", "/v1/agent/connect/authorize", json.dumps(
        {"Target": "db", "ClientCertURI": f"spiffe://{td}/ns/default/dc/dc1/svc/api"}).encode())  # fmt: skip
    assert code == 200 and json.loads(raw)["Authorized"] is False
