"""Peering as far as a registry without peers goes, and ``/v1/operator/usage`` (issue 15 item 4)."""

from __future__ import annotations

import httpx


async def _register(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    r = await client.put("/v1/catalog/register", json=body)
    assert r.status_code == 200, r.text


async def test_peer_filter_matches_nothing(client: httpx.AsyncClient) -> None:
    await _register(
        client,
        {"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web", "Port": 80},
         "Check": {"Name": "c", "ServiceID": "web", "Status": "passing"}},
    )  # fmt: skip
    for path, local_nonempty, empty in (
        ("/v1/health/service/web", True, []),
        ("/v1/health/checks/web", True, []),
        ("/v1/health/node/n1", True, []),
        ("/v1/health/state/any", True, []),
        ("/v1/catalog/service/web", True, []),
        ("/v1/catalog/nodes", True, []),
        ("/v1/catalog/services", True, {}),
        ("/v1/catalog/node/n1", True, None),
    ):
        local = await client.get(path)
        assert local.status_code == 200 and bool(local.json()) is local_nonempty, path
        peered = await client.get(path, params={"peer": "other"})
        assert peered.status_code == 200, path
        assert peered.json() == empty, path
        assert int(peered.headers["X-Consul-Index"]) >= 1, path
    # The empty peer name is the local cluster.
    assert (await client.get("/v1/catalog/service/web", params={"peer": ""})).json()


async def test_peerings_list_read_delete(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/peerings")
    assert (r.status_code, r.json()) == (200, [])
    r = await client.get("/v1/peering/cluster-2")
    assert (r.status_code, r.text) == (404, 'Peering not found for "cluster-2"')
    r = await client.delete("/v1/peering/cluster-2")
    assert (r.status_code, r.text) == (200, "")
    r = await client.put("/v1/peering/cluster-2")
    assert r.status_code == 405


async def test_peering_token_and_establish_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/peering/token")
    assert (r.status_code, r.text) == (400, "The peering arguments must be provided in the body")
    r = await client.post("/v1/peering/token", content=b"abc")
    assert r.status_code == 400 and r.text.startswith("Body decoding failed:")
    r = await client.post("/v1/peering/token", json={})
    assert (r.status_code, r.text) == (400, "PeerName is required in the payload when generating a new peering token.")
    r = await client.post("/v1/peering/token", json={"PeerName": "cluster-2"})
    assert (r.status_code, r.text) == (400, "peering must be enabled to use this endpoint")
    r = await client.post("/v1/peering/establish", json={"PeerName": "cluster-2"})
    assert (r.status_code, r.text) == (400, "PeeringToken is required in the payload when establishing a peering.")
    r = await client.post("/v1/peering/establish", json={"PeerName": "c", "PeeringToken": "eyJ9"})
    assert (r.status_code, r.text) == (400, "peering must be enabled to use this endpoint")


async def test_operator_usage_counts_the_catalog(client: httpx.AsyncClient) -> None:
    await _register(client, {"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web", "ID": "web-1"}})
    await _register(client, {"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web", "ID": "web-2"}})
    await _register(
        client,
        {"Node": "n2", "Address": "10.0.0.2",
         "Service": {"Service": "web-proxy", "Kind": "connect-proxy", "Port": 21000,
                     "Proxy": {"DestinationServiceName": "web"}}},
    )  # fmt: skip
    await _register(
        client, {"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "native", "Port": 7, "Connect": {"Native": True}}}
    )
    r = await client.get("/v1/operator/usage")
    assert r.status_code == 200
    body = r.json()
    dc1 = body["Usage"]["dc1"]
    # The dev agent's own node and its "consul" service are counted; "consul" is not billable.
    assert dc1["Nodes"] == 3
    assert dc1["Services"] == 4  # consul, web, web-proxy, native
    assert dc1["ServiceInstances"] == 5
    assert dc1["ConnectServiceInstances"] == {
        "api-gateway": 0, "connect-native": 1, "connect-proxy": 1, "ingress-gateway": 0,
        "mesh-gateway": 0, "terminating-gateway": 0,
    }  # fmt: skip
    assert dc1["BillableServiceInstances"] == 3  # web-1, web-2, native
    assert body["KnownLeader"] is True and body["Index"] == int(r.headers["X-Consul-Index"])
    r = await client.get("/v1/operator/usage", params={"dc": "nope"})
    assert r.status_code == 500
