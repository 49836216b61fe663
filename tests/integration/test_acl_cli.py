"""``muster acl ...`` against a real agent with ACLs on (default deny); CONSUL_HTTP_TOKEN."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
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


def test_login_logout_cli(acl_agent: AgentProcess, tmp_path: Path) -> None:
    """``muster login`` with a real RS256 JWT writes the new secret to the sink; ``logout`` ends it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    hdr = {"X-Consul-Token": ROOT}
    cfg = {"JWTValidationPubKeys": [pub], "BoundIssuer": "cli-test", "ClaimMappings": {"svc": "svc"}}
    r = httpx.put(f"{acl_agent.url}/v1/acl/auth-method", json={"Name": "cli-jwt", "Type": "jwt", "Config": cfg}, headers=hdr)
    assert r.status_code == 200, r.text
    rule = {"AuthMethod": "cli-jwt", "BindType": "service", "BindName": "${value.svc}"}
    assert httpx.put(f"{acl_agent.url}/v1/acl/binding-rule", json=rule, headers=hdr).status_code == 200

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    head = b64(json.dumps({"alg": "RS256"}).encode()) + "." + b64(json.dumps({"iss": "cli-test", "iat": now, "exp": now + 300, "svc": "web"}).encode())
    jwt = head + "." + b64(key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))
    bearer = tmp_path / "bearer"
    bearer.write_text(jwt + "\n")
    sink = tmp_path / "sink"
    env = _env(acl_agent, "")
    missing = run_cli(["login", "-method", "cli-jwt", "-bearer-token-file", str(bearer)], env=env)
    assert missing.returncode == 1 and "Missing required '-token-sink-file' flag" in missing.stderr.decode()
    bad = run_cli(["login", "-method", "nope", "-bearer-token-file", str(bearer), "-token-sink-file", str(sink)], env=env)
    assert bad.returncode == 1 and 'Error logging in: Unexpected response code: 403 (ACL not found: auth method "nope" not found)' in bad.stderr.decode()
    assert _ok(run_cli(["login", "-method", "cli-jwt", "-bearer-token-file", str(bearer), "-token-sink-file", str(sink), "-meta", "host=ci"], env=env)) == ""
    secret = sink.read_text()
    assert (sink.stat().st_mode & 0o777) == 0o600
    me = httpx.get(f"{acl_agent.url}/v1/acl/token/self", headers={"X-Consul-Token": secret}).json()
    assert me["AuthMethod"] == "cli-jwt" and me["ServiceIdentities"] == [{"ServiceName": "web"}]
    assert me["Description"] == 'token created via login: {"host":"ci"}'
    not_login = run_cli(["logout"], env=_env(acl_agent))
    assert not_login.returncode == 1 and "token wasn't created via login" in not_login.stderr.decode()
    assert _ok(run_cli(["logout", "-token-file", str(sink)], env=env)) == ""
    gone = httpx.get(f"{acl_agent.url}/v1/acl/token/self", headers={"X-Consul-Token": secret})
    assert gone.status_code == 403


SCRIPT_WARNING = "using enable-script-checks without ACLs and without allow_write_http_from is DANGEROUS"


def _startup_log(agent: AgentProcess) -> str:
    """The agent's log once start-up is complete (its "agent running" line; bounded wait)."""
    log = ""
    for _ in range(100):
        log = agent.log_path.read_text(encoding="utf-8", errors="replace")
        if "agent running" in log:
            break
        time.sleep(0.1)
    return log


def test_script_checks_warning_only_without_acls() -> None:
    """Consul's start-up warning for ``enable_script_checks`` with ACLs disabled (and none with ACLs on)."""
    open_agent = start_agent(["-enable-script-checks"], name="scripts-no-acl")
    try:
        log = _startup_log(open_agent)
    finally:
        open_agent.stop()
    assert SCRIPT_WARNING in log
    secured = start_agent(["-enable-script-checks", f"-hcl={HCL}"], name="scripts-acl")
    try:
        log = _startup_log(secured)
    finally:
        secured.stop()
    assert "agent running" in log and SCRIPT_WARNING not in log


def test_acl_policy_and_role_read_and_delete(acl_agent: AgentProcess) -> None:
    """``acl policy|role read|delete`` share one implementation: by ID or name, the same texts."""
    env = _env(acl_agent)
    pol = json.loads(_ok(run_cli(["acl", "policy", "create", "-name", "rd-pol", "-rules", 'node_prefix "" { policy = "read" }',
                                  "-format", "json"], env=env)))
    role = json.loads(_ok(run_cli(["acl", "role", "create", "-name", "rd-role", "-policy-name", "rd-pol", "-format", "json"],
                                  env=env)))
    for kind, obj in (("policy", pol), ("role", role)):
        by_name = _ok(run_cli(["acl", kind, "read", "-name", obj["Name"]], env=env))
        assert by_name == _ok(run_cli(["acl", kind, "read", "-id", obj["ID"]], env=env))
        assert re.search(rf"^ID:\s+{obj['ID']}$", by_name, re.M) and re.search(rf"^Name:\s+{obj['Name']}$", by_name, re.M)
        for verb in ("read", "delete"):
            res = run_cli(["acl", kind, verb], env=env)
            assert res.returncode == 1 and res.stderr.decode() == "Must specify either the -id or -name parameters\n"
        res = run_cli(["acl", kind, "read", "-name", "nope"], env=env)
        assert res.returncode == 1 and res.stderr.decode().startswith(f'Error reading {kind} "nope"')
    assert _ok(run_cli(["acl", "role", "delete", "-name", "rd-role"], env=env)) == f'Role "{role["ID"]}" deleted successfully\n'
    assert _ok(run_cli(["acl", "policy", "delete", "-id", pol["ID"]], env=env)) == f'Policy "{pol["ID"]}" deleted successfully\n'
    res = run_cli(["acl", "policy", "delete", "-name", "rd-pol"], env=env)
    assert res.returncode == 1 and res.stderr.decode().startswith('Error deleting policy "rd-pol"')
