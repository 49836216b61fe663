"""Enforcement beyond KV: catalog, health, agent, sessions, events, txn, operator, DNS."""

from __future__ import annotations

import asyncio
import base64

import dns.message
import dns.rcode
import httpx

from muster.dns.server import DNSServer
from muster.process import AgentProcess

from .conftest import ROOT, make_token

M = {"X-Consul-Token": ROOT}
FILTERED = "X-Consul-Results-Filtered-By-ACLs"


async def _register(c: httpx.AsyncClient, node: str, service: str) -> None:
    body = {"Node": node, "Address": "10.0.0.1", "Service": {"Service": service, "Port": 80},
            "Check": {"CheckID": f"chk-{service}", "Name": "c", "Status": "passing", "ServiceID": service}}
    r = await c.put("/v1/catalog/register", json=body, headers=M)
    assert r.status_code == 200, r.text


async def test_catalog_and_health(deny: httpx.AsyncClient) -> None:
    await _register(deny, "n1", "web")
    await _register(deny, "n2", "db")
    tok = await make_token(deny, 'node_prefix "n1" { policy = "read" }\nservice "web" { policy = "write" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    r = await deny.get("/v1/catalog/nodes", headers=h)
    assert [n["Node"] for n in r.json()] == ["n1"] and r.headers[FILTERED] == "true"
    r = await deny.get("/v1/catalog/services", headers=h)
    assert set(r.json()) == {"web"}
    r = await deny.get("/v1/catalog/service/db", headers=h)
    assert r.json() == []
    r = await deny.get("/v1/health/service/web", headers=h)
    assert [e["Node"]["Node"] for e in r.json()] == ["n1"]
    r = await deny.get("/v1/health/state/any", headers=h)
    assert {c["ServiceName"] for c in r.json()} == {"web"}
    r = await deny.get("/v1/catalog/node/n2", headers=h)
    assert r.json() is None
    r = await deny.get("/v1/catalog/nodes")  # no token: filtered (to nothing), but no header
    assert r.json() == [] and FILTERED not in r.headers
    # Writes: service:write on web is not node:write on n1.
    body = {"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web", "Port": 81}}
    r = await deny.put("/v1/catalog/register", json=body, headers=h)
    assert r.status_code == 403 and "'node:write' on \"n1\"" in r.text
    body["SkipNodeUpdate"] = True
    assert (await deny.put("/v1/catalog/register", json=body, headers=h)).status_code == 200
    r = await deny.put("/v1/catalog/deregister", json={"Node": "n2", "ServiceID": "db"}, headers=h)
    assert r.status_code == 403 and "'service:write' on \"db\"" in r.text


