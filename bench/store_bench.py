"""CPU cost of the state store's write and read paths, per operation, without HTTP.

Applies ``--ops`` KV sets through the FSM (each in its own write transaction, over a 10k key
space, 64-byte values) and reads as many keys with ``kv_get``; reports the best of ``--reps``
runs in CPU microseconds per operation (``time.process_time``: less sensitive than wall time to
other users of a shared machine).  Run it on two source trees to compare them:

    PYTHONPATH=/path/to/old/src .venv/bin/python bench/store_bench.py
    .venv/bin/python bench/store_bench.py
"""

from __future__ import annotations

import argparse
import time

from muster.fsm import FSM
from muster.structs import KVSCommand


def run(n: int) -> tuple[float, float]:
    fsm = FSM()
    cmds = [KVSCommand(op="set", key=f"bench/{i % 10000}", value=b"x" * 62 + b"%02d" % (i % 100)) for i in range(n)]
    keys = [f"bench/{i % 10000}" for i in range(n)]
    t0 = time.process_time()
    for i, c in enumerate(cmds, 1):
        fsm.apply_decoded(i, c)
    t1 = time.process_time()
    get = fsm.store.kv_get
    for k in keys:
        get(None, k)
    t2 = time.process_time()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    results = [run(a.ops) for _ in range(max(1, a.reps))]
    put = min(r[0] for r in results)
    get = min(r[1] for r in results)
    print(f"FSM apply KV set: {put:.2f} us CPU/op   kv_get: {get:.3f} us CPU/op   (best of {len(results)} x {a.ops})")


if __name__ == "__main__":
    main()
