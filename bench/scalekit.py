"""Shared harness of the scale benchmarks (``bench/scale_catalog.py``, ``bench/scale_kv.py``).

A 3-server Muster cluster on 127.0.0.1-3 (data dirs on disk, fsync on, the same ports on each
address), bulk loading through ``/v1/txn`` (many operations per log entry, several in flight),
latency sampling over one keep-alive connection, RSS from ``/proc``, and the measurements every
scale run repeats: snapshot (the Raft snapshot the leader takes, timed from its log line, and a
``GET /v1/snapshot`` save), restart of a follower from its data dir, and catch-up of a new server
with an empty data dir on 127.0.0.4.

Every process is started through ``run.Processes`` and ended by PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import run  # bench/run.py (bench/ is sys.path[0] when a bench script runs)

IPS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
SPARE_IP = "127.0.0.4"  # the new server of the catch-up measurement

# "raft: snapshot at index 123 (4567 bytes; encode 0.123s, persist 0.045s, compact 0.010s)"
SNAP_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*raft: snapshot at index (\d+) \((\d+) bytes; encode ([\d.]+)s, persist ([\d.]+)s, compact ([\d.]+)s, "
    r"loop ([\d.]+)s\)",
    re.M,
)
RESTORE_RE = re.compile(r"raft: restored snapshot at index (\d+) \((\d+) bytes\) in ([\d.]+)s")

log = run.log


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values`` (0 if empty)."""
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0
    except (OSError, IndexError, ValueError):
        return 0.0


def free_port_on(ips: Sequence[str]) -> int:
    """A port free for both TCP and UDP on every address of ``ips`` (agents bind both: DNS, Serf)."""
    for _ in range(200):
        with socket.socket() as s0:
            s0.bind((ips[0], 0))
            port = int(s0.getsockname()[1])
        try:
            for ip in ips:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    if ip == ips[0] and kind == socket.SOCK_STREAM:
                        continue
                    with socket.socket(socket.AF_INET, kind) as s1:
                        s1.bind((ip, port))
            return port
        except OSError:
            continue
    raise SystemExit(f"no port free on all of {', '.join(ips)}")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Server:
    name: str
    ip: str
    data_dir: Path
    logfile: Path
    proc: Any = None  # subprocess.Popen

    @property
    def pid(self) -> int:
        return int(self.proc.pid) if self.proc is not None else 0


