"""How long a full garbage collection holds the process with a large KV store, in one process.

The store is built through the FSM as ``bench/snapshot_bench.py`` builds it (``--keys`` keys,
64-byte values, ``--layout``), then: three full collections (``gc.collect()``) on the quiet
store, min and max in ms; then three rounds of 1,000 writes to existing keys (each adds a KV
history version), each followed by one full collection.  A server runs such collections on its
event loop whenever the collector's thresholds say so, so each figure is a stall every request
in flight waits for.  Compare trees with PYTHONPATH:

    PYTHONPATH=/path/to/other/tree/src .venv/bin/python bench/gc_pause.py --keys 1000000

One JSON line is printed and appended to bench/results/<stamp>-gc-pause.jsonl.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import muster
from muster.fsm import FSM
from muster.structs import KVSCommand, TxnCommand, TxnOp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot_bench import VALUE, build_kv, key_of  # noqa: E402


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return round((time.perf_counter() - started) * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--layout", choices=("flat", "prefixes"), default="prefixes")
    a = p.parse_args(argv)
    fsm = FSM()
    idx, done = build_kv(fsm, a.keys, a.layout, 600.0)
    quiet = [full_collection_ms() for _ in range(3)]
    after = []
    for _ in range(3):
        for i in range(1000):
            idx += 1
            key = key_of(i * 997 % done, a.layout)
            fsm.apply_decoded(idx, TxnCommand(ops=[TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key=key, value=VALUE))]))
        after.append(full_collection_ms())
    row = {
        "bench": "gc_pause", "keys": done, "layout": a.layout, "tree": str(Path(muster.__file__).parents[2]),
        "python": sys.version.split()[0], "full_gc_quiet_ms": quiet, "full_gc_after_1000_writes_ms": after,
        "tracked_objects": len(gc.get_objects()),
    }
    print(json.dumps(row))
    out = Path(__file__).resolve().parent / "results" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-gc-pause.jsonl"
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
