"""Health endpoint contract tests (docs/compat/catalog-health.md#health-endpoints, #health-of-an-instance)."""

from __future__ import annotations

import asyncio

import httpx


async def reg(c: httpx.AsyncClient, body: object) -> None:
    r = await c.put("/v1/catalog/register", json=body)
    assert r.status_code == 200, r.text


async def setup_web(c: httpx.AsyncClient) -> None:
    """web on three nodes: n1 passing, n2 service check warning, n3 node check critical."""
    await reg(c, {"Node": "n3", "Address": "10.0.0.3", "Service": {"ID": "web3", "Service": "web", "Tags": ["b"]},
                  "Checks": [{"Name": "node-ok", "Status": "critical"},
                             {"CheckID": "w3", "Name": "w3", "ServiceID": "web3", "Status": "passing"}]})
    await reg(c, {"Node": "n1", "Address": "10.0.0.1", "NodeMeta": {"zone": "a"},
                  "Service": {"ID": "web1", "Service": "web", "Tags": ["a", "b"]},
                  "Checks": [{"Name": "node-ok", "Status": "passing"},
                             {"CheckID": "w1", "Name": "w1", "ServiceID": "web1", "Status": "passing"}]})
    await reg(c, {"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": "web2", "Service": "web", "Tags": ["a"]},
                  "Checks": [{"CheckID": "w2", "Name": "w2", "ServiceID": "web2", "Status": "warning"}]})


async def test_service_same_order_as_catalog(client: httpx.AsyncClient) -> None:
    await setup_web(client)
    cat = (await client.get("/v1/catalog/service/web")).json()
    health = (await client.get("/v1/health/service/web")).json()
    assert [(s["Node"], s["ServiceID"]) for s in cat] == [(e["Node"]["Node"], e["Service"]["ID"]) for e in health]
    assert [e["Service"]["ID"] for e in health] == ["web1", "web2", "web3"]  # critical web3 included
    e1 = health[0]
    assert set(e1) == {"Node", "Service", "Checks"}
    assert [c["CheckID"] for c in e1["Checks"]] == ["node-ok", "w1"]  # node checks first, then own
    assert e1["Service"]["Weights"] == {"Passing": 1, "Warning": 1} and e1["Service"]["Tags"] == ["a", "b"]


async def test_passing_drops_warning_and_node_critical(client: httpx.AsyncClient) -> None:
    await setup_web(client)
    for q in ("passing", "passing=true", "passing=1", "passing=T"):
        ids = [e["Service"]["ID"] for e in (await client.get(f"/v1/health/service/web?{q}")).json()]
        assert ids == ["web1"], q
    ids = [e["Service"]["ID"] for e in (await client.get("/v1/health/service/web?passing=false")).json()]
    assert ids == ["web1", "web2", "web3"]
    r = await client.get("/v1/health/service/web?passing=maybe")
    assert (r.status_code, r.text) == (400, "Invalid value for ?passing")


async def test_service_tag_meta_filter(client: httpx.AsyncClient) -> None:
    await setup_web(client)
    ids = [e["Service"]["ID"] for e in (await client.get("/v1/health/service/web", params=[("tag", "a"), ("tag", "b")])).json()]
    assert ids == ["web1"]
    ids = [e["Service"]["ID"] for e in (await client.get("/v1/health/service/web", params={"node-meta": "zone:a"})).json()]
    assert ids == ["web1"]
    r = await client.get("/v1/health/service/web", params={"filter": 'Service.ID == "web2"'})
    assert [e["Service"]["ID"] for e in r.json()] == ["web2"]
    r = await client.get("/v1/health/service/web", params={"filter": 'Checks.Status contains "critical"'})
    assert [e["Service"]["ID"] for e in r.json()] == ["web3"]
    r = await client.get("/v1/health/service/none")
    assert r.json() == [] and int(r.headers["X-Consul-Index"]) >= 1
    r = await client.get("/v1/health/service/")
    assert (r.status_code, r.text) == (400, "Missing service name")


async def test_checks_node_and_state(client: httpx.AsyncClient) -> None:
    await setup_web(client)
    got = [(c["Node"], c["CheckID"]) for c in (await client.get("/v1/health/checks/web")).json()]
    assert got == [("n1", "w1"), ("n2", "w2"), ("n3", "w3")]
    got = [c["CheckID"] for c in (await client.get("/v1/health/checks/web", params={"node-meta": "zone:a"})).json()]
    assert got == ["w1"]
    got = [c["CheckID"] for c in (await client.get("/v1/health/node/n3")).json()]
    assert got == ["node-ok", "w3"]
    assert (await client.get("/v1/health/node/ghost")).json() == []
    crit = [(c["Node"], c["CheckID"]) for c in (await client.get("/v1/health/state/critical")).json()]
    assert crit == [("n3", "node-ok")]
    warn = [c["CheckID"] for c in (await client.get("/v1/health/state/warning")).json()]
    assert warn == ["w2"]
    every = (await client.get("/v1/health/state/any")).json()
    assert {c["CheckID"] for c in every} >= {"serfHealth", "w1", "w2", "w3", "node-ok"}
    passing = (await client.get("/v1/health/state/passing", params={"filter": 'Node == "n1"'})).json()
    assert [c["CheckID"] for c in passing] == ["node-ok", "w1"]
    assert (await client.get("/v1/health/state/bogus")).json() == []
    r = await client.get("/v1/health/state/")
    assert (r.status_code, r.text) == (400, "Missing check state")
    r = await client.get("/v1/health/node/")
    assert (r.status_code, r.text) == (400, "Missing node name")


async def test_service_blocking_not_woken_by_other_service(client: httpx.AsyncClient) -> None:
    await setup_web(client)
    r = await client.get("/v1/health/service/web")
    idx = int(r.headers["X-Consul-Index"])

    async def writes() -> None:
        await asyncio.sleep(0.05)
        await reg(client, {"Node": "o1", "Address": "10.0.0.8", "Service": {"Service": "other"}})
        await asyncio.sleep(0.05)
        await reg(client, {"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": "web2", "Service": "web", "Tags": ["a"]},
                           "Checks": [{"CheckID": "w2", "Name": "w2", "ServiceID": "web2", "Status": "passing"}]})

    task = asyncio.create_task(writes())
    r = await client.get("/v1/health/service/web", params={"index": idx, "wait": "5s", "passing": "1"})
    await task
    assert int(r.headers["X-Consul-Index"]) > idx
    assert [e["Service"]["ID"] for e in r.json()] == ["web1", "web2"]