@dataclass
class Cluster:
    """Three servers on 127.0.0.1-3; ``extra_config`` goes into a JSON config file of each."""

    procs: run.Processes
    workdir: Path
    extra_config: dict[str, Any] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    http_port: int = 0
    server_port: int = 0
    serf_port: int = 0

    def __post_init__(self) -> None:
        ips = [*IPS, SPARE_IP]
        self.http_port, self.server_port, self.serf_port = (free_port_on(ips) for _ in range(3))
        self.config_file = self.workdir / "scale.json"
        self.config_file.write_text(json.dumps(self.extra_config))
        for i, ip in enumerate(IPS):
            self.servers.append(Server(f"scale-s{i}", ip, self.workdir / f"s{i}", self.workdir / f"s{i}.log"))

    def url(self, s: Server) -> str:
        return f"http://{s.ip}:{self.http_port}"

    def argv(self, s: Server, bootstrap: bool = True) -> list[str]:
        python = run.ROOT / ".venv" / "bin" / "python"
        exe = str(python if python.exists() else sys.executable)
        return [
            exe, "-m", "muster", "agent", "-server", *(["-bootstrap-expect=3"] if bootstrap else []),
            f"-data-dir={s.data_dir}", f"-bind={s.ip}", f"-advertise={s.ip}", f"-client={s.ip}",
            f"-node={s.name}", f"-http-port={self.http_port}", f"-server-port={self.server_port}",
            f"-serf-lan-port={self.serf_port}", "-serf-wan-port=-1", "-dns-port=-1",
            f"-config-file={self.config_file}",
            *[f"-retry-join={j}:{self.serf_port}" for j in IPS],
        ]

    def spawn(self, s: Server, bootstrap: bool = True) -> None:
        # Append to the log across restarts, so the snapshot lines of every life stay readable.
        s.proc = self.procs.start(s.name, self.argv(s, bootstrap), s.logfile.with_suffix(f".{time.time():.0f}.log"),
                                  cwd=run.ROOT)

    def logs(self, s: Server) -> list[Path]:
        return sorted(self.workdir.glob(f"{s.logfile.stem}.*.log"))

    def start(self, timeout: float = 120.0) -> Server:
        for s in self.servers:
            self.spawn(s)
        return self.wait_leader(timeout)

    def leader(self) -> Server | None:
        for s in self.servers:
            try:
                status, body = run.http("GET", self.url(s) + "/v1/status/leader", timeout=2)
                addr = json.loads(body) if status == 200 else ""
            except (OSError, ValueError):
                addr = ""
            if addr:
                ip = addr.split(":")[0]
                for t in self.servers:
                    if t.ip == ip:
                        return t
        return None

    def wait_leader(self, timeout: float = 120.0) -> Server:
        for _ in run.deadline_loop(timeout, 0.5):
            lead = self.leader()
            if lead is not None:
                try:
                    status, _ = run.http("PUT", self.url(lead) + "/v1/kv/scale-ready", b"1", timeout=5)
                    if status == 200:
                        log(f"cluster ready: leader {lead.name} (pid {lead.pid})")
                        return lead
                except OSError:
                    pass
        raise SystemExit(f"no cluster leader within {timeout:.0f}s; logs in {self.workdir}")

    def followers(self) -> list[Server]:
        lead = self.leader()
        return [s for s in self.servers if s is not lead]

    def stop(self, s: Server) -> None:
        if s.proc is not None:
            self.procs.stop(s.proc, timeout=30.0)

    def wait_key(self, s: Server, key: str, timeout: float) -> float:
        """Seconds until ``GET /v1/kv/<key>?stale`` on ``s`` answers 200 (the server applied
        the log up to that write); raises after ``timeout``."""
        t0 = time.monotonic()
        for _ in run.deadline_loop(timeout, 0.05):
            if s.proc is not None and s.proc.poll() is not None:
                raise SystemExit(f"{s.name} exited with {s.proc.returncode}; log {self.logs(s)[-1]}")
            try:
                status, _ = run.http("GET", self.url(s) + f"/v1/kv/{key}?stale", timeout=5)
                if status == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
        raise SystemExit(f"{s.name} did not serve {key} within {timeout:.0f}s")

    def restart_follower(self, marker: str, timeout: float = 300.0) -> dict[str, Any]:
        """Stop a follower (SIGTERM), start it again on its data dir; time until it serves the
        marker key (written last) with ``?stale``, and its own snapshot-restore time."""
        s = self.followers()[0]
        self.stop(s)
        t0 = time.monotonic()
        self.spawn(s)
        ready = self.wait_key(s, marker, timeout)
        total = time.monotonic() - t0
        restore = last_restore(self.logs(s)[-1])
        return {"server": s.name, "restart_s": round(total, 3), "restore_s": restore[2] if restore else None,
                "restore_bytes": restore[1] if restore else None, "rss_mib": round(rss_mib(s.pid), 1),
                "wait_s": round(ready, 3)}

    def catch_up_new_server(self, marker: str, timeout: float = 300.0) -> dict[str, Any]:
        """A new server with an empty data dir on 127.0.0.4 joins; time until it serves the
        marker with ``?stale`` (it received the leader's snapshot and the log after it).
        It is stopped and removed from the Raft configuration afterwards."""
        s = Server("scale-new", SPARE_IP, self.workdir / "new", self.workdir / "new.log")
        shutil.rmtree(s.data_dir, ignore_errors=True)
        t0 = time.monotonic()
        self.spawn(s, bootstrap=False)
        try:
            self.wait_key(s, marker, timeout)
            total = time.monotonic() - t0
            restore = last_restore(self.logs(s)[-1])
            out = {"catch_up_s": round(total, 3), "restore_s": restore[2] if restore else None,
                   "rss_mib": round(rss_mib(s.pid), 1)}
        finally:
            self.stop(s)
        lead = self.leader()
        if lead is not None:
            # Leave the configuration as it was: remove the stopped server's peer entry.
            try:
                status, body = run.http("GET", self.url(lead) + "/v1/operator/raft/configuration", timeout=5)
                for srv in json.loads(body).get("Servers", []) if status == 200 else []:
                    if srv.get("Node") == s.name:
                        run.http("DELETE", self.url(lead) + f"/v1/operator/raft/peer?id={srv['ID']}", timeout=10)
            except (OSError, ValueError):
                pass
        return out

    def snapshot_lines(self, s: Server) -> list[tuple[int, int, float, float, float, float, float]]:
        """(index, bytes, encode s, persist s, compact s, loop-blocked s, wall time it ended)."""
        out = []
        for p in self.logs(s):
            for m in SNAP_RE.finditer(p.read_text(errors="replace")):
                ended = time.mktime(time.strptime(m[1].split(",")[0], "%Y-%m-%d %H:%M:%S")) + int(m[1][-3:]) / 1000.0
                out.append((int(m[2]), int(m[3]), float(m[4]), float(m[5]), float(m[6]), float(m[7]), ended))
        return out


