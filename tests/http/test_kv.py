"""KV contract tests (docs/compat/kv.md, docs/compat/blocking.md): status codes, texts, headers, lock semantics."""

from __future__ import annotations

import asyncio
import base64

import httpx


async def put(c: httpx.AsyncClient, key: str, body: bytes = b"", **params: str) -> httpx.Response:
    return await c.put(f"/v1/kv/{key}", content=body, params=params)


async def test_put_get_roundtrip_and_headers(client: httpx.AsyncClient) -> None:
    r = await put(client, "app/cfg", b"hello")
    assert r.status_code == 200 and r.json() is True
    r = await client.get("/v1/kv/app/cfg")
    assert r.status_code == 200
    [e] = r.json()
    assert e["Key"] == "app/cfg" and base64.b64decode(e["Value"]) == b"hello"
    assert "Session" not in e
    assert r.headers["X-Consul-Index"] == str(e["ModifyIndex"])
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert r.headers["X-Consul-LastContact"] == "0"
    assert r.headers["X-Consul-Default-ACL-Policy"] == "allow"


async def test_single_key_index_is_its_modify_index(client: httpx.AsyncClient) -> None:
    await put(client, "leader", b"a")
    r1 = await client.get("/v1/kv/leader")
    await put(client, "other", b"b")
    r2 = await client.get("/v1/kv/leader")
    assert r1.headers["X-Consul-Index"] == r2.headers["X-Consul-Index"]


