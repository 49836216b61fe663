"""What a full garbage collection costs a started ``-dev`` agent, with and without the start-up
freeze (``telemetry.runtime.freeze_startup_heap``, which ``muster agent`` runs once started).

One process: an agent is built and started as ``muster agent -dev`` builds it (server, agent,
every route, the HTTP listener on a free port), ``--keys`` KV entries are written through its
server, then ``--reps`` full collections are timed; then the heap is frozen and the same is
timed again.  CPU-bound and single-threaded, so a loaded machine moves both columns alike.

    .venv/bin/python bench/gc_startup.py --keys 10000 --reps 5

Prints one JSON line and appends it to bench/results/<stamp>-gc-startup.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from pathlib import Path

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.structs import KVSCommand
from muster.telemetry.runtime import freeze_startup_heap

RESULTS = Path(__file__).resolve().parent / "results"


def timed_collections(reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        gc.collect()
        out.append(round((time.perf_counter() - started) * 1000, 2))
    return out


async def run(keys: int, reps: int) -> dict[str, object]:
    cfg = parse_agent_flags(["-dev", "-node=gc-bench", "-client=127.0.0.1", "-http-port=0", "-dns-port=-1"])
    proc = AgentProcess(cfg, rng=Rng(1))
    await proc.start()
    try:
        for i in range(keys):
            await proc.server.apply(KVSCommand(op="set", key=f"bench/{i:08d}", value=b"x" * 64))
        tracked = len(gc.get_objects())
        before = timed_collections(reps)
        frozen = freeze_startup_heap()
        after = timed_collections(reps)
        return {
            "keys": keys, "tracked_objects": tracked, "frozen": frozen,
            "full_gc_ms_before": before, "full_gc_ms_after": after,
            "median_before": statistics.median(before), "median_after": statistics.median(after),
        }
    finally:
        await proc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    row = asyncio.run(run(args.keys, args.reps))
    line = json.dumps(row)
    print(line)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-gc-startup.jsonl", "a") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
