"""Session (docs/compat/sessions.md) and transaction (docs/compat/kv.md#transactions) contract tests."""

from __future__ import annotations

import base64

import httpx

from muster.process import AgentProcess


async def create(c: httpx.AsyncClient, body: object = None) -> httpx.Response:
    return await c.put("/v1/session/create", json=body) if body is not None else await c.put("/v1/session/create")


async def test_session_defaults(client: httpx.AsyncClient) -> None:
    r = await create(client)
    assert r.status_code == 200
    sid = r.json()["ID"]
    [s] = (await client.get(f"/v1/session/info/{sid}")).json()
    assert s["Node"] == "test-node" and s["Behavior"] == "release"
    assert s["LockDelay"] == 15_000_000_000 and s["TTL"] == ""
    assert s["NodeChecks"] == ["serfHealth"]


async def test_session_patroni_style(client: httpx.AsyncClient) -> None:
    body = {"name": "pg-member1", "checks": [], "lockdelay": "0.001s", "behavior": "delete", "ttl": "15.0s"}
    sid = (await create(client, body)).json()["ID"]
    [s] = (await client.get(f"/v1/session/info/{sid}")).json()
    assert s["NodeChecks"] is None and s["TTL"] == "15.0s" and s["LockDelay"] == 1_000_000
    assert s["Behavior"] == "delete"


async def test_lock_delay_small_number_means_seconds(client: httpx.AsyncClient) -> None:
    sid = (await create(client, {"LockDelay": 5})).json()["ID"]
    [s] = (await client.get(f"/v1/session/info/{sid}")).json()
    assert s["LockDelay"] == 5_000_000_000


async def test_session_errors(client: httpx.AsyncClient) -> None:
    r = await create(client, {"TTL": "5s"})
    assert r.status_code == 500 and r.text == "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
    r = await create(client, {"TTL": "abc"})
    assert r.status_code == 500 and r.text.startswith("Session TTL 'abc' invalid: ")
    r = await create(client, {"Behavior": "explode"})
    assert r.status_code == 500 and r.text == "Invalid Behavior setting 'explode'"
    r = await create(client, {"Node": "ghost"})
    assert r.status_code == 500 and r.text == "Missing node registration"
    r = await create(client, {"Checks": ["nope"]})
    assert r.status_code == 500 and r.text == "Missing check 'nope' registration"
    r = await client.put("/v1/session/create", content=b"{bad json")
    assert r.status_code == 400 and r.text.startswith("Request decode failed: ")
    r = await client.put("/v1/session/create", json=[1, 2])
    assert r.status_code == 400
    assert (await client.get("/v1/session/list")).json() == []


