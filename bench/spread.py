"""Reads spread over every member: etcd serializable GETs on its 3 members vs Muster ``?stale``
GETs on its 3 servers, same machine, same run, same load tool.

One wrk per member at the same time (``--conns`` split evenly, 63 by default = 21 each, as the
reference figures in docs/performance.md), summing requests/s; p99 is the worst member's.

    .venv/bin/python bench/spread.py [--duration 10] [--conns 63]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness  # noqa: E402  (the benchmark harness: processes, wrk, etcd, the cluster)


def spread(urls: list[str], script: str, args: tuple[str, ...], conns: int, duration: float, pids: list[int]) -> dict[str, Any]:
    per = max(1, conns // len(urls))
    with cf.ThreadPoolExecutor(len(urls)) as ex:
        results = list(ex.map(lambda u: harness.run_wrk(u, script, args, per, duration, 1, pids), urls))
    bad = [r for r in results if "error" in r]
    if bad:
        return {"error": bad[0]["error"]}
    return {
        "rps": sum(r["rps"] for r in results),
        "p99_ms": max(r.get("p99_ms", 0) for r in results),
        "per_member_rps": [round(r["rps"]) for r in results],
        "non_2xx": sum(r.get("non_2xx", 0) for r in results),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--conns", type=int, default=63)
    a = p.parse_args()
    harness.ensure_tools(no_install=False)
    procs = harness.Processes()
    with tempfile.TemporaryDirectory(prefix="muster-spread-") as tmp:
        try:
            work = Path(tmp)
            etcd = harness.start_etcd(procs, work)
            muster = harness.start_muster_cluster(procs, work, "")
            port = muster.url.rsplit(":", 1)[1]
            murls = [f"http://127.0.0.{i}:{port}" for i in (1, 2, 3)]
            leader = etcd.leader_url
            harness.populate("etcd", lambda k: ("POST", leader + "/v3/kv/put", json.dumps(
                {"key": harness.b64(f"bench/{k}".encode()), "value": harness.b64(harness.VALUE)}).encode()))
            harness.populate("muster", lambda k: ("PUT", f"{muster.url}/v1/kv/bench/{k}", harness.VALUE))
            mpids = [proc.pid for name, proc in procs.procs if name.startswith("muster")]
            e = spread(etcd.client_urls, "etcd.lua", ("serializable",), a.conns, a.duration, etcd.pids)
            m = spread(murls, "muster.lua", ("get", "stale"), a.conns, a.duration, mpids)
        finally:
            procs.stop_all()
    print(json.dumps({"etcd_serializable_spread": e, "muster_stale_spread": m}, indent=2))
    if "rps" in e and "rps" in m:
        print(f"\nspread reads, {a.conns} connections: Muster ?stale {m['rps']:,.0f}/s (p99 {m['p99_ms']:.1f} ms) "
              f"vs etcd serializable {e['rps']:,.0f}/s (p99 {e['p99_ms']:.1f} ms): ratio {m['rps'] / e['rps']:.2f}x (goal >= 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
