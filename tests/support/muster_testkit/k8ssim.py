"""A Kubernetes StatefulSet on one machine: pods are Linux network namespaces.

What Kubernetes does to a Raft server, reproduced with ``ip netns`` (root only):

* each pod ``consul-N`` is a network namespace with one veth (``eth0``) on a bridge that lives in
  a namespace of its own (the "node network"), an address from a /24 used only inside these
  namespaces, no default route, and nothing added to the root namespace;
* "cluster DNS" is a per-pod hosts file (``/etc/netns/<ns>/hosts``, which ``ip netns exec``
  mounts over ``/etc/hosts``) rewritten in place whenever a pod's address changes, so that
  ``consul-N.consul.<namespace>.svc.cluster.local`` resolves to the pod's *current* IP;
* the PVC is a directory that outlives the pod, mounted at ``/consul/data`` inside the pod's own
  mount namespace; the hostname (UTS namespace) is the pod name; the downward API gives
  ``PODIP`` and ``NAMESPACE``, expanded into the container args as Kubernetes does ``$(VAR)``;
* deleting a pod sends SIGTERM, then SIGKILL after the grace period, and removes its namespace;
  re-creating it gives it a NEW address, same name, same volume.

The test process talks to pods from a "client" namespace on the same bridge, by entering that
namespace in a worker thread (``setns``), so no route to the pod network ever exists outside.
Every process this module starts is tracked by PID and killed by ``down``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SEED_ARGS = [
    "agent",
    "-server",
    "-bootstrap-expect=3",
    "-ui",
    "-data-dir=/consul/data",
    "-bind=0.0.0.0",
    "-client=0.0.0.0",
    "-advertise=$(PODIP)",
    "-retry-join=consul-0.consul.$(NAMESPACE).svc.cluster.local",
    "-retry-join=consul-1.consul.$(NAMESPACE).svc.cluster.local",
    "-retry-join=consul-2.consul.$(NAMESPACE).svc.cluster.local",
    "-domain=cluster.local",
    "-disable-host-node-id",
]


def available() -> str:
    """Empty when network namespaces can be used here; otherwise why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2 and util-linux (ip, unshare) are needed"
    name = f"msprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if r.returncode != 0:
        return f"ip netns add is not permitted: {r.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ""


def _run(*cmd: str) -> None:
    r = subprocess.run(list(cmd), capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.decode().strip()}")


