"""Expired tokens: refused as soon as they expire, removed by the leader's reaper through Raft.

The agent's ACL clock (``resolver.now``, which the reaper reads too) is moved forward instead of
waiting out the one-minute minimum TTL.  docs/compat/acl.md#token-expiry.
"""

from __future__ import annotations

import asyncio

import httpx

from muster.process import AgentProcess

from .conftest import ROOT, make_token

M = {"X-Consul-Token": ROOT}


async def _expiring_token(c: httpx.AsyncClient) -> dict[str, str]:
    await c.put("/v1/acl/policy", json={"Name": "kv", "Rules": 'key_prefix "" { policy = "read" }'}, headers=M)
    r = await c.put("/v1/acl/token", json={"Policies": [{"Name": "kv"}], "ExpirationTTL": "1m"}, headers=M)
    assert r.status_code == 200, r.text
    tok: dict[str, str] = r.json()
    return tok


def _advance(proc: AgentProcess, seconds: float) -> None:
    real = proc.acl.resolver.now
    proc.acl.resolver.now = lambda: real() + seconds


async def test_expired_token_refused_before_reaping_then_reaped(deny_agent: AgentProcess, deny: httpx.AsyncClient) -> None:
    acl = deny_agent.acl
    assert acl._reaper is not None
    acl._reaper.cancel()  # this test drives the reaper by hand
    tok = await _expiring_token(deny)
    keep = await make_token(deny, 'key_prefix "" { policy = "read" }', name="keep")
    hdr = {"X-Consul-Token": tok["SecretID"]}
    assert (await deny.get("/v1/kv/x", headers=hdr)).status_code == 404  # allowed, no such key
    assert await acl.reap_expired() == 0  # not yet due

    _advance(deny_agent, 61)
    r = await deny.get("/v1/kv/x", headers=hdr)
    assert (r.status_code, r.text) == (403, "ACL not found")
    assert tok["AccessorID"] in acl.tables.tokens  # refused although the row is still there
    r = await deny.get("/v1/acl/tokens", headers=M)
    assert tok["AccessorID"] not in {t["AccessorID"] for t in r.json()}
    r = await deny.get(f"/v1/acl/token/{tok['AccessorID']}", headers=M)
    assert (r.status_code, r.text) == (403, "ACL not found")

    before = acl.tables.index
    assert await acl.reap_expired() == 1
    assert tok["AccessorID"] not in acl.tables.tokens and tok["SecretID"] not in acl.tables.by_secret
    assert acl.tables.index > before and acl.tables.expiring == {}
    assert await acl.reap_expired() == 0
    # Tokens without an expiry are untouched.
    assert (await deny.get("/v1/kv/x", headers={"X-Consul-Token": keep["SecretID"]})).status_code == 404


async def test_reaper_loop_runs_on_the_leader(deny_agent: AgentProcess, deny: httpx.AsyncClient) -> None:
    acl = deny_agent.acl
    tok = await _expiring_token(deny)
    _advance(deny_agent, 120)
    for _ in range(100):  # the reaper passes once a second; bounded wait
        if tok["AccessorID"] not in acl.tables.tokens:
            break
        await asyncio.sleep(0.1)
    assert tok["AccessorID"] not in acl.tables.tokens
