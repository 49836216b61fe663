"""Real server processes on 127.0.0.1, .2, .3 ...: start, kill -9, SIGSTOP, restart, query.

Every server of a ``Cluster`` listens on its own loopback address with the same ports (as pods
do), keeps its data dir under the test's temporary directory, and logs to a file there (kept for
failed runs under ``test-artifacts/cluster/``).  Every wait is bounded; ``close`` kills every
process this harness started, by PID, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "cluster"


def free_port_on_all(hosts: list[str]) -> int:
    """A TCP port free on every one of ``hosts`` (bound briefly to check)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        ok = True
        for h in hosts[1:]:
            with socket.socket() as s2:
                try:
                    s2.bind((h, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no free port on all hosts")


@dataclass
class Node:
    index: int
    ip: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False


@dataclass
class Cluster:
    root: Path
    size: int = 3
    expect: int = 3
    extra: list[str] = field(default_factory=list)
    hold: str = "2s"
    #: Addresses every server is told to join (default: the servers' own addresses).  Tests that
    #: move servers to new addresses list the new ones too, as a DNS name would resolve to them.
    join_ips: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [
            Node(i, f"127.0.0.{i + 1}", self.root / f"s{i}" / "data", self.root / f"s{i}" / "agent.log")
            for i in range(self.size)
        ]
        ips = sorted({n.ip for n in self.nodes} | set(self.join_ips))
        self.http_port = free_port_on_all(ips)
        self.server_port = free_port_on_all(ips)
        while self.server_port == self.http_port:
            self.server_port = free_port_on_all(ips)
        self.serf_port = free_port_on_all(ips)
        while self.serf_port in (self.http_port, self.server_port):
            self.serf_port = free_port_on_all(ips)
        self.serf_wan_port = free_port_on_all(ips)
        while self.serf_wan_port in (self.http_port, self.server_port, self.serf_port):
            self.serf_wan_port = free_port_on_all(ips)

    def args(self, n: Node) -> list[str]:
        servers = [m.ip for m in self.nodes if m.index not in getattr(self, "clients", set())]
        joins = [f"-retry-join={ip}:{self.serf_port}" for ip in (self.join_ips or servers)]
        if n.index in getattr(self, "clients", set()):
            role = [f"-node={self.client_names[n.index]}"]
        else:
            role = ["-server", f"-bootstrap-expect={self.expect}", f"-node=s{n.index}"]
        return [
            "agent",
            *role,
            f"-data-dir={n.data_dir}",
            f"-bind={n.ip}",
            f"-advertise={n.ip}",
            f"-client={n.ip}",
            f"-http-port={self.http_port}",
            f"-server-port={self.server_port}",
            f"-serf-lan-port={self.serf_port}",
            f"-serf-wan-port={self.serf_wan_port}",
            "-dns-port=-1",
            "-retry-interval=1s",
            "-hcl",
            f'performance {{\n  raft_multiplier = 1\n  rpc_hold_timeout = "{self.hold}"\n}}\n',
            *joins,
            *self.extra,
            *getattr(self, "node_extra", {}).get(n.index, []),
        ]

    def add_client(self, ip: str, name: str, extra: list[str] | None = None) -> int:
        """A client agent (no -server) on ``ip`` joining the servers; returns its index."""
        for port in (self.http_port, self.server_port, self.serf_port):
            with socket.socket() as probe:
                probe.bind((ip, port))  # raises if taken: the test picks another address
        i = len(self.nodes)
        self.node_extra = getattr(self, "node_extra", {})
        self.node_extra[i] = list(extra or [])
        self.nodes.append(Node(i, ip, self.root / name / "data", self.root / name / "agent.log"))
        self.clients = getattr(self, "clients", set())
        self.clients.add(i)
        self.client_names = getattr(self, "client_names", {})
        self.client_names[i] = name
        self.size = len(self.nodes)
        return i

    def start(self, i: int) -> None:
        n = self.nodes[i]
        n.data_dir.mkdir(parents=True, exist_ok=True)
        logf = open(n.log_path, "ab")  # noqa: SIM115 - handed to the child process
        n.proc = subprocess.Popen(
            [sys.executable, "-m", "muster", *self.args(n)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logf.close()
        n.stopped = False

    def start_all(self) -> None:
        for i in range(self.size):
            self.start(i)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        n = self.nodes[i]
        if n.proc is None:
            return
        if n.stopped:
            n.proc.send_signal(signal.SIGCONT)
        n.proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            n.proc.wait(10)
        n.proc = None
        n.stopped = False

    def pause(self, i: int) -> None:
        n = self.nodes[i]
        assert n.proc is not None
        n.proc.send_signal(signal.SIGSTOP)
        n.stopped = True

    def resume(self, i: int) -> None:
        n = self.nodes[i]
        assert n.proc is not None
        n.proc.send_signal(signal.SIGCONT)
        n.stopped = False

    def close(self, keep_logs: bool = False) -> None:
        for i in range(self.size):
            self.kill(i)
        if keep_logs:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for n in self.nodes:
                if n.log_path.exists():
                    shutil.copy(n.log_path, ARTIFACTS / f"{self.root.name}-s{n.index}.log")

    # ------------------------------------------------------------------ HTTP

    def url(self, i: int, path: str) -> str:
        return f"http://{self.nodes[i].ip}:{self.http_port}{path}"

    def request(self, i: int, method: str, path: str, body: bytes | None = None, timeout: float = 10) -> tuple[int, Any, bytes]:
        """(status, headers (case-insensitive), body) whatever the status."""
        req = urllib.request.Request(self.url(i, path), data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get_json(self, i: int, path: str, timeout: float = 10) -> Any:
        code, _h, body = self.request(i, "GET", path, timeout=timeout)
        if code != 200:
            raise AssertionError(f"GET {path} on s{i}: {code} {body!r}")
        return json.loads(body)

    def leader(self, i: int) -> str:
        try:
            return str(self.get_json(i, "/v1/status/leader", timeout=2))
        except (OSError, AssertionError, ValueError):
            return ""

    def move(self, i: int, ip: str) -> None:
        """Give server ``i`` a new address (it must be stopped): the pod-with-a-new-IP case."""
        assert self.nodes[i].proc is None
        self.nodes[i].ip = ip

    def wait_leader(self, among: list[int] | None = None, timeout: float = 20) -> int:
        """Index of the server that all of ``among`` agree is the leader."""
        among = among if among is not None else list(range(self.size))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = {i: self.leader(i) for i in among}
            addrs = set(views.values())
            if len(addrs) == 1 and "" not in addrs:
                addr = addrs.pop()
                for n in self.nodes:
                    if addr.startswith(n.ip + ":") and n.index in among:
                        return n.index
            time.sleep(0.1)
        raise AssertionError(f"no agreed leader among {among} within {timeout}s: " + json.dumps({i: self.leader(i) for i in among}))

    def put(self, i: int, key: str, value: bytes, timeout: float = 10) -> bool:
        code, _h, body = self.request(i, "PUT", f"/v1/kv/{key}", value, timeout=timeout)
        return code == 200 and body == b"true"

    def kv_dump(self, i: int) -> dict[str, str]:
        code, _h, body = self.request(i, "GET", "/v1/kv/?recurse&stale")
        if code == 404:
            return {}
        assert code == 200, (code, body)
        return {e["Key"]: e["Value"] for e in json.loads(body)}


def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, AssertionError) as err:  # a server still starting, or mid-failover
            last = err
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def env_ok() -> bool:
    """127.0.0.2 and .3 must be bindable (true on Linux loopback)."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.3", 0))
        return True
    except OSError:
        return False


__all__ = ["Cluster", "wait_until", "env_ok", "os"]


@contextlib.contextmanager
def running(c: Cluster, request: Any) -> Iterator[Cluster]:
    """Start every server of ``c``, yield it, and close it afterwards; the servers' logs are kept
    when the test using it failed (``request.node.rep_call``, set by the conftest's hook)."""
    c.start_all()
    try:
        yield c
    finally:
        failed = bool(getattr(request.node, "rep_call", None) and request.node.rep_call.failed)
        c.close(keep_logs=failed)
