#!/usr/bin/env python3
"""Leader CPU per write against the number of client agents (stateless clients, server/remote.py).

    python bench/clients.py                                  # sizes 0,100,1000
    python bench/clients.py --sizes 0,100,1000 --puts 5000 --rounds 3 --per-proc 250

Starts a 3-server cluster (real ``muster agent -server`` processes on 127.0.2.1-3), then grows
a population of lightweight client agents and, at each size, sends the same PUT load to the
leader and reads the leader's CPU time (utime + stime of /proc/<pid>/stat, every thread) before
and after: leader CPU milliseconds per 1,000 PUTs.  The same run measures every size, so the
ratio 1000-clients / 0-clients compares like with like (goal: <= 1.2).

A lightweight client is what a stateless client agent puts on the cluster: a gossip member of
the LAN pool (``GossipPool``, tags ``role=node``, on its own address 127.0.(10+k).x with the
servers' Serf port, so the leader registers it in the catalog with a serfHealth check as any
agent), the client's link to the servers (``RemoteServers``: the servers it learns from gossip)
and its catalog cache (``CatalogMirror``: one blocking query held on a server, for its own node
and the servers, as a client whose DNS has not been asked anything yet).  Several hundred
live in one worker process (``--per-proc``); 1,000 real agent processes would not fit on 2
cores.  The mirrors start once the catalog holds every client (the steady state is measured,
not the join storm).

Written: bench/results/<UTC time>-clients.jsonl (one line per round) and a markdown table on
stdout.  Every wait is bounded; the script kills only the processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_IPS = ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[clients {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def client_ip(i: int) -> str:
    return f"127.0.{10 + i // 250}.{1 + i % 250}"


def free_port(hosts: list[str]) -> int:
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        ok = True
        for h in hosts[1:]:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s2:
                    try:
                        s2.bind((h, port))
                    except OSError:
                        ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------- worker


async def worker_main(first: int, count: int, serf_port: int, joins: list[str], dc: str) -> None:
    """Run ``count`` lightweight clients; print 'joined' once all joined, start their mirrors on
    the line 'mirror' on stdin, print 'mirrored' once every mirror holds a catalog."""
    from muster.gossip.core import GossipConfig
    from muster.gossip.serf import MemberStatus
    from muster.gossip.transport import GossipPool
    from muster.runtime import RealClock
    from muster.server.remote import CatalogMirror, RemoteServers, ServerSet
    from muster.state.store import StateStore

    clock = RealClock()

    class Light:
        def __init__(self, i: int) -> None:
            node_id = str(uuid.uuid4())
            tags = {"role": "node", "dc": dc, "id": node_id, "acls": "0", "build": "1.17.0:muster", "segment": "",
                    "vsn": "2", "vsn_max": "3", "vsn_min": "2"}
            # memberlist's WAN timings (probe every 5 s, 3 s timeout, gossip every 0.5 s) for the
            # lightweight members only: 1,000 Python gossip members must share 2 cores with the
            # cluster.  The servers keep the LAN timings, so what they do per member is unchanged.
            self.pool = GossipPool(name=f"light-{i}", node_id=node_id, bind_addr=client_ip(i), bind_port=serf_port,
                                   tags=tags, clock=clock, default_join_port=serf_port, gossip=GossipConfig.wan())

            def servers() -> list[tuple[str, str]]:
                return [(m.tags.get("id", ""), f"{m.addr}:{m.tags.get('port', '8300')}") for m in self.pool.members()
                        if m.tags.get("role") == "consul" and m.status == MemberStatus.ALIVE]

            self.remote = RemoteServers(node_id, ServerSet(servers, random.Random(i)))
            self.mirror = CatalogMirror(StateStore(), self.remote, clock)

        async def start(self) -> None:
            await self.pool.start()
            for _ in range(60):
                if await self.pool.join([random.choice(joins)]) > 0:  # one server; gossip does the rest
                    return
                await asyncio.sleep(1.0)
            raise RuntimeError(f"{self.pool.name} could not join")

    lights = [Light(first + k) for k in range(count)]
    for k in range(0, count, 10):  # joins in small waves: a storm of push/pulls helps nobody
        await asyncio.gather(*(lt.start() for lt in lights[k:k + 10]))
        await asyncio.sleep(0.2)
    print("joined", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "mirror":
        for k in range(0, count, 25):
            for lt in lights[k:k + 25]:
                lt.mirror.start()
            await asyncio.gather(*(asyncio.wait_for(lt.mirror.ready.wait(), 600) for lt in lights[k:k + 25]))
        print("mirrored", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)


# --------------------------------------------------------------------------- load


async def put_load(host: str, port: int, n: int, conc: int) -> float:
    """``n`` PUTs of 64 bytes over ``conc`` keep-alive connections; returns the wall time."""
    body = b"v" * 64
    left = [n]

    async def one(w: int) -> None:
        r, wr = await asyncio.open_connection(host, port)
        try:
            while left[0] > 0:
                left[0] -= 1
                i = left[0]
                wr.write(f"PUT /v1/kv/bench/c{w}/{i % 64} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 64\r\n\r\n".encode()
                         + body)
                head = await r.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"PUT failed: {head[:60]!r}")
                length = 0
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                await r.readexactly(length)
        finally:
            wr.close()

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(w) for w in range(conc))), 600)
    return time.monotonic() - t0


# --------------------------------------------------------------------------- main


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="muster-clients-bench-"))
        self.http_port = free_port(SERVER_IPS)
        self.server_port = free_port(SERVER_IPS)
        self.serf_port = free_port(SERVER_IPS + [client_ip(0)])
        self.servers: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[str]] = []
        self.clients = 0
        #: More HCL for every server (bench/watchers_cluster.py lifts the per-IP HTTP cap).
        self.extra_hcl = ""

    def start_servers(self) -> None:
        hcl = 'performance {\n  raft_multiplier = 1\n}\n' + self.extra_hcl
        for k, ip in enumerate(SERVER_IPS):
            d = self.root / f"s{k}"
            d.mkdir()
            argv = [sys.executable, "-m", "muster", "agent", "-server", "-bootstrap-expect=3", f"-node=s{k}",
                    f"-data-dir={d / 'data'}", f"-bind={ip}", f"-advertise={ip}", f"-client={ip}",
                    f"-http-port={self.http_port}", f"-server-port={self.server_port}",
                    f"-serf-lan-port={self.serf_port}", "-serf-wan-port=-1", "-dns-port=-1", "-retry-interval=1s",
                    "-log-level=warn", "-hcl", hcl,
                    *[f"-retry-join={j}:{self.serf_port}" for j in SERVER_IPS]]
            with open(d / "agent.log", "ab") as out:
                self.servers.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def leader(self) -> int:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            views = set()
            for ip in SERVER_IPS:
                try:
                    views.add(http_json(f"http://{ip}:{self.http_port}/v1/status/leader", 2))
                except (OSError, ValueError):
                    views.add("")
            if len(views) == 1 and "" not in views:
                addr = views.pop().rpartition(":")[0]
                return SERVER_IPS.index(addr)
            time.sleep(0.5)
        raise RuntimeError("no leader")

    def catalog_nodes(self, leader: int) -> int:
        try:
            return len(http_json(f"http://{SERVER_IPS[leader]}:{self.http_port}/v1/catalog/nodes?stale", 10))
        except (OSError, ValueError):
            return -1

    def critical(self, leader: int) -> int:
        try:
            return len(http_json(f"http://{SERVER_IPS[leader]}:{self.http_port}/v1/health/state/critical?stale", 10))
        except (OSError, ValueError):
            return -1

    def grow(self, size: int, leader: int) -> None:
        """Add workers until ``size`` clients run, wait for the catalog, then their mirrors."""
        new: list[subprocess.Popen[str]] = []
        per = self.args.per_proc
        while self.clients < size:
            count = min(per, size - self.clients)
            argv = [sys.executable, __file__, "--worker", str(self.clients), str(count), str(self.serf_port),
                    ",".join(SERVER_IPS)]
            w = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 stderr=open(self.root / f"worker{len(self.workers)}.log", "w"))  # noqa: SIM115
            new.append(w)
            self.workers.append(w)  # killed by close() whatever happens next
            self.clients += count
        for w in new:
            self._expect(w, "joined", 600)
        deadline = time.monotonic() + 600
        while self.catalog_nodes(leader) < size + 3:
            if time.monotonic() > deadline:
                raise RuntimeError(f"catalog never reached {size + 3} nodes ({self.catalog_nodes(leader)})")
            time.sleep(1)
        for w in new:
            assert w.stdin is not None
            w.stdin.write("mirror\n")
            w.stdin.flush()
        for w in new:
            self._expect(w, "mirrored", 900)

    @staticmethod
    def _expect(w: subprocess.Popen[str], word: str, timeout: float) -> None:
        assert w.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = w.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited before '{word}'")
            if line.strip() == word:
                return
        raise RuntimeError(f"worker: no '{word}' in {timeout}s")

    def measure(self, size: int, leader: int, rnd: int) -> dict[str, Any]:
        pid = self.servers[leader].pid
        time.sleep(self.args.settle)
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(self.args.idle)
        idle_rate = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        c1 = cpu_seconds(pid)
        wall = asyncio.run(put_load(SERVER_IPS[leader], self.http_port, self.args.puts, self.args.conc))
        cpu = cpu_seconds(pid) - c1
        row = {
            "bench": "clients", "clients": size, "round": rnd, "puts": self.args.puts, "conc": self.args.conc,
            "leader_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "cpu_ms_per_1000_puts": round(cpu * 1000 / self.args.puts * 1000, 1),
            "idle_cpu_ms_per_s": round(idle_rate * 1000, 1),
            "puts_per_s": round(self.args.puts / wall, 1),
            "catalog_nodes": self.catalog_nodes(leader),
            "critical_checks": self.critical(leader),
        }
        log(json.dumps(row))
        return row

    def close(self) -> None:
        for w in self.workers:
            with contextlib_suppress():
                w.kill()
        for p in self.servers:
            with contextlib_suppress():
                p.send_signal(signal.SIGKILL)
        for p in [*self.workers, *self.servers]:
            with contextlib_suppress():
                p.wait(10)


class contextlib_suppress:  # noqa: N801 - a tiny local stand-in that also swallows ProcessLookupError
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, subprocess.TimeoutExpired))  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0,100,1000")
    ap.add_argument("--puts", type=int, default=5000)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-proc", type=int, default=250)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each round")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle leader CPU measured before each round")
    ap.add_argument("--worker", nargs=4, metavar=("FIRST", "COUNT", "SERF_PORT", "JOINS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        first, count, port, joins = args.worker
        asyncio.run(worker_main(int(first), int(count), int(port), [f"{j}:{port}" for j in joins.split(",")], "dc1"))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    b = Bench(args)
    rows: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        b.start_servers()
        leader = b.leader()
        log(f"leader s{leader} (pid {b.servers[leader].pid}); data in {b.root}")
        for size in sizes:
            b.grow(size, leader)
            if b.leader() != leader:
                raise RuntimeError("leadership moved during the run: rerun")
            for rnd in range(args.rounds):
                rows.append(b.measure(size, leader, rnd))
    finally:
        b.close()
        if rows:
            RESULTS.mkdir(exist_ok=True)
            with open(RESULTS / f"{stamp}-clients.jsonl", "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
    base = statistics.median(r["cpu_ms_per_1000_puts"] for r in rows if r["clients"] == sizes[0])
    print(f"| clients | leader CPU ms / 1,000 PUTs (median of {args.rounds}) | ratio to {sizes[0]} | "
          "leader idle CPU ms/s | PUT/s |")
    print("|---:|---:|---:|---:|---:|")
    for size in sizes:
        rs = [r for r in rows if r["clients"] == size]
        med = statistics.median(r["cpu_ms_per_1000_puts"] for r in rs)
        print(f"| {size} | {med:.0f} ({', '.join(str(r['cpu_ms_per_1000_puts']) for r in rs)}) | {med / base:.2f} | "
              f"{statistics.median(r['idle_cpu_ms_per_s'] for r in rs):.0f} | "
              f"{statistics.median(r['puts_per_s'] for r in rs):.0f} |")
    print(f"\nraw: bench/results/{stamp}-clients.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
