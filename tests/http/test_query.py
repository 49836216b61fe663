"""``/v1/query`` prepared queries (in-process ``-dev`` agent): the bodies py-consul and
python-consul2 send, validation texts, execution filters, templates, session binding."""

from __future__ import annotations

from typing import Any

import httpx

from muster.process import AgentProcess

PC_BODY = {"name": "fooquery", "token": "", "template": {"type": "name_prefix_match"},
           "service": {"service": "foo", "failover": {}}}


async def reg(client: httpx.AsyncClient, node: str, svc: str, status: str = "passing",
              tags: list[str] | None = None, addr: str = "10.0.0.1") -> None:
    body = {"Node": node, "Address": addr, "Service": {"Service": svc, "ID": svc, "Tags": tags or []},
            "Check": {"CheckID": f"{svc}-chk", "Name": "c", "Status": status, "ServiceID": svc}}
    assert (await client.put("/v1/catalog/register", json=body)).status_code == 200


async def test_client_suite_flow(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/query")
    assert r.status_code == 200 and r.json() == [] and "X-Consul-Index" in r.headers
    r = await client.post("/v1/query", json=PC_BODY)
    assert r.status_code == 200
    qid = r.json()["ID"]
    got = (await client.get(f"/v1/query/{qid}")).json()
    assert len(got) == 1 and got[0]["ID"] == qid and got[0]["Name"] == "fooquery"
    assert got[0]["Template"]["Type"] == "name_prefix_match" and got[0]["CreateIndex"] > 0
    assert [q["ID"] for q in (await client.get("/v1/query")).json()] == [qid]
    ex = (await client.get("/v1/query/fooquery/explain")).json()
    assert ex["Query"]["Service"]["Service"] == "foo"
    r = await client.get("/v1/query/fooquery/execute?dc=dc1")
    body = r.json()
    assert r.status_code == 200 and body["Nodes"] == [] and body["Datacenter"] == "dc1" and body["Failovers"] == 0
    # python-consul2: an update whose body has no name turns it into the catch-all template.
    r = await client.put(f"/v1/query/{qid}?dc=dc1", json={"token": "", "template": {"type": "name_prefix_match"},
                                                          "service": {"service": "foo"}})
    assert r.status_code == 200 and r.content == b""
    assert (await client.get(f"/v1/query/{qid}")).json()[0]["Name"] == ""
    assert (await client.delete(f"/v1/query/{qid}")).status_code == 200
    r = await client.get(f"/v1/query/{qid}")
    assert (r.status_code, r.text) == (404, "Query not found")


async def test_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/query", json={"Name": "x", "Service": {}})
    assert (r.status_code, r.text) == (500, "Invalid prepared query: Must provide a Service name to query")
    r = await client.post("/v1/query", json={"ID": "abc", "Name": "x", "Service": {"Service": "s"}})
    assert r.text == "ID must be empty when creating a new prepared query"
    assert (await client.post("/v1/query", json={"Name": "dup", "Service": {"Service": "s"}})).status_code == 200
    r = await client.post("/v1/query", json={"Name": "DUP", "Service": {"Service": "s"}})
    assert (r.status_code, r.text) == (500, "name 'DUP' aliases an existing query name")
    missing = "11111111-2222-3333-4444-555555555555"
    r = await client.put(f"/v1/query/{missing}", json={"Name": "y", "Service": {"Service": "s"}})
    assert (r.status_code, r.text) == (500, f"Cannot modify non-existent prepared query: '{missing}'")
    r = await client.delete(f"/v1/query/{missing}")
    assert r.status_code == 500
    r = await client.get("/v1/query/nope/execute")
    assert (r.status_code, r.text) == (404, "Query not found")
    assert (await client.get("/v1/query/not-a-uuid")).status_code == 500
    r = await client.post("/v1/query", json={"Name": "s", "Session": "nosuch", "Service": {"Service": "s"}})
    assert r.status_code == 500 and "invalid session" in r.text
    assert (await client.post(f"/v1/query/{missing}", json={})).status_code == 405


async def test_execute_filters_sorts_and_limits(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    await reg(client, "a", "db", tags=["primary"])
    await reg(client, "b", "db", "warning", tags=["replica"])
    await reg(client, "c", "db", "critical", tags=["primary"])
    q = {"Name": "db-q", "Service": {"Service": "db"}, "DNS": {"TTL": "7s"}}
    assert (await client.post("/v1/query", json=q)).status_code == 200
    res = (await client.get("/v1/query/db-q/execute")).json()
    assert sorted(e["Node"]["Node"] for e in res["Nodes"]) == ["a", "b"]
    assert res["DNS"] == {"TTL": "7s"} and res["Service"] == "db"
    assert set(res["Nodes"][0]) == {"Node", "Service", "Checks"}
    assert len((await client.get("/v1/query/db-q/execute?limit=1")).json()["Nodes"]) == 1
    q2 = {"Name": "db-primary", "Service": {"Service": "db", "Tags": ["primary"], "OnlyPassing": True}}
    assert (await client.post("/v1/query", json=q2)).status_code == 200
    assert [e["Node"]["Node"] for e in (await client.get("/v1/query/db-primary/execute")).json()["Nodes"]] == ["a"]
    q3 = {"Name": "db-all", "Service": {"Service": "db", "IgnoreCheckIDs": ["db-chk"]}}
    assert (await client.post("/v1/query", json=q3)).status_code == 200
    assert len((await client.get("/v1/query/db-all/execute")).json()["Nodes"]) == 3


async def test_templates(client: httpx.AsyncClient) -> None:
    await reg(client, "a", "mysql-customer", tags=["primary"])
    t = {"Name": "geo-db-", "Template": {"Type": "name_prefix_match", "Regexp": r"^geo-db-(.*?)-([^\-]+?)$"},
         "Service": {"Service": "mysql-${match(1)}", "Tags": ["${match(2)}"]}}
    assert (await client.post("/v1/query", json=t)).status_code == 200
    res = (await client.get("/v1/query/geo-db-customer-primary/execute")).json()
    assert res["Service"] == "mysql-customer" and [e["Node"]["Node"] for e in res["Nodes"]] == ["a"]
    ex = (await client.get("/v1/query/geo-db-customer-primary/explain")).json()["Query"]
    assert ex["Service"]["Tags"] == ["primary"]
    assert (await client.get("/v1/query/geo-db-customer-replica/execute")).json()["Nodes"] == []
    bad = {"Name": "t", "Template": {"Type": "name_prefix_match"}, "Service": {"Service": "${bogus}"}}
    r = await client.post("/v1/query", json=bad)
    assert r.status_code == 500 and "unknown variable" in r.text


async def test_session_bound_query_dies_with_its_session(client: httpx.AsyncClient) -> None:
    sid = (await client.put("/v1/session/create", json={"Name": "s"})).json()["ID"]
    r = await client.post("/v1/query", json={"Session": sid, "Service": {"Service": "db"}})
    assert r.status_code == 200
    qid = r.json()["ID"]
    assert (await client.get(f"/v1/query/{qid}")).status_code == 200
    assert (await client.put(f"/v1/session/destroy/{sid}")).status_code == 200
    assert (await client.get(f"/v1/query/{qid}")).status_code == 404


async def test_query_dns(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    import dns.asyncquery
    import dns.message
    import dns.rcode

    from muster.dns.server import DNSServer
    from muster.runtime import Rng

    await reg(client, "a", "web", addr="10.0.0.7")
    assert (await client.post("/v1/query", json={"Name": "webq", "Service": {"Service": "web"},
                                                  "DNS": {"TTL": "9s"}})).status_code == 200
    d = DNSServer(agent.server, agent.config, rng=Rng(1))
    d.enable_remote(agent._http_get)
    await d.start(["127.0.0.1"], 0)
    try:
        host, port = d.addresses[0]
        r: Any = await dns.asyncquery.udp(dns.message.make_query("webq.query.consul.", "A"), host, port=port, timeout=5)
        assert [x.address for x in r.answer[0]] == ["10.0.0.7"] and r.answer[0].ttl == 9
        r = await dns.asyncquery.udp(dns.message.make_query("_webq._tcp.query.consul.", "SRV"), host, port=port,
                                     timeout=5)
        assert str(r.answer[0][0].target) == "a.node.dc1.consul."
        r = await dns.asyncquery.udp(dns.message.make_query("nope.query.consul.", "A"), host, port=port, timeout=5)
        assert r.rcode() == dns.rcode.NXDOMAIN
    finally:
        await d.stop()


async def test_query_acls(tmp_path: Any) -> None:
    """query:write on the name to create, read to list/get/explain, the stored Token hidden
    from callers without acl:write, execution filtered by the query's own token."""
    from muster.config import parse_agent_flags
    from muster.runtime import Rng

    hcl = 'acl {\n enabled = true\n default_policy = "deny"\n tokens {\n initial_management = "root"\n }\n}\n'
    cfg = parse_agent_flags(["-dev", "-node=acl-node", "-client=127.0.0.1", "-hcl", hcl])
    proc = AgentProcess(cfg, rng=Rng(5))
    await proc.server.start()
    await proc.agent.start()
    try:
        transport = httpx.ASGITransport(app=proc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://acl.test") as c:
            root = {"X-Consul-Token": "root"}
            for _ in range(50):
                if (await c.get("/v1/acl/token/self", headers=root)).status_code == 200:
                    break
                import asyncio

                await asyncio.sleep(0.1)
            rules = 'query_prefix "team-" { policy = "write" }\nservice_prefix "" { policy = "read" }\n' \
                    'node_prefix "" { policy = "read" }'
            r = await c.put("/v1/acl/policy", json={"Name": "team", "Rules": rules}, headers=root)
            assert r.status_code == 200, r.text
            r = await c.put("/v1/acl/token", json={"Policies": [{"Name": "team"}]}, headers=root)
            team = {"X-Consul-Token": r.json()["SecretID"]}
            q = {"Name": "team-db", "Token": "root", "Service": {"Service": "db"}}
            r = await c.post("/v1/query", json=q, headers=team)
            assert r.status_code == 200, r.text
            qid = r.json()["ID"]
            r = await c.post("/v1/query", json={"Name": "other", "Service": {"Service": "db"}}, headers=team)
            assert r.status_code == 403 and "query:write" in r.text
            listed = (await c.get("/v1/query", headers=team)).json()
            assert [x["Name"] for x in listed] == ["team-db"] and listed[0]["Token"] == "<hidden>"
            assert (await c.get(f"/v1/query/{qid}", headers=root)).json()[0]["Token"] == "root"
            assert (await c.get("/v1/query", headers={"X-Consul-Token": "nope"})).status_code == 403
            r = await c.get("/v1/query/team-db/explain")  # anonymous: denied by default
            assert r.status_code == 403
            assert (await c.get("/v1/query/team-db/execute", headers=team)).status_code == 200
    finally:
        await proc.agent.stop()
        await proc.server.stop()
