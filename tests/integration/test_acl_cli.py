"""``muster acl ...`` against a real agent with ACLs on (default deny); CONSUL_HTTP_TOKEN."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from realagent import AgentProcess, run_cli, start_agent

pytestmark = pytest.mark.timeout(240)

ROOT = "9f0c4c4c-1a6e-4f0e-9a43-3a7f0b7f0001"
HCL = f'acl {{\n  enabled = true\n  default_policy = "deny"\n  tokens {{\n    initial_management = "{ROOT}"\n  }}\n}}\n'


@pytest.fixture(scope="module")
def acl_agent() -> Iterator[AgentProcess]:
    agent = start_agent([f"-hcl={HCL}"], name="acl-cli")
    try:
        yield agent
    finally:
        agent.stop()


def _env(agent: AgentProcess, token: str = ROOT) -> dict[str, str]:
    env = agent.env()
    if token:
        env["CONSUL_HTTP_TOKEN"] = token
    return env


def _ok(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr.decode(errors='replace')}"
    assert b"Traceback" not in res.stderr
    return res.stdout.decode()


def test_acl_cli_roundtrip(acl_agent: AgentProcess) -> None:
    env = _env(acl_agent)
    out = run_cli(["acl", "bootstrap"], env=env)
    assert out.returncode == 1 and "ACL bootstrap no longer allowed" in out.stderr.decode()
    out = _ok(run_cli(["acl", "policy", "create", "-name", "app-kv", "-rules", 'key_prefix "app/" { policy = "write" }'], env=env))
    assert re.search(r"^ID:           [0-9a-f-]{36}$", out, re.M) and "Name:         app-kv" in out
    assert out.rstrip().endswith('key_prefix "app/" { policy = "write" }')
    out = _ok(run_cli(["acl", "token", "create", "-description", "app", "-policy-name", "app-kv", "-format", "json"], env=env))
    tok = json.loads(out)
    assert tok["Policies"][0]["Name"] == "app-kv"
    out = _ok(run_cli(["acl", "token", "read", "-accessor-id", tok["AccessorID"]], env=env))
    assert out.startswith(f"AccessorID:       {tok['AccessorID']}\nSecretID:         {tok['SecretID']}\n")
    assert re.search(r"^Create Time:      \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$", out, re.M)
    assert f"Policies:\n   {tok['Policies'][0]['ID']} - app-kv" in out
    app = _env(acl_agent, tok["SecretID"])
    assert _ok(run_cli(["kv", "put", "app/x", "1"], env=app)) == "Success! Data written to: app/x\n"
    denied = run_cli(["kv", "put", "other", "1"], env=app)
    assert denied.returncode == 1 and "Permission denied" in denied.stderr.decode()
    assert run_cli(["kv", "get", "app/x"], env=_env(acl_agent, "")).returncode == 1  # anonymous: denied
    out = _ok(run_cli(["acl", "token", "list"], env=env))
    assert "Legacy:           false" in out and out.count("AccessorID:") == 3
    out = _ok(run_cli(["acl", "role", "create", "-name", "r", "-policy-name", "app-kv", "-service-identity", "web:dc1"], env=env))
    assert "Service Identities:\n   web (Datacenters: dc1)" in out
    out = _ok(run_cli(["acl", "token", "delete", "-accessor-id", tok["AccessorID"]], env=env))
    assert out == f'Token "{tok["AccessorID"]}" deleted successfully\n'
    gone = run_cli(["kv", "get", "app/x"], env=app)
    assert gone.returncode == 1 and "ACL not found" in gone.stderr.decode()
    out = _ok(run_cli(["acl", "policy", "list"], env=env))
    assert out.startswith("app-kv:\n   ID:") or "global-management:\n   ID:           00000000-0000-0000-0000-000000000001" in out
    _ok(run_cli(["acl", "set-agent-token", "default", ROOT], env=env))
    assert _ok(run_cli(["kv", "get", "app/x"], env=_env(acl_agent, ""))) == "1\n"  # now via the default token
