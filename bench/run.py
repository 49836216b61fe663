#!/usr/bin/env python3
"""KV benchmark: Muster against a 3-member etcd, same machine, same load tool, same run.

Entry point of ``make bench``. What it does (see BENCHMARKS.md for the method and figures):

1. installs ``etcd`` and ``wrk`` from Debian (``apt-get install -y etcd-server wrk``) if missing;
2. starts a 3-member etcd on 127.0.0.1 (temp data dirs, fsync on, defaults otherwise) and the
   Muster agent (``--muster-cmd``, dev mode by default);
3. pre-populates the 10k keys ``bench/0`` .. ``bench/9999`` (64-byte values) on both;
4. drives both with wrk and the Lua scripts in ``bench/lua``: PUT, GET (Muster default and
   ``?stale`` against etcd serializable range, Muster ``?consistent`` against etcd linearizable
   range), at each concurrency, ``--runs`` times, and reports medians and the Muster/etcd ratio;
5. optionally holds ``--watchers N`` idle blocking queries (bench/watchers.py) and profiles the
   agent (every server of a cluster) under load with py-spy (``--profile``; PUT unless
   ``--profile-workload`` names another).

Raw results go to ``bench/results/<timestamp>.jsonl`` (one JSON object per measurement), the
table to ``bench/results/<timestamp>.md``. Every process started here is stopped by PID at the
end, also on an error or Ctrl-C; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import watchers  # bench/watchers.py (bench/ is sys.path[0] when run as `python bench/run.py`)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
KEYS = 10_000
VALUE = b"v" * 64
HOST = "127.0.0.1"  # all traffic stays on loopback

DEFAULT_MUSTER_CMD = (
    "{python} -m muster agent -dev -client=127.0.0.1 -http-port={port} -dns-port=-1"
    " '-hcl=limits {{ http_max_conns_per_client = 4096 }}'"
)
#: Consul's default ``limits.http_max_conns_per_client`` is 200: wrk's 256 connections from one
#: address would get 429s (as from Consul), so every Muster the benchmark starts raises it.
CONN_LIMIT_HCL = "limits { http_max_conns_per_client = 4096 }"

# Goals from the issue (dev mode, c=64).
GOAL_PUT_RATIO = 1.5
GOAL_GET_RATIO = 1.0
GOAL_C = 64


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- processes


class Processes:
    """Every process the benchmark starts; stop_all() ends them by PID (TERM, then KILL)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], logfile: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(logfile, "wb")
        try:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, start_new_session=True,  # no Ctrl-C from the terminal: we stop it ourselves
            )
        finally:
            out.close()
        self.procs.append((name, proc))
        log(f"started {name} (pid {proc.pid}): {shlex.join(argv)}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log(f"pid {proc.pid} did not exit after SIGKILL")

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            was_running = proc.poll() is None
            self.stop(proc)
            if was_running:
                log(f"stopped {name} (pid {proc.pid})")
        self.procs.clear()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_ports(n: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def raise_nofile() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard limit (inherited by the agent we start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def deadline_loop(seconds: float, interval: float = 0.2) -> Iterator[float]:
    """Yield until `seconds` have passed (remaining time), sleeping `interval` between turns."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        yield left
        time.sleep(interval)


# --------------------------------------------------------------------------- tools


#: (command, Debian package) the HTTP matrix needs; other harnesses pass their own (dns_bench: nsd, dnsperf).
HTTP_TOOLS: tuple[tuple[str, str], ...] = (("etcd", "etcd-server"), ("wrk", "wrk"))


def ensure_tools(no_install: bool, tools: tuple[tuple[str, str], ...] = HTTP_TOOLS) -> None:
    """Install the missing commands of ``tools`` from Debian (root only), or say how to."""
    missing = {pkg: tool for tool, pkg in tools if not shutil.which(tool)}
    if not missing:
        return
    pkgs = sorted(missing)
    if no_install:
        raise SystemExit(f"missing {', '.join(missing.values())}: apt-get install -y {' '.join(pkgs)}")
    if os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(missing.values())}; run as root or: sudo apt-get install -y {' '.join(pkgs)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing Debian packages: {' '.join(pkgs)}")
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False, timeout=600)
    subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", *pkgs],
        env=env, check=True, timeout=900,
    )
    still = [t for t in missing.values() if not shutil.which(t)]
    if still:
        raise SystemExit(f"still missing after apt-get: {still}")


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


# --------------------------------------------------------------------------- HTTP helpers


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def _populate(urls: Callable[[int], tuple[str, str, bytes]], concurrency: int, timeout: float) -> int:
    import aiohttp  # a Muster dependency, present in the venv

    failures = 0
    keys = iter(range(KEYS))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for k in keys:
            method, url, body = urls(k)
            async with session.request(method, url, data=body) as resp:
                await resp.read()
                if resp.status // 100 != 2:
                    failures += 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.wait_for(asyncio.gather(*(worker(session) for _ in range(concurrency))), timeout)
    return failures


def populate(name: str, urls: Callable[[int], tuple[str, str, bytes]], timeout: float = 180.0) -> None:
    t0 = time.monotonic()
    failures = asyncio.run(_populate(urls, 32, timeout))
    log(f"{name}: populated {KEYS} keys in {time.monotonic() - t0:.1f}s ({failures} failures)")
    if failures:
        raise SystemExit(f"{name}: {failures} of {KEYS} pre-population writes failed")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- etcd


@dataclass
class Etcd:
    client_urls: list[str]
    leader_url: str
    version: str
    pids: list[int]


def start_etcd(procs: Processes, workdir: Path) -> Etcd:
    ports = free_ports(6)
    names = [f"m{i}" for i in range(3)]
    client = [f"http://{HOST}:{ports[i]}" for i in range(3)]
    peer = [f"http://{HOST}:{ports[3 + i]}" for i in range(3)]
    cluster = ",".join(f"{n}={p}" for n, p in zip(names, peer, strict=True))
    token = f"bench-{os.getpid()}-{int(time.time())}"
    for i, name in enumerate(names):
        data = workdir / f"etcd-{name}"
        argv = [
            "etcd", "--name", name, "--data-dir", str(data),
            "--listen-client-urls", client[i], "--advertise-client-urls", client[i],
            "--listen-peer-urls", peer[i], "--initial-advertise-peer-urls", peer[i],
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", token, "--logger", "zap", "--log-outputs", "stderr",
        ]
        procs.start(f"etcd {name}", argv, workdir / f"etcd-{name}.log")
    healthy: set[str] = set()
    for _ in deadline_loop(60, 0.3):
        for url in client:
            if url in healthy:
                continue
            try:
                status, body = http("GET", url + "/health", timeout=2)
                if status == 200 and json.loads(body).get("health") == "true":
                    healthy.add(url)
            except (OSError, ValueError):
                pass
        if len(healthy) == 3:
            break
        for name, proc in procs.procs:
            if name.startswith("etcd") and proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}); see {workdir}/etcd-*.log")
    else:
        raise SystemExit(f"etcd not healthy after 60s ({len(healthy)}/3); logs in {workdir}")
    leader = ""
    for _ in deadline_loop(30, 0.5):
        for url in client:
            try:
                _, body = http("POST", url + "/v3/maintenance/status", b"{}", timeout=2)
                st = json.loads(body)
                if st.get("leader") and st["leader"] == st.get("header", {}).get("member_id"):
                    leader = url
                    version = st.get("version", "?")
            except (OSError, ValueError):
                pass
        if leader:
            break
    else:
        raise SystemExit("etcd: no leader found after 30s")
    log(f"etcd {version}: 3 members healthy, leader {leader}")
    pids = [proc.pid for name, proc in procs.procs if name.startswith("etcd")]
    return Etcd(client, leader, version, pids)


# --------------------------------------------------------------------------- Muster


@dataclass
class Muster:
    url: str
    pid: int  # the process serving `url` (the leader in cluster mode): RSS, py-spy
    cmd: str
    pids: list[int] = field(default_factory=list)  # all servers: CPU per request, as for etcd

    def all_pids(self) -> list[int]:
        return self.pids or [self.pid]


def start_muster(procs: Processes, workdir: Path, cmd_template: str) -> Muster:
    port, serf_lan, serf_wan, server, grpc = free_ports(5)
    python = ROOT / ".venv" / "bin" / "python"
    cmd = cmd_template.format(
        port=port, python=python if python.exists() else sys.executable,
        serf_lan_port=serf_lan, serf_wan_port=serf_wan, server_port=server, grpc_port=grpc,
    )
    proc = procs.start("muster", shlex.split(cmd), workdir / "muster.log", cwd=ROOT)
    url = f"http://{HOST}:{port}"
    for _ in deadline_loop(60, 0.3):
        if proc.poll() is not None:
            tail = (workdir / "muster.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"muster exited with {proc.returncode}:\n{tail}")
        try:
            status, _ = http("PUT", url + "/v1/kv/bench-ready", b"1", timeout=2)
            if status == 200:
                break
        except OSError:
            pass
    else:
        raise SystemExit(f"muster did not accept a KV write within 60s; log: {workdir}/muster.log")
    log(f"muster ready at {url} (pid {proc.pid})")
    return Muster(url, proc.pid, cmd)


def start_muster_cluster(procs: Processes, workdir: Path, cmd_template: str, extra_hcl: Sequence[str] = ()) -> Muster:
    """`--muster-cluster`: 3 Muster servers on 127.0.0.1/.2/.3, like the etcd side: each with
    its own data dir on disk (fsync on), the same ports on its own loopback address, joined to
    the others; returns the leader's URL and PID (writes go to the leader, as for etcd).
    ``cmd_template`` is ignored in this mode."""
    import socket as _socket

    ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]

    def free_on_all() -> int:
        for _ in range(200):
            with _socket.socket() as s0:
                s0.bind((ips[0], 0))
                port = int(s0.getsockname()[1])
            try:
                for ip in ips[1:]:
                    with _socket.socket() as s1:
                        s1.bind((ip, port))
                return port
            except OSError:
                continue
        raise SystemExit("no port free on 127.0.0.1-3")

    http_port, server_port, serf_port = free_on_all(), free_on_all(), free_on_all()
    python = ROOT / ".venv" / "bin" / "python"
    exe = str(python if python.exists() else sys.executable)
    for i, ip in enumerate(ips):
        argv = [
            exe, "-m", "muster", "agent", "-server", "-bootstrap-expect=3",
            f"-data-dir={workdir / f'muster-s{i}'}", f"-bind={ip}", f"-advertise={ip}", f"-client={ip}",
            f"-node=bench-s{i}", f"-http-port={http_port}", f"-server-port={server_port}",
            f"-serf-lan-port={serf_port}", "-serf-wan-port=-1", "-dns-port=-1",
            # the leader's Raft counters (fsyncs, entries per fsync) are read from the
            # Prometheus view, which needs a retention time
            '-hcl=telemetry { prometheus_retention_time = "1h" }',
            f"-hcl={CONN_LIMIT_HCL}",
            *[f"-hcl={h}" for h in extra_hcl],
            *[f"-retry-join={j}:{serf_port}" for j in ips],
        ]
        procs.start(f"muster s{i}", argv, workdir / f"muster-s{i}.log", cwd=ROOT)
    leader_url = ""
    for _ in deadline_loop(90, 0.5):
        for ip in ips:
            try:
                status, body = http("GET", f"http://{ip}:{http_port}/v1/status/leader", timeout=2)
                addr = json.loads(body) if status == 200 else ""
            except (OSError, ValueError):
                addr = ""
            if addr:
                leader_url = f"http://{addr.split(':')[0]}:{http_port}"
        if leader_url:
            try:
                status, _ = http("PUT", leader_url + "/v1/kv/bench-ready", b"1", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
    else:
        raise SystemExit(f"the Muster cluster had no leader within 90s; logs in {workdir}")
    idx = ips.index(leader_url.split("//")[1].split(":")[0])
    pid = next(proc.pid for name, proc in procs.procs if name == f"muster s{idx}")
    log(f"muster cluster ready: leader {leader_url} (pid {pid})")
    pids = [proc.pid for name, proc in procs.procs if name.startswith("muster s")]
    return Muster(leader_url, pid, f"3 servers, leader s{idx}", pids)


RAFT_COUNTERS = {
    "fsyncs": "raft_leader_fsyncs",
    "fsynced_logs": "raft_leader_fsyncedLogs",
    "committed_logs": "raft_leader_committedLogs",
    "read_rounds": "raft_leader_readIndexRounds",
    "read_reads": "raft_leader_readIndexReads",
}


def raft_counters(url: str) -> dict[str, float]:
    """The leader's cumulative Raft counters (``consul_raft_leader_*`` in the Prometheus view)."""
    try:
        status, body = http("GET", url + "/v1/agent/metrics?format=prometheus", timeout=5)
    except OSError:
        return {}
    if status != 200:
        return {}
    out: dict[str, float] = {}
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        for key, suffix in RAFT_COUNTERS.items():
            if name.split("{")[0].endswith(suffix):
                out[key] = out.get(key, 0.0) + float(value)
    return out


def add_raft_counters(res: dict[str, Any], before: dict[str, float], after: dict[str, float]) -> None:
    """Per measurement: leader fsyncs, and the writes one fsync carried on average."""
    if not before or not after or "error" in res:
        return
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in RAFT_COUNTERS}
    res["leader_fsyncs"] = int(d["fsyncs"])
    res["leader_fsynced_logs"] = int(d["fsynced_logs"])
    res["leader_committed_logs"] = int(d["committed_logs"])
    res["leader_fsyncs_per_s"] = round(d["fsyncs"] / max(0.001, res.get("duration_s", 0) or 1), 1)
    res["writes_per_fsync"] = round(d["fsynced_logs"] / d["fsyncs"], 2) if d["fsyncs"] else None
    # ?consistent reads: the leader's ReadIndex quorum rounds and the reads they confirmed.
    res["leader_read_rounds"] = int(d["read_rounds"])
    res["reads_per_round"] = round(d["read_reads"] / d["read_rounds"], 2) if d["read_rounds"] else None


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class Workload:
    name: str
    label: str
    muster_args: tuple[str, ...]
    etcd_args: tuple[str, ...]
    read: bool


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("put", "PUT", ("put",), ("put",), False),
        Workload("get", "GET default / etcd serializable", ("get", "default"), ("serializable",), True),
        Workload("get-stale", "GET ?stale / etcd serializable", ("get", "stale"), ("serializable",), True),
        Workload("get-consistent", "GET ?consistent / etcd linearizable", ("get", "consistent"), ("linearizable",), True),
    )
}


