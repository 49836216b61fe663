#!/usr/bin/env python3
"""10,000 blocking watchers on a follower and on a (stateless) client agent of a 3-server cluster.

    python bench/watchers_cluster.py                 # N=10,000 on each
    python bench/watchers_cluster.py -n 2000

Starts 3 servers on 127.0.2.1-3 and one client agent on 127.0.2.4 (the processes and flags of
``bench/clients.py``), then runs ``bench/watchers.py``'s measurement (N idle
``GET /v1/kv/watch/key?index=..&wait=5m``, then one PUT, time until every watcher has its
answer) against a follower, then against the client agent.  On the client every watcher is
forwarded to a server (``server/remote.py``), so the client's RSS is what it costs to relay
them; the RSS of every server is printed before and after each phase as well.  Results: one
JSON line per target in bench/results/<UTC time>-watchers-cluster.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients  # noqa: E402 - the cluster launcher of bench/clients.py
import watchers  # noqa: E402 - the measurement of bench/watchers.py

CLIENT_IP = "127.0.2.4"
NO_CAP = "limits {\n  http_max_conns_per_client = 0\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--watchers", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    b = clients.Bench(argparse.Namespace(per_proc=250))
    # N watchers come from one address: lift limits.http_max_conns_per_client (0 = no cap).
    b.extra_hcl = NO_CAP
    results = []
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    client: subprocess.Popen[bytes] | None = None
    try:
        b.start_servers()
        leader = b.leader()
        d = b.root / "client"
        d.mkdir()
        argv = [sys.executable, "-m", "muster", "agent", "-node=client", f"-data-dir={d / 'data'}",
                f"-bind={CLIENT_IP}", f"-advertise={CLIENT_IP}", f"-client={CLIENT_IP}", f"-http-port={b.http_port}",
                f"-server-port={b.server_port}", f"-serf-lan-port={b.serf_port}", "-dns-port=-1", "-log-level=warn",
                "-hcl", NO_CAP,
                *[f"-retry-join={ip}:{b.serf_port}" for ip in clients.SERVER_IPS]]
        with open(d / "agent.log", "ab") as out:
            client = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://{CLIENT_IP}:{b.http_port}/v1/status/leader", timeout=2) as r:
                    if json.loads(r.read()):
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the client agent never reached a server")
            time.sleep(0.5)
        follower = next(i for i in range(3) if i != leader)
        targets = [("follower", clients.SERVER_IPS[follower], b.servers[follower].pid),
                   ("client", CLIENT_IP, client.pid)]
        for name, ip, pid in targets:
            before = {f"s{i}": watchers.tree_rss_kb(p.pid)[0] for i, p in enumerate(b.servers)}
            res = watchers.run(f"http://{ip}:{b.http_port}", pid, args.watchers, args.timeout)
            res.update({"target": name, "leader": f"s{leader}", "servers_rss_before_kb": before,
                        "servers_rss_after_kb": {f"s{i}": watchers.tree_rss_kb(p.pid)[0]
                                                 for i, p in enumerate(b.servers)}})
            results.append(res)
            print(json.dumps(res), flush=True)
    finally:
        if client is not None:
            client.kill()
            client.wait(10)
        b.close()
        if results:
            clients.RESULTS.mkdir(exist_ok=True)
            with open(clients.RESULTS / f"{stamp}-watchers-cluster.jsonl", "w") as f:
                for r in results:
                    f.write(json.dumps(r) + "\n")
    print("| target | watchers | RSS before (MB) | RSS with watchers (MB) | wake p50 (s) | wake all (s) | returned ok |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['target']} | {r['watchers']} | {r.get('rss_before_kb', 0) / 1024:.0f} | "
              f"{r.get('rss_with_kb', 0) / 1024:.0f} | {r.get('wake_p50_s')} | {r.get('wake_all_s')} | "
              f"{r.get('returned_ok')} |")
    print(f"\nraw: bench/results/{stamp}-watchers-cluster.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
