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


async def settle(cond: Any) -> None:
    """Wait (bounded) for ``cond()`` to hold."""
    for _ in range(300):
        if cond():
            return
        await asyncio.sleep(0.01)


async def test_client_connect_lookup_finds_the_proxies_of_a_followed_service(env: Env) -> None:
    """``<service>.connect`` reads the proxies whose destination is the service: following the
    service follows them, also one registered later."""
    await register(env.server, "n1", "10.0.0.1", "web")
    await env.server.apply(RegisterCommand(
        node={"Node": "n2", "Address": "10.0.0.2"},
        service={"ID": "web-sidecar-proxy", "Service": "web-sidecar-proxy", "Port": 21000, "Kind": "connect-proxy",
                 "Proxy": {"DestinationServiceName": "web"}}))
    r = await env.ask("web.connect." + D)
    assert r.rcode() == dns.rcode.NOERROR and records(r) == ["10.0.0.2"]
    await env.server.apply(RegisterCommand(
        node={"Node": "n3", "Address": "10.0.0.3"},
        service={"ID": "p2", "Service": "other-proxy", "Port": 21000, "Kind": "connect-proxy",
                 "Proxy": {"DestinationServiceName": "WEB"}}))
    await settle(lambda: "n3" in env.mirror.store.nodes)
    r = await env.ask("web.connect." + D)
    assert sorted(records(r)) == ["10.0.0.2", "10.0.0.3"]
    assert (await env.ask("db.connect." + D)).rcode() == dns.rcode.NXDOMAIN


async def test_client_ptr_lookup_follows_the_address(env: Env) -> None:
    """PTR on a client answers what a server answers: nodes with the address (also a tagged
    one), else services with it as their own address; and follows later changes."""
    await register(env.server, "n1", "10.0.0.1", "web")
    await env.server.apply(RegisterCommand(node={"Node": "n2", "Address": "10.0.0.2",
                                                 "TaggedAddresses": {"wan": "192.0.2.7"}}))
    await env.server.apply(RegisterCommand(node={"Node": "n3", "Address": "10.0.0.3"},
                                           service={"ID": "db1", "Service": "db", "Address": "10.0.0.50", "Port": 5432}))
    await env.server.apply(RegisterCommand(node={"Node": "n6", "Address": "2001:db8::6"}))
    r = await env.ask("1.0.0.10.in-addr.arpa.", "PTR")
    assert r.rcode() == dns.rcode.NOERROR and records(r) == ["n1.node.dc1.cluster.local."]
    assert records(await env.ask("7.2.0.192.in-addr.arpa.", "PTR")) == ["n2.node.dc1.cluster.local."]
    assert records(await env.ask("50.0.0.10.in-addr.arpa.", "PTR")) == ["db.service.dc1.cluster.local."]
    v6 = "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
    assert records(await env.ask(v6, "PTR")) == ["n6.node.dc1.cluster.local."]
    assert (await env.ask("99.0.0.10.in-addr.arpa.", "PTR")).rcode() == dns.rcode.NXDOMAIN
    assert "n3" not in env.mirror.store.services or set(env.mirror.store.services["n3"]) == {"db1"}
    # a node that takes a followed address later is seen
    await env.server.apply(RegisterCommand(node={"Node": "n9", "Address": "10.0.0.99"}))
    await settle(lambda: "n9" in env.mirror.store.nodes)
    assert records(await env.ask("99.0.0.10.in-addr.arpa.", "PTR")) == ["n9.node.dc1.cluster.local."]


async def test_client_alias_check_watches_a_node_its_cache_did_not_follow(env: Env) -> None:
    """An alias of a service on another node holds that node in the client's cache and
    follows its checks (Consul: a blocking query on a server for the node's checks)."""
    from muster.agent.agent import Agent
    from muster.agent.definitions import parse_check

    await env.server.apply(RegisterCommand(
        node={"Node": "n1", "Address": "10.0.0.1"}, service={"ID": "api", "Service": "api", "Port": 80},
        checks=[{"Node": "n1", "CheckID": "api-up", "Name": "api up", "ServiceID": "api", "Status": "passing"}]))
    client = env.dns.server
    agent = Agent(client, make_config(), Rng(5), env.clock)  # type: ignore[arg-type]
    agent.follower = env.mirror
    await agent.start()
    try:
        agent.add_check(parse_check({"Name": "api-alias", "AliasNode": "n1", "AliasService": "api"}))

        def status() -> tuple[str, str]:
            c = agent.local.checks()["api-alias"]
            return c["Status"], c["Output"]

        await settle(lambda: status()[0] == "passing")
        assert status() == ("passing", "All checks passing.")
        await env.server.apply(RegisterCommand(
            node={"Node": "n1", "Address": "10.0.0.1"},
            checks=[{"Node": "n1", "CheckID": "api-up", "Name": "api up", "ServiceID": "api", "Status": "critical", "Output": "down"}]))
        await settle(lambda: status()[0] == "critical")
        assert status() == ("critical", 'Aliased check "api up" failing: down')
        # many DNS names later the aliased node is still followed (pinned, not least recently asked)
        assert env.mirror.want([], [f"x{i}" for i in range(600)]) is False
        await env.mirror.wait_covered(5)
        assert "n1" in env.mirror.store.nodes
        agent.remove_check("api-alias")
        await settle(lambda: "n1" not in env.mirror.pins)
        assert "n1" not in env.mirror.pins
    finally:
        await agent.stop()
