"""The StatefulSet with the secure manifests (deploy/kubernetes/base): ACLs on with default deny,
tokens, gossip key and TLS certificates from their Secrets, projected as the manifests do
(``MUSTER_CONFIG_DIR=/consul/config``, ``/consul/tls``), the seed's args unchanged.

A fresh deploy answers 403 to a request without a token; the management token from the Secret
writes; the servers register themselves with the agent token; a pod re-created with a new IP
rejoins and every acknowledged write survives.  Timings are printed, not asserted.
"""

from __future__ import annotations

import json
import queue
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from muster.tls import CertRequest, create_ca, create_cert, keygen
from muster_testkit.k8ssim import StatefulSet, WriteLoad, available

WHY = available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=f"network namespaces unavailable: {WHY}")

ROOT = Path(__file__).resolve().parents[2]
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml"


def converge(s: StatefulSet, acked: set[str], timeout: float = 40) -> None:
    """Every pod holds every acknowledged write and the same KV state (bounded wait)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            dumps = [s.kv_dump(o) for o in sorted(s.pods)]
            if all(acked <= set(d) for d in dumps) and all(d == dumps[0] for d in dumps):
                return
            last = f"sizes {[len(d) for d in dumps]}, acked {len(acked)}"
        except (OSError, RuntimeError, queue.Empty) as err:
            last = repr(err)
        time.sleep(0.5)
    raise AssertionError(f"servers did not converge on every acknowledged write: {last}")


@pytest.fixture
def secure_sts(tmp_path: Path) -> Iterator[tuple[StatefulSet, str]]:
    mgmt, agent = str(uuid.uuid4()), str(uuid.uuid4())
    config = tmp_path / "config"
    config.mkdir()
    for name, text in yaml.safe_load(CONFIGMAP.read_text())["data"].items():
        (config / name).write_text(text)
    (config / "encrypt.json").write_text(json.dumps({"encrypt": keygen()}))
    (config / "acl-tokens.json").write_text(json.dumps({"acl": {"tokens": {"initial_management": mgmt, "agent": agent}}}))
    tls = tmp_path / "tls"
    tls.mkdir()
    ca_cert, ca_key = create_ca(str(tls), domain="cluster.local")
    cert, key = create_cert(str(tls), ca_cert, ca_key, CertRequest("server", domain="cluster.local"))
    shutil.copy(ca_cert, tls / "ca.pem")
    shutil.copy(cert, tls / "tls.crt")
    shutil.copy(key, tls / "tls.key")
    for p in (config, tls):
        for f in p.iterdir():
            f.chmod(0o644)
    s = StatefulSet(
        tmp_path / "k8s",
        python=sys.executable,
        env={"MUSTER_CONFIG_DIR": "/consul/config"},
        volumes={"/consul/config": config, "/consul/tls": tls},
    )
    s.up()
    try:
        yield s, mgmt
    finally:
        s.down()


def test_secure_manifests_deny_anonymous_and_survive_a_pod_move(secure_sts: tuple[StatefulSet, str]) -> None:
    sts, mgmt = secure_sts
    started = time.monotonic()
    for o in range(3):
        sts.create_pod(o)
    leader, took = sts.wait_leader(60)  # /v1/status/leader needs no token
    print(f"secure first start: leader after {took:.1f}s")
    code, body = sts.request(0, "PUT", "/v1/kv/anon", b"1")
    assert code == 403 and body.startswith(b"Permission denied: anonymous token lacks permission"), body
    assert sts.request(0, "GET", "/v1/agent/self")[0] == 403
    sts.token = mgmt
    assert sts.request(leader, "PUT", "/v1/kv/secure", b"1") == (200, b"true")
    # The servers registered themselves (through Raft, as without ACLs).
    deadline = time.monotonic() + 30
    while True:
        code, body = sts.request(0, "GET", "/v1/catalog/service/consul")
        if code == 200 and body.count(b'"ServiceID":"consul"') == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 200 and body.count(b'"ServiceID":"consul"') == 3, body[:300]

    load = WriteLoad(sts, "s").start()
    time.sleep(2)
    old_ip = sts.pods[leader].ip
    sts.recreate_pod(leader)
    assert sts.pods[leader].ip != old_ip
    _, took = sts.wait_leader(60)
    time.sleep(3)
    load.stop()
    assert len(load.acked) > 10
    print(f"secure pod re-created: leader after {took:.1f}s, longest write gap {load.longest_gap:.1f}s")
    converge(sts, set(load.acked))
    sts.token = ""
    assert sts.request(leader, "GET", "/v1/kv/secure")[0] == 403
    print(f"secure scenario total {time.monotonic() - started:.1f}s")
