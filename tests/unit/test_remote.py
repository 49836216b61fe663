"""The stateless client's link to the servers (``server/remote.py``), without sockets: the
server set's preference, the retry rule, the catalog mirror's blocking query and staleness, and
writes applied through a server."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import pytest

from muster.errors import MusterError
from muster.server.remote import (
    MAX_NAMES,
    NO_SERVERS,
    CatalogMirror,
    ClientEndpoints,
    RemoteLog,
    RemoteServers,
    ServerSet,
)
from muster.server.rpc import ConnectionLost
from muster.server.server import Server, ServerIdentity
from muster.state.store import StateStore
from muster.structs import KVSCommand, RegisterCommand

SERVERS = [("a", "127.0.0.1:8300"), ("b", "127.0.0.2:8300"), ("c", "127.0.0.3:8300")]


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


class FakeRPC:
    """Stands in for RPCNode: ``behaviour[node_id]`` is an exception to raise or a handler."""

    def __init__(self, behaviour: dict[str, Any]) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, str]] = []

    async def call(self, nid: str, method: str, payload: Any, timeout: float = 10.0) -> Any:
        self.calls.append((nid, method))
        b = self.behaviour[nid]
        if isinstance(b, Exception):
            raise b
        return await b(method, payload)

    def drop(self, nid: str) -> None:
        pass

    async def close(self) -> None:
        pass


def dev_server() -> Server:
    return Server(ServerIdentity(node_name="s", node_id="srv-id", datacenter="dc1", advertise_addr="127.0.0.1"))


def endpoints(server: Server) -> ClientEndpoints:
    return ClientEndpoints("srv-id", lambda: server.store, server.apply, lambda: "srv-id", lambda: 0.0,
                           random.Random(1))


def remote_to(ep: ClientEndpoints, ids: list[str]) -> RemoteServers:
    handlers = ep.handlers()

    async def serve(method: str, payload: Any) -> Any:
        return await handlers[method](payload)

    rs = RemoteServers("client-id", ServerSet(lambda: [s for s in SERVERS if s[0] in ids], random.Random(2)))
    rs.rpc = FakeRPC({nid: serve for nid in ids})  # type: ignore[assignment]
    return rs


def register(server: Server, node: str) -> Any:
    return server.apply(RegisterCommand(node={"Node": node, "Address": "10.0.0.1"}))


def test_server_set_keeps_its_preference_until_a_failure() -> None:
    s = ServerSet(lambda: list(SERVERS), random.Random(3))
    first = s.order()[0][0]
    assert all(s.order()[0][0] == first for _ in range(10))
    assert sorted(nid for nid, _ in s.order()) == ["a", "b", "c"]
    s.failed(first)
    assert s.preferred != first and s.order()[0][0] == s.preferred
    other = s.preferred
    assert other is not None
    s.avoid(other)
    assert s.preferred != other


async def test_unsent_requests_go_to_the_next_server_sent_writes_do_not() -> None:
    async def ok(method: str, payload: Any) -> Any:
        return "answer"

    rs = RemoteServers("client-id", ServerSet(lambda: list(SERVERS), random.Random(4)))
    first = rs.servers.order()[0][0]
    rest = [nid for nid, _ in SERVERS if nid != first]
    rs.rpc = FakeRPC({first: ConnectionLost("refused", sent=False), rest[0]: ok, rest[1]: ok})  # type: ignore[assignment]
    assert await rs.call("client_apply", b"", 1.0) == "answer"

    first = rs.servers.order()[0][0]
    fake = FakeRPC({nid: ok for nid, _ in SERVERS})
    fake.behaviour[first] = ConnectionLost("reset", sent=True)
    rs.rpc = fake  # type: ignore[assignment]
    with pytest.raises(MusterError, match="reset"):
        await rs.call("client_apply", b"", 1.0)
    assert [nid for nid, _ in fake.calls] == [first]  # a write that may have arrived is not sent again

    first = rs.servers.order()[0][0]
    fake = FakeRPC({nid: ok for nid, _ in SERVERS})
    fake.behaviour[first] = ConnectionLost("reset", sent=True)
    rs.rpc = fake  # type: ignore[assignment]
    assert await rs.call("http", {}, 1.0, idempotent=True) == "answer"  # a read is
    assert len(fake.calls) == 2

    empty = RemoteServers("client-id", ServerSet(lambda: [], random.Random(5)))
    with pytest.raises(MusterError, match=NO_SERVERS):
        await empty.call("http", {}, 1.0)


async def test_writes_apply_through_a_server_and_refusals_come_back() -> None:
    server = dev_server()
    rlog = RemoteLog(remote_to(endpoints(server), ["a"]), hold=1.0)
    client = Server(ServerIdentity(node_name="c", node_id="client-id", datacenter="dc1", advertise_addr="127.0.0.9"),
                    log_impl=rlog)
    assert await client.apply(KVSCommand(op="set", key="k", value=b"v")) is True
    assert server.store.kvs["k"].value == b"v"
    assert "k" not in client.store.kvs  # nothing is replicated to the client
    with pytest.raises(MusterError, match="session"):
        await client.apply(KVSCommand(op="lock", key="k", value=b"v", session="00000000-0000-0000-0000-000000000001"))
    assert not client.is_leader()
    with pytest.raises(MusterError):
        await client.check_read("default")


async def test_mirror_follows_only_what_the_client_asks_about() -> None:
    server = dev_server()
    ep = endpoints(server)
    await server.apply(RegisterCommand(node={"Node": "me", "Address": "10.0.0.9"}))
    await server.apply(RegisterCommand(node={"Node": "n1", "Address": "10.0.0.1"},
                                       service={"ID": "web1", "Service": "Web", "Port": 80},
                                       checks=[{"Node": "n1", "CheckID": "web-ok", "Name": "web", "ServiceID": "web1",
                                                "Status": "passing"}]))
    await server.apply(RegisterCommand(node={"Node": "n2", "Address": "10.0.0.2"},
                                       service={"ID": "db1", "Service": "db", "Port": 5432}))
    clock = ManualClock()
    mirror = CatalogMirror(StateStore(), remote_to(ep, ["a", "b"]), clock, wait=60, node="me")  # type: ignore[arg-type]
    assert mirror.staleness() == float("inf")
    await mirror.refresh(0.01)
    assert set(mirror.store.nodes) == {"me"} and mirror.staleness() == 0.0  # its own node, always
    clock.now += 7
    assert mirror.staleness() == 7.0

    assert not mirror.want(["web"], [])  # a new name: not covered yet, the query restarts
    assert not mirror.want(["web"], [])
    await mirror.refresh(0.01)
    assert mirror.want(["web"], [])  # case-insensitive: "Web" in the catalog
    assert set(mirror.store.nodes) == {"me", "n1"}
    assert set(mirror.store.checks["n1"]) == {"web-ok"} and mirror.store.kvs == {}
    assert "db1" not in mirror.store.services.get("n2", {})

    # a change to a service nobody asked about never wakes the query; one to "web" does
    waiting = asyncio.create_task(mirror.refresh(30))
    await asyncio.sleep(0.01)
    await server.apply(RegisterCommand(node={"Node": "n2", "Address": "10.0.0.2"},
                                       service={"ID": "db2", "Service": "db", "Port": 5433}))
    await server.apply(KVSCommand(op="set", key="x", value=b"1"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await server.apply(RegisterCommand(node={"Node": "n3", "Address": "10.0.0.3"},
                                       service={"ID": "web2", "Service": "web", "Port": 80}))
    await asyncio.wait_for(waiting, 5)
    assert set(mirror.store.nodes) == {"me", "n1", "n3"}
    assert mirror.updates == 3

    # nothing changed: the answer carries no view but confirms the cache
    clock.now += 5
    await mirror.refresh(0.01)
    assert mirror.updates == 3 and mirror.staleness() == 0.0


async def test_a_newer_mirror_query_ends_the_older_one() -> None:
    server = dev_server()
    ep = endpoints(server)
    await server.apply(RegisterCommand(node={"Node": "me", "Address": "10.0.0.9"}))
    first = await ep.rpc_catalog_mirror({"client": "c1", "nodes": ["me"], "wait": 0})
    old = asyncio.create_task(ep.rpc_catalog_mirror({"client": "c1", "nodes": ["me"], "wait": 60,
                                                     "digest": first["digest"]}))
    await asyncio.sleep(0.01)
    assert not old.done()
    newer = asyncio.create_task(ep.rpc_catalog_mirror({"client": "c1", "nodes": ["me"], "wait": 60,
                                                       "digest": first["digest"]}))
    res = await asyncio.wait_for(old, 5)
    assert res["blob"] is None and res["digest"] == first["digest"]
    newer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await newer
    assert ep._waiting == {}


async def test_pinned_nodes_stay_out_of_the_asked_order_and_go_when_released() -> None:
    server = dev_server()
    ep = endpoints(server)
    await server.apply(RegisterCommand(node={"Node": "me", "Address": "10.0.0.9"}))
    await server.apply(RegisterCommand(node={"Node": "Far", "Address": "10.0.0.5"},
                                       service={"ID": "api", "Service": "api", "Port": 80}))
    mirror = CatalogMirror(StateStore(), remote_to(ep, ["a"]), ManualClock(), wait=60, node="me")  # type: ignore[arg-type]
    release = mirror.pin("far")
    again = mirror.pin("FAR")
    assert not mirror.covers_pin("far")
    await mirror.refresh(0.01)
    assert mirror.covers_pin("far") and set(mirror.store.services["Far"]) == {"api"}
    mirror.want([], [f"n{i}" for i in range(MAX_NAMES + 5)])  # asked names push each other out, not the pin
    await mirror.refresh(0.01)
    assert "Far" in mirror.store.nodes and len(mirror.nodes) == MAX_NAMES
    release()
    release()  # a second call of the same release is a no-op
    assert "far" in mirror.pins
    again()
    assert mirror.pins == {}
    await mirror.refresh(0.01)
    assert "Far" not in mirror.store.nodes
    # beyond MAX_NAMES pins, a node is followed as an asked name
    for i in range(MAX_NAMES):
        mirror.pin(f"p{i}")
    mirror.pin("far")()
    assert "far" not in mirror.pins and "far" in mirror.nodes


async def test_mirror_view_indexes_are_not_rebuilt_by_check_updates() -> None:
    server = dev_server()
    ep = endpoints(server)
    await server.apply(RegisterCommand(node={"Node": "n1", "Address": "10.0.0.1"},
                                       service={"ID": "p", "Service": "p", "Port": 1, "Kind": "connect-proxy",
                                                "Proxy": {"DestinationServiceName": "web"}}))
    rows = ep.view(server.store, ["web"], [], ["10.0.0.1"])
    assert set(rows["services"]["n1"]) == {"p"} and set(rows["nodes"]) == {"n1"}
    names, addrs = ep._names, ep._addrs
    await server.apply(RegisterCommand(node={"Node": "n1", "Address": "10.0.0.1"}, skip_node_update=True,
                                       checks=[{"Node": "n1", "CheckID": "c", "Name": "c", "Status": "critical"}]))
    rows = ep.view(server.store, ["web"], [], ["10.0.0.1"])
    assert ep._names is names and ep._addrs is addrs and set(rows["checks"]["n1"]) == {"c"}


async def test_mirror_query_wakes_only_for_what_the_client_follows() -> None:
    server = dev_server()
    ep = endpoints(server)
    await server.apply(RegisterCommand(node={"Node": "me", "Address": "10.0.0.9"}))
    await server.apply(RegisterCommand(node={"Node": "srv", "Address": "10.0.0.10"},
                                       service={"ID": "consul", "Service": "consul", "Port": 8300}))
    ask = {"client": "c1", "nodes": ["me", "later"], "services": ["consul", "web"], "wait": 60}

    async def held() -> tuple[asyncio.Task[dict[str, Any]], str]:
        first = await ep.rpc_catalog_mirror({**ask, "wait": 0})
        task = asyncio.create_task(ep.rpc_catalog_mirror({**ask, "digest": first["digest"]}))
        await asyncio.sleep(0.01)
        return task, first["digest"]

    # writes about nodes and services the client does not follow: no wake, no answer
    task, digest = await held()
    for i in range(20):
        await server.apply(RegisterCommand(node={"Node": f"other{i}", "Address": "10.0.1.1"},
                                           service={"ID": "db", "Service": "db", "Port": 1},
                                           checks=[{"Node": f"other{i}", "CheckID": "serfHealth", "Name": "s",
                                                    "Status": "critical"}]))
    await asyncio.sleep(0.02)
    assert not task.done() and ep.wakes == 0

    # each followed thing wakes the query, which answers a new view
    related = [
        RegisterCommand(node={"Node": "me", "Address": "10.0.0.9"}, skip_node_update=True,  # own node's check
                        checks=[{"Node": "me", "CheckID": "serfHealth", "Name": "s", "Status": "critical"}]),
        RegisterCommand(node={"Node": "srv", "Address": "10.0.0.11"}),  # a server's node row
        RegisterCommand(node={"Node": "LATER", "Address": "10.0.0.12"}),  # a followed node appears (any case)
        RegisterCommand(node={"Node": "n5", "Address": "10.0.0.13"},  # a proxy for a followed service
                        service={"ID": "p", "Service": "web-proxy", "Port": 2, "Kind": "connect-proxy",
                                 "Proxy": {"DestinationServiceName": "web"}}),
        RegisterCommand(node={"Node": "n5", "Address": "10.0.0.13"}, skip_node_update=True,  # that proxy's check
                        checks=[{"Node": "n5", "CheckID": "pc", "Name": "pc", "ServiceID": "p",
                                 "Status": "passing"}]),
    ]
    for n, cmd in enumerate(related, 1):
        await server.apply(cmd)
        res = await asyncio.wait_for(task, 5)
        assert res["blob"] is not None and res["digest"] != digest and ep.wakes == n
        task, digest = await held()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