class NetnsThread:
    """A worker thread living in a network namespace: ``call(fn)`` runs ``fn`` there."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._q: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]] | None] = queue.Queue()
        ready: queue.Queue[str] = queue.Queue()
        self._t = threading.Thread(target=self._main, args=(ready,), daemon=True, name=f"netns-{netns}")
        self._t.start()
        err = ready.get(timeout=10)
        if err:
            raise RuntimeError(err)

    def _main(self, ready: queue.Queue[str]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                ready.put(f"setns failed: {os.strerror(ctypes.get_errno())}")
                return
        finally:
            os.close(fd)
        ready.put("")
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, reply = item
            try:
                reply.put((True, fn()))
            except Exception as err:  # noqa: BLE001 - handed back to the caller, re-raised there
                reply.put((False, err))

    def call(self, fn: Callable[[], T], timeout: float = 60) -> T:
        reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._q.put((fn, reply))
        ok, value = reply.get(timeout=timeout)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._q.put(None)
        self._t.join(5)


@dataclass
class Pod:
    ordinal: int
    name: str
    netns: str
    ip: str = ""
    proc: subprocess.Popen[bytes] | None = None
    created_at: float = 0.0


@dataclass
class StatefulSet:
    root: Path
    replicas: int = 3
    subnet: str = "198.18.0"
    namespace: str = "default"
    sts: str = "consul"
    svc: str = "consul"
    domain: str = "cluster.local"
    grace: float = 5.0
    args: list[str] = field(default_factory=lambda: list(SEED_ARGS))
    python: str = ""
    tag: str = field(default_factory=lambda: f"ms{os.getpid() % 100000}")
    #: Other subnets (``a.b.c.0/24``) reachable on-link through the bridge: a second
    #: "cluster" whose bridge is linked to ours (``link_clusters``).
    extra_routes: list[str] = field(default_factory=list)
    #: Extra environment of every container (``MUSTER_CONFIG_DIR`` for a config volume).
    env: dict[str, str] = field(default_factory=dict)
    #: Read-only volumes: container path -> host directory, bind-mounted in the pod's mount
    #: namespace (the mount point is created on the host, as ``/consul/data`` is).
    volumes: dict[str, Path] = field(default_factory=dict)
    #: Sent as ``X-Consul-Token`` with every request the test makes (ACLs on, default deny).
    token: str = ""

    def __post_init__(self) -> None:
        self.net_ns = f"{self.tag}-net"
        self.client_ns = f"{self.tag}-client"
        self.pods: dict[int, Pod] = {}
        self.rng = random.Random()
        self.client: NetnsThread | None = None
        self.client_ip = f"{self.subnet}.254"
        (self.root / "pvc").mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._veth_n = 0

    # ------------------------------------------------------------------ network

    def up(self) -> None:
        _run("ip", "netns", "add", self.net_ns)
        _run("ip", "-n", self.net_ns, "link", "set", "lo", "up")
        _run("ip", "-n", self.net_ns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.net_ns, "link", "set", "br0", "up")
        self._attach(self.client_ns, self.client_ip)
        self.client = NetnsThread(self.client_ns)
        Path("/consul/data").mkdir(parents=True, exist_ok=True)  # the mount point inside pods
        for target in self.volumes:
            Path(target).mkdir(parents=True, exist_ok=True)

    def _attach(self, ns: str, ip: str) -> str:
        """Create namespace ``ns`` with eth0=ip/24 on the bridge; returns the bridge-side veth."""
        self._veth_n += 1
        host = f"v{self.tag[-6:]}{self._veth_n}"[:15]
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run(
            "ip",
            "link",
            "add",
            host,
            "netns",
            self.net_ns,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        _run("ip", "-n", self.net_ns, "link", "set", host, "master", "br0", "up")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        for net in self.extra_routes:
            _run("ip", "-n", ns, "route", "add", net, "dev", "eth0")
        return host

    def _pick_ip(self, avoid: str = "") -> str:
        used = {p.ip for p in self.pods.values()} | {self.client_ip, avoid}
        while True:
            ip = f"{self.subnet}.{self.rng.randint(2, 250)}"
            if ip not in used:
                return ip

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.svc}.{self.namespace}.svc.{self.domain}"

    def dns_sync(self) -> None:
        """Rewrite every pod's hosts file in place (running processes see the new records)."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        for p in sorted(self.pods.values(), key=lambda p: p.ordinal):
            if p.ip:
                lines.append(
                    f"{p.ip} {self.fqdn(p.name)} {p.name}.{self.svc}.{self.namespace}.svc {p.name}.{self.svc}"
                )
        text = "\n".join(lines) + "\n"
        for p in self.pods.values():
            if not p.ip:  # a deleted pod has no namespace, so no hosts file either
                continue
            d = Path("/etc/netns") / p.netns
            d.mkdir(parents=True, exist_ok=True)
            hosts = d / "hosts"
            if hosts.exists():
                with open(hosts, "r+") as f:  # keep the inode: bind mounts follow it
                    f.seek(0)
                    f.write(text)
                    f.truncate()
            else:
                hosts.write_text(text)
            resolv = d / "resolv.conf"
            if not resolv.exists():
                resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    # ------------------------------------------------------------------ pods

    def pvc(self, ordinal: int) -> Path:
        return self.root / "pvc" / f"{self.sts}-{ordinal}"

    def container_args(self, pod: Pod) -> list[str]:
        env = {"PODIP": pod.ip, "NAMESPACE": self.namespace, "POD_NAME": pod.name}
        out = []
        for a in self.args:
            for k, v in env.items():
                a = a.replace(f"$({k})", v)
            out.append(a)
        return out

    def create_pod(self, ordinal: int) -> Pod:
        name = f"{self.sts}-{ordinal}"
        old = self.pods.get(ordinal)
        pod = Pod(ordinal, name, f"{self.tag}-{name}")
        pod.ip = self._pick_ip(old.ip if old else "")
        self.pods[ordinal] = pod
        self._attach(pod.netns, pod.ip)
        self.dns_sync()
        self._start_container(pod)
        return pod

    def _start_container(self, pod: Pod) -> None:
        pvc = self.pvc(pod.ordinal)
        pvc.mkdir(parents=True, exist_ok=True)
        name = pod.name
        python = self.python or os.environ.get("MUSTER_PYTHON", "") or shutil.which("python3") or "python3"
        cmd = " ".join(shlex.quote(x) for x in [python, "-m", "muster", *self.container_args(pod)])
        mounts = "".join(
            f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)} && mount -o remount,bind,ro {shlex.quote(dst)} && "
            for dst, src in self.volumes.items()
        )
        extra = "".join(f" {k}={shlex.quote(v)}" for k, v in self.env.items())
        script = (
            f"hostname {shlex.quote(name)} && mount --bind {shlex.quote(str(pvc))} /consul/data && {mounts}"
            f"export PODIP={pod.ip} NAMESPACE={self.namespace} POD_NAME={name} HOSTNAME={name}{extra} && exec {cmd}"
        )
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        pod.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                pod.netns,
                "unshare",
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        pod.created_at = time.monotonic()

    def delete_pod(self, ordinal: int, grace: float | None = None) -> None:
        pod = self.pods.get(ordinal)
        if pod is None:
            return
        if pod.proc is not None and pod.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod.proc.pid, signal.SIGTERM)
            try:
                pod.proc.wait(self.grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.proc.pid, signal.SIGKILL)
                pod.proc.wait(10)
        pod.proc = None
        subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / pod.netns, ignore_errors=True)
        pod.ip = ""
        self.dns_sync()

    def recreate_pod(self, ordinal: int) -> Pod:
        self.delete_pod(ordinal)
        return self.create_pod(ordinal)

    def partition(self, ordinal: int, cut: bool = True) -> None:
        """Cut pod ``ordinal`` off the network (its bridge port goes down), or heal it."""
        pod = self.pods[ordinal]
        _run("ip", "-n", pod.netns, "link", "set", "eth0", "down" if cut else "up")

    def down(self) -> None:
        for o in list(self.pods):
            self.delete_pod(o, grace=0.5)
        if self.client is not None:
            self.client.stop()
        for ns in (self.client_ns, self.net_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for o in list(self.pods):
            shutil.rmtree(Path("/etc/netns") / self.pods[o].netns, ignore_errors=True)

    # ------------------------------------------------------------------ HTTP from the client namespace

    def request_here(
        self, ordinal: int, method: str, path: str, body: bytes | None = None, timeout: float = 5
    ) -> tuple[int, bytes]:
        """HTTP to a pod from the calling thread, which must already be in the client namespace
        (fault callbacks running inside ``client.call``)."""
        url = f"http://{self.pods[ordinal].ip}:8500{path}"
        req = urllib.request.Request(url, data=body, method=method)
        if self.token:
            req.add_header("X-Consul-Token", self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def request(
        self, ordinal: int, method: str, path: str, body: bytes | None = None, timeout: float = 5
    ) -> tuple[int, bytes]:
        assert self.client is not None
        return self.client.call(
            lambda: self.request_here(ordinal, method, path, body, timeout), timeout=timeout + 5
        )

    def leader_here(self) -> int | None:
        """The leader's ordinal as the first answering pod sees it (from the client namespace)."""
        for o, p in sorted(self.pods.items()):
            if not p.ip:
                continue
            try:
                code, body = self.request_here(o, "GET", "/v1/status/leader?stale", timeout=1)
            except OSError:
                continue
            addr = json.loads(body) if code == 200 else ""
            for o2, p2 in self.pods.items():
                if addr and addr == f"{p2.ip}:8300":
                    return o2
        return None

    def restart_container(self, ordinal: int) -> None:
        """kill -9 the pod's process and start it again in the same pod (same IP): what the
        kubelet does when a container crashes."""
        pod = self.pods[ordinal]
        if pod.proc is not None and pod.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod.proc.pid, signal.SIGKILL)
            pod.proc.wait(10)
        self._start_container(pod)

    def pause(self, ordinal: int, stop: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the pod's server process."""
        pod = self.pods[ordinal]
        if pod.proc is not None and pod.proc.poll() is None:
            os.kill(pod.proc.pid, signal.SIGSTOP if stop else signal.SIGCONT)

    def leader_of(self, ordinal: int) -> str:
        try:
            code, body = self.request(ordinal, "GET", "/v1/status/leader", timeout=2)
        except (OSError, queue.Empty):
            return ""
        return str(json.loads(body)) if code == 200 else ""

    def wait_leader(self, timeout: float = 30) -> tuple[int, float]:
        """(ordinal of the leader every live pod agrees on, seconds it took)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            live = [o for o, p in self.pods.items() if p.ip]
            views = {self.leader_of(o) for o in live}
            if len(views) == 1:
                addr = views.pop()
                for o in live:
                    if addr == f"{self.pods[o].ip}:8300":
                        return o, time.monotonic() - t0
            time.sleep(0.2)
        raise AssertionError(
            f"no leader within {timeout}s: " + json.dumps({o: self.leader_of(o) for o in self.pods})
        )

    def kv_dump(self, ordinal: int) -> dict[str, str]:
        code, body = self.request(ordinal, "GET", "/v1/kv/?recurse&stale")
        if code == 404:
            return {}
        if code != 200:
            raise OSError(f"kv dump from pod {ordinal}: {code}")
        return {e["Key"]: e["Value"] for e in json.loads(body)}


def link_clusters(a: StatefulSet, b: StatefulSet) -> tuple[str, str]:
    """Join the node networks of two StatefulSets (two Kubernetes clusters, or regions) with one
    link between their bridges: the "WAN".  Pods reach the other subnet on-link (routes from
    ``extra_routes``, which must be set before pods are created).  Returns the two ends, for
    :func:`cut_link`."""
    end_a, end_b = f"w{a.tag[-6:]}a"[:15], f"w{b.tag[-6:]}b"[:15]
    _run("ip", "link", "add", end_a, "netns", a.net_ns, "type", "veth", "peer", "name", end_b, "netns", b.net_ns)
    _run("ip", "-n", a.net_ns, "link", "set", end_a, "master", "br0", "up")
    _run("ip", "-n", b.net_ns, "link", "set", end_b, "master", "br0", "up")
    return end_a, end_b


def cut_link(a: StatefulSet, end_a: str, cut: bool = True) -> None:
    """Partition the WAN between two linked StatefulSets (or heal it)."""
    _run("ip", "-n", a.net_ns, "link", "set", end_a, "down" if cut else "up")


class WriteLoad:
    """Unique-key writes spread over the live pods from the client namespace; records acks."""

    def __init__(self, sim: StatefulSet, prefix: str, limit: int = 50_000) -> None:
        self.sim, self.prefix, self.limit = sim, prefix, limit
        self.acked: dict[str, float] = {}
        self.failed = 0
        self.stop_flag = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.longest_gap = 0.0

    def start(self) -> WriteLoad:
        self._t.start()
        return self

    def _run(self) -> None:
        # Our own thread in the client namespace: the load never queues behind (or delays)
        # the test's own requests on the shared client thread.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.sim.client_ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
        finally:
            os.close(fd)
        n = 0
        last_ok = time.monotonic()
        while not self.stop_flag.is_set() and n < self.limit:
            n += 1
            live = [o for o, p in self.sim.pods.items() if p.ip]
            if not live:
                time.sleep(0.05)
                continue
            o = live[n % len(live)]
            key = f"{self.prefix}/{n:07d}"
            try:
                code, body = self.sim.request_here(o, "PUT", f"/v1/kv/{key}", key.encode(), timeout=10)
            except (OSError, KeyError, RuntimeError):
                code, body = 0, b""
            now = time.monotonic()
            if code == 200 and body == b"true":
                self.acked[key] = now
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            else:
                self.failed += 1
                time.sleep(0.05)

    def stop(self) -> None:
        self.stop_flag.set()
        self._t.join(30)
