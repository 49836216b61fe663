"""A secondary datacenter's ACLs: replication from the primary and ``down_policy``.

Two in-process agents, dc1 (primary) and dc2 (``primary_datacenter = "dc1"``).  dc2 reaches dc1
through the same handler that serves forwarded requests arriving over server RPC
(``AgentProcess._answer_forwarded_http``); "the primary is down" makes that link raise what
the federation raises when no server of dc1 answers.  docs/compat/acl.md#datacenters-and-down_policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.server.wan import NoReachableServer

from .conftest import ROOT, _client, _hcl, make_token

M = {"X-Consul-Token": ROOT}


class Link:
    """dc2's way to dc1, which the test can cut."""

    def __init__(self, primary: AgentProcess) -> None:
        self.primary = primary
        self.down = False
        self.calls = 0

    async def __call__(self, method: str, path: str, query: str, token: str, timeout: float) -> Any:
        self.calls += 1
        if self.down:
            raise NoReachableServer()
        payload = {"m": method, "p": path, "q": query, "b": b"", "h": {"x-consul-token": token} if token else {}, "x": "dc"}
        status, ctype, headers, body = await self.primary._answer_forwarded_http(payload)
        return status, ctype, [tuple(h) for h in headers], body


async def _agent(dc: str, hcl: str, seed: int, link: Link | None = None) -> AgentProcess:
    cfg = parse_agent_flags(["-dev", f"-node=node-{dc}-{seed}", "-client=127.0.0.1", f"-datacenter={dc}", f"-hcl={hcl}"])
    proc = AgentProcess(cfg, rng=Rng(seed))
    if link is not None:
        proc.acl.attach_remote(link)
        if proc.acl.remote_tokens is not None:
            acl = proc.acl
            proc.app.acl_prepare = lambda req: acl.prepare(req.token())
    await proc.server.start()
    await proc.agent.start()
    return proc


Factory = Callable[..., Awaitable[tuple[httpx.AsyncClient, AgentProcess, Link]]]


@pytest.fixture
async def dcs() -> AsyncIterator[tuple[httpx.AsyncClient, Factory]]:
    """dc1's client, and a factory for dc2 agents (``down_policy``, extra ACL settings)."""
    procs: list[AgentProcess] = []
    clients: list[httpx.AsyncClient] = []
    dc1 = await _agent("dc1", _hcl("deny"), 1)
    procs.append(dc1)
    c1 = _client(dc1)
    clients.append(c1)

    async def secondary(down_policy: str = "extend-cache", default: str = "deny", extra: str = "") -> tuple[httpx.AsyncClient, AgentProcess, Link]:
        link = Link(dc1)
        acl_extra = f'  down_policy = "{down_policy}"\n  tokens {{\n    replication = "{ROOT}"\n  }}\n{extra}'
        proc = await _agent("dc2", 'primary_datacenter = "dc1"\n' + _hcl(default, acl_extra), 2 + len(procs), link)
        procs.append(proc)
        c = _client(proc)
        clients.append(c)
        return c, proc, link

    try:
        yield c1, secondary
    finally:
        for c in clients:
            await c.aclose()
        for p in reversed(procs):
            await p.agent.stop()
            await p.server.stop()


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(200):  # bounded: replication is event-driven, this only waits for the loop
        if cond():
            return
        await asyncio.sleep(0.05)
    assert cond()


def _advance(proc: AgentProcess, seconds: float) -> None:
    real = proc.acl.resolver.now
    proc.acl.resolver.now = lambda: real() + seconds