async def test_missing_key_404_empty_body_with_index(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/kv/nope")
    assert r.status_code == 404 and r.content == b""
    assert int(r.headers["X-Consul-Index"]) >= 1


async def test_empty_value_is_null(client: httpx.AsyncClient) -> None:
    await put(client, "empty")
    [e] = (await client.get("/v1/kv/empty")).json()
    assert e["Value"] is None


async def test_identical_put_does_not_bump_modify_index(client: httpx.AsyncClient) -> None:
    await put(client, "same", b"v")
    i1 = (await client.get("/v1/kv/same")).json()[0]["ModifyIndex"]
    await put(client, "same", b"v")
    i2 = (await client.get("/v1/kv/same")).json()[0]["ModifyIndex"]
    assert i1 == i2


async def test_missing_key_name(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/kv/")
    assert r.status_code == 400 and r.text == "Missing key name"
    r = await client.put("/v1/kv/", content=b"x")
    assert r.status_code == 400 and r.text == "Missing key name"
    r = await client.delete("/v1/kv/")
    assert r.status_code == 400


async def test_recurse_keys_separator(client: httpx.AsyncClient) -> None:
    for k in ("web/a", "web/sub/b", "web/sub/c", "webx", "z"):
        await put(client, k, b"1")
    r = await client.get("/v1/kv/web/", params={"recurse": "false"})  # presence flag: still recurses
    assert [e["Key"] for e in r.json()] == ["web/a", "web/sub/b", "web/sub/c"]
    r = await client.get("/v1/kv/web/", params={"keys": "", "separator": "/"})
    assert r.json() == ["web/a", "web/sub/"]
    r = await client.get("/v1/kv/", params={"keys": ""})
    assert r.json() == ["web/a", "web/sub/b", "web/sub/c", "webx", "z"]
    r = await client.get("/v1/kv/nothing/", params={"keys": ""})
    assert r.status_code == 404
    r = await client.get("/v1/kv/nothing/", params={"recurse": ""})
    assert r.status_code == 404 and "X-Consul-Index" in r.headers


async def test_raw(client: httpx.AsyncClient) -> None:
    await put(client, "raw", b"\x00\x01bin")
    r = await client.get("/v1/kv/raw", params={"raw": ""})
    assert r.content == b"\x00\x01bin"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_flags_and_cas(client: httpx.AsyncClient) -> None:
    r = await put(client, "c", b"1", flags="42", cas="0")
    assert r.json() is True
    r = await put(client, "c", b"2", cas="0")
    assert r.json() is False
    [e] = (await client.get("/v1/kv/c")).json()
    assert e["Flags"] == 42
    assert (await put(client, "c", b"3", cas=str(e["ModifyIndex"] + 100))).json() is False
    assert (await put(client, "c", b"3", cas=str(e["ModifyIndex"]))).json() is True
    big = str(2**64 - 1)
    assert (await put(client, "f", b"", flags=big)).json() is True
    assert (await client.get("/v1/kv/f")).json()[0]["Flags"] == 2**64 - 1


async def test_bad_numbers_are_500_with_go_text(client: httpx.AsyncClient) -> None:
    r = await put(client, "x", b"1", flags="abc")
    assert r.status_code == 500 and r.text == 'strconv.ParseUint: parsing "abc": invalid syntax'
    r = await put(client, "x", b"1", cas="-1")
    assert r.status_code == 500


async def test_conflicting_flags(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/kv/x?cas=1&acquire=abc", content=b"")
    assert r.status_code == 400 and r.text.startswith("Conflicting flags: ")
    r = await client.delete("/v1/kv/x?recurse&cas=1")
    assert r.status_code == 400


async def test_value_too_large(client: httpx.AsyncClient, agent: object) -> None:
    r = await put(client, "big", b"x" * (512 * 1024 + 1))
    assert r.status_code == 413
    assert r.text.startswith("Request body(524289 bytes) too large, max size: 524288 bytes.")
    assert (await client.get("/v1/kv/big")).status_code == 404
    assert (await put(client, "big", b"x" * (512 * 1024))).status_code == 200


async def test_delete_semantics(client: httpx.AsyncClient) -> None:
    await put(client, "d/1", b"1")
    await put(client, "d/2", b"2")
    assert (await client.delete("/v1/kv/missing")).json() is True
    assert (await client.delete("/v1/kv/missing", params={"cas": "5"})).json() is True
    [e] = (await client.get("/v1/kv/d/1")).json()
    assert (await client.delete("/v1/kv/d/1", params={"cas": "0"})).json() is False
    assert (await client.delete("/v1/kv/d/1", params={"cas": str(e["ModifyIndex"])})).json() is True
    assert (await client.delete("/v1/kv/d/", params={"recurse": ""})).json() is True
    assert (await client.get("/v1/kv/d/", params={"recurse": ""})).status_code == 404


async def test_prefix_index_never_goes_backwards_on_delete(client: httpx.AsyncClient) -> None:
    await put(client, "p/a", b"1")
    await put(client, "p/b", b"1")
    i1 = int((await client.get("/v1/kv/p/", params={"recurse": ""})).headers["X-Consul-Index"])
    await client.delete("/v1/kv/p/b")
    i2 = int((await client.get("/v1/kv/p/", params={"recurse": ""})).headers["X-Consul-Index"])
    assert i2 > i1


async def test_blocking_get_wakes_on_change(client: httpx.AsyncClient) -> None:
    await put(client, "w", b"1")
    idx = (await client.get("/v1/kv/w")).headers["X-Consul-Index"]

    async def later() -> None:
        await asyncio.sleep(0.1)
        await put(client, "w", b"2")

    t = asyncio.create_task(later())
    r = await client.get("/v1/kv/w", params={"index": idx, "wait": "5s"})
    await t
    assert int(r.headers["X-Consul-Index"]) > int(idx)
    assert base64.b64decode(r.json()[0]["Value"]) == b"2"


async def test_blocking_get_times_out_with_same_index(client: httpx.AsyncClient) -> None:
    await put(client, "t", b"1")
    idx = (await client.get("/v1/kv/t")).headers["X-Consul-Index"]
    r = await client.get("/v1/kv/t", params={"index": idx, "wait": "100ms"})
    assert r.headers["X-Consul-Index"] == idx


async def test_blocking_on_missing_key_wakes_when_created(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/kv/later")
    idx = r.headers["X-Consul-Index"]

    async def later() -> None:
        await asyncio.sleep(0.1)
        await put(client, "later", b"x")

    t = asyncio.create_task(later())
    r = await client.get("/v1/kv/later", params={"index": idx, "wait": "5s"})
    await t
    assert r.status_code == 200


async def test_bad_index_and_wait(client: httpx.AsyncClient) -> None:
    for bad in ("-1", "abc", str(2**64), "1.5"):
        r = await client.get("/v1/kv/x", params={"index": bad})
        assert r.status_code == 400 and r.text == "Invalid index", bad
    for bad in ("999", "abc", "-1s", "5x"):
        r = await client.get("/v1/kv/x", params={"index": "1", "wait": bad})
        assert r.status_code == 400 and r.text == "Invalid wait time", bad
    r = await client.get("/v1/kv/x?stale&consistent")
    assert r.status_code == 400 and r.text == "Cannot specify ?stale with ?consistent, conflicting semantics."


async def test_huge_wait_is_capped_not_rejected(client: httpx.AsyncClient) -> None:
    # wait=999h is legal and capped at max_query_time: the request is accepted (a non-blocking index here).
    r = await client.get("/v1/kv/x", params={"wait": "999h"})
    assert r.status_code == 404


async def test_consistency_header(client: httpx.AsyncClient) -> None:
    await put(client, "k", b"1")
    assert (await client.get("/v1/kv/k?stale")).headers["X-Consul-Effective-Consistency"] == "stale"
    assert (await client.get("/v1/kv/k?consistent")).headers["X-Consul-Effective-Consistency"] == "consistent"
    assert (await client.get("/v1/kv/k")).headers["X-Consul-Effective-Consistency"] == "leader"


async def test_unicode_keys_and_traversal(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/kv/traefik/ç")).status_code == 404
    assert (await put(client, "ünï/ç", b"1")).status_code == 200
    assert (await client.get("/v1/kv/ünï/ç")).status_code == 200
    r = await client.put("/v1/kv/a/%0a/b", content=b"1")
    assert r.status_code == 400


async def test_pretty(client: httpx.AsyncClient) -> None:
    await put(client, "pp", b"1")
    r = await client.get("/v1/kv/pp?pretty")
    assert r.text.startswith("[\n    {") and r.text.endswith("\n")


async def test_method_not_allowed_and_options(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/kv/x", content=b"")
    assert r.status_code == 405 and r.text == "method POST not allowed"
    assert r.headers["Allow"] == "OPTIONS,GET,PUT,DELETE"
    r = await client.options("/v1/kv/x")
    assert r.status_code == 200 and r.content == b""


async def test_unknown_paths(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nope")
    assert r.status_code == 404 and r.text == "Invalid URL path: not a recognized HTTP API endpoint\n"
    r = await client.get("/nope")
    assert r.status_code == 404 and r.text.startswith("Invalid URL path: if attempting to use the HTTP API")


async def test_unknown_dc(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/kv/x", params={"dc": "nowhere"})
    assert r.status_code == 500 and r.text == "No path to datacenter"


async def test_locks(client: httpx.AsyncClient) -> None:
    s1 = (await client.put("/v1/session/create", json={"LockDelay": "0s"})).json()["ID"]
    s2 = (await client.put("/v1/session/create", json={})).json()["ID"]
    assert (await put(client, "lk", b"a", acquire=s1)).json() is True
    [e] = (await client.get("/v1/kv/lk")).json()
    assert e["Session"] == s1 and e["LockIndex"] == 1
    assert (await put(client, "lk", b"b", acquire=s2)).json() is False
    # re-acquire by the holder keeps LockIndex
    assert (await put(client, "lk", b"c", acquire=s1)).json() is True
    assert (await client.get("/v1/kv/lk")).json()[0]["LockIndex"] == 1
    # a plain PUT keeps the lock
    await put(client, "lk", b"d")
    assert (await client.get("/v1/kv/lk")).json()[0]["Session"] == s1
    # release by a non-holder fails; by the holder writes the body and keeps LockIndex
    assert (await put(client, "lk", b"e", release=s2)).json() is False
    assert (await put(client, "lk", b"", release=s1)).json() is True
    [e] = (await client.get("/v1/kv/lk")).json()
    assert "Session" not in e and e["LockIndex"] == 1 and e["Value"] is None
    # acquire by a new holder bumps LockIndex
    assert (await put(client, "lk", b"f", acquire=s2)).json() is True
    assert (await client.get("/v1/kv/lk")).json()[0]["LockIndex"] == 2


async def test_acquire_with_unknown_session(client: httpx.AsyncClient) -> None:
    r = await put(client, "lk", b"a", acquire="00000000-0000-0000-0000-000000000000")
    assert r.status_code == 500 and r.text == 'invalid session "00000000-0000-0000-0000-000000000000"'
    assert (await client.get("/v1/kv/lk")).status_code == 404


async def test_lock_delay_after_invalidation(client: httpx.AsyncClient) -> None:
    s1 = (await client.put("/v1/session/create", json={"LockDelay": "10s"})).json()["ID"]
    assert (await put(client, "ld", b"a", acquire=s1)).json() is True
    await client.put(f"/v1/session/destroy/{s1}")
    [e] = (await client.get("/v1/kv/ld")).json()
    assert "Session" not in e
    s2 = (await client.put("/v1/session/create", json={})).json()["ID"]
    assert (await put(client, "ld", b"b", acquire=s2)).json() is False  # lock-delay in force


async def test_behavior_delete(client: httpx.AsyncClient) -> None:
    s = (await client.put("/v1/session/create", json={"Behavior": "delete", "LockDelay": 0})).json()["ID"]
    assert (await put(client, "bd", b"a", acquire=s)).json() is True
    await client.put(f"/v1/session/destroy/{s}")
    assert (await client.get("/v1/kv/bd")).status_code == 404
