"""Two StatefulSets in two simulated Kubernetes clusters (network namespaces, one bridge each),
joined by one "WAN" link between the bridges: both run the seed's exact args, and each gets its
``datacenter`` and ``retry_join_wan`` from a config directory (standing for a ConfigMap).

Checked: the datacenters find each other over the WAN pool; a ``?dc=`` write sent to one is
read back from the other; with the WAN link cut both keep serving their own reads and writes
(and answer 500 for the other datacenter); once healed, forwarding works again without any
operator action."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from muster_testkit.k8ssim import SEED_ARGS, StatefulSet, available, cut_link, link_clusters

WHY = available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=f"network namespaces unavailable: {WHY}")

NET1, NET2 = "198.18.0", "198.19.0"


def wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if pred():  # type: ignore[operator]
                return
        except (OSError, RuntimeError, ValueError) as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last})")


def test_two_statefulsets_federate_and_survive_a_wan_partition(tmp_path: Path) -> None:
    pid = os.getpid() % 10000
    cfgs = {dc: tmp_path / f"config-{dc}" for dc in ("dc1", "dc2")}
    for d in cfgs.values():
        d.mkdir()
    s1 = StatefulSet(tmp_path / "dc1", subnet=NET1, namespace="dc1", python=sys.executable, tag=f"md{pid}a",
                     extra_routes=[f"{NET2}.0/24"], args=[*SEED_ARGS, f"-config-dir={cfgs['dc1']}"])
    s2 = StatefulSet(tmp_path / "dc2", subnet=NET2, namespace="dc2", python=sys.executable, tag=f"md{pid}b",
                     extra_routes=[f"{NET1}.0/24"], args=[*SEED_ARGS, f"-config-dir={cfgs['dc2']}"])
    s1.up()
    s2.up()
    try:
        end_a, _ = link_clusters(s1, s2)
        # Pick every pod's address first so each ConfigMap can name the other side's servers.
        ips = {id(s1): [f"{NET1}.{10 + o}" for o in range(3)], id(s2): [f"{NET2}.{10 + o}" for o in range(3)]}
        for dc, peer in (("dc1", s2), ("dc2", s1)):
            (cfgs[dc] / "dc.json").write_text(json.dumps({
                "datacenter": dc, "retry_join_wan": ips[id(peer)], "retry_interval_wan": "2s"}))
        for s in (s1, s2):
            for o in range(3):
                s._pick_ip = (lambda avoid="", s=s, o=o: ips[id(s)][o])  # type: ignore[method-assign]
                s.create_pod(o)
        s1.wait_leader(60)
        s2.wait_leader(60)

        def datacenters(s: StatefulSet) -> list[str]:
            code, body = s.request(0, "GET", "/v1/catalog/datacenters")
            return json.loads(body) if code == 200 else []

        wait(lambda: datacenters(s1) == ["dc1", "dc2"] and datacenters(s2) == ["dc2", "dc1"], 90,
             "each datacenter to see the other over the WAN")
        wait(lambda: s1.request(1, "PUT", "/v1/kv/fed/from-dc1?dc=dc2", b"hello")[1] == b"true", 30,
             "a forwarded write")
        assert "fed/from-dc1" in s2.kv_dump(2) and "fed/from-dc1" not in s1.kv_dump(0)

        cut_link(s1, end_a)
        try:
            for s, dc in ((s1, "dc1"), (s2, "dc2")):
                code, body = s.request(0, "PUT", f"/v1/kv/fed/during-cut-{dc}", b"local", timeout=10)
                assert (code, body) == (200, b"true"), (dc, code, body)
                code, _ = s.request(1, "GET", f"/v1/kv/fed/during-cut-{dc}", timeout=10)
                assert code == 200
            code, body = s1.request(0, "GET", "/v1/kv/fed/from-dc1?dc=dc2", timeout=40)
            assert code == 500, (code, body)
        finally:
            cut_link(s1, end_a, cut=False)
        wait(lambda: s1.request(2, "GET", "/v1/kv/fed/during-cut-dc2?dc=dc2", timeout=20)[0] == 200, 90,
             "forwarding to heal by itself")
        wait(lambda: s2.request(0, "GET", "/v1/kv/fed/during-cut-dc1?dc=dc1", timeout=20)[0] == 200, 90,
             "forwarding to heal in the other direction")
    finally:
        s1.down()
        s2.down()
