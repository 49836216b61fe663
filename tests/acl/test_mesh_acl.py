"""ACL enforcement on config entries, the CA, leaf certificates and intentions (default deny)."""

from __future__ import annotations

import httpx

from .conftest import ROOT, make_token


async def test_config_entries_and_intentions_follow_acls(deny: httpx.AsyncClient) -> None:
    tok = await make_token(deny, 'service "web" { policy = "write" intentions = "write" }\n'
                                 'service "db" { policy = "read" intentions = "read" }')  # fmt: skip
    h = {"X-Consul-Token": tok["SecretID"]}
    root = {"X-Consul-Token": ROOT}
    # service-defaults of web: writable; of db: read only; mesh-wide entries need operator/mesh.
    assert (await deny.put("/v1/config", json={"Kind": "service-defaults", "Name": "web"}, headers=h)).json() is True
    r = await deny.put("/v1/config", json={"Kind": "service-defaults", "Name": "db"}, headers=h)
    assert r.status_code == 403 and "lacks permission 'service:write' on \"db\"" in r.text
    r = await deny.put("/v1/config", json={"Kind": "proxy-defaults", "Name": "global"}, headers=h)
    assert r.status_code == 403 and "'mesh:write'" in r.text
    assert (await deny.put("/v1/config", json={"Kind": "service-defaults", "Name": "db"}, headers=root)).json() is True
    assert (await deny.put("/v1/config", json={"Kind": "service-defaults", "Name": "cache"}, headers=root)).json() is True
    assert (await deny.get("/v1/config/service-defaults/db", headers=h)).status_code == 200
    assert (await deny.get("/v1/config/service-defaults/cache", headers=h)).status_code == 403
    listing = await deny.get("/v1/config/service-defaults", headers=h)
    assert sorted(e["Name"] for e in listing.json()) == ["db", "web"]
    # Intentions: write on the destination's intentions.
    q = {"source": "db", "destination": "web"}
    assert (await deny.put("/v1/connect/intentions/exact", params=q, json={"Action": "allow"}, headers=h)).json() is True
    r = await deny.put("/v1/connect/intentions/exact", params={"source": "web", "destination": "db"},
                       json={"Action": "allow"}, headers=h)  # fmt: skip
    assert r.status_code == 403
    # The CA configuration is operator data; leaf certificates need service:write.
    assert (await deny.get("/v1/connect/ca/configuration", headers=h)).status_code == 403
    assert (await deny.get("/v1/connect/ca/configuration", headers=root)).status_code == 200
    assert (await deny.get("/v1/agent/connect/ca/leaf/web", headers=h)).status_code == 200
    assert (await deny.get("/v1/agent/connect/ca/leaf/db", headers=h)).status_code == 403
    assert (await deny.get("/v1/connect/ca/roots")).status_code == 200  # roots are public
