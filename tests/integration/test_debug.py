"""``muster debug`` against a real ``-dev`` agent: the bundle's files and contents, and that no
configured secret (the ACL management token, the gossip key, a token sent in a request's query
string while the capture runs) appears in any file of it."""

from __future__ import annotations

import json
import tarfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

from realagent import AgentProcess, run_cli

ROOT = "debug-root-secret-7a3e9b"
GOSSIP_KEY = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
HCL = f'acl {{\n enabled = true\n default_policy = "deny"\n tokens {{\n initial_management = "{ROOT}"\n }}\n}}\nencrypt = "{GOSSIP_KEY}"\n'


def _put(agent: AgentProcess, key: str, query: str = "") -> None:
    req = urllib.request.Request(f"{agent.url}/v1/kv/{key}{query}", data=b"v", method="PUT")
    req.add_header("X-Consul-Token", ROOT)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b"true"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_debug_bundle_contents_and_no_secret(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path, unique: str
) -> None:
    agent = agent_factory(f"-hcl={HCL}", name="debug")
    out = tmp_path / "bundle"
    stop = threading.Event()

    def workload() -> None:  # writes during the capture, one with the token in its query string
        n = 0
        while not stop.is_set() and n < 200:
            _put(agent, f"{unique}/k{n}", f"?token={ROOT}" if n % 2 else "")
            n += 1
            stop.wait(0.5)

    writer = threading.Thread(target=workload, daemon=True)
    writer.start()
    try:
        res = run_cli(
            ["debug", "-interval=5s", "-duration=10s", f"-output={out}", f"-token={ROOT}"], agent, timeout=120
        )
    finally:
        stop.set()
        writer.join(timeout=15)
    assert res.returncode == 0, res.stderr.decode()
    text = res.stdout.decode()
    assert "==> Starting debugger and capturing static information..." in text
    assert "          Duration: '10s'" in text and "          Interval: '5s'" in text
    assert f"Saved debug archive: {out}.tar.gz" in text
    assert not out.exists()  # archived, then removed

    with tarfile.open(f"{out}.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    root = tmp_path / "x" / "bundle"
    files = _files(root)
    assert set(files) == {
        "index.json", "agent.json", "host.json", "members.json", "metrics.json", "consul.log", "listpeers.json", "raft.json",
    }  # fmt: skip

    index = json.loads(files["index.json"])
    assert index["Version"] == 1 and index["Interval"] == "5s" and index["Duration"] == "12s"
    assert index["Targets"] == ["metrics", "logs", "host", "agent", "members"]
    assert index["AgentVersion"] == json.loads(files["agent.json"])["Config"]["Version"]
    assert json.loads(files["agent.json"])["Config"]["NodeName"]
    assert "Memory" in json.loads(files["host.json"])
    assert len(json.loads(files["members.json"])) >= 1
    samples = [json.loads(line) for line in files["metrics.json"].decode().splitlines()]
    assert len(samples) >= 2  # the start and every interval
    assert all({"Timestamp", "Gauges", "Counters", "Samples"} <= set(s) for s in samples)
    assert json.loads(files["raft.json"])["Servers"]
    assert b"leader" in files["listpeers.json"]
    log = files["consul.log"].decode()
    assert f"/v1/kv/{unique}/k" in log  # the workload's requests were captured
    assert "token=%3Chidden%3E" in log or "token=<hidden>" in log

    for name, data in files.items():
        assert ROOT.encode() not in data, name
        assert GOSSIP_KEY.encode() not in data, name


def test_debug_refuses_bad_timings_and_targets(muster_agent: AgentProcess, tmp_path: Path) -> None:
    cases = [
        (["-duration=5s"], "==> Capture validation failed: duration must be longer than 10s"),
        (["-interval=1s"], "==> Capture validation failed: interval must be longer than 10s"),
        (["-interval=20s", "-duration=15s"], "==> Capture validation failed: duration (15s) must be longer than interval (20s)"),
        (["-capture=disks"], "==> Capture validation failed: target not found: disks"),
    ]
    for flags, message in cases:
        res = run_cli(["debug", *flags, f"-output={tmp_path / 'never'}"], muster_agent)
        assert res.returncode == 1
        assert res.stderr.decode().strip() == message
    (tmp_path / "exists").mkdir()
    res = run_cli(["debug", f"-output={tmp_path / 'exists'}"], muster_agent)
    assert res.returncode == 1
    assert f"output directory already exists: {tmp_path / 'exists'}" in res.stderr.decode()
    assert not (tmp_path / "never").exists()
