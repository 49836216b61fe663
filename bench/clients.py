#!/usr/bin/env python3
"""Leader CPU per write against the number of client agents (stateless clients, server/remote.py).

    python bench/clients.py                                  # sizes 0,100,1000
    python bench/clients.py --sizes 0,100,1000 --puts 5000 --rounds 5 --per-proc 125

Starts a 3-server cluster (real ``muster agent -server`` processes on 127.0.2.1-3), then grows
a population of lightweight client agents and, at each size, sends the same PUT load to the
leader and reads the leader's CPU time (utime + stime of /proc/<pid>/stat, every thread) before
and after: leader CPU milliseconds per 1,000 PUTs.  Before each round the leader's idle CPU
rate is read too, and the row also gives the write cost net of it (CPU during the PUTs minus
idle rate x their wall time), so that background work that grows with the clients (probes,
gossip) is told apart from work per write.  After the largest size the clients leave
(gracefully, so the leader deregisters them) and size 0 is measured again (``phase: after``):
the machine is shared and its load drifts, so the ratio is reported against the 0-client
rounds on both sides of the client sizes, with its spread.

A lightweight client is what a stateless client agent puts on the cluster: a gossip member of
the LAN pool (``GossipPool``, tags ``role=node``, on its own address 127.0.(10+k).x with the
servers' Serf port, so the leader registers it in the catalog with a serfHealth check as any
agent), the client's link to the servers (``RemoteServers``: the servers it learns from gossip)
and its catalog cache (``CatalogMirror``: one blocking query held on a server, for its own node
and the servers, as a client whose DNS has not been asked anything yet).  It answers ping,
ping-req (indirect probes) and push/pull like any member, probes other members and relays
gossip.  What it does not do: run an HTTP/DNS API, anti-entropy, checks or services of its own.
Several hundred live in one worker process (``--per-proc``); 1,000 real agent processes would
not fit on 2 cores.

Bench-side gossip settings of the lightweight members only (``LIGHT_GOSSIP``; the three servers
keep Consul's LAN defaults, so what a server does per member is unchanged): memberlist's WAN
timings (probe every 5 s with a 3 s timeout, suspicion x6, push/pull every 60 s), and a lower
gossip fan-out and rate among themselves: ``GossipNodes`` 2 every ``GossipInterval`` 1 s (LAN:
3 every 0.2 s) and ``RetransmitMult`` 2 (LAN: 4).  Why: a member joining a cluster of n merges
the n members of its push/pull and, as memberlist does, re-gossips every one of them
``RetransmitMult * ceil(log10(n+1))`` times, so growing to 1,000 members costs every member
about 1,000 x 1,000 x 16 message receptions in all; 1,000 Python members on the 2 cores shared
with the cluster starved at LAN rates (they were then declared failed by the servers).  The
lower rate spreads that work over time; the lower multiplier halves it.

Joins are paced (``--join-step`` members at a time, at most ``--join-rate`` per second, and the
next step waits until the leader's catalog trails by at most ``--join-lag`` members), and the
mirrors start once the catalog holds every client with serfHealth passing, as paced (one worker
at a time, 10 at a time, at most ``--join-rate`` per second): the steady state is measured, not
the join storm.  ``--profile`` records the leader with py-spy during the PUTs at
the largest size (and a worker during its joins), into the run's data directory.

Workers log a progress line to their stderr (``worker<k>.log`` in the run's data directory) every
~10 s while they join, start mirrors or leave: event-loop lag, CPU, mirrors started and ready,
failed server calls with the last error, and how many servers their members see alive.

Written: bench/results/<UTC time>-clients.jsonl (one line per round) and a markdown table on
stdout.  Every wait is bounded; the script kills only the processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
SERVER_NAMES = [f"s{k}" for k in range(len(SERVER_IPS))]
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


def light_gossip() -> Any:
    """The lightweight members' gossip settings (module docstring): memberlist's WAN timings
    with a lower fan-out, rate and retransmit multiplier.  Servers keep the LAN defaults."""
    from muster.gossip.core import GossipConfig

    return dataclasses.replace(GossipConfig.wan(), gossip_nodes=2, gossip_interval=1.0, retransmit_mult=2)


async def worker_main(first: int, count: int, serf_port: int, joins: list[str], dc: str) -> None:
    """Run up to ``count`` lightweight clients, driven by lines on stdin:

    ``join K``  start and join the next K clients, then print ``joined <total>``;
    ``mirror R``  start every joined client's catalog mirror, 10 at a time and at most R per second,
                print ``mirrored`` once all hold one;
    ``leave``   leave gracefully (in small waves), print ``left``;
    end of input: exit."""
    from muster.errors import MusterError
    from muster.gossip.serf import MemberStatus
    from muster.gossip.transport import GossipPool
    from muster.runtime import RealClock
    from muster.server.remote import CatalogMirror, RemoteServers, ServerSet
    from muster.state.store import StateStore

    clock = RealClock()
    gossip = light_gossip()
    #: failed mirror calls and the last error text, for the progress lines (``report``)
    errors: dict[str, Any] = {"count": 0, "last": ""}

    class DiagRemote(RemoteServers):
        """Counts the calls that fail and keeps the last error text (diagnostics only)."""

        async def call(self, method: str, payload: Any, timeout: float, idempotent: bool = False,
                       servers: ServerSet | None = None) -> Any:
            try:
                return await super().call(method, payload, timeout, idempotent, servers)
            except MusterError as err:
                errors["count"] += 1
                errors["last"] = f"{method}: {err.message}"
                raise

    class Light:
        def __init__(self, i: int) -> None:
            node_id = str(uuid.uuid4())
            tags = {"role": "node", "dc": dc, "id": node_id, "acls": "0", "build": "1.17.0:muster", "segment": "",
                    "vsn": "2", "vsn_max": "3", "vsn_min": "2"}
            self.pool = GossipPool(name=f"light-{i}", node_id=node_id, bind_addr=client_ip(i), bind_port=serf_port,
                                   tags=tags, clock=clock, default_join_port=serf_port, gossip=gossip)

            def servers() -> list[tuple[str, str]]:
                return [(m.tags.get("id", ""), f"{m.addr}:{m.tags.get('port', '8300')}") for m in self.pool.members()
                        if m.tags.get("role") == "consul" and m.status == MemberStatus.ALIVE]

            self.remote = DiagRemote(node_id, ServerSet(servers, random.Random(i)))
            # RPC connections leave from the client's own address, as an agent's from its bind
            # address (server/rpc.py "Source address"): the servers cap connections per source IP
            # (rpc_max_conns_per_client, 100), so 1,000 clients all dialing from 127.0.0.1 were
            # refused beyond the first ~300 (the sixth run's stalled mirror start).
            self.remote.rpc.source_ip = client_ip(i)
            self.mirror = CatalogMirror(StateStore(), self.remote, clock)

        async def start(self) -> None:
            await self.pool.start()
            for _ in range(60):
                if await self.pool.join([random.choice(joins)]) > 0:  # one server; gossip does the rest
                    return
                await asyncio.sleep(1.0)
            raise RuntimeError(f"{self.pool.name} could not join")

        async def leave(self) -> None:
            await self.mirror.stop()
            await self.pool.leave(timeout=10.0)
            await self.remote.close()

    lights: list[Light] = []
    loop = asyncio.get_running_loop()
    busy = {"what": "idle"}

    def report(lag: float, cpu: float) -> None:
        """One progress line on stderr: what the worker does, its event-loop lag and CPU, its
        mirrors (started, ready, failed calls, last error) and how many servers its members
        see alive (a histogram: servers alive -> members), from the servers' own names."""
        alive: dict[int, int] = {}
        for lt in lights:
            if lt.pool.running:
                n = sum(1 for name in SERVER_NAMES
                        if (m := lt.pool.member(name)) is not None and m.status == MemberStatus.ALIVE)
                alive[n] = alive.get(n, 0) + 1
        started = sum(1 for lt in lights if lt.mirror._task is not None)
        ready = sum(1 for lt in lights if lt.mirror.ready.is_set())
        sample = [len(lt.pool.members()) for lt in lights[:: max(1, len(lights) // 5)] if lt.pool.running]
        log(f"worker {first}: {busy['what']}; lights {len(lights)}; loop lag {lag * 1000:.0f} ms; "
            f"cpu {cpu * 100:.0f}%; mirrors started {started} ready {ready}; failed calls {errors['count']} "
            f"(last: {errors['last'] or '-'}); servers alive seen -> members {dict(sorted(alive.items()))}; "
            f"members known (sample) {sample}")

    async def reporter() -> None:
        """Every ~10 s while a command runs (every 60 s when idle): ``report``."""
        last_line = 0.0
        while True:
            t0, c0 = loop.time(), time.process_time()
            await asyncio.sleep(1.0)
            lag = loop.time() - t0 - 1.0
            period = 10.0 if busy["what"] != "idle" else 60.0
            if loop.time() - last_line >= period:
                last_line = loop.time()
                report(lag, (time.process_time() - c0) / max(1e-3, loop.time() - t0))

    rep = asyncio.create_task(reporter())
    while True:
        busy["what"] = "idle"
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line:
            rep.cancel()
            return
        busy["what"] = " ".join(line)
        if line[0] == "join":
            new = [Light(first + len(lights) + k) for k in range(min(int(line[1]), count - len(lights)))]
            lights.extend(new)
            for k in range(0, len(new), 10):
                await asyncio.gather(*(lt.start() for lt in new[k:k + 10]))
            print(f"joined {len(lights)}", flush=True)
        elif line[0] == "mirror":
            rate = float(line[1]) if len(line) > 1 else 10.0
            for k in range(0, len(lights), 10):
                t0 = loop.time()
                for lt in lights[k:k + 10]:
                    lt.mirror.start()
                await asyncio.gather(*(asyncio.wait_for(lt.mirror.ready.wait(), 600) for lt in lights[k:k + 10]))
                await asyncio.sleep(max(0.0, 10 / rate - (loop.time() - t0)))
            report(0.0, 0.0)
            print("mirrored", flush=True)
        elif line[0] == "leave":
            for k in range(0, len(lights), 10):
                await asyncio.gather(*(lt.leave() for lt in lights[k:k + 10]))
                await asyncio.sleep(0.5)
            print("left", flush=True)


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
        #: clients that have joined (``clients`` counts those started in workers)
        self.joined = 0
        #: the size at which --profile records a worker's joins (the largest)
        self.profile_size: int | None = None
        #: More HCL for every server (bench/watchers_cluster.py lifts the per-IP HTTP cap).
        self.extra_hcl = ""

    def start_servers(self) -> None:
        hcl = 'performance {\n  raft_multiplier = 1\n}\n' + self.extra_hcl
        for k, ip in enumerate(SERVER_IPS):
            d = self.root / f"s{k}"
            d.mkdir()
            argv = [sys.executable, "-m", "muster", "agent", "-server", "-bootstrap-expect=3", f"-node={SERVER_NAMES[k]}",
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
        """Add workers until ``size`` clients run, joining them at a paced rate (module doc),
        wait for the catalog to hold all of them with serfHealth passing, then their mirrors."""
        args = self.args
        new: list[tuple[subprocess.Popen[str], int]] = []  # (worker, clients it still has to join)
        while self.clients < size:
            count = min(args.per_proc, size - self.clients)
            argv = [sys.executable, __file__, "--worker", str(self.clients), str(count), str(self.serf_port),
                    ",".join(SERVER_IPS)]
            w = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 stderr=open(self.root / f"worker{len(self.workers)}.log", "w"))  # noqa: SIM115
            new.append((w, count))
            self.workers.append(w)  # killed by close() whatever happens next
            self.clients += count
        prof = None
        if new and args.profile and size == self.profile_size:
            prof = self.py_spy(new[0][0].pid, "worker-join", 60)
        t_start = time.monotonic()
        while any(left for _, left in new):
            t0 = time.monotonic()
            active = [k for k, (_, left) in enumerate(new) if left]
            share = -(-args.join_step // len(active))  # ceil
            sent = []
            for k in active:
                w, left = new[k]
                n = min(share, left)
                new[k] = (w, left - n)
                self._send(w, f"join {n}")
                sent.append(n)
            for k in active:
                self._expect(new[k][0], "joined", 600)
            self.joined += sum(sent)
            deadline = time.monotonic() + 120
            while self.catalog_nodes(leader) < 3 + self.joined - args.join_lag:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the catalog stopped following the joins ({self.catalog_nodes(leader)} "
                                       f"nodes for {self.joined} clients)")
                time.sleep(0.5)
            time.sleep(max(0.0, sum(sent) / args.join_rate - (time.monotonic() - t0)))
        log(f"{size} clients joined in {time.monotonic() - t_start:.0f} s")
        deadline = time.monotonic() + 600
        while (nodes := self.catalog_nodes(leader)) != size + 3 or self.critical(leader) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"catalog never settled at {size + 3} nodes, all passing "
                                   f"({nodes} nodes, {self.critical(leader)} critical)")
            time.sleep(1)
        log(f"catalog holds {size + 3} nodes, none critical, {time.monotonic() - t_start:.0f} s after the first join")
        if prof is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                prof.wait(90)
        t_mirror = time.monotonic()
        for w, _ in new:  # one worker at a time, at most --join-rate mirrors started per second
            self._send(w, f"mirror {self.args.join_rate}")
            self._expect(w, "mirrored", 900)
        log(f"{size} mirrors started in {time.monotonic() - t_mirror:.0f} s")

    def shrink_all(self, leader: int) -> None:
        """Every client leaves gracefully; wait (bounded) until the leader has deregistered them."""
        t0 = time.monotonic()
        # Every worker at once, each in waves of 10 (a wave waits until its leave messages have
        # been gossiped, ~4 s): one worker at a time took ~1 min per worker, 9 min at 1,000.
        for w in self.workers:
            self._send(w, "leave")
        for w in self.workers:
            self._expect(w, "left", max(60.0, 600 - (time.monotonic() - t0)))
        deadline = time.monotonic() + 600
        forced = 0
        while (nodes := self.catalog_nodes(leader)) != 3:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the catalog still holds {nodes} nodes after the clients left")
            # A client whose leave message reached only clients that were leaving too is
            # declared failed, not left, and stays in the catalog: force-leave it (the
            # operator's remedy), after which the leader deregisters it.
            base = f"http://{SERVER_IPS[leader]}:{self.http_port}/v1/agent"
            try:
                for m in http_json(f"{base}/members", 10):
                    if m.get("Status") == 4 and str(m.get("Name", "")).startswith("light-"):
                        req = urllib.request.Request(f"{base}/force-leave/{m['Name']}", method="PUT")
                        with urllib.request.urlopen(req, timeout=10):
                            forced += 1
            except (OSError, ValueError) as e:
                log(f"force-leave: {e}")
            time.sleep(2)
        if forced:
            log(f"{forced} clients were declared failed during the mass leave and force-left")
        log(f"all clients left, catalog back to 3 nodes in {time.monotonic() - t0:.0f} s")
        self.clients = self.joined = 0

    @staticmethod
    def _send(w: subprocess.Popen[str], line: str) -> None:
        assert w.stdin is not None
        w.stdin.write(line + "\n")
        w.stdin.flush()

    def py_spy(self, pid: int, name: str, seconds: int) -> subprocess.Popen[bytes] | None:
        exe = Path(sys.executable).parent / "py-spy"
        if not exe.exists():
            log("py-spy not installed in the venv: no profile")
            return None
        out = self.root / f"profile-{name}.txt"
        log(f"py-spy on pid {pid} for {seconds} s -> {out}")
        return subprocess.Popen([str(exe), "record", "-d", str(seconds), "-r", "50", "-f", "raw", "-o", str(out),
                                 "-p", str(pid), "--nonblocking"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    @staticmethod
    def _expect(w: subprocess.Popen[str], word: str, timeout: float) -> None:
        assert w.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = w.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited before '{word}'")
            if line.split()[:1] == [word]:
                return
        raise RuntimeError(f"worker: no '{word}' in {timeout}s")

    def measure(self, size: int, leader: int, rnd: int, phase: str) -> dict[str, Any]:
        pid = self.servers[leader].pid
        time.sleep(self.args.settle)
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(self.args.idle)
        idle_rate = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        c1 = cpu_seconds(pid)
        wall = asyncio.run(put_load(SERVER_IPS[leader], self.http_port, self.args.puts, self.args.conc))
        cpu = cpu_seconds(pid) - c1
        row = {
            "bench": "clients", "clients": size, "phase": phase, "round": rnd, "puts": self.args.puts,
            "conc": self.args.conc, "leader_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "cpu_ms_per_1000_puts": round(cpu * 1000 / self.args.puts * 1000, 1),
            "net_cpu_ms_per_1000_puts": round((cpu - idle_rate * wall) * 1000 / self.args.puts * 1000, 1),
            "idle_cpu_ms_per_s": round(idle_rate * 1000, 1),
            "puts_per_s": round(self.args.puts / wall, 1),
            "catalog_nodes": self.catalog_nodes(leader),
            "critical_checks": self.critical(leader),
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
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
        procs: list[subprocess.Popen[Any]] = [*self.workers, *self.servers]
        for proc in procs:
            with contextlib_suppress():
                proc.wait(10)


class contextlib_suppress:  # noqa: N801 - a tiny local stand-in that also swallows ProcessLookupError
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, subprocess.TimeoutExpired))  # type: ignore[arg-type]


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}" if xs else "-"


def table(rows: list[dict[str, Any]], sizes: list[int]) -> str:
    """Medians per size and phase; ratios against every 0-client round (before and after)."""
    zero = [r for r in rows if r["clients"] == 0]
    if not zero:
        return "(no 0-client rounds)"
    base = statistics.median(r["cpu_ms_per_1000_puts"] for r in zero)
    base_net = statistics.median(r["net_cpu_ms_per_1000_puts"] for r in zero)
    out = ["| clients | rounds | leader CPU ms / 1,000 PUTs: median (each round) | ratio to 0: median (spread) "
           "| net of idle: median | net ratio | leader idle CPU ms/s | PUT/s | load avg |",
           "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    keys = [(s, "grow") for s in sizes] + [(0, "after")]
    for size, phase in keys:
        rs = [r for r in rows if r["clients"] == size and r.get("phase", "grow") == phase]
        if not rs:
            continue
        med = statistics.median(r["cpu_ms_per_1000_puts"] for r in rs)
        net = statistics.median(r["net_cpu_ms_per_1000_puts"] for r in rs)
        ratios = [r["cpu_ms_per_1000_puts"] / base for r in rs]
        label = f"{size}" + (" (after the clients left)" if phase == "after" else "")
        each = ", ".join(f"{r['cpu_ms_per_1000_puts']:.0f}" for r in rs)
        out.append(f"| {label} | {len(rs)} | {med:.0f} ({each}) "
                   f"| {med / base:.2f} ({spread(ratios)}) | {net:.0f} | {net / base_net:.2f} "
                   f"| {statistics.median(r['idle_cpu_ms_per_s'] for r in rs):.0f} "
                   f"| {statistics.median(r['puts_per_s'] for r in rs):.0f} "
                   f"| {min(r['loadavg_1m'] for r in rs):.1f}-{max(r['loadavg_1m'] for r in rs):.1f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0,100,1000")
    ap.add_argument("--puts", type=int, default=5000)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-proc", type=int, default=125)
    ap.add_argument("--join-step", type=int, default=20, help="clients joined at a time")
    ap.add_argument("--join-rate", type=float, default=10.0, help="most clients joined per second")
    ap.add_argument("--join-lag", type=int, default=25, help="how far the leader's catalog may trail the joins")
    ap.add_argument("--no-after", action="store_true", help="skip the 0-client rounds after the clients leave")
    ap.add_argument("--profile", action="store_true", help="py-spy a worker's joins and the leader's PUTs")
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
    b.profile_size = sizes[-1]
    rows: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        b.start_servers()
        leader = b.leader()
        log(f"leader s{leader} (pid {b.servers[leader].pid}); data in {b.root}; load {os.getloadavg()}")
        for size in sizes:
            b.grow(size, leader)
            if b.leader() != leader:
                raise RuntimeError("leadership moved during the run: rerun")
            prof = None
            for rnd in range(args.rounds):
                if args.profile and size == sizes[-1] and rnd == args.rounds - 1:
                    prof = b.py_spy(b.servers[leader].pid, f"leader-{size}", int(args.settle + args.idle + 10))
                rows.append(b.measure(size, leader, rnd, "grow"))
            if prof is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    prof.wait(60)
        if not args.no_after and b.clients:
            b.shrink_all(leader)
            if b.leader() != leader:
                raise RuntimeError("leadership moved during the run: rerun")
            for rnd in range(args.rounds):
                rows.append(b.measure(0, leader, rnd, "after"))
    finally:
        b.close()
        if rows:
            RESULTS.mkdir(exist_ok=True)
            with open(RESULTS / f"{stamp}-clients.jsonl", "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
    print(table(rows, sizes))
    print(f"\nraw: bench/results/{stamp}-clients.jsonl; profiles (with --profile) in {b.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
