"""KV history under ACLs (docs/kv-history.md#acls): reading needs ``key:read`` on the key
(``?recurse`` leaves out unreadable keys), rollback ``key:write``; each version names the
AccessorID of the token that made it."""

from __future__ import annotations

import httpx

from .conftest import ROOT, make_token

H = "/v1/muster/kv-history/"


async def test_history_read_and_rollback_permissions(deny: httpx.AsyncClient) -> None:
    root = {"X-Consul-Token": ROOT}
    writer = await make_token(deny, 'key_prefix "app/" { policy = "write" }', "w")
    reader = await make_token(deny, 'key_prefix "app/" { policy = "read" }', "r")
    wh = {"X-Consul-Token": writer["SecretID"]}
    rh = {"X-Consul-Token": reader["SecretID"]}
    assert (await deny.put("/v1/kv/app/x", content=b"1", headers=wh)).json() is True
    assert (await deny.put("/v1/kv/app/x", content=b"2", headers=wh)).json() is True
    assert (await deny.put("/v1/kv/other", content=b"o", headers=root)).json() is True

    vs = (await deny.get(H + "app/x", headers=rh)).json()
    assert [v["AccessorID"] for v in vs] == [writer["AccessorID"]] * 2
    r = await deny.get(H + "other", headers=rh)
    assert r.status_code == 403 and "'key:read' on \"other\"" in r.text
    assert (await deny.get(H + "app/x")).status_code == 403  # anonymous: default deny

    r = await deny.get(H, params={"recurse": ""}, headers=rh)
    assert r.status_code == 200 and {v["Key"] for v in r.json()} == {"app/x"}
    assert r.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"

    old = vs[1]["ModifyIndex"]
    r = await deny.put(H + "app/x", params={"rollback": str(old)}, headers=rh)
    assert r.status_code == 403 and "'key:write' on \"app/x\"" in r.text
    r = await deny.put(H + "app/x", params={"rollback": str(old)}, headers=wh)
    assert r.status_code == 200 and r.json() is True
    top = (await deny.get(H + "app/x", headers=rh)).json()[0]
    assert top["Operation"] == "rollback" and top["AccessorID"] == writer["AccessorID"]
