"""``/v1/coordinate/*`` contract and ``?near=`` sorting (in-process ``-dev`` agent)."""

from __future__ import annotations

from typing import Any

import httpx

from muster.process import AgentProcess


def coord(x: float) -> dict[str, Any]:
    return {"Vec": [x] + [0.0] * 7, "Error": 0.2, "Adjustment": 0.0, "Height": 1e-5}


async def register(client: httpx.AsyncClient, node: str, address: str = "10.0.0.1", **svc: Any) -> None:
    body: dict[str, Any] = {"Node": node, "Address": address}
    if svc:
        body["Service"] = svc
    r = await client.put("/v1/catalog/register", json=body)
    assert r.status_code == 200, r.text


async def update(agent: AgentProcess, client: httpx.AsyncClient, node: str, c: dict[str, Any]) -> None:
    r = await client.put("/v1/coordinate/update", json={"Node": node, "Segment": "", "Coord": c})
    assert r.status_code == 200 and r.content == b""
    assert agent.coordinates is not None
    await agent.coordinates.flush()


async def test_datacenters_lists_this_server(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/coordinate/datacenters")
    assert r.status_code == 200 and "X-Consul-Index" in r.headers
    lan, wan = r.json()
    assert set(lan) == set(wan) == {"Datacenter", "AreaID", "Coordinates"}
    assert (lan["Datacenter"], lan["AreaID"]) == ("dc1", "lan") and (wan["Datacenter"], wan["AreaID"]) == ("dc1", "wan")
    assert lan["Coordinates"][0]["Node"] == "test-node"
    assert wan["Coordinates"][0]["Node"] == "test-node.dc1"
    assert len(wan["Coordinates"][0]["Coord"]["Vec"]) == 8


async def test_update_is_batched_through_the_log(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/coordinate/nodes")
    assert r.status_code == 200 and r.json() == [] and "X-Consul-Index" in r.headers
    r = await client.get("/v1/coordinate/node/test-node")
    assert r.status_code == 404 and r.content == b"" and "X-Consul-Index" in r.headers
    # The WAN name from /coordinate/datacenters is accepted for the catalog node (py-consul).
    await update(agent, client, "test-node.dc1", coord(0.001))
    (row,) = (await client.get("/v1/coordinate/node/test-node")).json()
    assert row == {"Node": "test-node", "Segment": "", "Coord": coord(0.001)}
    assert (await client.get("/v1/coordinate/node/test-node.dc1")).json() == [row]
    assert (await client.get("/v1/coordinate/nodes")).json() == [row]
    # Nodes not in the catalog are dropped.
    await update(agent, client, "ghost", coord(0.5))
    assert (await client.get("/v1/coordinate/node/ghost")).status_code == 404
    # A deregistered node loses its coordinate.
    await register(client, "n9")
    await update(agent, client, "n9", coord(0.003))
    assert (await client.get("/v1/coordinate/node/n9")).status_code == 200
    assert (await client.put("/v1/catalog/deregister", json={"Node": "n9"})).status_code == 200
    assert (await client.get("/v1/coordinate/node/n9")).status_code == 404


async def test_bad_updates(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/coordinate/update", json={"Node": "test-node", "Coord": {"Vec": ["x"]}})
    assert (r.status_code, r.text) == (500, "invalid coordinate")
    r = await client.put("/v1/coordinate/update", json={"Node": "test-node", "Coord": coord(0.1) | {"Vec": [0.0]}})
    assert r.status_code == 500 and "dimensionality" in r.text
    r = await client.put("/v1/coordinate/update", json={"Coord": coord(0.1)})
    assert r.status_code == 400
    assert (await client.get("/v1/coordinate/update")).status_code == 405


async def test_near_sorts_catalog_and_health_lists(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    for name, x in (("far", 0.09), ("mid", 0.03), ("close", 0.001), ("nocoord", None)):
        await register(client, name, Service="web", ID="web")
        if x is not None:
            await update(agent, client, name, coord(x))
    await update(agent, client, "test-node", coord(0.0))
    order = ["test-node", "close", "mid", "far", "nocoord"]
    nodes = [n["Node"] for n in (await client.get("/v1/catalog/nodes?near=_agent")).json()]
    assert nodes == order
    svc = [e["Node"] for e in (await client.get("/v1/catalog/service/web?near=far")).json()]
    assert svc == ["far", "mid", "close", "nocoord"]
    health = [e["Node"]["Node"] for e in (await client.get("/v1/health/service/web?near=far")).json()]
    assert health == svc
    # Unknown source node: no reordering (the catalog's own order).
    plain = [n["Node"] for n in (await client.get("/v1/catalog/nodes")).json()]
    assert [n["Node"] for n in (await client.get("/v1/catalog/nodes?near=ghost")).json()] == plain
