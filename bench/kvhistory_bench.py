#!/usr/bin/env python3
"""KV history cost: PUT throughput and memory of a dev agent with history on (the default,
10 versions per key) against one with ``kv_history { enabled = false }``.

Same machine, same run, same load tool (wrk with ``bench/lua/kvhist.lua``: PUTs over 10k keys,
each thread alternating two 64-byte values per key so that every PUT is a change and records a
version), alternating the two agents round by round so background noise hits both alike.
Reported: median req/s per agent, the ratio on/off, the agent's CPU per request, and each
agent's RSS after the load (10k keys x up to 10 versions with history on).  A second part
measures in-process the CPU of one FSM KV write and, with tracemalloc, the bytes one version
adds to the store (``FSM.apply_decoded`` of the same commands with history on and off).

    python bench/kvhistory_bench.py [--rounds 3] [--duration 8] [--conns 16]

Every process started here is stopped by PID at the end; every wait is bounded.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import run  # bench/run.py (bench/ is sys.path[0] when run as `python bench/kvhistory_bench.py`)
from acl_bench import REPO, free_port, request

sys.path.insert(0, str(REPO / "src"))

from muster.fsm import FSM  # noqa: E402
from muster.state.kvhistory import HistoryPolicy  # noqa: E402
from muster.state.store import StateStore  # noqa: E402
from muster.structs import KVSCommand  # noqa: E402


class HistAgent:
    """A dev agent (ACLs off), with history on (the default) or off."""

    def __init__(self, name: str, history: bool, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "muster", "agent", "-dev", "-client=127.0.0.1", f"-http-port={self.port}",
                "-dns-port=-1", f"-server-port={free_port()}", f"-serf-lan-port={free_port()}",
                f"-serf-wan-port={free_port()}", "-grpc-port=-1", "-log-level=warn",
                f"-hcl=kv_history {{ enabled = {'true' if history else 'false'} }}"]
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


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bytes_per_version(n_keys: int = 2000, writes_per_key: int = 10) -> tuple[float, int]:
    """Bytes the history adds per recorded version (tracemalloc, same commands on and off)."""
    cmds = [
        KVSCommand("set", f"k/{k}", (b"%d-" % w) + b"v" * 61, ts=float(w))
        for w in range(writes_per_key) for k in range(n_keys)
    ]

    def load(policy: HistoryPolicy) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        fsm = FSM(StateStore(policy))
        for i, c in enumerate(cmds, 1):
            fsm.apply_decoded(i, c)
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size, fsm.store.tables.kv_history.version_count()

    off, _ = load(HistoryPolicy(versions=0))
    on, versions = load(HistoryPolicy(versions=10))
    return (on - off) / versions, versions


def fsm_cost(n: int = 20000, rounds: int = 5) -> tuple[float, float]:
    """CPU microseconds per FSM KV write (``apply_decoded`` of a changing ``set``), history off
    and on: the best of ``rounds`` alternating runs."""
    cmds = [KVSCommand("set", f"k/{i % 2000}", (b"%d-" % i) + b"v" * 58, ts=float(i)) for i in range(n)]
    best = {0: float("inf"), 10: float("inf")}
    for _ in range(rounds):
        for versions in (0, 10):
            fsm = FSM(StateStore(HistoryPolicy(versions=versions)))
            t0 = time.process_time()
            for i, c in enumerate(cmds, 1):
                fsm.apply_decoded(i, c)
            best[versions] = min(best[versions], (time.process_time() - t0) / n * 1e6)
    return best[0], best[10]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    rss: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="kvhist-bench-") as tmp:
        work = Path(tmp)
        off = HistAgent("history-off", False, work)
        on: HistAgent | None = None
        try:
            on = HistAgent("history-on", True, work)
            for _ in range(args.rounds):
                for name, agent in (("off", off), ("on", on)):
                    r = run.run_wrk(agent.url, "kvhist.lua", [], args.conns, args.duration, args.threads,
                                    pids=[agent.proc.pid])
                    if "error" in r or r.get("non2xx"):
                        raise RuntimeError(f"{name}: {r.get('error') or str(r['non2xx']) + ' non-2xx answers'}")
                    results[name].append(r)
            rss = {"off": rss_kib(off.proc.pid), "on": rss_kib(on.proc.pid)}
        finally:
            off.stop()
            if on is not None:
                on.stop()
    per_version, versions = bytes_per_version()
    fsm_off, fsm_on = fsm_cost()
    ra = statistics.median(x["rps"] for x in results["off"])
    rb = statistics.median(x["rps"] for x in results["on"])
    ca = statistics.median(x.get("server_cpu_us_per_req", 0.0) for x in results["off"])
    cb = statistics.median(x.get("server_cpu_us_per_req", 0.0) for x in results["on"])
    print(f"| history off req/s | history on req/s | on/off | CPU us/req off | CPU us/req on | RSS off | RSS on |"
          f"  (PUT c={args.conns}, {args.rounds} rounds x {args.duration:g}s, medians)")
    print("|---|---|---|---|---|---|---|")
    print(f"| {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f}x | {ca:.0f} | {cb:.0f} | {rss['off'] / 1024:.0f} MiB | "
          f"{rss['on'] / 1024:.0f} MiB |")
    print(f"\nFSM KV write, in-process (best of 5 x 20k): {fsm_off:.2f} us off, {fsm_on:.2f} us on "
          f"(+{fsm_on - fsm_off:.2f} us per write)")
    print(f"\nmemory per recorded version (in-process, {versions} versions of 64-byte values): {per_version:.0f} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
