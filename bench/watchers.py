#!/usr/bin/env python3
"""Long-poll capacity: hold N idle blocking queries on one key, then wake them all with one PUT.

    python bench/watchers.py                      # starts its own dev agent, N=10,000
    python bench/watchers.py -n 1000 --url http://127.0.0.1:8500 --pid <agent pid>
    python bench/run.py --workloads none --watchers 10000

Each watcher is a raw asyncio connection sending
``GET /v1/kv/watch/key?index=<current>&wait=5m``. Reported: the agent's RSS (VmRSS of the agent
and its child processes, from /proc) before and with all watchers parked, then the time from one
``PUT /v1/kv/watch/key`` until every watcher has its answer (p50/p99/max), measured on the client
(so it includes the client's own parsing of N answers, an upper bound). Goal from the issue:
10,000 watchers < 300 MB RSS and < 1 s to wake them all. Bounded: gives up after --timeout
(default 60 s) per phase. The open-file limit is raised to the hard limit (and printed); with
more than 20,000 watchers the client source addresses are spread over 127.0.0.2.. so the
ephemeral port range is not exhausted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KEY = "watch/key"
PORTS_PER_SOURCE = 20_000  # of the ~28k ephemeral ports (32768-60999) per source address


def log(msg: str) -> None:
    print(f"[watchers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- /proc


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                kids += [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(RSS of pid, RSS of pid plus all its descendants), in KiB."""
    own = _rss_kb(pid)
    total, todo, seen = 0, [pid], set[int]()
    while todo and len(seen) < 1000:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kb(p)
        todo += _children(p)
    return own, total


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def max_open_files(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def raise_nofile(need: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = hard if hard != resource.RLIM_INFINITY else need
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------- HTTP over raw asyncio


@dataclass
class Watcher(asyncio.Protocol):
    request: bytes
    done: asyncio.Future[None]
    buf: bytearray = field(default_factory=bytearray)
    status: int = 0
    t_end: float = 0.0
    error: str = ""
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.done.done():
            return
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buf[:head_end]).decode("latin-1").split("\r\n")
        body = self.buf[head_end + 4:]
        length: int | None = None
        chunked = False
        for h in head[1:]:
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        complete = (length is not None and len(body) >= length) or (chunked and body.endswith(b"0\r\n\r\n")) \
            or (length is None and not chunked)
        if complete:
            self.t_end = time.perf_counter()
            try:
                self.status = int(head[0].split()[1])
            except (IndexError, ValueError):
                self.status = -1
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.t_end = time.perf_counter()
            self.error = f"closed: {exc}" if exc else "closed by server"
            self.done.set_result(None)


async def request(host: str, port: int, method: str, path: str, body: bytes = b"",
                  timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on its own connection (Connection: close)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode() + body
        )
        raw = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        payload = _dechunk(payload)
    return int(lines[0].split()[1]), headers, payload


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            break
        out += data[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


# --------------------------------------------------------------------------- the measurement


def _pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


async def _run(url: str, pid: int | None, n: int, timeout: float, sources: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not host.startswith("127."):
        raise SystemExit("watchers: only loopback targets (127.0.0.0/8)")
    loop = asyncio.get_running_loop()
    result: dict[str, Any] = {"url": url, "pid": pid, "watchers": n, "key": KEY}

    status, _, _ = await request(host, port, "PUT", f"/v1/kv/{KEY}", b"before")
    if status != 200:
        raise SystemExit(f"watchers: initial PUT answered {status}")
    status, headers, _ = await request(host, port, "GET", f"/v1/kv/{KEY}")
    index = int(headers.get("x-consul-index", "0"))
    if status != 200 or index <= 0:
        raise SystemExit(f"watchers: GET answered {status} with X-Consul-Index {headers.get('x-consul-index')!r}")
    result["index"] = index

    await asyncio.sleep(1.0)
    if pid:
        result["rss_before_kb"], result["rss_tree_before_kb"] = tree_rss_kb(pid)
        log(f"agent RSS before: {result['rss_before_kb'] / 1024:.1f} MiB (with children "
            f"{result['rss_tree_before_kb'] / 1024:.1f} MiB)")

    path = f"/v1/kv/{KEY}?index={index}&wait=5m"
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    src = [f"127.0.0.{2 + i}" for i in range(sources)] if sources > 1 else [None]
    watchers: list[Watcher] = []
    connect_errors: list[str] = []
    sem = asyncio.Semaphore(100)  # stay under the server's listen backlog

    async def open_one(i: int) -> None:
        async with sem:
            w = Watcher(req, loop.create_future())
            local = src[i % len(src)]
            try:
                await loop.create_connection(lambda: w, host, port, local_addr=(local, 0) if local else None)
                watchers.append(w)
            except OSError as e:
                connect_errors.append(str(e))

    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(n))), timeout)
    except TimeoutError:
        log(f"opening connections timed out after {timeout:g}s")
    result["connect_s"] = round(time.perf_counter() - t0, 3)
    result["connected"] = len(watchers)
    result["connect_errors"] = len(connect_errors)
    if connect_errors:
        result["connect_error_sample"] = connect_errors[:3]
    log(f"{len(watchers)} watchers connected in {result['connect_s']:.1f}s ({len(connect_errors)} errors)")

    # Let the agent read and park every request; RSS should settle.
    settle_end = time.monotonic() + min(timeout, 3.0 + n / 2000)
    last = -1
    while time.monotonic() < settle_end:
        await asyncio.sleep(1.0)
        if pid:
            now = tree_rss_kb(pid)[1]
            if abs(now - last) < 256:
                break
            last = now
    early = [w for w in watchers if w.done.done()]
    result["returned_early"] = len(early)
    if early:
        result["early_sample"] = [(w.status, w.error, bytes(w.buf[:200]).decode("latin-1")) for w in early[:3]]
        log(f"WARNING: {len(early)} watchers returned before the change (status {early[0].status} {early[0].error})")
    if pid:
        result["rss_with_kb"], result["rss_tree_with_kb"] = tree_rss_kb(pid)
        per = (result["rss_tree_with_kb"] - result["rss_tree_before_kb"]) * 1024 / max(1, len(watchers))
        result["bytes_per_watcher"] = round(per)
        log(f"agent RSS with {len(watchers)} watchers: {result['rss_with_kb'] / 1024:.1f} MiB (with children "
            f"{result['rss_tree_with_kb'] / 1024:.1f} MiB), ~{per / 1024:.1f} KiB per watcher")
        cpu0 = cpu_seconds(pid)

    waiting = [w for w in watchers if not w.done.done()]
    t_put = time.perf_counter()
    status, _, _ = await request(host, port, "PUT", f"/v1/kv/{KEY}", b"after", timeout=timeout)
    put_s = time.perf_counter() - t_put
    result["put_status"], result["put_s"] = status, round(put_s, 4)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.done for w in waiting)), timeout)
    except TimeoutError:
        log(f"not all watchers returned within {timeout:g}s")
    if pid:
        result["agent_cpu_s_during_wake"] = round(cpu_seconds(pid) - cpu0, 3)
    returned = [w for w in waiting if w.done.done()]
    ok = [w for w in returned if w.status == 200 and b"YWZ0ZXI=" in w.buf]  # base64("after")
    times = [w.t_end - t_put for w in returned]
    result.update({
        "waiting": len(waiting), "returned": len(returned), "returned_ok": len(ok),
        "returned_errors": sum(1 for w in returned if w.error),
        "statuses": {str(s): sum(1 for w in returned if w.status == s) for s in {w.status for w in returned}},
        "wake_p50_s": round(_pct(times, 50), 4), "wake_p99_s": round(_pct(times, 99), 4),
        "wake_all_s": round(max(times), 4) if len(returned) == len(waiting) and times else None,
        "wake_first_s": round(min(times), 4) if times else None,
        "wake_mean_s": round(statistics.fmean(times), 4) if times else None,
    })
    for w in watchers:
        if w.transport is not None:
            w.transport.abort()
    return result


