"""ACLs on a real 3-server cluster: tokens are replicated state, resolved locally everywhere.

A token created through any server authorizes on every server (each resolves it from its own
replica of the ACL table, no round trip), survives a restart of every server (it is in the Raft
log and snapshots), and once deleted stops working on every server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, env_ok, running, wait_until

pytestmark = pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable")

ROOT = "5b0e4a2c-6c35-4a53-9d0c-1f9d1e0a0001"
ACL_HCL = f'acl {{\n  enabled = true\n  default_policy = "deny"\n  tokens {{\n    initial_management = "{ROOT}"\n  }}\n}}\n'


def call(c: Cluster, i: int, method: str, path: str, token: str = "", body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(c.url(i, path), data=body, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def call_json(c: Cluster, i: int, method: str, path: str, token: str, body: Any = None) -> Any:
    code, data = call(c, i, method, path, token, None if body is None else json.dumps(body).encode())
    assert code == 200, (i, method, path, code, data)
    return json.loads(data)


@pytest.fixture
def acl_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running(Cluster(tmp_path, extra=["-hcl", ACL_HCL]), request) as c:
        yield c


def test_token_replicated_restart_and_revocation(acl_cluster: Cluster) -> None:
    c = acl_cluster
    c.wait_leader(timeout=30)
    # The leader created the initial management token: every server knows it.
    wait_until(lambda: all(call(c, i, "GET", "/v1/acl/token/self", ROOT)[0] == 200 for i in range(3)), 20,
               "the initial management token on every server")
    assert all(call(c, i, "PUT", "/v1/kv/probe", "", b"x")[0] == 403 for i in range(3))
    leader = c.wait_leader()
    follower = (leader + 1) % 3
    # Create through a follower: the write is forwarded, and the follower answers once it holds it.
    call_json(c, follower, "PUT", "/v1/acl/policy", ROOT, {"Name": "app", "Rules": 'key_prefix "app/" { policy = "write" }'})
    tok = call_json(c, follower, "PUT", "/v1/acl/token", ROOT, {"Policies": [{"Name": "app"}]})
    secret = tok["SecretID"]
    assert call(c, follower, "PUT", "/v1/kv/app/a", secret, b"1") == (200, b"true")
    # Every other server resolves it from its own replica (replication lag is milliseconds;
    # the bound only keeps a loaded machine from failing the test).
    for i in range(3):
        wait_until(lambda i=i: call(c, i, "GET", "/v1/kv/app/a", secret)[0] == 200, 5, f"token works on s{i}")
        assert call(c, i, "PUT", "/v1/kv/other", secret, b"1")[0] == 403
    # Restart every server: the token is in the log and the snapshots.
    for i in range(3):
        c.kill(i)
    c.start_all()
    c.wait_leader(timeout=30)
    for i in range(3):
        wait_until(lambda i=i: call(c, i, "GET", "/v1/kv/app/a", secret)[0] == 200, 30, f"token works on s{i} after restart")
    # Delete it through another server: it stops working everywhere.
    other = (c.wait_leader() + 2) % 3
    code, body = call(c, other, "DELETE", f"/v1/acl/token/{tok['AccessorID']}", ROOT)
    assert (code, body) == (200, b"true")
    assert call(c, other, "GET", "/v1/kv/app/a", secret) == (403, b"ACL not found")
    for i in range(3):
        wait_until(lambda i=i: call(c, i, "GET", "/v1/kv/app/a", secret) == (403, b"ACL not found"), 5,
                   f"deleted token refused on s{i}")
    time.sleep(0.2)
    assert all(call(c, i, "PUT", "/v1/kv/app/b", secret, b"1")[0] == 403 for i in range(3))
