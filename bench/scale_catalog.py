"""Catalog scale on a 3-server cluster: 1k / 10k / 100k service instances, one check each.

For each size (one fresh cluster per size, on 127.0.0.1-3, data dirs on disk, fsync on):

1. bulk load through ``/v1/catalog/register`` (the path agents' anti-entropy uses), one request
   per instance carrying its node, the service and its check (status passing), 32 in flight, to
   the leader.  ``--per-node`` instances per node (default 10), service names ``svc-<k>`` with
   exactly 100 instances each (so ``/v1/health/service/svc-00007?passing`` answers the same 100
   instances at every size: its latency must not grow with the catalog);
2. RSS of every server (``VmRSS``) and per instance;
3. latency of ``/v1/health/service/svc-00007?passing`` and of ``/v1/catalog/services`` (leader,
   default consistency, one keep-alive connection, sequential);
4. ``GET /v1/snapshot`` (save: time and archive size), and the Raft snapshots the leader took
   during the load (encode/persist/compact, and how long each held the event loop);
5. restart of a follower from its data dir (until it serves the last write with ``?stale``);
6. catch-up of a new server with an empty data dir on 127.0.0.4.

Raw results: ``bench/results/<stamp>-scale-catalog.jsonl``.  Usage::

    flock /work/coord/heavy.lock .venv/bin/python bench/scale_catalog.py --instances 10000
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import run
import scalekit

PER_SERVICE = 100
QUERY_SERVICE = "svc-00007"


def registrations(n: int, per_node: int) -> Iterator[dict[str, Any]]:
    names = max(1, n // PER_SERVICE)
    for i in range(n):
        node = f"node-{i // per_node:06d}"
        name = f"svc-{i % names:05d}"
        sid = f"{name}-{i}"
        yield {
            "Node": node,
            "Address": f"10.{(i // per_node) >> 16 & 255}.{(i // per_node) >> 8 & 255}.{(i // per_node) & 255}",
            "NodeMeta": {"rack": f"r{(i // per_node) % 16}"},
            "Service": {"ID": sid, "Service": name, "Tags": ["v1", "primary"], "Port": 8000 + i % 1000,
                        "Meta": {"version": "1"}},
            "Check": {"CheckID": f"check-{sid}", "Name": "http", "Status": "passing", "ServiceID": sid,
                      "Output": "HTTP GET /health: 200 OK"},
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--per-node", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--samples", type=int, default=200, help="requests per health latency figure")
    p.add_argument("--services-samples", type=int, default=50, help="requests of /v1/catalog/services")
    p.add_argument("--skip", default="", help="comma list of phases to skip: save,restart,catchup")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, data dirs)")
    p.add_argument("--tag", default="", help="label stored in every result line (e.g. the git commit)")
    a = p.parse_args(argv)
    if a.instances < 8 * PER_SERVICE:
        p.error(f"--instances must be >= {8 * PER_SERVICE} ({QUERY_SERVICE} needs its 100 instances)")
    skip = set(filter(None, a.skip.split(",")))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = run.ROOT / "bench" / "results" / f"{stamp}-scale-catalog.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = scalekit.record_to(out)
    work = Path(tempfile.mkdtemp(prefix="muster-scale-cat-", dir="/var/tmp"))
    procs = run.Processes()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, run._raise_interrupt)
    base = {"bench": "scale_catalog", "instances": a.instances, "per_node": a.per_node, "tag": a.tag}
    try:
        cluster = scalekit.Cluster(procs, work)
        lead = cluster.start()
        rss0 = {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers}
        cpu0 = {s.name: scalekit.cpu_seconds(s.pid) for s in cluster.servers}
        reqs, secs = scalekit.bulk_put(cluster.url(lead), "/v1/catalog/register",
                                       registrations(a.instances, a.per_node), a.concurrency)
        run.http("PUT", cluster.url(lead) + "/v1/kv/scale/marker", b"1", timeout=30)
        lead = cluster.wait_leader()
        for s in cluster.servers:
            cluster.wait_key(s, "scale/marker", 300)
        rss1 = {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers}
        per = {n: round((rss1[n] - rss0[n]) * 1048576 / a.instances, 1) for n in rss1}
        cpu = {s.name: round(scalekit.cpu_seconds(s.pid) - cpu0[s.name], 1) for s in cluster.servers}
        record({**base, "phase": "load", "requests": reqs, "seconds": round(secs, 2),
                "registrations_per_s": round(a.instances / secs, 1), "cpu_s": cpu,
                "rss_before_mib": rss0, "rss_after_mib": rss1, "rss_bytes_per_instance": per})
        host, port = lead.ip, cluster.http_port
        health = scalekit.latency(host, port, f"/v1/health/service/{QUERY_SERVICE}?passing", a.samples)
        services = scalekit.latency(host, port, "/v1/catalog/services", a.services_samples)
        record({**base, "phase": "read", "health": health, "catalog_services": services})
        snaps = cluster.snapshot_lines(lead)
        record({**base, "phase": "raft-snapshots", "leader": lead.name,
                "snapshots": [{"index": s[0], "bytes": s[1], "encode_s": s[2], "persist_s": s[3],
                               "compact_s": s[4], "loop_s": s[5]} for s in snaps]})
        if "save" not in skip:
            record({**base, "phase": "save", **scalekit.snapshot_save(cluster.url(lead))})
        record({**base, "phase": "rss", "rss_mib": {s.name: round(scalekit.rss_mib(s.pid), 1) for s in cluster.servers},
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
