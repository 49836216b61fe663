"""The manifests' configuration is secure by default: an agent started with it answers 403 to a
request without a token, while the probes keep working without one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from muster.config import config_from_dict
from muster.process import AgentProcess
from muster.runtime import Rng

ROOT = Path(__file__).resolve().parents[2]
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml"
MGMT = "2a0c7a5e-0a6e-4f7e-8d5b-3c1e0f9a0001"


async def test_manifest_config_denies_anonymous() -> None:
    cm = yaml.safe_load(CONFIGMAP.read_text())
    server = json.loads(cm["data"]["server.json"])
    # What the projected volume adds: the tokens Secret.  TLS and the HTTPS port need the
    # certificate Secret, which has nothing to do with this check.
    cfg_raw = {k: v for k, v in server.items() if k not in ("tls", "ports")}
    cfg_raw["acl"] = dict(server["acl"], tokens={"initial_management": MGMT, "agent": "b7f1"})
    cfg_raw["node_name"] = "consul-0"
    proc = AgentProcess(config_from_dict(cfg_raw, dev=True), rng=Rng(7))
    await proc.server.start()
    await proc.agent.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://pod") as c:
            r = await c.get("/v1/kv/anything")
            assert r.status_code == 403 and r.text.startswith("Permission denied: anonymous token lacks permission")
            assert (await c.put("/v1/kv/x", content=b"1")).status_code == 403
            assert (await c.get("/v1/agent/self")).status_code == 403
            assert (await c.get("/v1/status/leader")).status_code == 200  # liveness/startup probe
            r = await c.get("/v1/catalog/nodes", params={"stale": ""})  # readiness probe
            assert r.status_code == 200 and r.headers["X-Consul-KnownLeader"] == "true"
            r = await c.put("/v1/kv/x", content=b"1", headers={"X-Consul-Token": MGMT})
            assert r.status_code == 200
    finally:
        await proc.agent.stop()
        await proc.server.stop()