async def test_session_renew_destroy_info(client: httpx.AsyncClient) -> None:
    sid = (await create(client, {"TTL": "30s"})).json()["ID"]
    r = await client.put(f"/v1/session/renew/{sid}")
    assert r.status_code == 200 and r.json()[0]["ID"] == sid
    r = await client.put("/v1/session/renew/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and r.text == "Session id '00000000-0000-0000-0000-000000000000' not found"
    assert (await client.put("/v1/session/destroy/unknown")).json() is True
    assert (await client.put(f"/v1/session/destroy/{sid}")).json() is True
    r = await client.get(f"/v1/session/info/{sid}")
    assert r.json() == [] and "X-Consul-Index" in r.headers
    assert (await client.get("/v1/session/node/test-node")).json() == []


async def test_session_invalidated_when_check_goes_critical(client: httpx.AsyncClient) -> None:
    reg = {
        "Node": "test-node",
        "Address": "127.0.0.1",
        "Check": {"CheckID": "web-ok", "Name": "web", "Status": "passing"},
        "SkipNodeUpdate": True,
    }
    assert (await client.put("/v1/catalog/register", json=reg)).status_code == 200
    sid = (await create(client, {"Checks": ["web-ok"], "LockDelay": 0})).json()["ID"]
    [s] = (await client.get(f"/v1/session/info/{sid}")).json()
    assert s["NodeChecks"] == ["serfHealth", "web-ok"]
    assert (await client.put("/v1/kv/held", params={"acquire": sid}, content=b"x")).json() is True
    reg["Check"]["Status"] = "critical"  # type: ignore[index]
    await client.put("/v1/catalog/register", json=reg)
    assert (await client.get(f"/v1/session/info/{sid}")).json() == []
    assert "Session" not in (await client.get("/v1/kv/held")).json()[0]


async def test_session_ttl_expiry(agent: AgentProcess, client: httpx.AsyncClient) -> None:
    import asyncio

    from muster.server import server as srv_mod

    sid = (await create(client, {"TTL": "10s"})).json()["ID"]
    # Speed the timer up: re-arm it as if the TTL were 0.05 s (the multiplier still applies).
    handle = agent.server._session_timers[sid]
    handle.cancel()
    loop = asyncio.get_running_loop()
    agent.server._session_timers[sid] = loop.call_later(0.05 * srv_mod.SESSION_TTL_MULTIPLIER, agent.server._expire_session, sid)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not (await client.get(f"/v1/session/info/{sid}")).json():
            break
    assert (await client.get(f"/v1/session/info/{sid}")).json() == []


def kv(verb: str, key: str, value: bytes | None = None, **extra: object) -> dict[str, object]:
    op: dict[str, object] = {"Verb": verb, "Key": key}
    if value is not None:
        op["Value"] = base64.b64encode(value).decode()
    op.update(extra)
    return {"KV": op}


async def test_txn_success_and_results(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/txn", json=[kv("set", "t/a", b"1"), kv("set", "t/b", b"2", Flags=7), kv("get", "t/a"), kv("get-tree", "t/")])
    assert r.status_code == 200
    body = r.json()
    assert body["Errors"] is None
    res = body["Results"]
    assert res[0]["KV"]["Value"] is None and res[1]["KV"]["Flags"] == 7
    assert base64.b64decode(res[2]["KV"]["Value"]) == b"1"
    assert [x["KV"]["Key"] for x in res[3:]] == ["t/a", "t/b"]


async def test_txn_rollback_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    await client.put("/v1/kv/t/x", content=b"old")
    r = await client.put("/v1/txn", json=[kv("set", "t/x", b"new"), kv("delete", "t/y"), kv("check-index", "t/x", Index=999999)])
    assert r.status_code == 409
    body = r.json()
    assert body["Results"] is None
    assert body["Errors"][0]["OpIndex"] == 2
    assert body["Errors"][0]["What"].startswith('failed index check for key "t/x", current modify index')
    [e] = (await client.get("/v1/kv/t/x")).json()
    assert base64.b64decode(e["Value"]) == b"old"


async def test_txn_rollback_restores_deleted_and_created_keys(client: httpx.AsyncClient) -> None:
    await client.put("/v1/kv/r/keep", content=b"1")
    before = (await client.get("/v1/kv/r/", params={"recurse": ""})).json()
    r = await client.put("/v1/txn", json=[kv("delete-tree", "r/"), kv("set", "r/new", b"n"), kv("get", "r/absent")])
    assert r.status_code == 409
    assert r.json()["Errors"][0]["What"] == 'key "r/absent" doesn\'t exist'
    after = (await client.get("/v1/kv/r/", params={"recurse": ""})).json()
    assert after == before


async def test_txn_limits_and_bad_input(client: httpx.AsyncClient) -> None:
    ops = [kv("set", f"k{i}", b"v") for i in range(129)]
    r = await client.put("/v1/txn", json=ops)
    assert r.status_code == 413 and r.text == "Transaction contains too many operations (129 > 128)"
    assert (await client.get("/v1/kv/k0")).status_code == 404
    r = await client.put("/v1/txn", content=b"[{")
    assert r.status_code == 400 and r.text.startswith("Failed to parse body: ")
    r = await client.put("/v1/txn", json=[{"KV": {"Verb": "set", "Key": "b", "Value": "!!notbase64"}}])
    assert r.status_code == 400
    r = await client.put("/v1/txn", json=[kv("set", "big", b"x" * (512 * 1024 + 1))])
    assert r.status_code == 413
    r = await client.put("/v1/txn", json=[{"KV": {"Verb": "explode", "Key": "a"}}])
    assert r.status_code == 409


async def test_txn_read_only_has_leader_headers_no_index(client: httpx.AsyncClient) -> None:
    await client.put("/v1/kv/ro", content=b"1")
    r = await client.put("/v1/txn", json=[kv("get", "ro")])
    assert r.status_code == 200
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert "X-Consul-Index" not in r.headers


async def test_txn_catalog_ops(client: httpx.AsyncClient) -> None:
    ops = [
        {"Node": {"Verb": "set", "Node": {"Node": "ext", "Address": "10.0.0.9"}}},
        {"Service": {"Verb": "set", "Node": "ext", "Service": {"Service": "db", "Port": 5432}}},
        {"Check": {"Verb": "set", "Check": {"Node": "ext", "CheckID": "db-up", "Name": "db", "ServiceID": "db", "Status": "passing"}}},
    ]
    r = await client.put("/v1/txn", json=ops)
    assert r.status_code == 200, r.text
    res = r.json()["Results"]
    assert res[0]["Node"]["Node"] == "ext" and res[1]["Service"]["Port"] == 5432
    # A service result is the NodeService object the catalog reads render.
    got = await client.get("/v1/catalog/node/ext")
    assert res[1]["Service"] == got.json()["Services"]["db"]
    assert res[1]["Service"]["Weights"] == {"Passing": 1, "Warning": 1} and res[1]["Service"]["ID"] == "db"
    assert res[2]["Check"]["ServiceName"] == "db"
