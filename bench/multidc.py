"""The cost of ``?dc=`` forwarding: local against forwarded reads and writes, same run.

Two datacenters of three Muster servers each on loopback (dc1 on 127.0.0.1-3, dc2 on
127.0.0.4-6, fsync on), joined with ``-retry-join-wan``.  One client, one keep-alive connection
to a dc1 follower, requests one after another (latency, not throughput), interleaved so that
machine noise hits all four kinds alike:

* local read:      ``GET  /v1/kv/<k>``          (dc1 follower -> dc1 leader's view)
* forwarded read:  ``GET  /v1/kv/<k>?dc=dc2``   (dc1 -> WAN RPC -> a dc2 server -> its leader)
* local write:     ``PUT  /v1/kv/<k>``          (dc1 follower -> dc1 leader -> quorum fsync)
* forwarded write: ``PUT  /v1/kv/<k>?dc=dc2``

Reports the median and p90 of each, and the forwarded/local ratios.

    .venv/bin/python bench/multidc.py [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness  # noqa: E402  (processes, logging)


def free_on_all(ips: list[str], taken: set[int]) -> int:
    for _ in range(200):
        with socket.socket() as s0:
            s0.bind((ips[0], 0))
            port = int(s0.getsockname()[1])
        if port in taken:
            continue
        try:
            for ip in ips[1:]:
                with socket.socket() as s1:
                    s1.bind((ip, port))
        except OSError:
            continue
        taken.add(port)
        return port
    raise SystemExit("no free port")


def start_dc(procs: harness.Processes, workdir: Path, dc: str, base: int, wan_join: str) -> dict[str, Any]:
    ips = [f"127.0.0.{base + i + 1}" for i in range(3)]
    taken: set[int] = set()
    http_port, server_port, serf_port, wan_port = (free_on_all(ips, taken) for _ in range(4))
    exe = str(harness.ROOT / ".venv" / "bin" / "python") if (harness.ROOT / ".venv" / "bin" / "python").exists() \
        else sys.executable
    for i, ip in enumerate(ips):
        argv = [exe, "-m", "muster", "agent", "-server", "-bootstrap-expect=3", f"-datacenter={dc}",
                f"-data-dir={workdir / f'{dc}-s{i}'}", f"-bind={ip}", f"-advertise={ip}", f"-client={ip}",
                f"-node={dc}-s{i}", f"-http-port={http_port}", f"-server-port={server_port}",
                f"-serf-lan-port={serf_port}", f"-serf-wan-port={wan_port}", "-dns-port=-1",
                *[f"-retry-join={j}:{serf_port}" for j in ips]]
        if wan_join:
            argv += [f"-retry-join-wan={wan_join}", "-retry-interval-wan=1s"]
        procs.start(f"{dc} s{i}", argv, workdir / f"{dc}-s{i}.log", cwd=harness.ROOT)
    return {"ips": ips, "http": http_port, "wan": wan_port}


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn.request(method, path, body=body)
    r = conn.getresponse()
    r.read()
    return r.status, time.perf_counter() - t0


def wait_for(pred: Any, seconds: float, what: str) -> None:
    for _ in harness.deadline_loop(seconds, 0.5):
        try:
            if pred():
                return
        except (OSError, ValueError):
            pass
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests of each kind")
    args = ap.parse_args()
    procs = harness.Processes()
    with tempfile.TemporaryDirectory(prefix="muster-multidc-") as tmp:
        work = Path(tmp)
        try:
            dc1 = start_dc(procs, work, "dc1", 0, "")
            dc2 = start_dc(procs, work, "dc2", 3, f"127.0.0.1:{dc1['wan']}")

            def url(dc: dict[str, Any], i: int, path: str) -> str:
                return f"http://{dc['ips'][i]}:{dc['http']}{path}"

            def leader(dc: dict[str, Any]) -> str:
                status, body = harness.http("GET", url(dc, 0, "/v1/status/leader"), timeout=2)
                return str(json.loads(body)) if status == 200 else ""

            wait_for(lambda: leader(dc1) and leader(dc2), 90, "both leaders")
            wait_for(lambda: len(json.loads(harness.http("GET", url(dc1, 0, "/v1/agent/members?wan=1"))[1])) == 6,
                     90, "the WAN pool")
            wait_for(lambda: harness.http("PUT", url(dc1, 0, "/v1/kv/ready?dc=dc2"), b"1")[0] == 200, 60,
                     "a forwarded write")
            lead1 = leader(dc1).split(":")[0]
            follower = next(i for i, ip in enumerate(dc1["ips"]) if ip != lead1)
            conn = http.client.HTTPConnection(dc1["ips"][follower], dc1["http"], timeout=30)
            kinds = {"local read": ("GET", "/v1/kv/bench/k", None),
                     "forwarded read": ("GET", "/v1/kv/bench/k?dc=dc2", None),
                     "local write": ("PUT", "/v1/kv/bench/k", b"v"),
                     "forwarded write": ("PUT", "/v1/kv/bench/k?dc=dc2", b"v")}
            for m, p, b in kinds.values():
                if m == "PUT":
                    request(conn, m, p, b)
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(args.requests):
                for k, (m, p, b) in kinds.items():
                    status, dt = request(conn, m, p, b)
                    if status != 200:
                        raise SystemExit(f"{k}: HTTP {status}")
                    times[k].append(dt)
            out: dict[str, Any] = {}
            for k, ts in times.items():
                ts.sort()
                out[k] = {"median_ms": round(statistics.median(ts) * 1000, 2),
                          "p90_ms": round(ts[int(len(ts) * 0.9)] * 1000, 2)}
            out["read ratio (forwarded/local)"] = round(out["forwarded read"]["median_ms"] / out["local read"]["median_ms"], 2)
            out["write ratio (forwarded/local)"] = round(out["forwarded write"]["median_ms"] / out["local write"]["median_ms"], 2)
            print(json.dumps(out, indent=2))
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
