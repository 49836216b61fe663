#!/usr/bin/env python3
"""ACL overhead: KV PUT/GET throughput of a dev agent with ACLs on against one with ACLs off.

Same machine, same run, same load tool (wrk with ``bench/lua/muster.lua``), alternating the two
agents round by round so background noise hits both alike.  The ACL agent runs with
``default_policy = "deny"`` and the load carries a token whose only policy is
``key_prefix "bench/" { policy = "write" }`` (so every request resolves a token and checks a
prefix rule); the other agent has ACLs off.  Reported: median req/s per agent and workload, the
ratio on/off, and the agent's CPU per request (robust to other users of the machine).

    python bench/acl_bench.py [--rounds 3] [--duration 8] [--conns 16]

Every process started here is stopped by PID at the end; every wait is bounded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import run  # bench/run.py (bench/ is sys.path[0] when run as `python bench/acl_bench.py`)

ROOT_TOKEN = "b3c1f1de-7a5e-4cc4-9c43-8f0c1a2b0001"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, method: str = "GET", body: bytes | None = None, token: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Agent:
    def __init__(self, name: str, acl: bool, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "muster", "agent", "-dev", "-client=127.0.0.1", f"-http-port={self.port}",
                "-dns-port=-1", f"-server-port={free_port()}", f"-serf-lan-port={free_port()}",
                f"-serf-wan-port={free_port()}", "-grpc-port=-1", "-log-level=warn"]
        # Both agents read an HCL fragment (the same code is loaded in both: python-hcl2's
        # parser objects also weigh on every garbage collection), differing only in ``enabled``.
        argv.append(f'-hcl=acl {{\n  enabled = {"true" if acl else "false"}\n  default_policy = "deny"\n'
                    f'  tokens {{\n    initial_management = "{ROOT_TOKEN}"\n  }}\n}}\n')
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO / "src")
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                code, body = request(self.url + "/v1/status/leader")
                if code == 200 and json.loads(body):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{name}: no leader within 60s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def populate(agent: Agent, token: str) -> None:
    value = base64.b64encode(b"v" * 64).decode()
    for start in range(0, 10000, 128):
        ops = [{"KV": {"Verb": "set", "Key": f"bench/{k}", "Value": value}} for k in range(start, min(start + 128, 10000))]
        code, body = request(agent.url + "/v1/txn", "PUT", json.dumps(ops).encode(), token)
        assert code == 200, (code, body)


def app_token(agent: Agent) -> str:
    pol = {"Name": "bench", "Rules": 'key_prefix "bench/" { policy = "write" }'}
    code, body = request(agent.url + "/v1/acl/policy", "PUT", json.dumps(pol).encode(), ROOT_TOKEN)
    assert code == 200, body
    code, body = request(agent.url + "/v1/acl/token", "PUT", json.dumps({"Policies": [{"Name": "bench"}]}).encode(), ROOT_TOKEN)
    assert code == 200, body
    secret = str(json.loads(body)["SecretID"])
    assert request(agent.url + "/v1/kv/other", token=secret)[0] == 403  # default deny really applies
    return secret


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="acl-bench-") as tmp:
        work = Path(tmp)
        off = Agent("acl-off", False, work)
        on: Agent | None = None
        try:
            on = Agent("acl-on", True, work)
            token = app_token(on)
            populate(off, "")
            populate(on, ROOT_TOKEN)
            results: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for _ in range(args.rounds):
                for workload in ("put", "get"):
                    for agent, tok in ((off, ""), (on, token)):
                        os.environ["MUSTER_TOKEN"] = tok
                        r = run.run_wrk(agent.url, "muster.lua", [workload], args.conns, args.duration, args.threads,
                                        pids=[agent.proc.pid])
                        if r.get("non2xx"):
                            raise RuntimeError(f"{agent.name} {workload}: {r['non2xx']} non-2xx answers")
                        results.setdefault((agent.name, workload), []).append(r)
            os.environ.pop("MUSTER_TOKEN", None)
        finally:
            off.stop()
            if on is not None:
                on.stop()
    print(f"| workload | ACLs off req/s | ACLs on req/s | on/off | CPU us/req off | CPU us/req on |  (c={args.conns}, "
          f"{args.rounds} rounds x {args.duration:g}s, medians)")
    print("|---|---|---|---|---|---|")
    for workload in ("put", "get"):
        a = results[("acl-off", workload)]
        b = results[("acl-on", workload)]
        ra = statistics.median(x["rps"] for x in a)
        rb = statistics.median(x["rps"] for x in b)
        ca = statistics.median(x.get("server_cpu_us_per_req", 0.0) for x in a)
        cb = statistics.median(x.get("server_cpu_us_per_req", 0.0) for x in b)
        print(f"| {workload.upper()} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f}x | {ca:.0f} | {cb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
