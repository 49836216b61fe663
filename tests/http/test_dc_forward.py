"""``?dc=`` forwarding between two in-process datacenters: the forwarder's rules (which
requests cross, the retry rule, error texts) and that the remote answer, headers included,
comes back unchanged.  The RPC hop is replaced by a direct call of the remote app; the real
hop over server RPC is exercised by tests/cluster/test_multi_dc.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.gossip.serf import MemberStatus, SerfMember
from muster.http.forward import request_of
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.server.federation import Answer, Federation
from muster.server.rpc import ConnectionLost
from muster.server.wan import WanRouter, WanServer


async def _proc(dc: str, node: str) -> AgentProcess:
    cfg = parse_agent_flags(["-dev", f"-node={node}", f"-datacenter={dc}", "-client=127.0.0.1"])
    proc = AgentProcess(cfg, rng=Rng(7))
    await proc.server.start()
    await proc.agent.start()
    return proc


class Remote:
    """Stands in for the WAN RPC: a server name -> behaviour map."""

    def __init__(self, target: AgentProcess) -> None:
        self.target = target
        self.calls: list[str] = []
        self.unsent: set[str] = set()
        self.sent_fail: set[str] = set()

    async def __call__(self, srv: WanServer, payload: dict[str, Any], timeout: float) -> Answer:
        self.calls.append(srv.name)
        if srv.name in self.unsent:
            raise ConnectionLost("dial failed", sent=False)
        if srv.name in self.sent_fail:
            raise ConnectionLost("connection lost while waiting for the answer", sent=True)
        resp = await self.target.app.handle(request_of(payload, {}))
        return resp.status, resp.content_type or "", list(resp.headers), resp.body


@pytest.fixture
async def pair() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Remote, Federation]]:
    dc1, dc2 = await _proc("dc1", "n1"), await _proc("dc2", "n2")
    members = [SerfMember(f"{n}.{dc}", f"id-{n}-{dc}", "127.0.0.1", 8302,
                          {"role": "consul", "dc": dc, "port": "8300", "id": f"id-{n}-{dc}"}, MemberStatus.ALIVE)
               for n, dc in (("n1", "dc1"), ("a", "dc2"), ("b", "dc2"))]
    remote = Remote(dc2)
    # dc1's federation gets a WAN view of both datacenters, and the remote call is the direct
    # one above instead of the WAN RPC (test seams: the service object's two parts).
    fwd = dc1.federation
    fwd.router = WanRouter("dc1", lambda: members)
    fwd.remote = remote
    _PROCS[id(dc1.app)] = dc1
    t1, t2 = httpx.ASGITransport(app=dc1.app), httpx.ASGITransport(app=dc2.app)
    async with httpx.AsyncClient(transport=t1, base_url="http://dc1") as c1, \
            httpx.AsyncClient(transport=t2, base_url="http://dc2") as c2:
        yield c1, c2, remote, fwd
    for p in (dc1, dc2):
        await p.agent.stop()
        await p.server.stop()


async def test_write_to_dc2_through_dc1_reads_back_from_dc2(pair: Any) -> None:
    c1, c2, remote, fwd = pair
    r = await c1.put("/v1/kv/greeting?dc=dc2", content=b"hello")
    assert r.status_code == 200 and r.json() is True
    local = await c2.get("/v1/kv/greeting")
    assert base64.b64decode(local.json()[0]["Value"]) == b"hello"
    assert (await c1.get("/v1/kv/greeting")).status_code == 404  # dc1 has no such key
    via = await c1.get("/v1/kv/greeting?dc=dc2")
    assert via.json() == local.json()
    assert via.headers["X-Consul-Index"] == local.headers["X-Consul-Index"]
    assert fwd.counters["forwarded"] == 2


async def test_blocking_query_across_datacenters(pair: Any) -> None:
    c1, c2, _, _ = pair
    await c2.put("/v1/kv/k", content=b"1")
    idx = int((await c1.get("/v1/kv/k?dc=dc2")).headers["X-Consul-Index"])
    waiter = asyncio.ensure_future(c1.get(f"/v1/kv/k?dc=dc2&index={idx}&wait=30s"))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await c2.put("/v1/kv/k", content=b"2")
    r = await asyncio.wait_for(waiter, 10)
    assert int(r.headers["X-Consul-Index"]) > idx
    assert base64.b64decode(r.json()[0]["Value"]) == b"2"


async def test_unknown_datacenter_and_local_only_paths(pair: Any) -> None:
    c1, _, remote, _ = pair
    r = await c1.get("/v1/catalog/nodes?dc=dc9")
    assert r.status_code == 500 and r.text == "No path to datacenter"
    r = await c1.get("/v1/agent/self?dc=dc2")
    assert r.status_code == 200 and r.json()["Config"]["Datacenter"] == "dc1"
    r = await c1.get("/v1/catalog/nodes?dc=dc1")
    assert [n["Node"] for n in r.json()] == ["n1"]
    assert remote.calls == []
    # A request that already crossed the WAN is never sent on again.
    r = await c1.get("/v1/catalog/nodes?dc=dc2", headers={"x-muster-dc-forwarded": "1"})
    assert r.status_code == 500 and r.text == "No path to datacenter"


async def test_retry_only_when_nothing_was_sent(pair: Any) -> None:
    c1, _, remote, fwd = pair
    remote.unsent.add("a.dc2")
    r = await c1.put("/v1/kv/x?dc=dc2", content=b"v")
    assert r.status_code == 200 and remote.calls == ["a.dc2", "b.dc2"]
    assert fwd.counters["retried_unsent"] == 1
    remote.calls.clear()
    remote.unsent.clear()
    remote.sent_fail.update({"a.dc2", "b.dc2"})
    r = await c1.put("/v1/kv/y?dc=dc2", content=b"v")
    assert r.status_code == 500 and "connection lost" in r.text
    assert len(remote.calls) == 1  # the write may have been applied: never resent
    remote.sent_fail.clear()
    remote.unsent.update({"a.dc2", "b.dc2"})
    r = await c1.get("/v1/kv/y?dc=dc2")
    assert r.status_code == 500 and r.text == "Remote DC has no server currently reachable"


async def _dns(proc: AgentProcess, *flags: str) -> Any:
    from muster.dns.server import DNSServer

    d = DNSServer(proc.server, proc.config, rng=Rng(3))
    d.enable_remote(proc._http_get, "-translate-wan" in flags)
    await d.start(["127.0.0.1"], 0)
    return d


async def _ask(d: Any, name: str, rdtype: str = "A", tcp: bool = False) -> Any:
    import dns.asyncquery
    import dns.message

    q = dns.message.make_query(name, rdtype)
    host, port = d.addresses[0]
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=5)
    return await dns.asyncquery.udp(q, host, port=port, timeout=5)


async def test_dns_answers_for_the_other_datacenter(pair: Any) -> None:
    import dns.rcode

    c1, c2, _, _ = pair
    reg = {"Node": "web-node", "Address": "10.2.0.5", "TaggedAddresses": {"wan": "198.51.100.5"},
           "Service": {"Service": "web", "Port": 80},
           "Check": {"CheckID": "web-ok", "Name": "ok", "Status": "passing", "ServiceID": "web"}}
    assert (await c1.put("/v1/catalog/register?dc=dc2", json=reg)).status_code == 200
    proc1 = pair_proc(c1)
    d = await _dns(proc1)
    try:
        r = await _ask(d, "web.service.dc2.consul.")
        assert r.rcode() == dns.rcode.NOERROR
        assert [rr.address for rr in r.answer[0]] == ["10.2.0.5"]
        srv = await _ask(d, "web.service.dc2.consul.", "SRV", tcp=True)
        assert str(srv.answer[0][0].target) == "web-node.node.dc2.consul."
        n = await _ask(d, "web-node.node.dc2.consul.")
        assert [rr.address for rr in n.answer[0]] == ["10.2.0.5"]
        assert (await _ask(d, "web.service.dc9.consul.")).rcode() == dns.rcode.NXDOMAIN
        assert (await _ask(d, "nope.service.dc2.consul.")).rcode() == dns.rcode.NXDOMAIN
        assert (await _ask(d, "web.service.consul.")).rcode() == dns.rcode.NXDOMAIN  # not in dc1
    finally:
        await d.stop()
    d = await _dns(proc1, "-translate-wan")
    try:
        r = await _ask(d, "web.service.dc2.consul.")
        assert [rr.address for rr in r.answer[0]] == ["198.51.100.5"]
    finally:
        await d.stop()


def pair_proc(c: httpx.AsyncClient) -> AgentProcess:
    return _PROCS[id(c._transport.app)]  # type: ignore[attr-defined]


_PROCS: dict[int, AgentProcess] = {}


async def test_catalog_register_routed_by_body_datacenter(pair: Any) -> None:
    c1, c2, _, _ = pair
    reg = {"Datacenter": "dc2", "Node": "remote-node", "Address": "10.2.0.9"}
    r = await c1.put("/v1/catalog/register", json=reg)
    assert r.status_code == 200
    assert "remote-node" in [n["Node"] for n in (await c2.get("/v1/catalog/nodes")).json()]
    assert "remote-node" not in [n["Node"] for n in (await c1.get("/v1/catalog/nodes")).json()]
    r = await c1.put("/v1/catalog/register", json=dict(reg, Datacenter="dc7"))
    assert r.status_code == 500 and r.text == "No path to datacenter"
    r = await c1.get("/v1/catalog/datacenters")
    assert r.json() == ["dc1", "dc2"]
