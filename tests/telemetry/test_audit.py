"""The audit log: its configuration (Consul Enterprise's sink shape and the flat one), the events
an agent writes for write requests (with ACLs: the accessor, never the secret) and rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from muster.config import ConfigError, audit_file_sinks, parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.telemetry.audit import AuditLog, FileSinkSpec

ROOT = "audit-root-secret-5f1c"


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- configuration


def test_consul_enterprise_sink_shape_in_hcl(tmp_path: Path) -> None:
    hcl = f"""
audit {{
  enabled = true
  sink "My Sink" {{
    type               = "file"
    format             = "json"
    path               = "{tmp_path}/audit.json"
    delivery_guarantee = "best-effort"
    rotate_duration    = "24h"
    rotate_max_files   = 15
    rotate_bytes       = 25165824
    mode               = "644"
  }}
}}
"""
    cfg = parse_agent_flags(["-dev", f"-hcl={hcl}"])
    assert audit_file_sinks(cfg) == (
        FileSinkSpec("My Sink", f"{tmp_path}/audit.json", 25165824, 86400.0, 15, 0o644),
    )


def test_flat_shape_in_json_and_disabled_by_default(tmp_path: Path) -> None:
    assert audit_file_sinks(parse_agent_flags(["-dev"])) == ()
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"audit": {"enabled": True, "path": "/var/log/a.json", "rotate_max_bytes": 1000, "rotate_max_files": 2}}))
    cfg = parse_agent_flags(["-dev", f"-config-file={f}"])
    assert audit_file_sinks(cfg) == (FileSinkSpec("file", "/var/log/a.json", 1000, 0.0, 2, 0o600),)


@pytest.mark.parametrize(
    ("hcl", "message"),
    [
        ("audit { enabled = true }", "audit: enabled without a sink"),
        ('audit {\n enabled = true\n sink "s" {\n type = "socket"\n path = "/x"\n }\n}', 'only "file" sinks'),
        ('audit {\n enabled = true\n sink "s" {\n format = "xml"\n path = "/x"\n }\n}', 'only "json"'),
        ('audit {\n enabled = true\n sink "s" {\n type = "file"\n }\n}', "audit.sink.s.path: a file sink needs a path"),
        ('audit {\n enabled = true\n sink "s" {\n path = "/x"\n rotate_bytes = "lots"\n }\n}', "audit.sink.s.rotate_bytes"),
        ('audit {\n enabled = true\n sink "s" {\n path = "/x"\n colour = "red"\n }\n}', "invalid config key audit.sink.s.colour"),
        ('audit {\n enabled = true\n path = "/x"\n mode = "rw"\n }', "audit.mode: invalid file mode"),
        ('audit {\n enabled = true\n path = "/x"\n rotate_max_files = -1\n }', "rotate_max_files: must not be negative"),
    ],
)
def test_bad_audit_configuration_is_refused(hcl: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_agent_flags(["-dev", f"-hcl={hcl}"])


# ---------------------------------------------------------------- rotation


def test_rotation_by_size_keeps_the_newest_archives(tmp_path: Path) -> None:
    path = tmp_path / "audit.json"
    log = AuditLog([FileSinkSpec("s", str(path), rotate_bytes=1500, rotate_max_files=2)])
    for i in range(40):
        log.record(method="PUT", endpoint=f"/v1/kv/k{i:02d}", remote_addr="127.0.0.1:1", accessor_id="", description="", status=200)
    log.close()
    archives = sorted(tmp_path.glob("audit-*.json"))
    assert len(archives) == 2  # older ones were pruned
    files = [*archives, path]
    for f in files:
        assert 0 < f.stat().st_size <= 1500
        for e in events(f):  # every line whole
            assert e["payload"]["stage"] == "OperationComplete"
    # The newest events survive in order, the active file holding the latest.
    kept = [e["payload"]["request"]["endpoint"] for f in sorted(archives, key=lambda p: int(p.stem.split("-")[1])) + [path] for e in events(f)]
    assert kept == [f"/v1/kv/k{i:02d}" for i in range(40 - len(kept), 40)]
    assert kept[-1] == "/v1/kv/k39"


def test_rotation_by_age(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "a.log"
    log = AuditLog([FileSinkSpec("s", str(path), rotate_duration=60.0)], clock=lambda: now[0])
    log.record(method="PUT", endpoint="/v1/kv/a", remote_addr="", accessor_id="", description="", status=200)
    now[0] += 59
    log.record(method="PUT", endpoint="/v1/kv/b", remote_addr="", accessor_id="", description="", status=200)
    assert list(tmp_path.glob("a-*.log")) == []
    now[0] += 1
    log.record(method="PUT", endpoint="/v1/kv/c", remote_addr="", accessor_id="", description="", status=200)
    log.close()
    (archive,) = tmp_path.glob("a-*.log")
    assert [e["payload"]["request"]["endpoint"] for e in events(archive)] == ["/v1/kv/a", "/v1/kv/b"]
    assert [e["payload"]["request"]["endpoint"] for e in events(path)] == ["/v1/kv/c"]


def test_an_unwritable_sink_loses_lines_but_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog([FileSinkSpec("s", str(blocker / "audit.json"))])  # parent is a file
    log.record(method="PUT", endpoint="/v1/kv/a", remote_addr="", accessor_id="", description="", status=200)
    log.close()


# ---------------------------------------------------------------- the agent's events


async def test_agent_audits_write_requests_with_the_accessor_never_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.json"
    hcl = (
        f'acl {{\n enabled = true\n default_policy = "deny"\n tokens {{\n initial_management = "{ROOT}"\n }}\n}}\n'
        f'audit {{\n enabled = true\n sink "main" {{\n type = "file"\n format = "json"\n path = "{path}"\n'
        f' rotate_bytes = 1048576\n rotate_max_files = 3\n }}\n}}\n'
    )
    proc = AgentProcess(parse_agent_flags(["-dev", "-node=audit-node", f"-hcl={hcl}"]), rng=Rng(7))
    await proc.server.start()
    await proc.agent.start()
    transport = httpx.ASGITransport(app=proc.app, client=("127.0.0.9", 40123))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://muster.test") as c:
            root = {"X-Consul-Token": ROOT}
            r = await c.put("/v1/acl/policy", json={"Name": "kv", "Rules": 'key_prefix "" { policy = "write" }'}, headers=root)
            assert r.status_code == 200
            tok = (await c.put("/v1/acl/token", json={"Policies": [{"Name": "kv"}], "Description": "deployer"}, headers=root)).json()
            secret = tok["SecretID"]
            assert (await c.put("/v1/kv/app/x", content=b"1", headers={"X-Consul-Token": secret})).status_code == 200
            assert (await c.put(f"/v1/kv/app/y?token={secret}&flags=3", content=b"2")).status_code == 200
            assert (await c.delete("/v1/kv/app/x", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
            assert (await c.put("/v1/kv/app/z", content=b"3")).status_code == 403  # anonymous: denied
            assert (await c.get("/v1/kv/app/y", headers={"X-Consul-Token": secret})).status_code == 200  # a read
    finally:
        await proc.agent.stop()
        await proc.server.stop()

    text = path.read_text()
    assert ROOT not in text and secret not in text
    evs = [e["payload"] for e in events(path)]
    seen = [(e["request"]["operation"], e["request"]["endpoint"], e["response"]["status"]) for e in evs]
    assert seen == [
        ("PUT", "/v1/acl/policy", "200"),
        ("PUT", "/v1/acl/token", "200"),
        ("PUT", "/v1/kv/app/x", "200"),
        ("PUT", "/v1/kv/app/y", "200"),  # the path only: ?token= never reaches the file
        ("DELETE", "/v1/kv/app/x", "200"),
        ("PUT", "/v1/kv/app/z", "403"),
    ]
    mgmt = evs[0]["auth"]["accessor_id"]
    assert mgmt and mgmt != ROOT
    assert [e["auth"]["accessor_id"] for e in evs[2:5]] == [tok["AccessorID"]] * 3
    assert evs[2]["auth"]["description"] == "deployer"
    assert evs[5]["auth"]["accessor_id"] == "00000000-0000-0000-0000-000000000002"  # anonymous
    for e in evs:
        assert e["type"] == "HTTPEvent" and e["stage"] == "OperationComplete"
        assert e["request"]["remote_addr"] == "127.0.0.9:40123"
        assert e["timestamp"].endswith("Z")
