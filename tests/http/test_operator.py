"""Snapshot save/restore over HTTP, status endpoints and operator errors in -dev."""

from __future__ import annotations

import gzip

import httpx

from muster.http.operator import build_archive, read_archive


async def test_snapshot_roundtrip_restores_state(client: httpx.AsyncClient) -> None:
    await client.put("/v1/kv/snap/a", content=b"1")
    r = await client.get("/v1/snapshot")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-gzip"
    idx = int(r.headers["X-Consul-Index"])
    archive = r.content
    meta, state = read_archive(archive)
    assert meta["Index"] == idx and meta["Size"] == len(state)
    await client.put("/v1/kv/snap/a", content=b"changed")
    await client.put("/v1/kv/snap/b", content=b"new")
    r = await client.put("/v1/snapshot", content=archive)
    assert r.status_code == 200, r.text
    assert (await client.get("/v1/kv/snap/b")).status_code == 404
    assert (await client.get("/v1/kv/snap/a?raw")).content == b"1"
    # the cluster keeps working after a restore
    assert (await client.put("/v1/kv/snap/c", content=b"x")).json() is True


async def test_snapshot_restore_refuses_damaged_archives(client: httpx.AsyncClient) -> None:
    await client.put("/v1/kv/keep", content=b"1")
    good = build_archive(b"\x80", 5, 1, 0)
    for bad in (b"", b"not gzip", gzip.compress(b"not a tar"), good[:-10]):
        r = await client.put("/v1/snapshot", content=bad)
        assert r.status_code == 400, (bad[:20], r.status_code, r.text)
    # a checksum-valid archive whose state is not ours
    r = await client.put("/v1/snapshot", content=build_archive(b"\xc1", 5, 1, 0))
    assert r.status_code == 400
    assert (await client.get("/v1/kv/keep?raw")).content == b"1"


async def test_status_and_raft_configuration_in_dev(client: httpx.AsyncClient) -> None:
    leader = (await client.get("/v1/status/leader")).json()
    assert leader.endswith(":8300")
    assert (await client.get("/v1/status/peers")).json() == [leader]
    conf = (await client.get("/v1/operator/raft/configuration")).json()
    assert len(conf["Servers"]) == 1 and conf["Servers"][0]["Leader"] is True
    assert conf["Index"] == 0  # -dev's single voter is no log entry (Consul's dev agent says 0 too)
    h = (await client.get("/v1/operator/autopilot/health")).json()
    assert h["Healthy"] is True and h["FailureTolerance"] == 0


async def test_operator_errors_in_dev(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/operator/raft/peer", params={"id": "x"})
    assert r.status_code == 500
    r = await client.get("/v1/acl/tokens")
    assert r.status_code == 401 and r.text == "ACL support disabled"
