#!/usr/bin/env python3
"""CPU per KV PUT through a ``-dev`` agent's ASGI app, in process, for the tree on ``PYTHONPATH``.

Where ``bench/run.py`` measures the whole agent under a load tool (wall-clock rates that swing
10-20% on a shared machine), this measures only the request path (routing, ACL, body, Raft
apply, FSM, store, response) in CPU time of this process (``time.process_time``), so two source
trees can be compared on a loaded machine by alternating them:

    PYTHONPATH=<tree>/src .venv/bin/python bench/put_path.py --rounds 5 --puts 20000
    PYTHONPATH=<tree>/src .venv/bin/python bench/put_path.py --puts 20000 --profile out.txt

``--profile`` runs one round under ``cProfile`` and writes the functions sorted by own time
(the per-call overhead of cProfile inflates small functions; compare trees, not absolutes).
Output: one line per round, then the median in us of CPU per PUT.  Works with any tree that has
``muster.process.AgentProcess`` and ``muster.config.config_from_dict`` (the store "before" tree
``eea236e`` has both).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from muster.config import config_from_dict
from muster.process import AgentProcess
from muster.runtime import Rng


class GCTimer:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), per generation."""

    def __init__(self) -> None:
        self.spent = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
        else:
            g = info["generation"]
            self.spent[g] += time.process_time() - self._t0
            self.runs[g] += 1

    def reset(self) -> None:
        self.spent = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]


GC = GCTimer()


async def drive(proc: AgentProcess, n: int, tag: str) -> float:
    """``n`` PUTs of 64 bytes over 10,000 keys; returns us of CPU per PUT."""
    GC.reset()
    app = proc.app
    statuses: list[int] = []

    async def send(msg: MutableMapping[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            statuses.append(msg["status"])

    body = b"x" * 64
    t0 = time.process_time()
    for i in range(n):
        delivered = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http", "method": "PUT", "path": f"/v1/kv/bench/{tag}/{i % 10000}", "query_string": b"",
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000), "scheme": "http",
        }  # fmt: skip
        await app(scope, receive, send)
    spent = time.process_time() - t0
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} PUTs failed (first status {bad[0]})")
    return spent / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--puts", type=int, default=20000)
    ap.add_argument("--profile", default="", help="profile one round with cProfile, write the table here")
    ap.add_argument("--log-level", default="",
                    help="set up the agent's logging at this level (as `muster agent` does; -dev is debug); stderr is the sink")
    ap.add_argument("--config", default="{}", help="JSON merged into the agent's configuration")
    ap.add_argument("--hcl", action="store_true",
                    help="parse an HCL fragment first, as an agent given -hcl or an .hcl file does (its parser stays in the heap)")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up (as a tree may do itself)")
    ap.add_argument("--metrics-off", action="store_true",
                    help="no metrics recording (trees with muster.telemetry): the app hook removed, records no-ops")
    a = ap.parse_args()
    if a.log_level:
        from muster.logging_setup import setup_logging

        setup_logging(a.log_level)
    if a.hcl:
        import hcl2

        hcl2.loads('node_name = "bench"\n')
    proc = AgentProcess(config_from_dict({"node_name": "bench", **json.loads(a.config)}, dev=True), rng=Rng(1))
    await proc.server.start()
    await proc.agent.start()
    try:
        await drive(proc, 2000, "warm")
        if a.metrics_off:
            from muster.telemetry import metrics

            proc.app.metrics = None
            for name in ("incr", "gauge", "sample", "measure_since"):
                setattr(metrics.METRICS, name, lambda *args, **kw: None)
                if hasattr(metrics, "Series") and hasattr(metrics.Series, name):
                    setattr(metrics.Series, name, lambda *args, **kw: None)
        if a.gc_freeze:
            gc.collect()
            gc.freeze()
        print(f"objects tracked by the GC after start-up: {len(gc.get_objects())} (frozen {gc.get_freeze_count()})")
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            us = await drive(proc, a.puts, "prof")
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(60)
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(80)
            with open(a.profile, "w") as f:
                f.write(f"# {a.puts} PUTs under cProfile: {us:.1f} us CPU/PUT\n")
                f.write(out.getvalue())
            print(f"profiled {a.puts} PUTs: {us:.1f} us/PUT (under cProfile) -> {a.profile}")
            return
        per: list[float] = []
        for r in range(a.rounds):
            us = await drive(proc, a.puts, f"r{r}")
            per.append(us)
            gcs = ", ".join(f"gen{g} {GC.runs[g]}x {GC.spent[g] / a.puts * 1e6:.2f}" for g in range(3))
            print(f"round {r + 1}: {us:.2f} us CPU/PUT (of which GC us/PUT: {gcs})", flush=True)
        print(f"median {statistics.median(per):.2f} us CPU/PUT (min {min(per):.2f})")
    finally:
        await proc.agent.stop()
        await proc.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