def busy_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores), from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(threshold_pct: float, max_wait: float) -> float:
    """Wait (at most `max_wait` s) until the machine's busy CPU over 1 s is under `threshold_pct`
    (in % of one core); return the last busy figure. The machine is shared: this keeps other
    users' bursts out of the measurement when it can, and records them when it cannot."""
    busy = 0.0
    end = time.monotonic() + max_wait
    while True:
        b0, t0 = busy_cpu_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = 100 * (busy_cpu_seconds() - b0) / (time.monotonic() - t0)
        if busy < threshold_pct or time.monotonic() >= end:
            return busy


def run_wrk(url: str, script: str, args: Sequence[str], conns: int, duration: float, threads: int,
            pids: Sequence[int] = ()) -> dict[str, Any]:
    """One wrk run; adds the CPU used by the target processes (`pids`) and by wrk, in % of one core."""
    argv = [
        "wrk", "-t", str(max(1, min(threads, conns))), "-c", str(conns), "-d", f"{duration:g}s",
        "--timeout", "10s", "-s", str(LUA / script), url, "--", *args,
    ]
    each0 = [watchers.cpu_seconds(p) for p in pids]
    cpu0 = sum(each0)
    busy0 = busy_cpu_seconds()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, cwd=LUA)
    except subprocess.TimeoutExpired:
        return {"error": "wrk timed out", "argv": argv}
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    each1 = [watchers.cpu_seconds(p) for p in pids]
    cpu1 = sum(each1)
    busy1 = busy_cpu_seconds()
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            result: dict[str, Any] = json.loads(line[len("BENCHJSON "):])
            result["argv"] = shlex.join(argv)
            if pids:
                result["server_cpu_pct"] = round(100 * (cpu1 - cpu0) / wall, 1)
                # CPU time of the target per request: robust to other users taking CPU away.
                result["server_cpu_us_per_req"] = round(1e6 * (cpu1 - cpu0) / max(1, result["requests"]), 1)
                # the same per process (in `pids` order): where a cluster's CPU goes
                result["server_cpu_us_per_req_each"] = [
                    round(1e6 * (b - a) / max(1, result["requests"]), 1) for a, b in zip(each0, each1, strict=True)
                ]
            wrk_cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
            result["wrk_cpu_pct"] = round(100 * wrk_cpu / wall, 1)
            # CPU used by everything else on the machine (other users, idle targets): the noise.
            result["other_cpu_pct"] = round(100 * max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - wrk_cpu) / wall, 1)
            return result
    return {"error": f"wrk exit {out.returncode}: {out.stderr.strip()[-500:] or out.stdout.strip()[-500:]}", "argv": argv}


