"""ACLs on a stateless client agent (``acl/clientcache.py``, ``server/aclclient.py``): one real
server and one client agent in this process (real gossip and server RPC on 127.0.0.1), the HTTP
API through ASGI.  The client holds no replica, resolves tokens through the server, stops
honouring a token deleted on the server once ``token_ttl`` has passed, and keeps honouring a
known one with ``down_policy = "extend-cache"`` while the server is gone."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.process import AgentProcess, stateless_client
from muster.runtime import Rng

from .conftest import ROOT, _client

M = {"X-Consul-Token": ROOT}
TOKEN_TTL = 1.0
CLIENT_ACL_EXTRA = f'  token_ttl = "{TOKEN_TTL:g}s"\n  down_policy = "extend-cache"\n'
PERF = 'performance {\n  raft_multiplier = 1\n}\n'


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _acl(extra: str = "") -> str:
    return f'acl {{\n  enabled = true\n  default_policy = "deny"\n  tokens {{\n    initial_management = "{ROOT}"\n  }}\n{extra}}}\n'


CLIENT_ACL = _acl(CLIENT_ACL_EXTRA)


def _flags(name: str, data: Path, serf: int, extra: list[str]) -> list[str]:
    return [f"-node={name}", f"-data-dir={data}", "-bind=127.0.0.1", "-advertise=127.0.0.1",
            "-client=127.0.0.1", "-http-port=-1", "-dns-port=-1", "-serf-wan-port=-1", f"-serf-lan-port={serf}",
            "-retry-interval=1s", *extra]


async def until(cond: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Wait (bounded) for ``cond``: cluster formation and gossip take a few seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Pair:
    def __init__(self, server: AgentProcess, client: AgentProcess, s: httpx.AsyncClient, c: httpx.AsyncClient,
                 started: list[AgentProcess]) -> None:
        self.server, self.client, self.s, self.c = server, client, s, c
        self._started = started

    async def stop_server(self) -> None:
        self._started.remove(self.server)
        await self.server.stop()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    s_serf, s_rpc, c_serf = _port(), _port(), _port()
    scfg = parse_agent_flags(_flags("srv", tmp_path / "srv", s_serf, [
        "-server", "-bootstrap-expect=1", f"-server-port={s_rpc}", f"-hcl={_acl()}", f"-hcl={PERF}"]))
    ccfg = parse_agent_flags(_flags("cli", tmp_path / "cli", c_serf, [
        f"-retry-join=127.0.0.1:{s_serf}",
        "-hcl=" + CLIENT_ACL]))
    assert stateless_client(ccfg)
    server = AgentProcess(scfg, rng=Rng(11))
    client = AgentProcess(ccfg, rng=Rng(12))
    started: list[AgentProcess] = []
    try:
        await server.start()
        started.append(server)
        await client.start()
        started.append(client)
        async with _client(server) as s, _client(client) as c:
            async def ready() -> bool:
                if not server.server.is_leader() or not client.remote or not client.remote.servers.order():
                    return False
                return (await s.get("/v1/acl/token/self", headers=M)).status_code == 200
            await until(ready, "a leader with the initial management token, known to the client")
            yield Pair(server, client, s, c, started)
    finally:
        for p in reversed(started):
            await p.stop()


async def _token(s: httpx.AsyncClient, rules: str) -> dict[str, str]:
    r = await s.put("/v1/acl/policy", headers=M, json={"Name": "p" + str(abs(hash(rules)))[:8], "Rules": rules})
    assert r.status_code == 200, r.text
    r = await s.put("/v1/acl/token", headers=M, json={"Policies": [{"ID": r.json()["ID"]}]})
    assert r.status_code == 200, r.text
    return dict(r.json())


RULES = 'agent_prefix "" { policy = "read" }\nservice_prefix "web" { policy = "write" }\nkey_prefix "app/" { policy = "write" }'


async def test_client_with_acls_holds_no_replica_and_resolves_through_the_server(pair: Pair) -> None:
    s, c, client = pair.s, pair.c, pair.client
    tok = await _token(s, RULES)
    h = {"X-Consul-Token": tok["SecretID"]}
    # Resolution through the server: agent endpoints are answered by the client itself.
    assert (await c.get("/v1/agent/self", headers=h)).status_code == 200
    r = await c.get("/v1/agent/self")
    assert r.status_code == 403 and r.text.startswith("Permission denied"), r.text
    r = await c.get("/v1/agent/self", headers={"X-Consul-Token": "00000000-0000-4000-8000-00000000dead"})
    assert (r.status_code, r.text) == (403, "ACL not found")
    web = {"Name": "web", "Port": 80}
    assert (await c.put("/v1/agent/service/register", headers=h, json=web)).status_code == 200
    assert (await c.put("/v1/agent/service/register", headers=h, json={"Name": "db"})).status_code == 403
    # KV through the client is forwarded and authorized by the server.
    assert (await c.put("/v1/kv/app/x", headers=h, content=b"1")).status_code == 200
    assert (await c.put("/v1/kv/other", headers=h, content=b"1")).status_code == 403
    # No replica: no Raft state on the client's disk or in memory, no KV or ACL rows in its
    # store, and the leader replicates to nobody but itself.
    assert client.cluster_log is None and client.cluster is None
    assert not (Path(client.config.data_dir) / "raft").exists()
    tables = client.server.store.tables
    assert not tables.acl.tokens and not tables.acl.policies and not tables.acl.roles
    assert not client.server.store.kvs
    assert pair.server.server.store.tables.acl.tokens  # the server's own tables are filled
    cfg = (await s.get("/v1/operator/raft/configuration", headers=M)).json()
    assert [srv["Node"] for srv in cfg["Servers"]] == ["srv"]
    cache = client.acl.client_cache
    assert cache is not None and cache.sizes()[0] >= 2  # the token and anonymous
    # The client's own catalog entry reached the server (anti-entropy through client_apply).
    async def synced() -> bool:
        r = await s.get("/v1/catalog/service/web", headers=M)
        return r.status_code == 200 and any(x["Node"] == "cli" for x in r.json())
    await until(synced, "the client's service in the catalog")


async def test_a_deleted_token_is_refused_after_token_ttl_and_extend_cache_outlives_the_server(pair: Pair) -> None:
    s, c = pair.s, pair.c
    doomed = await _token(s, RULES)
    kept = await _token(s, 'agent_prefix "" { policy = "read" }')
    for t in (doomed, kept):
        assert (await c.get("/v1/agent/self", headers={"X-Consul-Token": t["SecretID"]})).status_code == 200
    r = await s.delete(f"/v1/acl/token/{doomed['AccessorID']}", headers=M)
    assert (r.status_code, r.text) == (200, "true")

    async def refused() -> bool:
        r = await c.get("/v1/agent/self", headers={"X-Consul-Token": doomed["SecretID"]})
        return (r.status_code, r.text) == (403, "ACL not found")
    await until(refused, "the deleted token refused by the client", timeout=TOKEN_TTL + 10)
    # The server goes away: the known token keeps working past its TTL (extend-cache), a
    # token the client never saw gets the default policy (deny), not "ACL not found".
    await pair.stop_server()
    kh = {"X-Consul-Token": kept["SecretID"]}
    for _ in range(3):
        await asyncio.sleep(TOKEN_TTL * 1.2)
        r = await c.get("/v1/agent/self", headers=kh)
        assert r.status_code == 200, r.text
        assert json.loads(r.text)["Config"]["NodeName"] == "cli"
    cache = pair.client.acl.client_cache
    assert cache is not None and cache.counters["extended"] >= 1
    r = await c.get("/v1/agent/self", headers={"X-Consul-Token": "11111111-0000-4000-8000-000000000000"})
    assert r.status_code == 403 and r.text.startswith("Permission denied")
