"""Catalog endpoint contract tests (docs/compat/catalog-health.md)."""

from __future__ import annotations

import asyncio

import httpx

from muster.process import AgentProcess

NODE_ID = "b2f0c8a4-5d1e-4c7b-9a7e-1f2e3d4c5b6a"


async def reg(c: httpx.AsyncClient, body: object) -> httpx.Response:
    return await c.put("/v1/catalog/register", json=body)


async def test_register_defaults_and_shapes(client: httpx.AsyncClient) -> None:
    r = await reg(client, {
        "node": "ext1", "address": "10.0.0.1", "id": NODE_ID, "nodemeta": {"Rack": "r1"},
        "TaggedAddresses": {"wan": "1.2.3.4"},
        "service": {"service": "redis", "tags": ["v1"], "port": 6379, "meta": {"Ver": "7"}},
        "check": {"name": "mem", "serviceid": "redis"},
    })
    assert r.status_code == 200 and r.json() is True
    [sn] = (await client.get("/v1/catalog/service/redis")).json()
    assert sn["ID"] == NODE_ID and sn["Node"] == "ext1" and sn["Address"] == "10.0.0.1"
    assert sn["ServiceID"] == "redis" and sn["ServiceName"] == "redis"  # ID defaults to the name
    assert sn["ServiceTags"] == ["v1"] and sn["ServicePort"] == 6379 and sn["ServiceAddress"] == ""
    assert sn["ServiceWeights"] == {"Passing": 1, "Warning": 1}
    assert sn["ServiceMeta"] == {"Ver": "7"} and sn["NodeMeta"] == {"Rack": "r1"}  # user-map keys untouched
    assert sn["TaggedAddresses"] == {"wan": "1.2.3.4"}
    assert sn["ServiceProxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}} and sn["ServiceConnect"] == {}
    assert "ServiceTaggedAddresses" not in sn
    assert sn["CreateIndex"] > 0 and sn["ModifyIndex"] == sn["CreateIndex"]
    [chk] = (await client.get("/v1/health/checks/redis")).json()
    assert chk["CheckID"] == "mem" and chk["Status"] == "critical"  # CheckID = Name, Status critical
    assert chk["ServiceName"] == "redis" and chk["ServiceTags"] == ["v1"] and chk["Definition"] == {}


async def test_register_idempotent_does_not_bump(client: httpx.AsyncClient) -> None:
    body = {"Node": "n1", "Address": "10.0.0.2", "Service": {"Service": "api", "Port": 80}}
    await reg(client, body)
    r1 = await client.get("/v1/catalog/service/api")
    await reg(client, body)
    r2 = await client.get("/v1/catalog/service/api")
    assert r1.headers["X-Consul-Index"] == r2.headers["X-Consul-Index"]
    assert r1.json()[0]["ModifyIndex"] == r2.json()[0]["ModifyIndex"]


async def test_register_errors(client: httpx.AsyncClient) -> None:
    cases = [
        ({"Address": "1.1.1.1"}, "Must provide node"),
        ({"Node": "x"}, "Must provide address if SkipNodeUpdate is not set"),
        ({"Node": "x", "Address": "1.1.1.1", "ID": "nope"}, "Bad node ID: uuid string is wrong length"),
        ({"Node": "x", "Address": "1.1.1.1", "Service": {"ID": "s1"}}, "Must provide service name with ID"),
        ({"Node": "x", "Address": "1.1.1.1", "Service": {"Service": "s", "Address": "0.0.0.0"}}, "Invalid service address"),
        ({"Node": "x", "Address": "1.1.1.1", "Datacenter": "dc9"}, "No path to datacenter"),
    ]
    for body, text in cases:
        r = await reg(client, body)
        assert (r.status_code, r.text) == (500, text), body
    r = await client.put("/v1/catalog/register", content=b"{nope")
    assert r.status_code == 400 and r.text.startswith("Request decode failed:")
    # SkipNodeUpdate without an address is fine once the node exists, and keeps the node record.
    await reg(client, {"Node": "keep", "Address": "10.9.9.9", "NodeMeta": {"a": "b"}})
    r = await reg(client, {"Node": "keep", "SkipNodeUpdate": True, "Service": {"Service": "k"}})
    assert r.status_code == 200
    node = (await client.get("/v1/catalog/node/keep")).json()["Node"]
    assert node["Address"] == "10.9.9.9" and node["Meta"] == {"a": "b"}


async def test_deregister_levels(client: httpx.AsyncClient) -> None:
    await reg(client, {"Node": "d1", "Address": "10.0.0.3", "Service": {"Service": "a"},
                       "Checks": [{"Name": "n-chk"}, {"Name": "s-chk", "ServiceID": "a"}]})
    await reg(client, {"Node": "d1", "Address": "10.0.0.3", "Service": {"Service": "b"}})
    r = await client.put("/v1/catalog/deregister", json={"Node": "d1", "ServiceID": "a"})
    assert r.status_code == 200 and r.json() is True
    checks = [c["CheckID"] for c in (await client.get("/v1/health/node/d1")).json()]
    assert checks == ["n-chk"]  # the service's check went with it
    await client.put("/v1/catalog/deregister", json={"Node": "d1", "CheckID": "n-chk"})
    assert (await client.get("/v1/health/node/d1")).json() == []
    await client.put("/v1/catalog/deregister", json={"node": "d1"})
    assert (await client.get("/v1/catalog/node/d1")).text == "null"
    r = await client.put("/v1/catalog/deregister", json={})
    assert (r.status_code, r.text) == (500, "Must provide node")


async def test_datacenters_no_index(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/catalog/datacenters")
    assert r.json() == ["dc1"] and "X-Consul-Index" not in r.headers


async def test_nodes_sorted_meta_and_filter(client: httpx.AsyncClient) -> None:
    for name, rack in (("zeta", "r1"), ("alpha", "r2"), ("mid", "r1")):
        await reg(client, {"Node": name, "Address": "10.1.0.1", "NodeMeta": {"rack": rack, "env": "p"}})
    r = await client.get("/v1/catalog/nodes")
    names = [n["Node"] for n in r.json()]
    assert names == sorted(names) and {"zeta", "alpha", "mid", "test-node"} <= set(names)
    assert int(r.headers["X-Consul-Index"]) >= 1 and r.headers["X-Consul-KnownLeader"] == "true"
    r = await client.get("/v1/catalog/nodes", params=[("node-meta", "rack:r1"), ("node-meta", "env:p")])
    assert [n["Node"] for n in r.json()] == ["mid", "zeta"]
    r = await client.get("/v1/catalog/nodes", params={"filter": 'Meta.rack == "r2"'})
    assert [n["Node"] for n in r.json()] == ["alpha"]
    r = await client.get("/v1/catalog/nodes", params={"filter": "Meta.rack ==="})
    assert r.status_code == 500 and r.text.startswith("Failed to create boolean expression evaluator")


async def test_services_union_of_tags(client: httpx.AsyncClient) -> None:
    await reg(client, {"Node": "a", "Address": "10.0.0.1", "Service": {"ID": "w1", "Service": "web", "Tags": ["x", "y"]}})
    await reg(client, {"Node": "b", "Address": "10.0.0.2", "NodeMeta": {"k": "v"},
                       "Service": {"ID": "w2", "Service": "web", "Tags": ["y", "z"]}})
    out = (await client.get("/v1/catalog/services")).json()
    assert out["consul"] == [] and sorted(out["web"]) == ["x", "y", "z"]
    out = (await client.get("/v1/catalog/services", params={"node-meta": "k:v"})).json()
    assert out == {"web": ["y", "z"]}
    out = (await client.get("/v1/catalog/services", params={"filter": 'ServiceID == "w1"'})).json()
    assert out == {"web": ["x", "y"]}


async def test_service_order_tags_and_unknown(client: httpx.AsyncClient) -> None:
    for node, sid, tags in (("n2", "b", ["p"]), ("n1", "z", ["p", "q"]), ("n1", "a", ["P"]), ("n3", "c", ["q"])):
        await reg(client, {"Node": node, "Address": "10.0.0.9", "Service": {"ID": sid, "Service": "svc", "Tags": tags}})
    got = [(s["Node"], s["ServiceID"]) for s in (await client.get("/v1/catalog/service/svc")).json()]
    assert got == [("n1", "a"), ("n1", "z"), ("n2", "b"), ("n3", "c")]
    got = [s["ServiceID"] for s in (await client.get("/v1/catalog/service/svc", params=[("tag", "p"), ("tag", "q")])).json()]
    assert got == ["z"]
    got = [s["ServiceID"] for s in (await client.get("/v1/catalog/service/svc?tag=p")).json()]
    assert got == ["a", "z", "b"]  # tag matching is case-insensitive
    r = await client.get("/v1/catalog/service/nothing")
    assert r.status_code == 200 and r.json() == [] and int(r.headers["X-Consul-Index"]) >= 1
    r = await client.get("/v1/catalog/service/")
    assert (r.status_code, r.text) == (400, "Missing service name")


async def test_node_and_node_services(client: httpx.AsyncClient) -> None:
    await reg(client, {"Node": "nn", "Address": "10.0.0.5", "Service": {"ID": "s1", "Service": "one", "Port": 1,
                       "TaggedAddresses": {"lan": {"address": "10.0.0.5", "port": 1}}}})
    await reg(client, {"Node": "nn", "Address": "10.0.0.5", "Service": {"ID": "s2", "Service": "two"}})
    body = (await client.get("/v1/catalog/node/nn")).json()
    assert body["Node"]["Node"] == "nn" and sorted(body["Services"]) == ["s1", "s2"]
    s1 = body["Services"]["s1"]
    assert s1["TaggedAddresses"] == {"lan": {"Address": "10.0.0.5", "Port": 1}} and s1["Port"] == 1
    assert "Port" not in body["Services"]["s2"] and "TaggedAddresses" not in body["Services"]["s2"]
    body = (await client.get("/v1/catalog/node/nn", params={"filter": 'Service == "two"'})).json()
    assert list(body["Services"]) == ["s2"]
    r = await client.get("/v1/catalog/node/ghost")
    assert r.status_code == 200 and r.text == "null" and "X-Consul-Index" in r.headers
    body = (await client.get("/v1/catalog/node-services/nn")).json()
    assert [s["ID"] for s in body["Services"]] == ["s1", "s2"]
    assert (await client.get("/v1/catalog/node-services/ghost")).json() == {"Node": None, "Services": []}


async def test_service_blocking_wakes_on_change(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/catalog/service/blk")
    idx = int(r.headers["X-Consul-Index"])

    async def later() -> None:
        await asyncio.sleep(0.05)
        await reg(client, {"Node": "bn", "Address": "10.0.0.7", "Service": {"Service": "blk"}})

    task = asyncio.create_task(later())
    r = await client.get("/v1/catalog/service/blk", params={"index": idx, "wait": "5s"})
    await task
    assert int(r.headers["X-Consul-Index"]) > idx and len(r.json()) == 1


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/catalog/register")
    assert r.status_code == 405 and r.text == "method GET not allowed"


async def test_connect_listing_is_empty(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    r = await client.get("/v1/catalog/connect/web")
    assert r.json() == [] and "X-Consul-Index" in r.headers