GC_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*gc: generation (\d) collection held the process ([\d.]+) ms", re.M)


def gc_pauses(cluster: Cluster, s: Server, since: float) -> list[tuple[int, float]]:
    """(generation, ms) of the collections of at least ``runtime.SLOW_GC_SECONDS`` the server
    logged after wall time ``since``."""
    out = []
    for p in cluster.logs(s):
        for m in GC_RE.finditer(p.read_text(errors="replace")):
            at = time.mktime(time.strptime(m[1].split(",")[0], "%Y-%m-%d %H:%M:%S")) + int(m[1][-3:]) / 1000.0
            if at >= since:
                out.append((int(m[2]), float(m[3])))
    return out


def last_restore(path: Path) -> tuple[int, int, float] | None:
    # The snapshot at index 1 is the empty one cluster formation writes: not a restore of data.
    found = [f for f in RESTORE_RE.findall(path.read_text(errors="replace")) if int(f[0]) > 1]
    if not found:
        return None
    i, n, secs = found[-1]
    return int(i), int(n), float(secs)


# --------------------------------------------------------------------------- load


async def _post_all(url: str, bodies: Iterator[bytes], concurrency: int, timeout: float) -> tuple[int, int]:
    """POST/PUT every body to ``url`` with ``concurrency`` in flight; (done, failures)."""
    done = failed = 0
    deadline = time.monotonic() + timeout
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            nonlocal done, failed
            for body in bodies:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bulk load did not finish within {timeout:.0f}s ({done} done)")
                for attempt in range(5):
                    async with session.put(url, data=body) as resp:
                        text = await resp.read()
                        if resp.status == 200:
                            done += 1
                            break
                        if attempt == 4:
                            failed += 1
                            log(f"load: {resp.status} {text[:200]!r}")
                        await asyncio.sleep(0.2 * (attempt + 1))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed


def bulk_put(url: str, path: str, bodies: Iterator[Any], concurrency: int = 8, timeout: float = 1800.0) -> tuple[int, float]:
    """PUT every body (JSON-encoded) to ``path``; (requests, seconds).  ``/v1/txn`` with a
    batch of operations per body, or ``/v1/catalog/register`` with one registration each."""
    t0 = time.monotonic()
    encoded = (json.dumps(b).encode() for b in bodies)
    done, failed = asyncio.run(_post_all(url + path, encoded, concurrency, timeout))
    if failed:
        raise SystemExit(f"bulk load: {failed} requests to {path} failed")
    return done, time.monotonic() - t0


