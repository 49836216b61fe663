"""Config entries, the discovery chain and gateway services (issue 15 item 3)."""

from __future__ import annotations

import asyncio

import httpx


async def test_config_entry_crud_cas_and_errors(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/config", json={"Kind": "service-defaults", "Name": "web", "Protocol": "HTTP"})
    assert (r.status_code, r.json()) == (200, True)
    r = await client.get("/v1/config/service-defaults/web")
    entry = r.json()
    assert entry["Protocol"] == "http" and entry["Kind"] == "service-defaults" and entry["Name"] == "web"
    assert int(r.headers["X-Consul-Index"]) == entry["ModifyIndex"]
    idx = entry["ModifyIndex"]
    # cas: a stale index does not apply, the current one does, 0 means "only if absent".
    r = await client.put("/v1/config", params={"cas": str(idx + 100)}, json={"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"})
    assert r.json() is False
    r = await client.put("/v1/config", params={"cas": "0"}, json={"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"})
    assert r.json() is False
    r = await client.put("/v1/config", params={"cas": str(idx)}, json={"kind": "service-defaults", "name": "web", "protocol": "grpc"})
    assert r.json() is True
    entry = (await client.get("/v1/config/service-defaults/web")).json()
    assert entry["Protocol"] == "grpc" and entry["CreateIndex"] == idx < entry["ModifyIndex"]
    listing = (await client.get("/v1/config/service-defaults")).json()
    assert [e["Name"] for e in listing] == ["web"]
    r = await client.delete("/v1/config/service-defaults/web", params={"cas": str(entry["ModifyIndex"] + 1)})
    assert r.json() is False
    r = await client.delete("/v1/config/service-defaults/web")
    assert (r.status_code, r.json()) == (200, {})
    r = await client.get("/v1/config/service-defaults/web")
    assert (r.status_code, r.text) == (404, 'Config entry not found for "service-defaults" / "web"')
    # Errors, with Consul's texts.
    r = await client.put("/v1/config", json={"Name": "x"})
    assert (r.status_code, r.text) == (400, "Request decoding failed: Payload does not contain a kind/Kind key at the top level")
    r = await client.put("/v1/config", json={"Kind": "nope", "Name": "x"})
    assert (r.status_code, r.text) == (400, "Request decoding failed: invalid config entry kind: nope")
    r = await client.put("/v1/config", json={"Kind": "service-defaults", "Name": "x", "Bogus": 1})
    assert r.status_code == 400 and r.text.endswith("has invalid keys: Bogus")
    r = await client.put("/v1/config", json={"Kind": "proxy-defaults", "Name": "web"})
    assert (r.status_code, r.text) == (500, 'invalid name ("web"), only "global" is supported')
    r = await client.put("/v1/config", json={"Kind": "service-splitter", "Name": "web",
                                             "Splits": [{"Weight": 60}, {"Weight": 30, "ServiceSubset": "v2"}]})  # fmt: skip
    assert (r.status_code, r.text) == (500, "the sum of all split weights must be 100, not 90.000000")
    r = await client.put("/v1/config", json={"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "maybe"}]})
    assert (r.status_code, r.text) == (500, 'Sources[0].Action must be set to "allow" or "deny"')
    r = await client.put("/v1/config", json={"Kind": "ingress-gateway", "Name": "gw",
                                             "Listeners": [{"Port": 1, "Protocol": "udp", "Services": [{"Name": "a"}]}]})  # fmt: skip
    assert r.status_code == 500 and "'udp' is an unsupported protocol" in r.text
    # Every kind clients send is accepted.
    for body in (
        {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}},
        {"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": True}},
        {"Kind": "service-router", "Name": "web", "Routes": [{"Match": {"HTTP": {"PathPrefix": "/admin"}},
                                                               "Destination": {"Service": "admin"}}]},
        {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 90}, {"Weight": 10, "Service": "web-canary"}]},
        {"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "15s"},
        {"Kind": "terminating-gateway", "Name": "tgw", "Services": [{"Name": "billing", "SNI": "billing.example"}]},
        {"Kind": "exported-services", "Name": "default", "Services": [{"Name": "web", "Consumers": [{"Peer": "p"}]}]},
        {"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow"}]},
    ):  # fmt: skip
        r = await client.put("/v1/config", json=body)
        assert (r.status_code, r.text) == (200, "true"), (body, r.text)
    assert (await client.get("/v1/config/mesh/mesh")).json()["TransparentProxy"] == {"MeshDestinationsOnly": True}


async def test_config_entry_blocking_query_wakes_on_write(client: httpx.AsyncClient) -> None:
    await client.put("/v1/config", json={"Kind": "service-defaults", "Name": "a", "Protocol": "tcp"})
    r = await client.get("/v1/config/service-defaults")
    idx = int(r.headers["X-Consul-Index"])
    waiter = asyncio.ensure_future(client.get("/v1/config/service-defaults", params={"index": str(idx), "wait": "20s"}))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await client.put("/v1/config", json={"Kind": "service-defaults", "Name": "b", "Protocol": "http"})
    r = await asyncio.wait_for(waiter, 10)
    assert int(r.headers["X-Consul-Index"]) > idx
    assert [e["Name"] for e in r.json()] == ["a", "b"]


