"""Muster's 3-server cluster vs PySyncObj (the Python Raft peer), same machine, same run.

PySyncObj: three nodes, each in its own process, on 127.0.0.1 (TCP between them, its default
batching, in-memory journal, i.e. no fsync: an upper bound for it).  Node 0 keeps ``--inflight``
(64) ``ReplDict.set`` calls in flight through callbacks for ``--duration`` seconds and counts
completions.  Muster: a 3-server cluster with fsync (``bench/run.py``'s ``--muster-cluster``),
PUTs at the same concurrency through wrk.  Prints both and the ratio; installs pysyncobj into
the venv if it is missing.

    .venv/bin/python bench/pysyncobj_bench.py [--duration 10] [--inflight 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def ensure_pysyncobj() -> None:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pysyncobj"], check=True)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(int(s.getsockname()[1]))
    for s in socks:
        s.close()
    return ports


def node(i: int, addrs: list[str], duration: float, inflight: int, out: Any) -> None:
    from pysyncobj import SyncObj
    from pysyncobj.batteries import ReplDict

    d = ReplDict()
    me = addrs[i]
    others = [a for a in addrs if a != me]
    obj = SyncObj(me, others, consumers=[d])
    if i != 0:
        time.sleep(duration + 30)
        return
    deadline = time.monotonic() + 30
    while obj._getLeader() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    done = {"n": 0, "err": 0}
    lat: list[float] = []

    def issue(k: int) -> None:
        t0 = time.monotonic()

        def cb(_res: Any, err: Any) -> None:
            if err == 0:
                done["n"] += 1
                lat.append(time.monotonic() - t0)
            else:
                done["err"] += 1
            if time.monotonic() < stop_at:
                issue(k + inflight)

        d.set(f"k{k % 10000}", "x" * 64, callback=cb)

    start = time.monotonic()
    stop_at = start + duration
    for k in range(inflight):
        issue(k)
    while time.monotonic() < stop_at + 2:
        time.sleep(0.05)
    lat.sort()
    out.put({"ops": done["n"], "errors": done["err"], "seconds": duration, "rate": done["n"] / duration,
             "p50_ms": 1000 * lat[len(lat) // 2] if lat else None, "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None})


def bench_pysyncobj(duration: float, inflight: int) -> dict[str, Any]:
    ports = free_ports(3)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    q: Any = mp.Queue()
    procs = [mp.Process(target=node, args=(i, addrs, duration, inflight, q), daemon=True) for i in range(3)]
    for p in procs:
        p.start()
    try:
        return dict(q.get(timeout=duration + 60))
    finally:
        for p in procs:
            p.kill()
            p.join(5)


def bench_muster(duration: float, conns: int) -> dict[str, Any]:
    import run as harness

    procs = harness.Processes()
    with tempfile.TemporaryDirectory(prefix="muster-pso-") as tmp:
        try:
            m = harness.start_muster_cluster(procs, Path(tmp), "")
            res = harness.run_wrk(m.url, "muster.lua", ["put"], conns, duration, 1, [m.pid])
        finally:
            procs.stop_all()
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--inflight", type=int, default=64)
    a = p.parse_args()
    ensure_pysyncobj()
    pso = bench_pysyncobj(a.duration, a.inflight)
    mus = bench_muster(a.duration, a.inflight)
    rate = float(mus.get("rps", 0) or 0)
    print(json.dumps({"pysyncobj": pso, "muster_cluster_put": mus}, indent=2, default=str))
    if pso.get("rate"):
        print(f"\nPySyncObj {pso['rate']:,.0f} writes/s (p50 {pso['p50_ms']:.1f} ms) vs Muster 3-server cluster "
              f"{rate:,.0f} PUT/s over HTTP with fsync: ratio {rate / pso['rate']:.2f}x (goal >= 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
