"""The state store at scale, in one process (no HTTP, no Raft): what a snapshot and a restore
cost, how long one snapshot step holds the event loop, and whether reads grow with the table.

Builds a store through the FSM (the commands a server applies): ``--keys`` KV keys of 64 bytes
(``/v1/txn``-sized batches of 128 sets; ``--layout prefixes`` writes ``pk/<p:04d>/<j:06d>``
round-robin over 1,000 prefixes, so every new key lands in the middle of the key order) or
``--instances`` catalog registrations (one service and one check each, 10 per node, 100 per
service name), then measures, in CPU seconds of this process (``time.process_time``: other
users of the machine inflate wall time, much less CPU time):

- build: applying the commands;
- snapshot: the capture (what runs before the first step) and the longest step (each one is
  a turn of the event loop in a server), the whole encoding, the bytes; on a tree without
  ``snapshot_stream`` (before the stepped encoding) the snapshot is one call, i.e. one step;
- restore: decoding the snapshot into a new set of tables;
- reads: a recurse read of a 100-key prefix / the 100 instances of one service, and the
  service list, in microseconds per call.

Run it on two source trees to compare them (same machine, one after the other)::

    PYTHONPATH=/tmp/tree-a/src .venv/bin/python bench/snapshot_bench.py --keys 1000000
    .venv/bin/python bench/snapshot_bench.py --keys 1000000 --layout prefixes

Every phase is bounded by ``--max-build-seconds`` (the build stops there and says so).
One JSON line per run on stdout and appended to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from muster.agent.definitions import catalog_check, catalog_service
from muster.fsm import FSM
from muster.structs import KVSCommand, RegisterCommand, TxnCommand, TxnOp

VALUE = b"v" * 64


def key_of(i: int, layout: str) -> str:
    return f"kv/{i:08d}" if layout == "flat" else f"pk/{i % 1000:04d}/{i // 1000:06d}"


def build_kv(fsm: FSM, n: int, layout: str, budget: float) -> tuple[int, int]:
    idx = 0
    t0 = time.process_time()
    done = 0
    for lo in range(0, n, 128):
        ops = [TxnOp(kind="KV", verb="set", kv=KVSCommand(op="set", key=key_of(i, layout), value=VALUE))
               for i in range(lo, min(n, lo + 128))]
        idx += 1
        fsm.apply_decoded(idx, TxnCommand(ops=ops))
        done = min(n, lo + 128)
        if time.process_time() - t0 > budget:
            break
    return idx, done


def build_catalog(fsm: FSM, n: int, budget: float) -> tuple[int, int]:
    names = max(1, n // 100)
    t0 = time.process_time()
    done = 0
    for i in range(n):
        node = f"node-{i // 10:06d}"
        name = f"svc-{i % names:05d}"
        sid = f"{name}-{i}"
        fsm.apply_decoded(i + 1, RegisterCommand(
            node={"ID": "", "Node": node, "Address": f"10.0.{(i // 10) >> 8 & 255}.{(i // 10) & 255}", "Datacenter": "dc1",
                  "TaggedAddresses": {}, "Meta": {"rack": f"r{(i // 10) % 16}"}},
            service=catalog_service({"ID": sid, "Service": name, "Tags": ["v1", "primary"], "Port": 8000 + i % 1000,
                                     "Meta": {"version": "1"}}),
            checks=[catalog_check({"CheckID": f"check-{sid}", "Name": "http", "Status": "passing", "ServiceID": sid,
                                   "Output": "HTTP GET /health: 200 OK"}, node)],
        ))
        done = i + 1
        if time.process_time() - t0 > budget:
            break
    return done, done


def per_call_us(fn: Any, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--keys", type=int)
    g.add_argument("--instances", type=int)
    p.add_argument("--layout", choices=("flat", "prefixes"), default="flat")
    p.add_argument("--max-build-seconds", type=float, default=300.0)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.keys and a.layout == "prefixes" and a.keys < 200_000:
        p.error("--layout prefixes needs --keys >= 200000 (100 keys under the measured prefix)")
    import muster

    src = Path(muster.__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    res: dict[str, Any] = {"bench": "snapshot_bench", "tree": str(src), "commit": commit or src.name}
    fsm = FSM()
    store = fsm.store
    t0, w0 = time.process_time(), time.perf_counter()
    if a.keys:
        idx, done = build_kv(fsm, a.keys, a.layout, a.max_build_seconds)
        res.update(keys=a.keys, layout=a.layout, built=done)
    else:
        idx, done = build_catalog(fsm, a.instances, a.max_build_seconds)
        res.update(instances=a.instances, built=done)
    res["build_cpu_s"] = round(time.process_time() - t0, 2)
    res["build_wall_s"] = round(time.perf_counter() - w0, 2)
    res["build_us_per_row"] = round(res["build_cpu_s"] / max(1, done) * 1e6, 2)
    if done < (a.keys or a.instances):
        res["stopped"] = f"build stopped after {a.max_build_seconds:.0f} s CPU at {done} rows"
        print(json.dumps(res))
        return 0
    # Snapshot: capture, steps, total.
    c0 = time.process_time()
    stream_fn = getattr(store, "snapshot_stream", None)
    if stream_fn is None:
        blob = store.snapshot()
        total = time.process_time() - c0
        res.update(snapshot_capture_s=round(total, 3), snapshot_max_step_s=round(total, 3), snapshot_steps=1)
    else:
        stream = stream_fn()
        capture = time.process_time() - c0
        parts, steps = [], []
        while True:
            s0 = time.process_time()
            piece = next(stream, None)
            steps.append(time.process_time() - s0)
            if piece is None:
                break
            parts.append(piece)
        total = time.process_time() - c0
        blob = b"".join(parts)
        res.update(snapshot_capture_s=round(capture, 4), snapshot_max_step_s=round(max(steps), 4),
                   snapshot_steps=len(steps))
    res["snapshot_cpu_s"] = round(total, 3)
    res["snapshot_mb"] = round(len(blob) / 1e6, 1)
    r0 = time.process_time()
    other = FSM()
    other.restore(blob, idx)
    res["restore_cpu_s"] = round(time.process_time() - r0, 3)
    # Reads.
    if a.keys:
        prefix = "kv/000001" if a.layout == "flat" else "pk/0007/0001"
        assert len(store.kv_list(None, prefix)[1]) == 100
        res["recurse_100_us"] = round(per_call_us(lambda: store.kv_list(None, prefix), 2000), 1)
    else:
        name = "svc-00007"
        assert len(store.service_instances_of(None, name)[1]) == 100
        res["service_100_us"] = round(per_call_us(lambda: store.service_instances_of(None, name), 2000), 1)
        names = getattr(store, "service_names", None)
        if names is not None:  # /v1/catalog/services without a filter, as the handler runs it
            res["services_list_us"] = round(per_call_us(
                lambda: [(n, store.service_tags(n)) for n in names(None)[1]], 200), 1)
        else:  # before: the handler rendered every instance of every service
            from muster.http import render

            def services_before() -> dict[str, list[str]]:
                by_name = store.list_services(None)[1]
                out: dict[str, list[str]] = {}
                for nm in sorted(by_name):
                    for node_name, svc in sorted(by_name[nm], key=lambda p: (p[0], p[1]["ID"])):
                        sn = render.service_node(store.nodes[node_name], svc)
                        tags = out.setdefault(sn["ServiceName"], [])
                        tags.extend(t for t in sn["ServiceTags"] if t not in tags)
                return out

            res["services_list_us"] = round(per_call_us(services_before, 5), 1)
    line = json.dumps(res)
    print(line)
    if a.out:
        with a.out.open("a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
