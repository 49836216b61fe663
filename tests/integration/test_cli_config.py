"""``muster config write|read|list|delete`` against a real agent (issue 15 item 3)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from realagent import AgentProcess, run_cli


def _ok(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


def _fails(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    return res.stderr.decode()


def test_config_write_read_list_delete(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    name = f"svc-{unique}"
    hcl = tmp_path / "defaults.hcl"
    hcl.write_text(f'Kind = "service-defaults"\nName = "{name}"\nProtocol = "http"\n')
    assert _ok(run_cli(["config", "write", str(hcl)], muster_agent)) == f"Config entry written: service-defaults/{name}\n"
    entry = json.loads(_ok(run_cli(["config", "read", "-kind", "service-defaults", "-name", name], muster_agent)))
    assert (entry["Kind"], entry["Name"], entry["Protocol"]) == ("service-defaults", name, "http")
    assert name in _ok(run_cli(["config", "list", "-kind", "service-defaults"], muster_agent)).splitlines()
    # JSON from stdin, and a check-and-set that does not apply.
    body = json.dumps({"Kind": "service-resolver", "Name": name, "ConnectTimeout": "15s"}).encode()
    assert _ok(run_cli(["config", "write", "-"], muster_agent, input=body)) == f"Config entry written: service-resolver/{name}\n"
    stale = entry["ModifyIndex"] + 1000
    err = _fails(run_cli(["config", "write", "-cas", f"-modify-index={stale}", str(hcl)], muster_agent))
    assert err == f"Config entry not updated: service-defaults/{name}\n"
    assert _ok(run_cli(["config", "delete", "-kind", "service-defaults", "-name", name], muster_agent)) == (
        f"Config entry deleted: service-defaults/{name}\n"
    )
    err = _fails(run_cli(["config", "read", "-kind", "service-defaults", "-name", name], muster_agent))
    assert "Config entry not found" in err
    assert _fails(run_cli(["config", "read", "-kind", "service-defaults"], muster_agent)) == "Must specify the -name parameter\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"Kind": "proxy-defaults", "Name": "nope"}')
    assert 'invalid name ("nope")' in _fails(run_cli(["config", "write", str(bad)], muster_agent))