async def test_agent_endpoints(deny: httpx.AsyncClient) -> None:
    assert (await deny.put("/v1/agent/service/register", json={"Name": "foo-1"}, headers=M)).status_code == 200
    assert (await deny.put("/v1/agent/service/register", json={"Name": "bar-1"}, headers=M)).status_code == 200
    tok = await make_token(deny, 'service_prefix "foo-" { policy = "write" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    r = await deny.get("/v1/agent/services", headers=h)
    assert set(r.json()) == {"foo-1"} and r.headers[FILTERED] == "true"
    r = await deny.put("/v1/agent/service/register", json={"Name": "bar-2"}, headers=h)
    assert r.status_code == 403 and "'service:write' on \"bar-2\"" in r.text
    assert (await deny.put("/v1/agent/service/register", json={"Name": "foo-2"}, headers=h)).status_code == 200
    assert (await deny.put("/v1/agent/service/deregister/bar-1", headers=h)).status_code == 403
    assert (await deny.put("/v1/agent/service/deregister/foo-2", headers=h)).status_code == 200
    r = await deny.put("/v1/agent/service/register", json={"Name": "foo-3", "Check": {"Args": ["true"], "Interval": "10s"}}, headers=h)
    assert r.status_code == 403 and "'agent:write'" in r.text
    assert (await deny.get("/v1/agent/self", headers=h)).status_code == 403
    assert (await deny.get("/v1/agent/self", headers=M)).status_code == 200
    r = await deny.get("/v1/agent/members", headers=h)
    assert r.json() == []
    assert (await deny.put("/v1/agent/maintenance", params={"enable": "true"}, headers=h)).status_code == 403
    assert (await deny.put("/v1/agent/check/register", json={"Name": "n", "TTL": "10s"}, headers=h)).status_code == 403


async def test_sessions_events_txn(deny: httpx.AsyncClient) -> None:
    tok = await make_token(deny, 'session_prefix "" { policy = "write" }\nnode_prefix "" { policy = "read" }\n'
                                 'event "deploy" { policy = "write" }\nkey_prefix "app/" { policy = "write" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    r = await deny.put("/v1/session/create", json={"Checks": []}, headers=h)
    assert r.status_code == 200, r.text
    sid = r.json()["ID"]
    assert [s["ID"] for s in (await deny.get("/v1/session/list", headers=h)).json()] == [sid]
    assert (await deny.get("/v1/session/list")).json() == []
    assert (await deny.put("/v1/session/create", json={"Checks": []})).status_code == 403
    assert (await deny.put(f"/v1/session/destroy/{sid}")).status_code == 403
    assert (await deny.put(f"/v1/session/destroy/{sid}", headers=h)).json() is True
    assert (await deny.put("/v1/event/fire/deploy", headers=h)).status_code == 200
    r = await deny.put("/v1/event/fire/other", headers=h)
    assert r.status_code == 403 and "'event:write' on \"other\"" in r.text
    v = base64.b64encode(b"x").decode()
    ops = [{"KV": {"Verb": "set", "Key": "app/a", "Value": v}}, {"KV": {"Verb": "set", "Key": "secret", "Value": v}}]
    r = await deny.put("/v1/txn", json=ops, headers=h)
    assert r.status_code == 409
    assert r.json()["Errors"][0]["OpIndex"] == 1 and "'key:write' on \"secret\"" in r.json()["Errors"][0]["What"]
    assert (await deny.get("/v1/kv/app/a", headers=M)).status_code == 404  # nothing applied
    assert (await deny.put("/v1/txn", json=ops[:1], headers=h)).status_code == 200
    await deny.put("/v1/kv/app2/x", content=b"1", headers=M)
    r = await deny.put("/v1/txn", json=[{"KV": {"Verb": "get-tree", "Key": "app"}}], headers=h)
    assert [x["KV"]["Key"] for x in r.json()["Results"]] == ["app/a"]


async def test_operator_and_blocking_recheck(deny: httpx.AsyncClient) -> None:
    tok = await make_token(deny, 'operator = "read"\nkey_prefix "w/" { policy = "read" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await deny.get("/v1/operator/raft/configuration", headers=h)).status_code == 200
    assert (await deny.put("/v1/operator/autopilot/configuration", json={}, headers=h)).status_code == 403
    assert (await deny.get("/v1/operator/raft/configuration")).status_code == 403
    await deny.put("/v1/kv/w/k", content=b"1", headers=M)
    r = await deny.get("/v1/kv/w/k", headers=h)
    idx = r.headers["X-Consul-Index"]

    async def revoke_then_write() -> None:
        await asyncio.sleep(0.05)
        await deny.delete(f"/v1/acl/token/{tok['AccessorID']}", headers=M)
        await deny.put("/v1/kv/w/k", content=b"2", headers=M)

    task = asyncio.create_task(revoke_then_write())
    r = await deny.get("/v1/kv/w/k", params={"index": idx, "wait": "5s"}, headers=h)
    await task
    assert (r.status_code, r.text) == (403, "ACL not found")  # the wake re-resolved the token


async def test_dns_uses_dns_token(deny_agent: AgentProcess, deny: httpx.AsyncClient) -> None:
    await _register(deny, "n1", "web")
    srv = DNSServer(deny_agent.server, deny_agent.config, cache=True)
    acl = deny_agent.acl
    srv.answerer.authorizer = acl.dns_authorizer
    srv.acl_version = acl.generation

    def ask(name: str) -> dns.message.Message:
        out = srv.handle(dns.message.make_query(name, "A").to_wire(), False)
        assert isinstance(out, bytes)
        return dns.message.from_wire(out)

    assert ask("web.service.consul.").rcode() == dns.rcode.NXDOMAIN  # anonymous, default deny
    assert ask("n1.node.consul.").rcode() == dns.rcode.NXDOMAIN
    tok = await make_token(deny, 'node_prefix "" { policy = "read" }\nservice_prefix "" { policy = "read" }')
    assert (await deny.put("/v1/agent/token/dns", json={"Token": tok["SecretID"]}, headers=M)).status_code == 200
    ans = ask("web.service.consul.")
    assert ans.rcode() == dns.rcode.NOERROR and ans.answer
    assert ask("n1.node.consul.").answer
