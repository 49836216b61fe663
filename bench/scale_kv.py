"""KV scale on a 3-server cluster: 10k / 100k / 1M keys of 64 bytes, flat or in 1,000 prefixes.

For each size (one fresh cluster per size, on 127.0.0.1-3, data dirs on disk, fsync on):

1. bulk load: ``/v1/txn`` transactions of 128 ``set`` operations, 8 in flight, to the leader;
   ``flat`` keys are ``kv/<i:08d>`` in order, ``prefixes`` keys are ``pk/<p:04d>/<j:06d>`` written
   round-robin over the 1,000 prefixes (every write lands in the middle of the key order);
2. RSS of every server (``VmRSS``) and per key;
3. latency of ``?recurse`` and ``?keys`` on a prefix of exactly 100 keys (leader, default
   consistency, one keep-alive connection, sequential);
4. ``GET /v1/snapshot`` (save: time and archive size);
5. writers (8 connections, PUT 64 bytes to 1,000 keys) for ``--writer-seconds`` while the leader
   takes Raft snapshots of the whole state (``raft_snapshot_threshold`` of the run): every write's
   latency, and those in flight during a snapshot; the snapshot's encode/persist/compact times and
   how long it held the event loop, from the leader's log;
6. restart of a follower from its data dir (until it serves the last write with ``?stale``) and
   the time its snapshot restore took;
7. catch-up of a new server with an empty data dir on 127.0.0.4 (snapshot install + log).

Raw results: ``bench/results/<stamp>-scale-kv.jsonl``.  Usage::

    flock /work/coord/heavy.lock .venv/bin/python bench/scale_kv.py --keys 100000 --layout flat
"""

from __future__ import annotations

import argparse
import base64
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import run
import scalekit

VALUE = base64.b64encode(b"v" * 64).decode()


def key_of(i: int, n: int, layout: str) -> str:
    if layout == "flat":
        return f"kv/{i:08d}"
    p, j = i % 1000, i // 1000  # round-robin over the prefixes
    return f"pk/{p:04d}/{j:06d}"


def prefix_of_100(layout: str) -> str:
    # flat: kv/00000100 .. kv/00000199; prefixes: pk/0007/000100 .. pk/0007/000199
    return "kv/000001" if layout == "flat" else "pk/0007/0001"


def batches(n: int, layout: str, per: int = 128) -> Iterator[list[dict[str, Any]]]:
    for lo in range(0, n, per):
        yield [{"KV": {"Verb": "set", "Key": key_of(i, n, layout), "Value": VALUE}} for i in range(lo, min(n, lo + per))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=10000)
    p.add_argument("--layout", choices=("flat", "prefixes"), default="flat")
    p.add_argument("--snapshot-threshold", type=int, default=4096, help="raft_snapshot_threshold of the servers")
    p.add_argument("--snapshot-interval", default="2s",
                   help="raft_snapshot_interval of the servers (threshold checks every interval to 2x interval)")
    p.add_argument("--writer-seconds", type=float, default=20.0)
    p.add_argument("--samples", type=int, default=200, help="requests per latency figure")
    p.add_argument("--skip", default="", help="comma list of phases to skip: save,writers,restart,catchup")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, data dirs)")
    p.add_argument("--tag", default="", help="label stored in every result line (e.g. the git commit)")
    a = p.parse_args(argv)
    if a.layout == "prefixes" and a.keys < 200_000:
        p.error("--layout prefixes needs --keys >= 200000 (100 keys under the measured prefix)")
    skip = set(filter(None, a.skip.split(",")))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = run.ROOT / "bench" / "results" / f"{stamp}-scale-kv.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = scalekit.record_to(out)
    work = Path(tempfile.mkdtemp(prefix="muster-scale-kv-", dir="/var/tmp"))
    procs = run.Processes()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, run._raise_interrupt)
    base = {"bench": "scale_kv", "keys": a.keys, "layout": a.layout, "tag": a.tag}
    try:
        cluster = scalekit.Cluster(procs, work, {"raft_snapshot_threshold": a.snapshot_threshold,
                                                  "raft_snapshot_interval": a.snapshot_interval})
        lead = cluster.start()
        rss0 = {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers}
        txns, secs = scalekit.bulk_put(cluster.url(lead), "/v1/txn", batches(a.keys, a.layout))
        run.http("PUT", cluster.url(lead) + "/v1/kv/scale/marker", b"1", timeout=30)
        lead = cluster.wait_leader()
        for s in cluster.servers:
            cluster.wait_key(s, "scale/marker", 300)
        rss1 = {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers}
        per_key = {n: round((rss1[n] - rss0[n]) * 1048576 / a.keys, 1) for n in rss1}
        record({**base, "phase": "load", "txns": txns, "seconds": round(secs, 2),
                "keys_per_s": round(a.keys / secs, 1), "rss_before_mib": rss0, "rss_after_mib": rss1,
                "rss_bytes_per_key": per_key})
        host, port = lead.ip, cluster.http_port
        pre = prefix_of_100(a.layout)
        rec = scalekit.latency(host, port, f"/v1/kv/{pre}?recurse", a.samples)
        keys = scalekit.latency(host, port, f"/v1/kv/{pre}?keys", a.samples)
        record({**base, "phase": "read", "recurse": rec, "keys_list": keys})
        if "save" not in skip:
            record({**base, "phase": "save", **scalekit.snapshot_save(cluster.url(lead))})
        if "writers" not in skip:
            st = scalekit.writer_stall(cluster, lead, a.writer_seconds)
            record({**base, "phase": "writers", **st})
            run.http("PUT", cluster.url(lead) + "/v1/kv/scale/marker", b"2", timeout=30)
        rss2 = {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers}
        record({**base, "phase": "rss", "rss_mib": rss2,
                "disk_bytes": {s.name: scalekit.dir_bytes(s.data_dir) for s in cluster.servers}})
        if "restart" not in skip:
            record({**base, "phase": "restart", **cluster.restart_follower("scale/marker")})
        if "catchup" not in skip:
            record({**base, "phase": "catchup", **cluster.catch_up_new_server("scale/marker")})
    except KeyboardInterrupt:
        scalekit.log("interrupted")
        return 130
    finally:
        procs.stop_all()
        if a.keep:
            scalekit.log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    scalekit.log(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
