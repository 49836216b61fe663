"""DNS answers against the HTTP health API of the same agent, and cache invalidation.

An in-process ``-dev`` agent (every route, through ASGI) with its DNS listener on a real
127.0.0.1 socket: services are registered through ``/v1/catalog/register`` with passing, warning
and critical checks, then every service's SRV and A answers are compared with
``/v1/health/service/<name>``.  Consul's DNS leaves out an instance with any critical check
(warning ones stay in unless ``only_passing``), so the HTTP side is filtered the same way.  The
answer cache (``muster.dns.server``) must never serve what the health API no longer says.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.message
import httpx
import pytest

from muster.config import parse_agent_flags
from muster.dns.server import DNSServer
from muster.process import AgentProcess
from muster.runtime import Rng

D = "consul."


class Env:
    def __init__(self, proc: AgentProcess, http: httpx.AsyncClient, dns_server: DNSServer) -> None:
        self.proc = proc
        self.http = http
        self.dns = dns_server
        self.addr, self.port = dns_server.addresses[0]

    async def ask(self, name: str, rdtype: str) -> dns.message.Message:
        # TCP: no UDP answer limit, so every healthy instance is in the answer.
        return await dns.asyncquery.tcp(dns.message.make_query(name, rdtype), self.addr, timeout=2.0, port=self.port)

    async def register(self, node: str, addr: str, service: str, port: int, status: str) -> None:
        body = {
            "Node": node, "Address": addr, "Datacenter": "dc1",
            "Service": {"ID": f"{service}-{node}", "Service": service, "Port": port},
            "Check": {"CheckID": f"chk-{service}-{node}", "Name": "c", "Status": status,
                      "ServiceID": f"{service}-{node}"},
        }
        r = await self.http.put("/v1/catalog/register", json=body)
        assert r.status_code == 200 and r.json() is True, r.text

    async def health(self, service: str) -> set[tuple[str, int]]:
        """(address, port) of every instance the DNS should list: no critical check."""
        r = await self.http.get(f"/v1/health/service/{service}")
        assert r.status_code == 200
        out = set()
        for e in r.json():
            if all(c["Status"] != "critical" for c in e["Checks"]):
                out.add((e["Service"]["Address"] or e["Node"]["Address"], e["Service"]["Port"]))
        return out

    async def dns_srv(self, service: str) -> set[tuple[str, int]]:
        """(address of the target, port) of every SRV answer, the address read from the
        additional section (the A record of the target)."""
        r = await self.ask(f"{service}.service.{D}", "SRV")
        addrs = {str(rr.name): rd.to_text() for rr in r.additional if rr.rdtype == 1 for rd in rr}
        return {(addrs[str(rd.target)], rd.port) for rr in r.answer for rd in rr}

    async def dns_a(self, service: str) -> set[str]:
        r = await self.ask(f"{service}.service.{D}", "A")
        return {rd.to_text() for rr in r.answer for rd in rr}


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    cfg = parse_agent_flags(["-dev", "-node=test-node", "-client=127.0.0.1"])
    proc = AgentProcess(cfg, rng=Rng(99))
    await proc.server.start()
    await proc.agent.start()
    d = DNSServer(proc.server, cfg, rng=Rng(5))
    await d.start(["127.0.0.1"], 0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://muster.test") as c:
            yield Env(proc, c, d)
    finally:
        await d.stop()
        await proc.agent.stop()
        await proc.server.stop()


async def test_a_sample_of_dns_answers_matches_the_health_api(env: Env) -> None:
    rng = random.Random(13)
    services = [f"svc{s}" for s in range(20)]
    for s, svc in enumerate(services):
        for i in range(3):
            status = rng.choice(["passing", "passing", "warning", "critical"])
            await env.register(f"node-{s}-{i}", f"10.1.{s}.{i + 1}", svc, 8000 + i, status)
    sample = rng.sample(services, 10)
    for _ in range(2):  # the second pass is answered from the DNS cache
        for svc in sample:
            want = await env.health(svc)
            assert await env.dns_srv(svc) == want, svc
            assert await env.dns_a(svc) == {a for a, _p in want}, svc
    assert env.dns.hits > 0


async def test_a_check_turning_critical_leaves_dns_at_once(env: Env) -> None:
    for i in range(3):
        await env.register(f"web-{i}", f"10.2.0.{i + 1}", "web", 80, "passing")
    assert await env.dns_a("web") == {"10.2.0.1", "10.2.0.2", "10.2.0.3"}
    assert await env.dns_a("web") == {"10.2.0.1", "10.2.0.2", "10.2.0.3"}  # now cached
    assert env.dns.hits >= 1
    await env.register("web-1", "10.2.0.2", "web", 80, "critical")
    # No wait: the very next query must already leave the instance out.
    assert await env.dns_a("web") == {"10.2.0.1", "10.2.0.3"}
    assert await env.dns_srv("web") == await env.health("web") == {("10.2.0.1", 80), ("10.2.0.3", 80)}
    await env.register("web-1", "10.2.0.2", "web", 80, "passing")
    assert await env.dns_a("web") == {"10.2.0.1", "10.2.0.2", "10.2.0.3"}
