"""ACLs across two real datacenters (one server each, on 127.0.0.1 and 127.0.0.4, joined over
the WAN): dc2 replicates dc1's policies over server RPC, resolves dc1's tokens through dc1,
refuses ACL bootstrap (the primary's alone), and applies ``down_policy = "extend-cache"`` once dc1
is gone.  docs/compat/acl.md#datacenters-and-down_policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, env_ok, free_port_on_all, wait_until
from .test_acl_cluster import ROOT, call, call_json

pytestmark = pytest.mark.skipif(not env_ok(), reason="needs 127.0.0.4 on loopback")


class OneServerDC(Cluster):
    def __init__(self, root: Path, ip: str, dc: str, hcl: str) -> None:
        super().__init__(root, size=1, expect=1, extra=["-datacenter=" + dc, "-hcl", hcl])
        self.dc = dc
        self.nodes[0].ip = ip
        self.http_port, self.server_port, self.serf_port, self.serf_wan_port = (free_port_on_all([ip]) for _ in range(4))
        while len({self.http_port, self.server_port, self.serf_port, self.serf_wan_port}) < 4:
            self.serf_wan_port = free_port_on_all([ip])
            self.serf_port = free_port_on_all([ip])


def _acl(default: str, extra: str = "") -> str:
    return f'acl {{\n  enabled = true\n  default_policy = "{default}"\n{extra}}}\n'


@pytest.fixture
def two_acl_dcs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[OneServerDC, OneServerDC]]:
    dc1 = OneServerDC(tmp_path / "dc1", "127.0.0.1", "dc1", _acl("deny", f'  tokens {{\n    initial_management = "{ROOT}"\n  }}\n'))
    dc2 = OneServerDC(
        tmp_path / "dc2",
        "127.0.0.4",
        "dc2",
        'primary_datacenter = "dc1"\n'
        + _acl("deny", f'  down_policy = "extend-cache"\n  token_ttl = "1s"\n  tokens {{\n    replication = "{ROOT}"\n  }}\n'),
    )
    dc2.extra += [f"-retry-join-wan=127.0.0.1:{dc1.serf_wan_port}", "-retry-interval-wan=1s"]
    dc1.start_all()
    dc2.start_all()
    ok = False
    try:
        dc1.wait_leader(timeout=60)
        dc2.wait_leader(timeout=60)
        # Members are filtered by node:read under default deny: list them with the management token.
        wait_until(lambda: all(len(call_json(dc, 0, "GET", "/v1/agent/members?wan=1", ROOT)) == 2 for dc in (dc1, dc2)), 60,
                   "the WAN pool")
        ok = True
        yield dc1, dc2
    finally:
        failed = not ok or bool(getattr(request.node, "rep_call", None) and request.node.rep_call.failed)
        dc1.close(keep_logs=failed)
        dc2.close(keep_logs=failed)


def test_replication_remote_tokens_and_down_policy(two_acl_dcs: tuple[OneServerDC, OneServerDC]) -> None:
    dc1, dc2 = two_acl_dcs
    pol = call_json(dc1, 0, "PUT", "/v1/acl/policy", ROOT, {"Name": "app", "Rules": 'key_prefix "app/" { policy = "write" }'})
    seen = call_json(dc1, 0, "PUT", "/v1/acl/token", ROOT, {"Policies": [{"ID": pol["ID"]}]})
    never = call_json(dc1, 0, "PUT", "/v1/acl/token", ROOT, {"Policies": [{"ID": pol["ID"]}]})

    def replicated() -> bool:
        code, body = call(dc2, 0, "GET", "/v1/acl/policies", ROOT)
        return code == 200 and "app" in {p["Name"] for p in json.loads(body)}

    wait_until(replicated, 30, "dc1's policy replicated into dc2")
    status: Any = json.loads(call(dc2, 0, "GET", "/v1/acl/replication")[1])
    assert status["Enabled"] and status["Running"] and status["SourceDatacenter"] == "dc1", status
    assert call(dc2, 0, "PUT", "/v1/kv/app/x", seen["SecretID"], b"1") == (200, b"true")
    code, body = call(dc2, 0, "PUT", "/v1/kv/other", seen["SecretID"], b"1")
    assert code == 403 and body.startswith(b"Permission denied")
    assert call(dc2, 0, "GET", "/v1/kv/app/x", "no-such-secret")[0] == 403
    # Bootstrap is the primary's alone: dc2 refuses it (Consul's ACL.BootstrapTokens outside the
    # primary) and mints no management token of its own.
    assert call(dc2, 0, "PUT", "/v1/acl/bootstrap") == (500, b"ACL support disabled")
    tokens = call_json(dc2, 0, "GET", "/v1/acl/tokens", ROOT)
    assert not [t for t in tokens if t.get("Description", "").startswith("Bootstrap Token")], tokens

    dc1.kill(0)
    time.sleep(1.5)  # past token_ttl: the cached token must now be extended
    assert call(dc2, 0, "PUT", "/v1/kv/app/x", seen["SecretID"], b"2") == (200, b"true")
    code, body = call(dc2, 0, "PUT", "/v1/kv/app/x", never["SecretID"], b"3")
    assert code == 403 and body.startswith(b"Permission denied"), body  # default_policy, not "ACL not found"
    status = json.loads(call(dc2, 0, "GET", "/v1/acl/replication")[1])
    wait_until(
        lambda: json.loads(call(dc2, 0, "GET", "/v1/acl/replication")[1])["LastErrorMessage"] != "", 30,
        "replication to report the primary's absence",
    )
