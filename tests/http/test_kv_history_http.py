"""``/v1/muster/kv-history/`` (docs/kv-history.md): history of a key and of a prefix, diffs,
rollback as a CAS write (refused when the key changed in between), and the ACL rules."""

from __future__ import annotations

import asyncio
import base64

import httpx

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng

H = "/v1/muster/kv-history/"


async def put(c: httpx.AsyncClient, key: str, body: bytes = b"", **params: str) -> httpx.Response:
    r = await c.put(f"/v1/kv/{key}", content=body, params=params)
    assert r.status_code == 200, r.text
    return r


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


async def test_history_newest_first_with_who_and_when(client: httpx.AsyncClient) -> None:
    await put(client, "app/cfg", b"v1", flags="3")
    await put(client, "app/cfg", b"v2")
    await client.delete("/v1/kv/app/cfg")
    r = await client.get(H + "app/cfg")
    assert r.status_code == 200
    vs = r.json()
    assert [v["Operation"] for v in vs] == ["delete", "set", "set"]
    assert vs[2]["Value"] == b64(b"v1") and vs[2]["Flags"] == 3 and vs[1]["Value"] == b64(b"v2")
    assert vs[0]["Value"] is None and vs[0]["Deleted"] is True and vs[0]["Current"] is True
    assert vs[1]["Current"] is False
    assert all(v["Key"] == "app/cfg" and v["Time"].endswith("Z") for v in vs)
    assert vs[2]["ClientAddr"] == "127.0.0.1" and vs[2]["AccessorID"] == ""
    assert vs[0]["ModifyIndex"] > vs[1]["ModifyIndex"] > vs[2]["ModifyIndex"]
    assert r.headers["X-Consul-Index"] == str(vs[0]["ModifyIndex"])


async def test_missing_history_404_and_missing_key_400(client: httpx.AsyncClient) -> None:
    r = await client.get(H + "never")
    assert r.status_code == 404 and r.content == b"" and int(r.headers["X-Consul-Index"]) >= 1
    r = await client.get(H)
    assert r.status_code == 400 and r.text == "Missing key name"


async def test_recurse_groups_by_key(client: httpx.AsyncClient) -> None:
    await put(client, "p/a", b"1")
    await put(client, "p/b", b"2")
    await put(client, "p/a", b"3")
    await put(client, "q", b"x")
    vs = (await client.get(H + "p/", params={"recurse": ""})).json()
    assert [(v["Key"], v["Value"]) for v in vs] == [("p/a", b64(b"3")), ("p/a", b64(b"1")), ("p/b", b64(b"2"))]


async def test_diff(client: httpx.AsyncClient) -> None:
    await put(client, "d", b"line1\nline2\n")
    await put(client, "d", b"line1\nchanged\n", flags="9")
    vs = (await client.get(H + "d")).json()
    new, old = vs[0]["ModifyIndex"], vs[1]["ModifyIndex"]
    d = (await client.get(H + "d", params={"diff": ""})).json()
    assert (d["From"], d["To"], d["FlagsChanged"], d["Binary"]) == (old, new, True, False)
    assert "-line2\n" in d["Diff"] and "+changed\n" in d["Diff"] and f"d@{old}" in d["Diff"]
    d = (await client.get(H + "d", params={"diff": "", "from": str(new), "to": str(old)})).json()
    assert "-changed\n" in d["Diff"]
    d = (await client.get(H + "d", params={"diff": "", "to": str(old)})).json()
    assert d["From"] == 0 and "+line2\n" in d["Diff"]
    r = await client.get(H + "d", params={"diff": "", "from": "12345"})
    assert r.status_code == 404
    r = await client.get(H + "d", params={"diff": "", "from": "x"})
    assert r.status_code == 400 and r.text == "Invalid from index: 'x'"


async def test_rollback_is_an_ordinary_cas_write(client: httpx.AsyncClient) -> None:
    await put(client, "r", b"good", flags="5")
    await put(client, "r", b"bad")
    good = (await client.get(H + "r")).json()[1]["ModifyIndex"]
    r = await client.put(H + "r", params={"rollback": str(good)})
    assert r.status_code == 200 and r.json() is True
    [e] = (await client.get("/v1/kv/r")).json()
    assert base64.b64decode(e["Value"]) == b"good" and e["Flags"] == 5
    top = (await client.get(H + "r")).json()[0]
    assert top["Operation"] == "rollback" and top["RollbackOf"] == good and top["ModifyIndex"] == e["ModifyIndex"]


