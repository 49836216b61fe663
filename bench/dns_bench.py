#!/usr/bin/env python3
"""DNS throughput: Muster's DNS listener with and without the answer cache.

Method (as in docs/performance.md#method): 100 services x 3 healthy instances; queries are A and
SRV for the 100 service names over UDP without EDNS (so the 3-answer cap applies).  Load comes
from ``dnsperf`` (Debian package ``dnsperf``; 4 clients, 100 outstanding) when it is installed,
else from a Python asyncio UDP loop in a separate process (100 outstanding) - the Python loader
saturates before the server does, so its figures are lower bounds.

The server under test is ``DNSServer`` in its own process (``--serve``), on uvloop when present,
with the catalog written through ``Server.apply`` like the agent does; ``--cache off`` builds
every answer with dnspython, ``--cache on`` serves compiled answers (shuffled and truncated per
query).  Everything listens on 127.0.0.1 free ports; each process started here is stopped by PID;
every wait is bounded.

    .venv/bin/python bench/dns_bench.py                # both modes, A and SRV, 10 s each
    .venv/bin/python bench/dns_bench.py --seconds 5 --loader python
    .venv/bin/python bench/dns_bench.py --vs-nsd --rounds 3   # Muster (cache on) against NSD

``--vs-nsd`` compares Muster with a C authoritative server in the same run: NSD (Debian package
``nsd``, one server process, ``server-count: 1``, as Muster is one process) serving a zone file
with the same 100 services x 3 instances (the A records of ``svcN.service.consul``, their SRV
records pointing at ``node-N-i.node.dc1.consul`` with those nodes' A records).  Both get the same
dnsperf invocation (4 clients, 100 outstanding, UDP, no EDNS), alternating Muster/NSD per query
type and round; before measuring, the answers of both servers are compared (same address set
for every A question, same target/port set for every SRV question).  Reported: qps of each,
the ratio Muster/NSD, and answers per server CPU-second (NSD: all its processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as harness  # noqa: E402  (ensure_tools: Debian packages the comparison needs)
from scalekit import free_port_on  # noqa: E402  (a port free for TCP and UDP)

ROOT = Path(__file__).resolve().parent.parent
SERVICES = 100
INSTANCES = 3
DOMAIN = "consul"


# ---------------------------------------------------------------------- server side


async def _serve(port: int, cache: bool) -> None:
    from muster.config import parse_agent_flags
    from muster.dns.server import DNSServer
    from muster.runtime import Rng
    from muster.server.server import Server, ServerIdentity
    from muster.structs import RegisterCommand

    cfg = parse_agent_flags(["-dev", "-node=bench", f"-domain={DOMAIN}"])
    srv = Server(ServerIdentity("bench", "00000000-0000-4000-8000-000000000001", "dc1", "127.0.0.1"), rng=Rng())
    await srv.start()
    for s in range(SERVICES):
        for i in range(INSTANCES):
            node = f"node-{s}-{i}"
            await srv.apply(RegisterCommand(
                node={"Node": node, "Address": f"10.{s // 250}.{s % 250}.{i + 1}", "Datacenter": "dc1",
                      "Meta": {"rack": f"r{i}"}},
                service={"ID": f"svc{s}", "Service": f"svc{s}", "Tags": [], "Address": "", "Port": 8000 + i,
                         "Weights": {"Passing": 1, "Warning": 1}},
                checks=[{"Node": node, "CheckID": "serfHealth", "Name": "serf", "Status": "passing", "ServiceID": ""}],
            ))
    dns = DNSServer(srv, cfg, cache=cache)
    await dns.start(["127.0.0.1"], port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await asyncio.wait_for(stop.wait(), 3600)
    print(json.dumps({"hits": dns.hits, "misses": dns.misses}), flush=True)
    await dns.stop()
    await srv.stop()


def serve_main(port: int, cache: bool) -> None:
    try:
        import uvloop

        uvloop.run(_serve(port, cache))
    except ImportError:
        asyncio.run(_serve(port, cache))


# ---------------------------------------------------------------------- load side


def queries(rtype: str) -> list[tuple[str, str]]:
    return [(f"svc{s}.service.{DOMAIN}", rtype) for s in range(SERVICES)]


def run_dnsperf(port: int, rtype: str, seconds: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for name, t in queries(rtype):
            f.write(f"{name} {t}\n")
        path = f.name
    try:
        out = subprocess.run(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", path, "-l", str(seconds), "-c", "4", "-q", "100"],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        ).stdout
    finally:
        os.unlink(path)
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if m is None:
        raise RuntimeError("could not read dnsperf output:\n" + out)
    if lost and int(lost.group(1)) > 0:
        print(f"  (dnsperf lost {lost.group(1)} queries)", file=sys.stderr)
    return float(m.group(1))


async def _python_load(port: int, rtype: str, seconds: float, window: int) -> float:
    import dns.message

    packets = [dns.message.make_query(n, t).to_wire() for n, t in queries(rtype)]
    loop = asyncio.get_running_loop()
    done = 0
    inflight = 0
    wake = asyncio.Event()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            nonlocal done, inflight
            done += 1
            inflight -= 1
            wake.set()

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", port))
    start = time.monotonic()
    end = start + seconds
    i = 0
    while time.monotonic() < end:
        while inflight < window:
            pkt = packets[i % len(packets)]
            transport.sendto(struct.pack("!H", i & 0xFFFF) + pkt[2:])
            inflight += 1
            i += 1
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), 0.5)
        except TimeoutError:
            inflight = 0  # lost datagrams: refill the window
    elapsed = time.monotonic() - start
    transport.close()
    return done / elapsed


def run_python(port: int, rtype: str, seconds: float) -> float:
    return asyncio.run(_python_load(port, rtype, seconds, 100))


# ---------------------------------------------------------------------- orchestration


def free_port() -> int:
    return free_port_on(["127.0.0.1"])


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of ``pid`` (Linux /proc): lets us report queries per CPU-second of
    the server, which - unlike wall-clock qps - barely depends on what else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cache: bool, rtypes: list[str], seconds: float, loader: str) -> dict[str, dict[str, float]]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--cache", "on" if cache else "off"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    results: dict[str, dict[str, float]] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.strip() == "ready":
                break
        if line.strip() != "ready":
            raise RuntimeError("DNS bench server did not start")
        for rtype in rtypes:
            cpu0 = cpu_seconds(proc.pid)
            qps = run_dnsperf(port, rtype, seconds) if loader == "dnsperf" else run_python(port, rtype, seconds)
            cpu = cpu_seconds(proc.pid) - cpu0
            per_cpu = qps * seconds / cpu if cpu > 0 else 0.0
            results[rtype] = {"qps": qps, "qps_per_cpu_second": per_cpu, "server_cpu_seconds": cpu}
            print(f"  cache={'on ' if cache else 'off'} {rtype:<4} {qps:>10,.0f} qps"
                  f"  ({per_cpu:,.0f} per server CPU-second, server used {cpu:.1f} CPU-s)", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
            if out.strip():
                print("  server:", out.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    return results


# ---------------------------------------------------------------------- NSD (the C reference)


def node_addr(s: int, i: int) -> str:
    return f"10.{s // 250}.{s % 250}.{i + 1}"


def nsd_zone() -> str:
    """The zone NSD serves: what Muster answers for the bench catalog (TTL 0, as Consul's)."""
    lines = [
        f"$ORIGIN {DOMAIN}.",
        "$TTL 0",
        f"@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 0",
        f"@ IN NS ns.{DOMAIN}.",
        "ns IN A 127.0.0.1",
    ]
    for s in range(SERVICES):
        for i in range(INSTANCES):
            lines.append(f"svc{s}.service IN A {node_addr(s, i)}")
            lines.append(f"svc{s}.service IN SRV 1 1 {8000 + i} node-{s}-{i}.node.dc1.{DOMAIN}.")
            lines.append(f"node-{s}-{i}.node.dc1 IN A {node_addr(s, i)}")
    return "\n".join(lines) + "\n"


def start_nsd(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    if not os.path.exists(nsd):
        raise SystemExit("nsd is not installed (Debian: apt-get install nsd)")
    (workdir / "consul.zone").write_text(nsd_zone())
    conf = workdir / "nsd.conf"
    conf.write_text(
        "server:\n"
        f"  ip-address: 127.0.0.1@{port}\n"
        f"  port: {port}\n"
        "  server-count: 1\n"
        '  username: ""\n'
        f'  zonesdir: "{workdir}"\n'
        f'  zonelistfile: "{workdir}/zone.list"\n'
        '  database: ""\n'
        f'  pidfile: "{workdir}/nsd.pid"\n'
        f'  xfrdfile: "{workdir}/xfrd.state"\n'
        f'  xfrdir: "{workdir}"\n'
        f'  logfile: "{workdir}/nsd.log"\n'
        "  verbosity: 0\n"
        # NSD's response rate limiting (on by default: 200 answers/s per client netblock)
        # would throttle dnsperf's single source address; Muster has none.
        "  rrl-ratelimit: 0\n"
        "  rrl-whitelist-ratelimit: 0\n"
        "remote-control:\n"
        "  control-enable: no\n"
        "zone:\n"
        f"  name: {DOMAIN}\n"
        "  zonefile: consul.zone\n"
    )
    proc = subprocess.Popen([nsd, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = workdir / "nsd.log"
            raise RuntimeError("nsd exited: " + (log.read_text()[-2000:] if log.exists() else "no log"))
        if _answers(port, f"svc0.service.{DOMAIN}", "A"):
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("nsd did not answer within 30 s")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every descendant (NSD forks its server and xfrd processes)."""
    total = 0.0
    todo = [pid]
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return total


def _answers(port: int, name: str, rtype: str) -> set[str]:
    """The answer section of one UDP query, as a set of comparable strings (empty on failure)."""
    import dns.exception
    import dns.message
    import dns.query

    try:
        r = dns.query.udp(dns.message.make_query(name, rtype, use_edns=False), "127.0.0.1", port=port, timeout=2)
    except (OSError, dns.exception.DNSException):
        return set()
    out: set[str] = set()
    for rrset in r.answer:
        for rd in rrset:
            if rtype == "SRV":
                out.add(f"{rd.port} {str(rd.target).lower()}")
            else:
                out.add(rd.to_text())
    return out


def compare_answers(muster_port: int, nsd_port: int) -> int:
    """Every A and SRV question answered identically (as sets) by both servers; mismatches."""
    bad = 0
    for s in range(SERVICES):
        for rtype in ("A", "SRV"):
            name = f"svc{s}.service.{DOMAIN}"
            a, b = _answers(muster_port, name, rtype), _answers(nsd_port, name, rtype)
            if not a or a != b:
                bad += 1
                if bad <= 3:
                    print(f"  answers differ for {name} {rtype}: muster {sorted(a)} nsd {sorted(b)}")
    return bad


def start_muster_dns(port: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--cache", "on"], stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.strip() == "ready":
            return proc
    proc.kill()
    raise RuntimeError("DNS bench server did not start")


def vs_nsd(rtypes: list[str], seconds: float, rounds: int) -> int:
    import statistics

    workdir = Path(tempfile.mkdtemp(prefix="muster-dns-nsd-"))
    mport, nport = free_port(), free_port()
    mproc = start_muster_dns(mport)
    nproc: subprocess.Popen[bytes] | None = None
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        nproc = start_nsd(workdir, nport)
        bad = compare_answers(mport, nport)
        print(f"answers compared on {SERVICES} A and {SERVICES} SRV questions: {bad} differ")
        for rnd in range(1, rounds + 1):
            for rtype in rtypes:
                for name, pid, port in (("muster", mproc.pid, mport), ("nsd", nproc.pid, nport)):
                    cpu0 = tree_cpu_seconds(pid)
                    qps = run_dnsperf(port, rtype, seconds)
                    cpu = tree_cpu_seconds(pid) - cpu0
                    per_cpu = qps * seconds / cpu if cpu > 0 else 0.0
                    rows.setdefault((name, rtype), []).append((qps, per_cpu))
                    print(f"  round {rnd} {name:6} {rtype:<4} {qps:>10,.0f} qps  ({per_cpu:,.0f} per server CPU-s,"
                          f" server {100 * cpu / seconds:.0f}% CPU)", flush=True)
        print(f"\n(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; medians of {rounds})")
        print("| query | Muster qps | NSD qps | ratio Muster/NSD | Muster per CPU-s | NSD per CPU-s | answers differ |")
        print("|---|---|---|---|---|---|---|")
        summary: dict[str, dict[str, float]] = {}
        for rtype in rtypes:
            m = rows[("muster", rtype)]
            n = rows[("nsd", rtype)]
            mq, nq = statistics.median(x[0] for x in m), statistics.median(x[0] for x in n)
            mc, nc = statistics.median(x[1] for x in m), statistics.median(x[1] for x in n)
            summary[rtype] = {"muster_qps": mq, "nsd_qps": nq, "ratio": mq / nq if nq else 0.0,
                              "muster_per_cpu_s": mc, "nsd_per_cpu_s": nc}
            print(f"| {rtype} | {mq:,.0f} | {nq:,.0f} | {mq / nq if nq else 0:.2f} | {mc:,.0f} | {nc:,.0f} | {bad} |")
        print(json.dumps({"vs": "nsd", "seconds": seconds, "rounds": rounds, "answers_differ": bad,
                          "load": os.getloadavg()[0], "summary": summary}))
    finally:
        mproc.send_signal(signal.SIGTERM)
        try:
            mproc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            mproc.kill()
            mproc.wait(timeout=15)
        if nproc is not None:
            nproc.terminate()
            try:
                nproc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                nproc.kill()
                nproc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cache", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--loader", choices=["auto", "dnsperf", "python"], default="auto")
    ap.add_argument("--types", default="A,SRV")
    ap.add_argument("--vs-nsd", action="store_true", help="compare Muster (cache on) with NSD, same dnsperf load")
    ap.add_argument("--rounds", type=int, default=3, help="with --vs-nsd: rounds (medians reported)")
    ap.add_argument("--no-install", action="store_true", help="with --vs-nsd: fail instead of apt-get installing nsd/dnsperf")
    args = ap.parse_args()
    if args.serve is not None:
        serve_main(args.serve, args.cache == "on")
        return 0
    if args.vs_nsd:
        # The C reference and the load tool come from Debian, installed as bench/run.py installs etcd/wrk.
        harness.ensure_tools(args.no_install, (("dnsperf", "dnsperf"), ("nsd", "nsd")))
        return vs_nsd([t.strip().upper() for t in args.types.split(",") if t.strip()], args.seconds, args.rounds)
    loader = args.loader
    if loader == "auto":
        loader = "dnsperf" if shutil.which("dnsperf") else "python"
    rtypes = [t.strip().upper() for t in args.types.split(",") if t.strip()]
    print(f"DNS bench: {SERVICES} services x {INSTANCES} instances, UDP, loader={loader}, {args.seconds:g}s per run")
    off = measure(False, rtypes, args.seconds, loader)
    on = measure(True, rtypes, args.seconds, loader)
    load = os.getloadavg()[0]
    print(f"\n(load average {load:.1f} on {os.cpu_count()} CPUs; per-CPU-second figures are the stable ones)")
    print("| query | no cache qps | cache qps | no cache per CPU-s | cache per CPU-s | speed-up (CPU) |")
    print("|---|---|---|---|---|---|")
    for t in rtypes:
        a, b = off[t], on[t]
        ratio = b["qps_per_cpu_second"] / a["qps_per_cpu_second"] if a["qps_per_cpu_second"] else 0.0
        print(f"| {t} | {a['qps']:,.0f} | {b['qps']:,.0f} | {a['qps_per_cpu_second']:,.0f} "
              f"| {b['qps_per_cpu_second']:,.0f} | {ratio:.1f}x |")
    print(json.dumps({"loader": loader, "seconds": args.seconds, "load": load, "no_cache": off, "cache": on}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
