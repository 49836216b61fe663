"""The WAN routing table: datacenters from WAN members, distance order, server choice."""

from __future__ import annotations

import pytest

from muster.coordinate import Coordinate
from muster.errors import MusterError
from muster.gossip.serf import MemberStatus, SerfMember
from muster.server.wan import WanRouter


def m(name: str, dc: str, status: MemberStatus = MemberStatus.ALIVE, role: str = "consul", port: str = "8300",
      addr: str = "10.0.0.1") -> SerfMember:
    return SerfMember(name, "id-" + name, addr, 8302, {"role": role, "dc": dc, "port": port, "id": "id-" + name},
                      status)


def c(x: float) -> Coordinate:
    return Coordinate((x,) + (0.0,) * 7, 0.2, 0.0, 1e-5)


MEMBERS = [m("s1.dc1", "dc1"), m("s1.dc2", "dc2"), m("s2.dc2", "dc2", MemberStatus.FAILED),
           m("s3.dc2", "dc2"), m("s1.dc3", "dc3"), m("s1.dc0", "dc0", MemberStatus.LEFT),
           m("c1.dc4", "dc4", role="node"), m("bad.dc5", "dc5", port="x"), m("s1.ab", "ab")]


def test_datacenters_sorted_by_median_rtt_then_name() -> None:
    coords = {"s1.dc1": c(0.0), "s1.dc2": c(0.08), "s2.dc2": c(0.09), "s3.dc2": c(0.07), "s1.dc3": c(0.02)}
    r = WanRouter("dc1", lambda: MEMBERS, coords.get, "s1.dc1")
    assert r.datacenters() == ["dc1", "dc3", "dc2", "ab"]  # ab has no coordinate: last
    assert r.distance("dc2") == pytest.approx(0.08 + 2e-5)
    assert WanRouter("dc1", lambda: MEMBERS).datacenters() == ["dc1", "ab", "dc2", "dc3"]
    assert WanRouter("dc1", lambda: []).datacenters() == ["dc1"]


def test_route_skips_failed_and_rotates_on_failure() -> None:
    r = WanRouter("dc1", lambda: MEMBERS)
    first = r.route("dc2")
    assert [s.name for s in first] == ["s1.dc2", "s3.dc2"] and first[0].rpc_addr == "10.0.0.1:8300"
    assert first[0].short_name == "s1"
    r.notify_failed(first[0])
    assert [s.name for s in r.route("dc2")] == ["s3.dc2", "s1.dc2"]
    for dc in ("dc9", "dc0", "dc4", "dc5"):
        with pytest.raises(MusterError, match="No path to datacenter"):
            r.route(dc)
    only_failed = WanRouter("dc1", lambda: [m("s2.dc2", "dc2", MemberStatus.FAILED)])
    with pytest.raises(MusterError, match="Remote DC has no server currently reachable"):
        only_failed.route("dc2")
