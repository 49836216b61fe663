"""HTTP contract of /v1/acl/* and of KV enforcement: statuses, texts, headers (docs/compat/acl.md)."""

from __future__ import annotations

import base64

import httpx

from .conftest import ROOT, make_token

M = {"X-Consul-Token": ROOT}
ANON_ACC = "00000000-0000-0000-0000-000000000002"
GM = "00000000-0000-0000-0000-000000000001"


async def test_disabled_answers_401(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/v1/acl/tokens"), ("PUT", "/v1/acl/bootstrap"), ("GET", "/v1/acl/list"), ("PUT", "/v1/acl/create")]:
        r = await client.request(method, path)
        assert (r.status_code, r.text) == (401, "ACL support disabled")
    r = await client.put("/v1/agent/token/default", json={"Token": "x"})
    assert (r.status_code, r.text) == (401, "ACL support disabled")


async def test_builtins_and_bootstrap(deny: httpx.AsyncClient) -> None:
    r = await deny.get("/v1/acl/tokens", headers=M)
    assert r.status_code == 200 and r.headers["X-Consul-Default-ACL-Policy"] == "deny"
    toks = {t["AccessorID"]: t for t in r.json()}
    assert toks[ANON_ACC]["SecretID"] == "anonymous"
    mgmt = [t for t in toks.values() if t["SecretID"] == ROOT][0]
    assert mgmt["Description"] == "Initial Management Token"
    assert mgmt["Policies"] == [{"ID": GM, "Name": "global-management"}]
    r = await deny.put("/v1/acl/bootstrap")
    assert r.status_code == 403
    assert r.text.startswith("Permission denied: ACL bootstrap no longer allowed (reset index: ")
    r = await deny.get("/v1/acl/policies", headers=M)
    assert [p["Name"] for p in r.json()] == ["global-management"]
    assert "Rules" not in r.json()[0]


async def test_permission_and_not_found_texts(deny: httpx.AsyncClient) -> None:
    r = await deny.get("/v1/acl/tokens")
    assert r.status_code == 403
    assert r.text == (
        "Permission denied: anonymous token lacks permission 'acl:read'. The anonymous token is used "
        "implicitly when a request does not specify a token."
    )
    r = await deny.get("/v1/acl/tokens", headers={"X-Consul-Token": "no-such-secret"})
    assert (r.status_code, r.text) == (403, "ACL not found")
    r = await deny.get("/v1/kv/foo", params={"token": "no-such-secret"})
    assert (r.status_code, r.text) == (403, "ACL not found")


async def test_token_sources(deny: httpx.AsyncClient) -> None:
    for kw in ({"headers": {"X-Consul-Token": ROOT}}, {"headers": {"Authorization": f"Bearer {ROOT}"}}, {"params": {"token": ROOT}}):
        r = await deny.get("/v1/acl/token/self", **kw)  # type: ignore[arg-type]
        assert r.status_code == 200 and r.json()["SecretID"] == ROOT
    r = await deny.get("/v1/acl/token/self", headers={"Authorization": f"Basic {ROOT}"})
    assert r.json()["AccessorID"] == ANON_ACC


async def test_token_crud(allow: httpx.AsyncClient) -> None:
    acc = "00000000-DEAD-BEEF-0000-000000000000"
    r = await allow.put("/v1/acl/token", json={"AccessorID": acc, "Description": "d", "NodeIdentities": [{"NodeName": "n1", "Datacenter": "dc1"}]}, headers=M)
    assert r.status_code == 200, r.text
    assert r.json()["AccessorID"] == acc and r.json()["NodeIdentities"] == [{"NodeName": "n1", "Datacenter": "dc1"}]
    r = await allow.put("/v1/acl/token", json={"AccessorID": acc}, headers=M)
    assert (r.status_code, r.text) == (500, "Invalid Token: AccessorID is already in use")
    r = await allow.put("/v1/acl/token", json={"AccessorID": "00000000-0000-0000-0000-000000000099"}, headers=M)
    assert r.status_code == 500 and "are reserved" in r.text
    r = await allow.put(f"/v1/acl/token/{acc}", json={"AccessorID": "other", "Description": "x"}, headers=M)
    assert (r.status_code, r.text) == (400, "Token Accessor ID in URL and payload do not match")
    r = await allow.put(f"/v1/acl/token/{acc}", json={"Description": "updated"}, headers=M)
    assert r.json()["Description"] == "updated" and "NodeIdentities" not in r.json()
    r = await allow.put(f"/v1/acl/token/{acc}", json={"SecretID": "00000000-1111-2222-3333-444444444444"}, headers=M)
    assert (r.status_code, r.text) == (500, "Changing a token's SecretID is not permitted")
    r = await allow.put(f"/v1/acl/token/{acc}/clone", json={"Description": "cloned"}, headers=M)
    assert r.status_code == 200 and r.json()["Description"] == "cloned" and r.json()["AccessorID"] != acc
    r = await allow.get("/v1/acl/token/unknown", headers=M)
    assert r.status_code == 500
    r = await allow.get("/v1/acl/token/11111111-2222-3333-4444-555555555555", headers=M)
    assert (r.status_code, r.text) == (403, "ACL not found")
    r = await allow.delete(f"/v1/acl/token/{acc}", headers=M)
    assert (r.status_code, r.json()) == (200, True)
    r = await allow.get(f"/v1/acl/token/{acc}", headers=M)
    assert r.status_code == 403
    r = await allow.delete(f"/v1/acl/token/{ANON_ACC}", headers=M)
    assert (r.status_code, r.text) == (500, "Delete operation not permitted on the anonymous token")
    r = await allow.put("/v1/acl/token", json={"ExpirationTTL": "10m", "Local": True}, headers=M)
    assert r.json()["ExpirationTime"] and r.json()["Local"] is True
    r = await allow.put("/v1/acl/token", json={"ExpirationTTL": "10s"}, headers=M)
    assert r.status_code == 500
    r = await allow.put("/v1/acl/token", json={"TemplatedPolicies": [{"TemplateName": "builtin/service", "TemplateVariables": {"Name": "web"}}]}, headers=M)
    assert r.json()["TemplatedPolicies"] == [{"TemplateName": "builtin/service", "TemplateVariables": {"name": "web"}}]


async def test_secret_hidden_without_acl_write(deny: httpx.AsyncClient) -> None:
    reader = await make_token(deny, 'acl = "read"', "reader")
    r = await deny.get("/v1/acl/tokens", headers={"X-Consul-Token": reader["SecretID"]})
    assert r.status_code == 200 and {t["SecretID"] for t in r.json()} == {"<hidden>"}
    r = await deny.put("/v1/acl/token", json={}, headers={"X-Consul-Token": reader["SecretID"]})
    assert r.status_code == 403 and r.text.endswith("lacks permission 'acl:write'")


async def test_policy_and_role_crud(deny: httpx.AsyncClient) -> None:
    r = await deny.put("/v1/acl/policy", json={"name": "kv-read", "rules": '{"key_prefix": {"": {"policy": "read"}}}'}, headers=M)
    assert r.status_code == 200, r.text
    pid = r.json()["ID"]
    r = await deny.put("/v1/acl/policy", json={"Name": "kv-read"}, headers=M)
    assert (r.status_code, r.text) == (500, 'Invalid Policy: A Policy with Name "kv-read" already exists')
    r = await deny.put("/v1/acl/policy", json={"Name": "bad name"}, headers=M)
    assert r.text == "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed"
    r = await deny.put("/v1/acl/policy", json={"Name": "x", "Rules": 'key "a" { policy = "bogus" }'}, headers=M)
    assert r.status_code == 500 and "Invalid key policy" in r.text
    r = await deny.put("/v1/acl/policy", json={"ID": pid, "Name": "y"}, headers=M)
    assert (r.status_code, r.text) == (400, "Cannot specify the ID when creating a new policy")
    r = await deny.get("/v1/acl/policy/name/kv-read", headers=M)
    assert r.json()["ID"] == pid
    r = await deny.put(f"/v1/acl/policy/{GM}", json={"Name": "global-management", "Rules": ""}, headers=M)
    assert r.text == "Changing the Rules for the builtin global-management policy is not permitted"
    r = await deny.delete(f"/v1/acl/policy/{GM}", headers=M)
    assert r.text == "Delete operation not permitted on the builtin global-management policy"
    r = await deny.put("/v1/acl/role", json={"Name": "r1", "Policies": [{"ID": pid}], "ServiceIdentities": [{"ServiceName": "web"}]}, headers=M)
    assert r.status_code == 200, r.text
    rid = r.json()["ID"]
    assert r.json()["Policies"] == [{"ID": pid, "Name": "kv-read"}]
    r = await deny.get("/v1/acl/role/name/r1", headers=M)
    assert r.json()["ID"] == rid
    r = await deny.put("/v1/acl/token", json={"Roles": [{"Name": "r1"}]}, headers=M)
    tok = r.json()
    assert tok["Roles"] == [{"ID": rid, "Name": "r1"}]
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await deny.get("/v1/kv/any", headers=h)).status_code == 404  # key:read through the role's policy
    r = await deny.delete(f"/v1/acl/policy/{pid}", headers=M)
    assert r.json() is True
    r = await deny.get(f"/v1/acl/policy/{pid}", headers=M)
    assert (r.status_code, r.text) == (404, "Requested policy does not exist: ACL not found")
    r = await deny.get(f"/v1/acl/role/{rid}", headers=M)
    assert "Policies" not in r.json()  # the dangling link is dropped on read
    assert (await deny.get("/v1/kv/any", headers=h)).status_code == 403  # and grants nothing
    r = await deny.delete(f"/v1/acl/role/{rid}", headers=M)
    assert r.json() is True
    r = await deny.get(f"/v1/acl/role/{rid}", headers=M)
    assert r.status_code == 404


