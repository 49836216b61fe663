"""Service-mesh registrations in the catalog (issue 15 item 1): kinds, ``Proxy``, ``Connect``,
``Locality``, sidecars, and the connect-enabled reads."""

from __future__ import annotations

from typing import Any

import httpx

from muster.process import AgentProcess

PROXY = {
    "Name": "web-sidecar-proxy",
    "Kind": "connect-proxy",
    "Port": 21000,
    "Proxy": {
        "DestinationServiceName": "web",
        "LocalServicePort": 8080,
        "Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}],
        "Mode": "transparent",
        "Config": {"protocol": "http"},
        "Expose": {"Checks": True},
    },
    "Locality": {"Region": "us-west-1", "Zone": "us-west-1a"},
}


async def _services(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/v1/agent/services")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


async def test_connect_proxy_agent_and_catalog_shapes(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/agent/service/register", json=PROXY)
    assert r.status_code == 200, r.text
    svc = (await _services(client))["web-sidecar-proxy"]
    assert svc["Kind"] == "connect-proxy"
    assert svc["Locality"] == {"Region": "us-west-1", "Zone": "us-west-1a"}
    assert svc["Proxy"] == {
        "DestinationServiceName": "web",
        "LocalServicePort": 8080,
        "Mode": "transparent",
        "Config": {"protocol": "http"},
        "Upstreams": [{"DestinationType": "service", "DestinationName": "db", "LocalBindPort": 9191, "MeshGateway": {}}],
        "MeshGateway": {},
        "Expose": {"Checks": True},
    }
    # The catalog holds the server-side shape: Mode always, upstream Datacenter always.
    await client.put("/v1/agent/service/register", json={"Name": "noop"})
    await agent.agent.syncer.full_sync()
    entries = (await client.get("/v1/catalog/service/web-sidecar-proxy")).json()
    assert len(entries) == 1
    sn = entries[0]
    assert sn["ServiceKind"] == "connect-proxy"
    assert sn["ServiceLocality"] == {"Region": "us-west-1", "Zone": "us-west-1a"}
    assert sn["ServiceProxy"]["Upstreams"][0]["Datacenter"] == ""
    assert sn["ServiceProxy"]["Mode"] == "transparent"
    health = (await client.get("/v1/health/service/web-sidecar-proxy")).json()
    assert health[0]["Service"]["Locality"] == {"Region": "us-west-1", "Zone": "us-west-1a"}
    # A plain service has no Locality key and a null ServiceLocality.
    plain = (await client.get("/v1/catalog/service/noop")).json()[0]
    assert plain["ServiceLocality"] is None
    assert plain["ServiceProxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}}


async def test_sidecar_service_registration_and_removal(client: httpx.AsyncClient) -> None:
    body = {"Name": "api", "Port": 9000, "Tags": ["v1"], "Connect": {"SidecarService": {}}}
    r = await client.put("/v1/agent/service/register", json=body)
    assert r.status_code == 200, r.text
    services = await _services(client)
    side = services["api-sidecar-proxy"]
    assert side["Kind"] == "connect-proxy"
    assert side["Service"] == "api-sidecar-proxy"
    assert side["Port"] == 21000  # the first port of sidecar_min_port..sidecar_max_port
    assert side["Tags"] == ["v1"]  # the parent's tags, as the sidecar has none
    assert side["Proxy"]["DestinationServiceName"] == "api"
    assert side["Proxy"]["DestinationServiceID"] == "api"
    assert side["Proxy"]["LocalServiceAddress"] == "127.0.0.1"
    assert side["Proxy"]["LocalServicePort"] == 9000
    assert "Connect" not in services["api"]  # SidecarService is registration syntax only
    checks = (await client.get("/v1/agent/checks")).json()
    assert checks["service:api-sidecar-proxy:1"]["Name"] == "Connect Sidecar Listening"
    assert checks["service:api-sidecar-proxy:2"]["Name"] == "Connect Sidecar Aliasing api"
    # Re-registering keeps the port; a second sidecar gets the next free one.
    assert (await client.put("/v1/agent/service/register", json=body)).status_code == 200
    assert (await _services(client))["api-sidecar-proxy"]["Port"] == 21000
    other = {"Name": "db", "Port": 5432, "Connect": {"sidecar_service": {"Port": 0}}}
    assert (await client.put("/v1/agent/service/register", json=other)).status_code == 200
    assert (await _services(client))["db-sidecar-proxy"]["Port"] == 21001
    # Deregistering the parent removes its sidecar and the sidecar's checks.
    assert (await client.put("/v1/agent/service/deregister/api")).status_code == 200
    services = await _services(client)
    assert "api" not in services and "api-sidecar-proxy" not in services and "db-sidecar-proxy" in services
    checks = (await client.get("/v1/agent/checks")).json()
    assert not [c for c in checks if c.startswith("service:api-sidecar-proxy")]


async def test_mesh_validation_errors(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/agent/service/register", json={"Name": "p", "Kind": "connect-proxy"})
    assert r.status_code == 400
    assert r.text == (
        "Validation failed: 2 errors occurred:\n"
        "\t* Port or SocketPath must be set for a connect-proxy\n"
        "\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\n"
    )
    r = await client.put("/v1/agent/service/register", json={"Name": "gw", "Kind": "mesh-gateway"})
    assert (r.status_code, r.text) == (400, "Validation failed: 1 error occurred:\n\t* Port must be non-zero for a mesh-gateway\n\n")
    r = await client.put(
        "/v1/agent/service/register",
        json={"Name": "x", "Port": 1, "Connect": {"SidecarService": {"ID": "mine"}}},
    )
    assert r.status_code == 400
    assert "A SidecarService cannot specify an ID as this is managed by the agent" in r.text
    bad_up = dict(PROXY, Proxy={"DestinationServiceName": "web", "Upstreams": [{"DestinationName": "db"}]})
    r = await client.put("/v1/agent/service/register", json=bad_up)
    assert r.status_code == 400
    assert "upstream local bind port or local socket path must be defined and nonzero" in r.text
    # The catalog endpoint runs the same validation as an RPC error (500, no prefix).
    r = await client.put(
        "/v1/catalog/register",
        json={"Node": "n", "Address": "10.0.0.9", "Service": {"Service": "gw", "Kind": "terminating-gateway"}},
    )
    assert (r.status_code, r.text) == (500, "1 error occurred:\n\t* Port must be non-zero for a terminating-gateway\n\n")


async def test_catalog_and_health_connect(client: httpx.AsyncClient) -> None:
    regs = [
        {"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web", "Port": 80}},
        {"Node": "n1", "Address": "10.0.0.1",
         "Service": {"Service": "web-proxy", "Kind": "connect-proxy", "Port": 21000,
                     "Proxy": {"DestinationServiceName": "web"}}},
        {"Node": "n2", "Address": "10.0.0.2",
         "Service": {"Service": "web", "ID": "web-native", "Port": 81, "Connect": {"Native": True}},
         "Check": {"Name": "alive", "ServiceID": "web-native", "Status": "critical"}},
        {"Node": "n2", "Address": "10.0.0.2",
         "Service": {"Service": "db-proxy", "Kind": "connect-proxy", "Port": 21001,
                     "Proxy": {"DestinationServiceName": "db"}}},
    ]  # fmt: skip
    for reg in regs:
        r = await client.put("/v1/catalog/register", json=reg)
        assert r.status_code == 200, r.text
    r = await client.get("/v1/catalog/connect/web")
    assert r.status_code == 200 and int(r.headers["X-Consul-Index"]) >= 1
    assert [(e["Node"], e["ServiceID"]) for e in r.json()] == [("n1", "web-proxy"), ("n2", "web-native")]
    r = await client.get("/v1/health/connect/web")
    assert [(e["Node"]["Node"], e["Service"]["ID"]) for e in r.json()] == [("n1", "web-proxy"), ("n2", "web-native")]
    r = await client.get("/v1/health/connect/web", params={"passing": "1"})
    assert [e["Service"]["ID"] for e in r.json()] == ["web-proxy"]
    assert (await client.get("/v1/catalog/connect/nothing")).json() == []
    assert (await client.get("/v1/catalog/connect/web", params={"peer": "p"})).json() == []
    r = await client.get("/v1/catalog/connect/web", params={"filter": "ServiceKind == `connect-proxy`"})
    assert [e["ServiceID"] for e in r.json()] == ["web-proxy"]


async def test_sidecar_port_range_from_config() -> None:
    from muster.config import config_from_dict
    from muster.runtime import Rng

    proc = AgentProcess(config_from_dict({"node_name": "n", "ports": {"sidecar_min_port": 30000,
                                                                        "sidecar_max_port": 30000}}, dev=True), rng=Rng(3))  # fmt: skip
    await proc.server.start()
    await proc.agent.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://m") as c:
            r = await c.put("/v1/agent/service/register", json={"Name": "a", "Port": 1, "Connect": {"SidecarService": {}}})
            assert r.status_code == 200
            assert (await _services(c))["a-sidecar-proxy"]["Port"] == 30000
            r = await c.put("/v1/agent/service/register", json={"Name": "b", "Port": 2, "Connect": {"SidecarService": {}}})
            assert (r.status_code, r.text) == (
                400, "no port provided for sidecar_service and none left in the configured range [30000, 30000]")
            assert "b" not in await _services(c)  # nothing is registered when the sidecar cannot be
    finally:
        await proc.agent.stop()
        await proc.server.stop()
