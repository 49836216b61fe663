"""Hardening under ACLs (issue 10, item 6): request limits still hold for a token that may
write, and a script check needs ``agent:write`` on top of script checks being enabled.
docs/compat/acl.md#enforcement."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng

from .conftest import ROOT, _client, _hcl, make_token

M = {"X-Consul-Token": ROOT}


def kv(verb: str, key: str, value: bytes) -> dict[str, object]:
    return {"KV": {"Verb": verb, "Key": key, "Value": base64.b64encode(value).decode()}}


async def test_request_limits_hold_with_a_valid_token(deny: httpx.AsyncClient) -> None:
    tok = await make_token(deny, 'key_prefix "" { policy = "write" }')
    h = {"X-Consul-Token": tok["SecretID"]}
    assert (await deny.put("/v1/kv/ok", content=b"x" * (512 * 1024), headers=h)).status_code == 200
    r = await deny.put("/v1/kv/big", content=b"x" * (512 * 1024 + 1), headers=h)
    assert r.status_code == 413 and r.text.startswith("Request body(524289 bytes) too large, max size: 524288 bytes.")
    assert (await deny.get("/v1/kv/big", headers=h)).status_code == 404
    r = await deny.put("/v1/txn", json=[kv("set", f"k{i}", b"v") for i in range(129)], headers=h)
    assert (r.status_code, r.text) == (413, "Transaction contains too many operations (129 > 128)")
    r = await deny.put("/v1/txn", json=[kv("set", "big", b"x" * (512 * 1024 + 1))], headers=h)
    assert r.status_code == 413
    assert (await deny.get("/v1/kv/k0", headers=h)).status_code == 404
    # The management token is bound by the same limits.
    r = await deny.put("/v1/kv/big", content=b"x" * (512 * 1024 + 1), headers=M)
    assert r.status_code == 413


@pytest.fixture
async def scripts_on() -> AsyncIterator[httpx.AsyncClient]:
    cfg = parse_agent_flags(["-dev", "-node=test-node", "-client=127.0.0.1", "-enable-script-checks", f"-hcl={_hcl('deny')}"])
    proc = AgentProcess(cfg, rng=Rng(99))
    await proc.server.start()
    await proc.agent.start()
    try:
        async with _client(proc) as c:
            yield c
    finally:
        await proc.agent.stop()
        await proc.server.stop()


SCRIPT = {"Name": "s", "Args": ["/bin/true"], "Interval": "10s"}


async def test_script_check_needs_agent_write(scripts_on: httpx.AsyncClient) -> None:
    c = scripts_on
    svc_only = await make_token(c, 'service "web" { policy = "write" }\nnode_prefix "" { policy = "write" }', name="svc")
    with_agent = await make_token(
        c, 'service "web" { policy = "write" }\nnode_prefix "" { policy = "write" }\nagent_prefix "" { policy = "write" }', name="agent"
    )
    body = {"Name": "web", "Check": SCRIPT}
    r = await c.put("/v1/agent/service/register", json=body, headers={"X-Consul-Token": svc_only["SecretID"]})
    assert r.status_code == 403 and "lacks permission 'agent:write' on \"test-node\"" in r.text
    # Without a script the same token registers the service.
    r = await c.put("/v1/agent/service/register", json={"Name": "web", "Check": {"TTL": "10s"}}, headers={"X-Consul-Token": svc_only["SecretID"]})
    assert r.status_code == 200, r.text
    r = await c.put("/v1/agent/check/register", json=SCRIPT, headers={"X-Consul-Token": svc_only["SecretID"]})
    assert r.status_code == 403
    r = await c.put("/v1/agent/service/register", json=body, headers={"X-Consul-Token": with_agent["SecretID"]})
    assert r.status_code == 200, r.text
    r = await c.put("/v1/agent/check/register", json=SCRIPT, headers={"X-Consul-Token": with_agent["SecretID"]})
    assert r.status_code == 200, r.text


async def test_script_check_needs_scripts_enabled_even_for_management(deny: httpx.AsyncClient) -> None:
    r = await deny.put("/v1/agent/check/register", json=SCRIPT, headers=M)
    assert r.status_code != 200
    assert "Scripts are disabled on this agent" in r.text