def run(url: str, pid: int | None, n: int = 10_000, timeout: float = 60.0, sources: int = 0) -> dict[str, Any]:
    """Measure N watchers against the agent at `url` (pid: its process, for RSS). Returns a dict."""
    soft, hard = raise_nofile(n + 256)
    log(f"RLIMIT_NOFILE soft={soft} hard={hard} (raised with resource.setrlimit)")
    if soft < n + 64:
        log(f"WARNING: open-file limit {soft} < {n} watchers: capping to {soft - 64}")
        n = soft - 64
    if pid:
        agent_limit = max_open_files(pid)
        log(f"agent pid {pid} open-file limit: {agent_limit}")
        if agent_limit is not None and agent_limit < n + 64:
            log(f"WARNING: the agent can hold at most ~{agent_limit} connections; expect refusals")
    if sources <= 0:
        sources = max(1, math.ceil(n / PORTS_PER_SOURCE))
    t0 = time.perf_counter()
    result = asyncio.run(_run(url, pid, n, timeout, sources))
    result.update({"nofile_soft": soft, "nofile_hard": hard, "sources": sources,
                   "total_s": round(time.perf_counter() - t0, 2)})
    rss = result.get("rss_tree_with_kb")
    wake = result.get("wake_all_s")
    goal_rss = "not measured" if rss is None else ("MET" if rss < 300 * 1024 else "MISSED")
    goal_wake = "not measured (not all returned)" if wake is None else ("MET" if wake < 1.0 else "MISSED")
    result["goal_rss"], result["goal_wake"] = goal_rss, goal_wake
    log(f"{result['returned']}/{result['waiting']} watchers returned ({result['returned_ok']} with the new value); "
        f"wake p50 {result['wake_p50_s']}s p99 {result['wake_p99_s']}s all {wake}s; "
        f"early returns {result['returned_early']}")
    if rss is not None:
        log(f"goal RSS < 300 MB with {n} watchers: {rss / 1024:.1f} MiB -> {goal_rss}")
    log(f"goal wake all < 1 s: {wake} -> {goal_wake}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Hold N idle blocking queries on a Muster agent, wake them with one PUT.")
    p.add_argument("-n", "--watchers", type=int, default=10_000)
    p.add_argument("--url", help="agent HTTP URL (default: start a dev agent with --muster-cmd)")
    p.add_argument("--pid", type=int, help="agent PID, for RSS (with --url)")
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds per phase")
    p.add_argument("--sources", type=int, default=0, help="spread client source addresses over 127.0.0.2..")
    p.add_argument("--muster-cmd", default=None, help="as in bench/run.py")
    p.add_argument("--json", help="append the result as a JSON line to this file")
    args = p.parse_args(argv)

    import run as bench  # bench/run.py; imported here only (it imports this module)

    bench.raise_nofile()  # the agent inherits it
    procs = bench.Processes()
    workdir = Path(tempfile.mkdtemp(prefix="muster-watchers-"))
    try:
        url, pid = args.url, args.pid
        if not url:
            m = bench.start_muster(procs, workdir, args.muster_cmd or bench.DEFAULT_MUSTER_CMD)
            url, pid = m.url, m.pid
        result = run(url, pid, args.watchers, args.timeout, args.sources)
        print(json.dumps(result))
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({"type": "watchers", **result}) + "\n")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