async def test_kv_enforcement_and_filtering(deny: httpx.AsyncClient) -> None:
    for k in ("app/a", "app/b", "secret/c", "app/sub/d"):
        assert (await deny.put(f"/v1/kv/{k}", content=b"v", headers=M)).json() is True
    tok = await make_token(deny, 'key_prefix "app/" { policy = "write" }\nkey "app/b" { policy = "deny" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await deny.get("/v1/kv/app/a", headers=h)).status_code == 200
    r = await deny.get("/v1/kv/app/b", headers=h)
    assert r.status_code == 403
    assert r.text == f"Permission denied: token with AccessorID '{tok['AccessorID']}' lacks permission 'key:read' on \"app/b\""
    assert (await deny.get("/v1/kv/secret/nope", headers=h)).status_code == 403  # 403 even when absent
    r = await deny.put("/v1/kv/secret/c", content=b"x", headers=h)
    assert r.status_code == 403 and "'key:write' on \"secret/c\"" in r.text
    r = await deny.get("/v1/kv/", params={"recurse": ""}, headers=h)
    assert r.status_code == 200
    assert [e["Key"] for e in r.json()] == ["app/a", "app/sub/d"]
    assert r.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    assert base64.b64decode(r.json()[0]["Value"]) == b"v"
    r = await deny.get("/v1/kv/app/", params={"keys": "", "separator": "/"}, headers=h)
    assert r.json() == ["app/a", "app/sub/"]
    r = await deny.get("/v1/kv/app/", params={"recurse": ""}, headers=M)
    assert "X-Consul-Results-Filtered-By-ACLs" not in r.headers
    r = await deny.get("/v1/kv/", params={"recurse": ""})  # anonymous: nothing readable, no header
    assert r.status_code == 404 and "X-Consul-Results-Filtered-By-ACLs" not in r.headers
    r = await deny.delete("/v1/kv/app/", params={"recurse": ""}, headers=h)
    assert r.status_code == 403  # app/b is denied under the prefix
    assert (await deny.delete("/v1/kv/app/sub/", params={"recurse": ""}, headers=h)).json() is True
    assert (await deny.delete("/v1/kv/app/a", headers=h)).json() is True


async def test_kv_default_allow_anonymous(allow: httpx.AsyncClient) -> None:
    assert (await allow.put("/v1/kv/k", content=b"v")).json() is True
    assert (await allow.get("/v1/kv/k")).status_code == 200
    r = await allow.get("/v1/snapshot", params={"token": "anonymous"})
    assert r.status_code == 403


async def test_agent_token_and_default_token(deny: httpx.AsyncClient) -> None:
    tok = await make_token(deny, 'key_prefix "" { policy = "read" }')
    assert (await deny.put("/v1/kv/x", content=b"1", headers=M)).json() is True
    assert (await deny.get("/v1/kv/x")).status_code == 403
    r = await deny.put("/v1/agent/token/default", json={"Token": tok["SecretID"]})
    assert r.status_code == 403
    r = await deny.put("/v1/agent/token/default", json={"Token": tok["SecretID"]}, headers=M)
    assert r.status_code == 200
    assert (await deny.get("/v1/kv/x")).status_code == 200
    r = await deny.put("/v1/agent/token/bogus", json={"Token": "x"}, headers=M)
    assert (r.status_code, r.text) == (404, 'Token "bogus" is unknown')


async def test_legacy_api(deny: httpx.AsyncClient) -> None:
    r = await deny.get("/v1/acl/list", headers=M)
    assert r.status_code == 200
    assert [t["ID"] for t in r.json()] == [ROOT] and r.json()[0]["Type"] == "management"
    rules = 'key "" { policy = "read" }\nkey "private/" { policy = "deny" }\nservice "foo-" { policy = "write" }'
    r = await deny.put("/v1/acl/create", json={"Name": "legacy", "Type": "client", "Rules": rules}, headers=M)
    sec = r.json()["ID"]
    r = await deny.get(f"/v1/acl/info/{sec}")
    assert r.json()[0]["Rules"] == rules and r.json()[0]["Name"] == "legacy"
    assert (await deny.get("/v1/acl/info/" + "1" * 36)).json() == []
    h = {"X-Consul-Token": sec}
    await deny.put("/v1/kv/foo", content=b"1", headers=M)
    await deny.put("/v1/kv/private/foo", content=b"1", headers=M)
    assert (await deny.get("/v1/kv/foo", headers=h)).status_code == 200
    assert (await deny.put("/v1/kv/foo", content=b"2", headers=h)).status_code == 403
    assert (await deny.get("/v1/kv/private/foo", headers=h)).status_code == 403
    assert (await deny.get("/v1/acl/list", headers=h)).status_code == 403
    r = await deny.put(f"/v1/acl/clone/{sec}", headers=M)
    clone = r.json()["ID"]
    assert clone != sec
    assert (await deny.put("/v1/acl/update", json={"Name": "x"}, headers=M)).status_code == 400
    assert (await deny.put("/v1/acl/destroy/anonymous", headers=M)).status_code == 403
    assert (await deny.put(f"/v1/acl/destroy/{clone}", headers=M)).json() is True
    assert (await deny.put(f"/v1/acl/destroy/{clone}", headers=M)).json() is True
    r = await deny.post("/v1/acl/rules/translate", content=b'agent "" { policy = "write" }', headers=M)
    assert r.text == 'agent_prefix "" {\n  policy = "write"\n}'
    r = await deny.get("/v1/acl/replication")
    assert r.json()["Enabled"] is False


async def test_templated_policies(allow: httpx.AsyncClient) -> None:
    r = await allow.get("/v1/acl/templated-policies", headers=M)
    assert r.json()["builtin/service"]["TemplateName"] == "builtin/service"
    r = await allow.post("/v1/acl/templated-policy/preview/builtin/service", json={"Name": "web"}, headers=M)
    assert r.json()["Name"].startswith("synthetic-policy-") and 'service "web"' in r.json()["Rules"]
    r = await allow.get("/v1/acl/templated-policy/name/builtin/dns", headers=M)
    assert r.json()["TemplateName"] == "builtin/dns"


async def test_auth_method_and_binding_rule(allow: httpx.AsyncClient) -> None:
    from .test_login import RSA_KEY, pem

    cfg = {"BoundIssuer": "i", "JWTValidationPubKeys": [pem(RSA_KEY)]}
    r = await allow.put("/v1/acl/auth-method", json={"Name": "m", "Type": "jwt", "Config": cfg}, headers=M)
    assert r.status_code == 200 and r.json()["Config"] == cfg
    r = await allow.put("/v1/acl/auth-method", json={"Name": "n", "Type": "nope"}, headers=M)
    assert r.status_code == 500
    r = await allow.put("/v1/acl/binding-rule", json={"AuthMethod": "m", "BindType": "service", "BindName": "web"}, headers=M)
    rid = r.json()["ID"]
    r = await allow.get("/v1/acl/binding-rules", params={"authmethod": "m"}, headers=M)
    assert [b["ID"] for b in r.json()] == [rid]
    assert (await allow.delete("/v1/acl/auth-method/m", headers=M)).json() is True
    assert (await allow.get(f"/v1/acl/binding-rule/{rid}", headers=M)).status_code == 404
    assert (await allow.get("/v1/acl/auth-method/m", headers=M)).status_code == 404
    r = await allow.post("/v1/acl/login", json={"AuthMethod": "none", "BearerToken": "x"})
    assert r.status_code == 403


async def test_blocking_list_wakes_on_acl_write(deny: httpx.AsyncClient) -> None:
    import asyncio

    r = await deny.get("/v1/acl/policies", headers=M)
    idx = r.headers["X-Consul-Index"]

    async def later() -> None:
        await asyncio.sleep(0.05)
        await deny.put("/v1/acl/policy", json={"Name": "late"}, headers=M)

    task = asyncio.create_task(later())
    r = await deny.get("/v1/acl/policies", params={"index": idx, "wait": "5s"}, headers=M)
    await task
    assert int(r.headers["X-Consul-Index"]) > int(idx)
    assert "late" in {p["Name"] for p in r.json()}


async def test_policy_and_role_item_routes_share_their_texts(deny: httpx.AsyncClient) -> None:
    """Policies and roles are served by the same handlers: the same texts for a missing ID, a
    by-name write, and an unknown ID, each naming its own kind."""
    for kind in ("policy", "role"):
        r = await deny.put(f"/v1/acl/{kind}/", json={}, headers=M)
        assert (r.status_code, r.text) == (400, f"Missing {kind} ID")
        r = await deny.put(f"/v1/acl/{kind}/name/x", json={}, headers=M)
        assert r.status_code == 405
        r = await deny.get(f"/v1/acl/{kind}/name/none", headers=M)
        before = (r.status_code, r.text)
        r = await deny.get(f"/v1/acl/{kind}/00000000-0000-0000-0000-0000000000ff", headers=M)
        assert r.status_code == before[0] and r.status_code in (403, 404)


async def test_dev_agent_reads_the_bootstrap_reset_file_in_its_working_directory(
    deny: httpx.AsyncClient, tmp_path: object, monkeypatch: object
) -> None:
    """A -dev agent has no data dir: like Consul, it reads ``acl-bootstrap-reset`` from its
    working directory, and the right index there allows one more bootstrap."""
    import os
    import re

    r = await deny.put("/v1/acl/bootstrap")
    index = re.search(r"reset index: (\d+)\)", r.text)
    assert r.status_code == 403 and index
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    with open(os.path.join(str(tmp_path), "acl-bootstrap-reset"), "w", encoding="utf-8") as f:
        f.write(index.group(1))
    r = await deny.put("/v1/acl/bootstrap")
    assert r.status_code == 200, r.text
    assert r.json()["Policies"] == [{"ID": GM, "Name": "global-management"}]