async def test_discovery_chain_default_and_compiled(client: httpx.AsyncClient) -> None:
    chain = (await client.get("/v1/discovery-chain/web")).json()["Chain"]
    td = (await client.get("/v1/connect/ca/roots")).json()["TrustDomain"]
    assert chain["Default"] is True and chain["Protocol"] == "tcp"
    assert chain["StartNode"] == "resolver:web.default.default.dc1"
    target = chain["Targets"]["web.default.default.dc1"]
    assert target["SNI"] == f"web.default.dc1.internal.{td}" and target["ConnectTimeout"] == "5s"
    assert chain["Nodes"]["resolver:web.default.default.dc1"]["Resolver"] == {
        "Default": True, "ConnectTimeout": "5s", "Target": "web.default.default.dc1"}  # fmt: skip
    over = await client.post("/v1/discovery-chain/web", json={"OverrideProtocol": "http"})
    assert over.json()["Chain"]["Protocol"] == "http" and "Default" not in over.json()["Chain"]
    for body in (
        {"Kind": "service-defaults", "Name": "web", "Protocol": "http"},
        {"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "15s",
         "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}},
         "DefaultSubset": "v1"},
        {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 90, "ServiceSubset": "v1"},
                                                               {"Weight": 10, "ServiceSubset": "v2"}]},
        {"Kind": "service-router", "Name": "web", "Routes": [{"Match": {"HTTP": {"PathPrefix": "/admin"}},
                                                               "Destination": {"Service": "admin"}}]},
    ):  # fmt: skip
        assert (await client.put("/v1/config", json=body)).json() is True
    chain = (await client.get("/v1/discovery-chain/web")).json()["Chain"]
    assert chain["Protocol"] == "http" and "Default" not in chain
    assert chain["StartNode"] == "router:web.default.default"
    routes = chain["Nodes"]["router:web.default.default"]["Routes"]
    assert [r["NextNode"] for r in routes] == ["resolver:admin.default.default.dc1", "splitter:web.default.default"]
    splits = chain["Nodes"]["splitter:web.default.default"]["Splits"]
    assert splits == [{"Weight": 90, "NextNode": "resolver:v1.web.default.default.dc1"},
                      {"Weight": 10, "NextNode": "resolver:v2.web.default.default.dc1"}]  # fmt: skip
    v2 = chain["Targets"]["v2.web.default.default.dc1"]
    assert v2["Subset"] == {"Filter": "Service.Meta.version == v2"} and v2["ConnectTimeout"] == "15s"
    assert v2["SNI"] == f"v2.web.default.dc1.internal.{td}"


async def test_gateway_services_and_ingress_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/catalog/gateway-services/igw")).json() == []
    for reg in (
        {"Node": "g", "Address": "10.0.0.5", "Service": {"Service": "igw", "Kind": "ingress-gateway", "Port": 8080}},
        {"Node": "g", "Address": "10.0.0.5", "Service": {"Service": "web", "Port": 80}},
        {"Node": "g", "Address": "10.0.0.5", "Service": {"Service": "tgw", "Kind": "terminating-gateway", "Port": 8443}},
    ):  # fmt: skip
        assert (await client.put("/v1/catalog/register", json=reg)).status_code == 200
    await client.put("/v1/config", json={"Kind": "ingress-gateway", "Name": "igw", "Listeners": [
        {"Port": 8080, "Protocol": "http", "Services": [{"Name": "web", "Hosts": ["web.example"]}]}]})  # fmt: skip
    await client.put("/v1/config", json={"Kind": "terminating-gateway", "Name": "tgw", "Services": [{"Name": "billing", "SNI": "b.example"}]})
    rows = (await client.get("/v1/catalog/gateway-services/igw")).json()
    assert len(rows) == 1
    row = rows[0]
    assert row["Gateway"] == {"Name": "igw"} and row["Service"] == {"Name": "web"}
    assert (row["GatewayKind"], row["Port"], row["Protocol"], row["Hosts"]) == ("ingress-gateway", 8080, "http", ["web.example"])
    rows = (await client.get("/v1/catalog/gateway-services/tgw")).json()
    assert [(r["Service"]["Name"], r["GatewayKind"], r["SNI"]) for r in rows] == [("billing", "terminating-gateway", "b.example")]
    ingress = (await client.get("/v1/health/ingress/web")).json()
    assert [(e["Node"]["Node"], e["Service"]["ID"]) for e in ingress] == [("g", "igw")]
    assert (await client.get("/v1/health/ingress/billing")).json() == []