def latency(host: str, port: int, path: str, n: int, timeout: float = 120.0) -> dict[str, Any]:
    """``n`` sequential GETs of ``path`` on one keep-alive connection: ms p50/p99/max, bytes."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    times: list[float] = []
    size = 0
    end = time.monotonic() + timeout
    try:
        for _ in range(n):
            if time.monotonic() > end:
                break
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            times.append((time.perf_counter() - t0) * 1000.0)
            if resp.status != 200:
                raise SystemExit(f"GET {path}: {resp.status} {body[:200]!r}")
            size = len(body)
    finally:
        conn.close()
    return {"path": path, "n": len(times), "p50_ms": round(statistics.median(times), 3),
            "p99_ms": round(pct(times, 99), 3), "max_ms": round(max(times), 3), "bytes": size}


def snapshot_save(url: str, timeout: float = 300.0) -> dict[str, Any]:
    """``GET /v1/snapshot`` (``consul snapshot save``): seconds and archive bytes."""
    t0 = time.monotonic()
    status, body = run.http("GET", url + "/v1/snapshot", timeout=timeout)
    secs = time.monotonic() - t0
    if status != 200:
        raise SystemExit(f"GET /v1/snapshot: {status} {body[:200]!r}")
    return {"save_s": round(secs, 3), "archive_bytes": len(body)}


async def _writers(url: str, seconds: float, concurrency: int, keyspace: int) -> list[tuple[float, float]]:
    """PUT 64-byte values to random keys for ``seconds``: [(start monotonic, latency ms)]."""
    out: list[tuple[float, float]] = []
    end = time.monotonic() + seconds
    value = b"w" * 64
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker(w: int) -> None:
            i = w
            while time.monotonic() < end:
                t0 = time.monotonic()
                async with session.put(f"{url}/v1/kv/writer/{i % keyspace}", data=value) as resp:
                    await resp.read()
                out.append((t0, (time.monotonic() - t0) * 1000.0))
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return out


def writer_stall(cluster: Cluster, lead: Server, seconds: float, concurrency: int = 8) -> dict[str, Any]:
    """Writers PUT to the leader for ``seconds`` while the leader takes Raft snapshots (the run's
    ``raft_snapshot_threshold`` makes it take some); latency of every write, and of the writes
    that were in flight while a snapshot was being taken (from the leader's log lines)."""
    before = {line[0] for line in cluster.snapshot_lines(lead)}
    offset = time.time() - time.monotonic()  # monotonic -> wall
    started = time.time() - 1.0  # log times have whole-second resolution before the millis
    samples = asyncio.run(_writers(cluster.url(lead), seconds, concurrency, 1000))
    snaps = [line for line in cluster.snapshot_lines(lead) if line[0] not in before]
    lat = [ms for _, ms in samples]
    # Writes in flight at some point of a snapshot (from its start, end - encode - persist -
    # compact, to its end, both from the leader's log line; log times have 1 ms resolution).
    windows = [(s[6] - s[2] - s[3] - s[4] - 0.002, s[6] + 0.002) for s in snaps]
    during = [ms for t0, ms in samples if any(a <= t0 + offset + ms / 1000.0 and t0 + offset <= b for a, b in windows)]
    return {
        "writes": len(samples), "seconds": seconds, "concurrency": concurrency,
        "writes_per_s": round(len(samples) / seconds, 1),
        "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2), "max_ms": round(max(lat, default=0), 2),
        "snapshots": len(snaps), "writes_during_snapshots": len(during),
        "during_p50_ms": round(pct(during, 50), 2), "during_p99_ms": round(pct(during, 99), 2),
        "during_max_ms": round(max(during, default=0), 2),
        "snapshot_loop_s": [s[5] for s in snaps], "snapshot_encode_s": [s[2] for s in snaps],
        "snapshot_persist_s": [s[3] for s in snaps], "snapshot_compact_s": [s[4] for s in snaps],
        "snapshot_bytes": [s[1] for s in snaps],
        "leader_slow_gc_ms": [[g, ms] for g, ms in gc_pauses(cluster, lead, started)],
    }


def record_to(path: Path) -> Callable[[dict[str, Any]], None]:
    def record(obj: dict[str, Any]) -> None:
        with path.open("a") as f:
            f.write(json.dumps(obj) + "\n")
        log(json.dumps(obj))

    return record