async def test_rollback_of_a_deleted_key_and_to_a_deletion(client: httpx.AsyncClient) -> None:
    await put(client, "gone", b"keep me")
    await client.delete("/v1/kv/gone")
    vs = (await client.get(H + "gone")).json()
    r = await client.put(H + "gone", params={"rollback": str(vs[1]["ModifyIndex"])})
    assert r.json() is True
    assert (await client.get("/v1/kv/gone", params={"raw": ""})).content == b"keep me"
    r = await client.put(H + "gone", params={"rollback": str(vs[0]["ModifyIndex"])})
    assert r.json() is True
    assert (await client.get("/v1/kv/gone")).status_code == 404
    assert (await client.get(H + "gone")).json()[0]["Operation"] == "rollback-delete"


async def test_rollback_refused_when_the_key_changed(client: httpx.AsyncClient) -> None:
    await put(client, "c", b"one")
    await put(client, "c", b"two")
    vs = (await client.get(H + "c")).json()
    seen = vs[0]["ModifyIndex"]
    await put(client, "c", b"three")  # someone writes after the operator looked
    r = await client.put(H + "c", params={"rollback": str(vs[1]["ModifyIndex"]), "cas": str(seen)})
    assert r.status_code == 200 and r.json() is False
    assert (await client.get("/v1/kv/c", params={"raw": ""})).content == b"three"
    assert len((await client.get(H + "c")).json()) == 3


async def test_rollback_bad_requests(client: httpx.AsyncClient) -> None:
    await put(client, "x", b"1")
    r = await client.put(H + "x")
    assert r.status_code == 400 and "rollback" in r.text
    r = await client.put(H + "x", params={"rollback": "999"})
    assert r.status_code == 404 and r.text == "Version 999 of key 'x' is not in its history"
    r = await client.put(H + "x", params={"rollback": "-1"})
    assert r.status_code == 400
    r = await client.delete(H + "x")
    assert r.status_code == 405


async def test_blocking_history_wakes_on_a_write_of_the_key(client: httpx.AsyncClient) -> None:
    await put(client, "w", b"1")
    idx = (await client.get(H + "w")).headers["X-Consul-Index"]
    waiter = asyncio.create_task(client.get(H + "w", params={"index": idx, "wait": "5s"}))
    await asyncio.sleep(0.05)
    await put(client, "w", b"2")
    r = await waiter
    assert int(r.headers["X-Consul-Index"]) > int(idx) and len(r.json()) == 2


async def test_txn_and_session_changes_are_recorded(client: httpx.AsyncClient) -> None:
    ops = [{"KV": {"Verb": "set", "Key": "t/k", "Value": b64(b"v")}}]
    assert (await client.put("/v1/txn", json=ops)).status_code == 200
    sid = (await client.put("/v1/session/create", json={"Behavior": "release"})).json()["ID"]
    await put(client, "t/k", b"locked", acquire=sid)
    await client.put(f"/v1/session/destroy/{sid}")
    ops_seen = [v["Operation"] for v in (await client.get(H + "t/k")).json()]
    assert ops_seen == ["session-release", "lock", "set"]


async def test_disabled_by_config() -> None:
    cfg = parse_agent_flags(["-dev", "-node=n", "-client=127.0.0.1", "-hcl=kv_history { enabled = false }"])
    proc = AgentProcess(cfg, rng=Rng(7))
    await proc.server.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://t") as c:
            await put(c, "k", b"1")
            assert (await c.get(H + "k")).status_code == 404
    finally:
        await proc.server.stop()


async def test_snapshot_save_and_restore_carry_the_history(client: httpx.AsyncClient) -> None:
    await put(client, "s/k", b"one")
    await put(client, "s/k", b"two")
    before = (await client.get(H + "s/k")).json()
    archive = (await client.get("/v1/snapshot")).content
    await put(client, "s/k", b"three")
    await put(client, "s/other", b"x")
    assert len((await client.get(H + "s/k")).json()) == 3
    r = await client.put("/v1/snapshot", content=archive)
    assert r.status_code == 200, r.text
    assert (await client.get(H + "s/k")).json() == before
    assert (await client.get(H + "s/other")).status_code == 404
    # the restored history still rolls back
    r = await client.put(H + "s/k", params={"rollback": str(before[1]["ModifyIndex"])})
    assert r.json() is True
    assert (await client.get("/v1/kv/s/k", params={"raw": ""})).content == b"one"
