"""DNS on a stateless client agent (``server/remote.py``): answers come from its catalog cache,
a new name is answered once the cache follows it, and beyond ``dns_config.max_stale`` without
a server's confirmation the answer is SERVFAIL.  In process: the client's link to the server
is a fake RPC that calls the server's endpoints directly; the cache's clock is a manual one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from dnshelpers import make_config, records

from muster.dns.server import DNSServer
from muster.runtime import Rng
from muster.server.remote import CatalogMirror, ClientEndpoints, RemoteLog, RemoteServers, ServerSet
from muster.server.server import Server, ServerIdentity
from muster.structs import RegisterCommand

D = "cluster.local."


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


class DirectRPC:
    def __init__(self, ep: ClientEndpoints) -> None:
        self.handlers = ep.handlers()

    async def call(self, nid: str, method: str, payload: Any, timeout: float = 10.0) -> Any:
        return await self.handlers[method](payload)

    def drop(self, nid: str) -> None:
        pass

    async def close(self) -> None:
        pass


class Env:
    def __init__(self, server: Server, mirror: CatalogMirror, clock: ManualClock, d: DNSServer) -> None:
        self.server, self.mirror, self.clock, self.dns = server, mirror, clock, d

    async def ask(self, name: str, rdtype: str = "A") -> dns.message.Message:
        addr, port = self.dns.addresses[0]
        return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), addr, timeout=8, port=port)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    server = Server(ServerIdentity("srv1", "11111111-2222-3333-4444-555555555555", "dc1", "127.0.0.1"), rng=Rng(7))
    await server.start()
    ep = ClientEndpoints("srv-id", lambda: server.store, server.apply, lambda: "srv-id", lambda: 0.0, random.Random(1))
    remote = RemoteServers("client-id", ServerSet(lambda: [("srv-id", "127.0.0.1:8300")], random.Random(2)))
    remote.rpc = DirectRPC(ep)  # type: ignore[assignment]
    rlog = RemoteLog(remote, hold=1.0)
    client = Server(ServerIdentity("client", "client-id", "dc1", "127.0.0.9"), log_impl=rlog, rng=Rng(9))
    clock = ManualClock()
    mirror = rlog.mirror = CatalogMirror(client.store, remote, clock, wait=60, node="client")  # type: ignore[arg-type]
    cfg = make_config("-hcl", 'dns_config {\n  max_stale = "30s"\n}\n')
    d = DNSServer(client, cfg, rng=Rng(8))
    d.staleness = mirror.staleness
    d.cache = mirror
    await d.start(["127.0.0.1"], 0)
    mirror.start()
    try:
        yield Env(server, mirror, clock, d)
    finally:
        await mirror.stop()
        await d.stop()
        await server.stop()


async def register(srv: Server, node: str, address: str, service: str) -> None:
    await srv.apply(RegisterCommand(node={"Node": node, "Address": address},
                                    service={"ID": service, "Service": service, "Port": 80}))


async def test_client_dns_answers_from_its_cache_within_max_stale(env: Env) -> None:
    await register(env.server, "n1", "10.0.0.1", "web")
    await register(env.server, "n2", "10.0.0.2", "db")
    # a first question for a name: answered once the cache follows it
    r = await env.ask("web.service." + D)
    assert r.rcode() == dns.rcode.NOERROR and records(r) == ["10.0.0.1"]
    assert "n2" not in env.mirror.store.nodes  # only what was asked about is followed
    r = await env.ask("nothere.service." + D)
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = await env.ask("n2.node." + D)
    assert records(r) == ["10.0.0.2"]
    # the servers (consul service) are followed from the start
    r = await env.ask("consul.service." + D, "SRV")
    assert records(r) == ["1 1 8300 srv1.node.dc1.cluster.local."]
    # a change to a followed service reaches the cache
    await register(env.server, "n3", "10.0.0.3", "web")
    for _ in range(200):
        if "n3" in env.mirror.store.nodes:
            break
        await asyncio.sleep(0.01)
    r = await env.ask("web.service." + D)
    assert sorted(records(r)) == ["10.0.0.1", "10.0.0.3"]

    # no confirmation from a server for longer than max_stale (30 s): SERVFAIL, not old data
    await env.mirror.stop()
    env.clock.now += 29
    assert (await env.ask("web.service." + D)).rcode() == dns.rcode.NOERROR
    env.clock.now += 2
    assert (await env.ask("web.service." + D)).rcode() == dns.rcode.SERVFAIL