# --------------------------------------------------------------------------- profiling


def ensure_py_spy() -> str:
    venv_bin = Path(sys.executable).parent / "py-spy"
    found = shutil.which("py-spy") or (str(venv_bin) if venv_bin.exists() else None)
    if found:
        return found
    log("installing py-spy into the venv (pip)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True, timeout=300)
    if not venv_bin.exists():
        raise SystemExit("py-spy install failed")
    return str(venv_bin)


def hot_spots(raw: Path, top: int = 20) -> str:
    """Summarise py-spy --format raw (collapsed stacks): self and inclusive share per function."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    by_pkg: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            self_t[frames[-1]] += count
            by_pkg[_package(frames[-1])] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self time by package (leaf frame's file):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in by_pkg.most_common(12)]
    lines += ["", "self time (leaf frame):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_t.most_common(top)]
    lines += ["", "inclusive time (frame on the stack):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """"func (muster/http/app.py)" -> "muster/http"; "run (uvloop/__init__.py)" -> "uvloop"."""
    file = frame.rpartition(" (")[2].rstrip(")")
    parts = file.split("/")
    if parts[0] == "muster" and len(parts) > 2:
        return "/".join(parts[:2])
    if len(parts) == 1:
        return file if file.endswith(".py") else "native: " + file
    return parts[0]


def _frame_name(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (path/to/file.py)"; keep it short.
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})"


def profile_muster(muster: Muster, conns: int, duration: float, threads: int, stamp: str,
                   native: bool = False, workload: str = "put") -> dict[str, Any]:
    """py-spy record (blocking sampling: consistent stacks, some slowdown) while wrk runs
    ``workload`` (``--profile-workload``, default PUT) at c=`conns`, on every server of a cluster.

    The wrk figures of this pass are kept apart (type "profile"): they are not benchmark results.
    The collapsed stacks (--format raw, one file per server: ``-s<i>``, the leader marked) open in
    speedscope or flamegraph.pl; the top list of each is printed.
    """
    py_spy = ensure_py_spy()
    wl = WORKLOADS[workload]
    pids = muster.all_pids()
    log(f"profiling muster (pids {pids}, leader {muster.pid}) under {workload} c={conns} for {duration:g}s with py-spy")
    raws: list[tuple[int, Path]] = []
    spies: list[subprocess.Popen[bytes]] = []
    for i, pid in enumerate(pids):
        role = "-leader" if pid == muster.pid and len(pids) > 1 else ""
        name = f"{stamp}-profile-{workload}-c{conns}{'-native' if native else ''}"
        raw = RESULTS / (f"{name}-s{i}{role}.txt" if len(pids) > 1 else f"{name}.txt")
        raws.append((pid, raw))
        spies.append(subprocess.Popen(
            [py_spy, "record", "-r", "100", "-d", f"{int(duration)}", "-p", str(pid), "--format", "raw",
             "-o", str(raw), *(["--native"] if native else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        ))
    try:
        time.sleep(0.5)  # let py-spy attach
        wrk = run_wrk(muster.url, "muster.lua", wl.muster_args, conns, duration, threads, pids)
        for spy in spies:
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate(timeout=5)
            if spy.returncode:
                log(f"py-spy exited {spy.returncode}: {err.decode(errors='replace')[-500:]}")
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait(5)
    summaries = []
    for pid, raw in raws:
        summary = hot_spots(raw) if raw.exists() else "no profile written"
        summary = f"== {raw.name} (pid {pid}{', leader' if pid == muster.pid else ''})\n{summary}"
        raw.with_name(raw.stem + "-top.txt").write_text(summary + "\n")
        print(summary)
        summaries.append(summary)
    return {"raw": [str(r) for _, r in raws], "wrk": wrk, "workload": workload, "summary": "\n\n".join(summaries)}


# --------------------------------------------------------------------------- report


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(v: float | None, spec: str) -> str:
    return "not measured" if v is None else format(v, spec)


def summarise(rows: list[dict[str, Any]], workloads: list[Workload], concs: list[int]) -> tuple[str, dict[tuple[str, int], float]]:
    by: dict[tuple[str, str, int], list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        if "error" not in r:
            by[(r["workload"], r["target"], r["c"])].append(r)
    header = (
        "| workload | c | Muster req/s | Muster p50 ms | Muster p99 ms | etcd req/s | etcd p50 ms | etcd p99 ms "
        "| ratio Muster/etcd | CPU us/req Muster / etcd | notes |"
    )
    out = [header, "|" + "---|" * 11]
    ratios: dict[tuple[str, int], float] = {}
    for w in workloads:
        for c in concs:
            m, e = by.get((w.name, "muster", c), []), by.get((w.name, "etcd", c), [])
            mr, er = med([x["rps"] for x in m]), med([x["rps"] for x in e])
            ratio = mr / er if mr is not None and er else None
            if ratio is not None:
                ratios[(w.name, c)] = ratio
            notes = []
            for tgt, xs in (("Muster", m), ("etcd", e)):
                bad = sum(x["non2xx"] + x["misses"] + x["err_timeout"] for x in xs)
                if bad:
                    notes.append(f"{tgt}: {bad} non-2xx/miss/timeout")
            noise = [f"{tgt} {med([x.get('other_cpu_pct', 0.0) for x in xs]):.0f}%"
                     for tgt, xs in (("Muster", m), ("etcd", e)) if xs]
            if noise:
                notes.append("other CPU " + " / ".join(noise))
            wpf = [x["writes_per_fsync"] for x in m if x.get("writes_per_fsync")]
            if wpf:
                fps = med([x["leader_fsyncs_per_s"] for x in m if x.get("writes_per_fsync")])
                notes.append(f"leader {fps:,.0f} fsyncs/s, {med(wpf):.1f} writes/fsync")
            rpr = [x["reads_per_round"] for x in m if x.get("reads_per_round")]
            if rpr:
                notes.append(f"{med(rpr):.1f} reads per ReadIndex round")
            runs = max(len(m), len(e))
            notes.append(f"median of {runs}" if runs > 1 else "1 run")
            out.append(
                f"| {w.label} | {c} | {fmt(mr, ',.0f')} | {fmt(med([x['p50_ms'] for x in m]), '.2f')} "
                f"| {fmt(med([x['p99_ms'] for x in m]), '.2f')} | {fmt(er, ',.0f')} "
                f"| {fmt(med([x['p50_ms'] for x in e]), '.2f')} | {fmt(med([x['p99_ms'] for x in e]), '.2f')} "
                f"| {fmt(ratio, '.2f')} | {fmt(med([x.get('server_cpu_us_per_req', 0.0) for x in m]), '.0f')} / "
                f"{fmt(med([x.get('server_cpu_us_per_req', 0.0) for x in e]), '.0f')} | {'; '.join(notes)} |"
            )
    return "\n".join(out), ratios


def goal_lines(ratios: dict[tuple[str, int], float], cluster: bool = False) -> list[str]:
    lines = ["(the goals are set for dev mode; this run measured a 3-server Muster cluster)"] if cluster else []
    for wl, goal in (("put", GOAL_PUT_RATIO), ("get", GOAL_GET_RATIO)):
        r = ratios.get((wl, GOAL_C))
        verdict = "not measured" if r is None else ("MET" if r >= goal else "MISSED")
        lines.append(f"goal {wl.upper()} c={GOAL_C}: Muster/etcd >= {goal:g}x: {fmt(r, '.2f')} -> {verdict}")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    p.add_argument("--concurrency", default="1,16,64,256", help="comma-separated wrk connections (default 1,16,64,256)")
    p.add_argument("--runs", type=int, default=1, help="runs per cell, medians reported (default 1; 3 for the record)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)}, or 'none' (default: all)")
    p.add_argument("--targets", default="muster,etcd", help="muster,etcd or one of them (default both)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1; same for both targets)")
    p.add_argument("--muster-cmd", default=DEFAULT_MUSTER_CMD,
                   help="command starting the Muster agent; {port} = HTTP port, {python} = venv python; "
                        "{serf_lan_port} {serf_wan_port} {server_port} {grpc_port} = other free ports "
                        f"(default: {DEFAULT_MUSTER_CMD!r})")
    p.add_argument("--muster-cluster", action="store_true", help="measure a 3-server Muster cluster on 127.0.0.1-3 (writes and reads on the leader)")
    p.add_argument("--cluster-hcl", action="append", default=[],
                   help="with --muster-cluster: extra -hcl for every server (repeatable), e.g. "
                        "'raft_snapshot_interval = \"1s\"' so a snapshot falls inside every cell")
    p.add_argument("--watchers", type=int, default=0, help="also hold N idle blocking queries (bench/watchers.py)")
    p.add_argument("--profile", action="store_true",
                   help="profile Muster (every server of a cluster) with py-spy under load at c=64")
    p.add_argument("--profile-workload", default="put", choices=list(WORKLOADS),
                   help="with --profile: the workload to profile under (default put)")
    p.add_argument("--quiet-wait", type=float, default=5.0,
                   help="before each measurement wait up to S s for the shared machine to be quiet (0: don't)")
    p.add_argument("--quiet-below", type=float, default=40.0,
                   help="'quiet' = busy CPU under this %% of one core over 1 s (default 40)")
    p.add_argument("--profile-native", action="store_true", help="with --profile: py-spy --native (C frames too)")
    p.add_argument("--no-install", action="store_true", help="fail instead of apt-get installing etcd/wrk")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with etcd data and process logs")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    concs = [int(c) for c in args.concurrency.split(",") if c.strip()]
    names = [] if args.workloads.strip() == "none" else [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    workloads = [WORKLOADS[n] for n in names]
    targets = {t.strip() for t in args.targets.split(",") if t.strip()}
    if not targets <= {"muster", "etcd"}:
        raise SystemExit("--targets: muster and/or etcd")
    need_muster = "muster" in targets or args.watchers or args.profile or args.profile_native
    need_etcd = "etcd" in targets and bool(workloads)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    soft, hard = raise_nofile()
    log(f"RLIMIT_NOFILE raised to soft={soft} hard={hard} (inherited by the agent)")
    if need_etcd or workloads:
        ensure_tools(args.no_install)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    jsonl = RESULTS / f"{stamp}.jsonl"
    workdir = Path(tempfile.mkdtemp(prefix="muster-bench-"))
    procs = Processes()
    rows: list[dict[str, Any]] = []
    rc = 0

    def record(obj: dict[str, Any]) -> None:
        # Append and close per line: the file survives being replaced under us (e.g. a git
        # checkout of bench/results by someone else in this shared tree during a long run).
        with open(jsonl, "a") as out:
            out.write(json.dumps(obj) + "\n")

    try:
        etcd = start_etcd(procs, workdir) if need_etcd else None
        muster: Muster | None = None
        if need_muster:
            if args.muster_cluster:
                muster = start_muster_cluster(procs, workdir, args.muster_cmd, args.cluster_hcl)
            else:
                muster = start_muster(procs, workdir, args.muster_cmd)
        try:
            git_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True,
                                   text=True, timeout=10).stdout.strip()
            if dirty:
                git_rev += f"+dirty({len(dirty.splitlines())} paths in src)"
        except (OSError, subprocess.TimeoutExpired):
            git_rev = "?"
        record({
            "type": "meta", "stamp": stamp, "git": git_rev, "cpus": os.cpu_count(),
            "etcd": etcd.version if etcd else None, "wrk": tool_version(["wrk", "-v"]) if workloads else None,
            "muster_cmd": muster.cmd if muster else None, "duration_s": args.duration, "runs": args.runs,
            "concurrency": concs, "threads": args.threads, "workloads": names, "targets": sorted(targets),
            "keys": KEYS, "value_bytes": len(VALUE), "argv": sys.argv,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            # set when the servers ran another tree's code (a before/after comparison)
            "pythonpath": os.environ.get("PYTHONPATH"),
        })

        profiling_reads = (args.profile or args.profile_native) and WORKLOADS[args.profile_workload].read
        if (workloads and any(w.read for w in workloads)) or profiling_reads:
            if etcd:
                leader = etcd.leader_url
                populate("etcd", lambda k: ("POST", leader + "/v3/kv/put", json.dumps(
                    {"key": b64(f"bench/{k}".encode()), "value": b64(VALUE)}).encode()))
            if muster and ("muster" in targets or profiling_reads):
                url = muster.url
                populate("muster", lambda k: ("PUT", f"{url}/v1/kv/bench/{k}", VALUE))

        total = args.runs * len(workloads) * len(concs) * len(targets)
        log(f"{total} measurements of {args.duration:g}s (~{total * (args.duration + 1) / 60:.1f} min)")
        for run in range(1, args.runs + 1):
            etcd_cache: dict[tuple[tuple[str, ...], int], dict[str, Any]] = {}
            for w in workloads:
                for c in concs:
                    pairs: list[tuple[str, str, str, tuple[str, ...], list[int]]] = []
                    if etcd:
                        pairs.append(("etcd", etcd.leader_url, "etcd.lua", w.etcd_args, etcd.pids))
                    if muster and "muster" in targets:
                        pairs.append(("muster", muster.url, "muster.lua", w.muster_args, muster.all_pids()))
                    for target, url, script, wargs, pids in pairs:
                        key = (wargs, c)
                        if target == "etcd" and key in etcd_cache:
                            res = dict(etcd_cache[key], reused=True)
                        else:
                            busy = wait_quiet(args.quiet_below, args.quiet_wait) if args.quiet_wait > 0 else None
                            counted = target == "muster" and args.muster_cluster
                            before = raft_counters(url) if counted else {}
                            res = run_wrk(url, script, wargs, c, args.duration, args.threads, pids)
                            res["busy_before_pct"] = busy
                            if counted:
                                res.setdefault("duration_s", args.duration)
                                add_raft_counters(res, before, raft_counters(url))
                            if target == "etcd":
                                etcd_cache[key] = res
                        row = {"type": "wrk", "run": run, "workload": w.name, "target": target, "c": c,
                               "args": list(wargs), **res}
                        rows.append(row)
                        record(row)
                        if "error" in res:
                            log(f"run {run} {w.name:15} c={c:<4} {target:6}: ERROR {res['error']}")
                        else:
                            bad = res["non2xx"] + res["misses"] + res["err_timeout"]
                            log(f"run {run} {w.name:15} c={c:<4} {target:6}: {res['rps']:9,.0f} req/s  "
                                f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
                                f"cpu {res.get('server_cpu_pct', 0):4.0f}% = {res.get('server_cpu_us_per_req', 0):5.0f} us/req "
                                f"(wrk {res['wrk_cpu_pct']:3.0f}%, "
                                f"other {res['other_cpu_pct']:3.0f}%)"
                                + (f"  ({bad} non-2xx/miss/timeout)" if bad else "")
                                + ("  (reused)" if res.get("reused") else "")
                                + (f"  leader: {res['leader_fsyncs']} fsyncs, {res['writes_per_fsync']} writes/fsync"
                                   if res.get("leader_fsyncs") else "")
                                + (f"  {res['reads_per_round']} reads/ReadIndex round" if res.get("reads_per_round") else "")
                                + (f"  us/req per server {res['server_cpu_us_per_req_each']}"
                                   if len(res.get("server_cpu_us_per_req_each", [])) > 1 else ""))

        if (args.profile or args.profile_native) and muster:
            prof = profile_muster(muster, GOAL_C, max(args.duration, 10.0), args.threads, stamp,
                                  args.profile_native, args.profile_workload)
            record({"type": "profile", **prof})

        if args.watchers and muster:
            wres = watchers.run(muster.url, muster.pid, args.watchers)
            record({"type": "watchers", **wres})

        if rows:
            table, ratios = summarise(rows, workloads, concs)
            goals = goal_lines(ratios, args.muster_cluster)
            print()
            print(table)
            print()
            for g in goals:
                print(g)
            (RESULTS / f"{stamp}.md").write_text(
                f"# bench {stamp} (git {git_rev})\n\n`{shlex.join(sys.argv)}`\n\n{table}\n\n"
                + "\n".join(f"- {g}" for g in goals) + "\n"
            )
        log(f"raw results: {jsonl}")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping everything")
        rc = 130
    except BaseException:
        args.keep_logs = True  # keep the process logs for the post-mortem
        raise
    finally:
        procs.stop_all()
        if args.keep_logs:
            log(f"logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