async def test_policies_and_roles_replicate(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    c2, dc2, _ = await secondary()
    r = await c1.put("/v1/acl/policy", json={"Name": "app", "Rules": 'key_prefix "app/" { policy = "read" }'}, headers=M)
    pid = r.json()["ID"]
    await c1.put("/v1/acl/role", json={"Name": "ops", "Policies": [{"ID": pid}]}, headers=M)
    tables = lambda: dc2.acl.tables  # noqa: E731
    await _until(lambda: tables().policy_by_name("app") is not None and tables().role_by_name("ops") is not None)
    assert tables().policies[pid].Rules == 'key_prefix "app/" { policy = "read" }'
    r = await c2.get("/v1/acl/replication")
    st = r.json()
    assert st["Enabled"] is True and st["Running"] is True and st["SourceDatacenter"] == "dc1"
    assert st["ReplicationType"] == "policies" and st["ReplicatedIndex"] > 0 and st["LastSuccess"] != "0001-01-01T00:00:00Z"
    # An edit and a delete on the primary follow.
    await c1.put(f"/v1/acl/policy/{pid}", json={"Name": "app", "Rules": 'key_prefix "app/" { policy = "write" }'}, headers=M)
    await _until(lambda: 'write' in tables().policies[pid].Rules)
    role_id = tables().role_by_name("ops").ID  # type: ignore[union-attr]
    await c1.delete(f"/v1/acl/role/{role_id}", headers=M)
    await _until(lambda: tables().role_by_name("ops") is None)
    # Global tokens are not replicated without enable_token_replication.
    assert not any(t.SecretID == ROOT for t in tables().tokens.values())
    # The primary's status: replication is not enabled there.
    assert (await c1.get("/v1/acl/replication")).json()["Enabled"] is False


async def test_tokens_resolve_through_the_primary(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    c2, dc2, link = await secondary()
    tok = await make_token(c1, 'key_prefix "app/" { policy = "write" }', name="app")
    await _until(lambda: dc2.acl.tables.policy_by_name("app") is not None)
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await c2.put("/v1/kv/app/x", content=b"1", headers=h)).status_code == 200
    r = await c2.put("/v1/kv/other", content=b"1", headers=h)
    assert r.status_code == 403 and r.text.startswith("Permission denied: token with AccessorID")
    r = await c2.get("/v1/kv/app/x", headers={"X-Consul-Token": "unknown-secret"})
    assert (r.status_code, r.text) == (403, "ACL not found")
    assert (await c2.get("/v1/acl/token/self", headers=h)).json()["AccessorID"] == tok["AccessorID"]
    # Deleted on the primary: refused here once the cached copy is older than token_ttl (30 s).
    await c1.delete(f"/v1/acl/token/{tok['AccessorID']}", headers=M)
    _advance(dc2, 31)
    r = await c2.put("/v1/kv/app/x", content=b"1", headers=h)
    assert (r.status_code, r.text) == (403, "ACL not found")


async def test_down_policy_extend_cache(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    c2, dc2, link = await secondary("extend-cache")
    seen = await make_token(c1, 'key_prefix "app/" { policy = "write" }', name="app")
    never = (await c1.put("/v1/acl/token", json={"Policies": [{"Name": "app"}]}, headers=M)).json()
    await _until(lambda: dc2.acl.tables.policy_by_name("app") is not None)
    h = {"X-Consul-Token": seen["SecretID"]}
    assert (await c2.put("/v1/kv/app/x", content=b"1", headers=h)).status_code == 200
    link.down = True
    _advance(dc2, 3600)  # far past token_ttl: the cached copy is extended
    assert (await c2.put("/v1/kv/app/x", content=b"2", headers=h)).status_code == 200
    # A token never seen falls back to default_policy (deny here), not to "ACL not found".
    r = await c2.put("/v1/kv/app/x", content=b"3", headers={"X-Consul-Token": never["SecretID"]})
    assert r.status_code == 403 and r.text.startswith("Permission denied")
    link.down = False
    assert (await c2.put("/v1/kv/app/x", content=b"4", headers={"X-Consul-Token": never["SecretID"]})).status_code == 200


async def test_down_policy_allow_and_deny(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    tok = await make_token(c1, 'key_prefix "app/" { policy = "write" }', name="app")
    h = {"X-Consul-Token": tok["SecretID"]}
    c_deny, dc_deny, link_deny = await secondary("deny")
    c_allow, dc_allow, link_allow = await secondary("allow")
    for c, proc in ((c_deny, dc_deny), (c_allow, dc_allow)):
        await _until(lambda proc=proc: proc.acl.tables.policy_by_name("app") is not None)  # type: ignore[misc]
        assert (await c.put("/v1/kv/app/x", content=b"1", headers=h)).status_code == 200
    link_deny.down = link_allow.down = True
    _advance(dc_deny, 31)
    _advance(dc_allow, 31)
    # deny: even the cached token is refused; allow: everything but ACL management passes.
    assert (await c_deny.put("/v1/kv/app/x", content=b"2", headers=h)).status_code == 403
    assert (await c_allow.put("/v1/kv/other", content=b"2", headers=h)).status_code == 200
    assert (await c_allow.get("/v1/acl/policies", headers=h)).status_code == 403


async def test_down_policy_async_cache_serves_stale_then_refreshes(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    c2, dc2, link = await secondary("async-cache")
    tok = await make_token(c1, 'key_prefix "app/" { policy = "write" }', name="app")
    await _until(lambda: dc2.acl.tables.policy_by_name("app") is not None)
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await c2.put("/v1/kv/app/x", content=b"1", headers=h)).status_code == 200
    await c1.delete(f"/v1/acl/token/{tok['AccessorID']}", headers=M)
    _advance(dc2, 31)
    calls = link.calls
    # The stale entry answers at once; the refresh runs in the background...
    assert (await c2.put("/v1/kv/app/x", content=b"2", headers=h)).status_code == 200
    await _until(lambda: link.calls > calls and dc2.acl.remote_tokens is not None and dc2.acl.remote_tokens.token(tok["SecretID"]) is None)
    # ...and its result (the token is gone) holds from then on.
    r = await c2.put("/v1/kv/app/x", content=b"3", headers=h)
    assert (r.status_code, r.text) == (403, "ACL not found")


async def test_token_replication(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    tok = await make_token(c1, 'key_prefix "app/" { policy = "write" }', name="app")
    local = (await c1.put("/v1/acl/token", json={"Local": True, "Policies": [{"Name": "app"}]}, headers=M)).json()
    c2, dc2, link = await secondary(extra="  enable_token_replication = true\n")
    await _until(lambda: dc2.acl.tables.acl_token_by_secret(tok["SecretID"]) is not None)
    assert dc2.acl.tables.acl_token_by_secret(ROOT) is not None
    assert dc2.acl.tables.acl_token_by_secret(local["SecretID"]) is None  # local tokens stay home
    assert (await c2.get("/v1/acl/replication")).json()["ReplicationType"] == "tokens"
    link.down = True  # replicated tokens need no primary
    assert (await c2.put("/v1/kv/app/x", content=b"1", headers={"X-Consul-Token": tok["SecretID"]})).status_code == 200
    link.down = False
    await c1.delete(f"/v1/acl/token/{tok['AccessorID']}", headers=M)
    await _until(lambda: dc2.acl.tables.acl_token_by_secret(tok["SecretID"]) is None)


class FakeFederation:
    """dc2's federation as far as forwarding goes: every call lands on dc1's RPC handler."""

    in_wan = True

    def __init__(self, primary: AgentProcess) -> None:
        self.primary = primary
        self.datacenter = "dc2"

    async def call(self, dc: str, payload: dict[str, Any], timeout: float) -> Any:
        assert dc == "dc1"
        status, ctype, headers, body = await self.primary._answer_forwarded_http(payload)
        return status, ctype, [tuple(h) for h in headers], body


async def test_global_writes_in_a_secondary_go_to_the_primary(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    c1, secondary = dcs
    c2, dc2, link = await secondary()
    object.__setattr__(dc2.services, "federation", FakeFederation(link.primary))
    r = await c2.put("/v1/acl/policy", json={"Name": "from-dc2", "Rules": 'key_prefix "" { policy = "read" }'}, headers=M)
    assert r.status_code == 200, r.text
    pid = r.json()["ID"]
    assert (await c1.get(f"/v1/acl/policy/{pid}", headers=M)).json()["Name"] == "from-dc2"
    await _until(lambda: pid in dc2.acl.tables.policies)  # and back through replication
    r = await c2.put("/v1/acl/token", json={"Policies": [{"ID": pid}]}, headers=M)
    glob = r.json()
    assert (await c1.get(f"/v1/acl/token/{glob['AccessorID']}", headers=M)).status_code == 200
    r = await c2.put("/v1/acl/token", json={"Local": True, "Policies": [{"ID": pid}]}, headers=M)
    loc = r.json()
    assert loc["Local"] is True and loc["AccessorID"] in dc2.acl.tables.tokens
    assert (await c1.get(f"/v1/acl/token/{loc['AccessorID']}", headers=M)).status_code == 403  # not in dc1
    assert (await c2.delete(f"/v1/acl/token/{loc['AccessorID']}", headers=M)).json() is True
    assert loc["AccessorID"] not in dc2.acl.tables.tokens
    # Auth methods are per datacenter: written here.
    from .test_login import RSA_KEY, pem

    r = await c2.put("/v1/acl/auth-method", json={"Name": "m2", "Type": "jwt", "Config": {"JWTValidationPubKeys": [pem(RSA_KEY)]}}, headers=M)
    assert r.status_code == 200 and "m2" in dc2.acl.tables.auth_methods and "m2" not in link.primary.acl.tables.auth_methods


async def test_bootstrap_in_a_secondary_is_refused(dcs: tuple[httpx.AsyncClient, Factory]) -> None:
    """Consul's ``ACL.BootstrapTokens`` is served in the datacenter asked (the HTTP handler names
    the agent's own) and answers ``ACL support disabled`` outside the primary: nothing is
    forwarded, and the secondary writes no management token of its own."""
    c1, secondary = dcs
    c2, dc2, link = await secondary()
    object.__setattr__(dc2.services, "federation", FakeFederation(link.primary))
    before = set(dc2.acl.tables.tokens)
    calls = link.calls
    r = await c2.put("/v1/acl/bootstrap")
    assert (r.status_code, r.text) == (500, "ACL support disabled")
    r = await c2.put("/v1/acl/bootstrap", json={"BootstrapSecret": "1b7e0b6c-63d8-4f0e-9e5c-5d7b7c1e2a01"})
    assert (r.status_code, r.text) == (500, "ACL support disabled")
    assert set(dc2.acl.tables.tokens) == before and link.calls == calls
    # The primary's own bootstrap state is untouched: already done through initial_management.
    r = await c1.put("/v1/acl/bootstrap")
    assert r.status_code == 403 and "ACL bootstrap no longer allowed" in r.text
