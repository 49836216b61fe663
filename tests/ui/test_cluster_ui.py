"""The Cluster and Nodes pages against a real 3-server cluster, including a leader change.

Three ``muster agent -server -ui`` processes on 127.0.0.31-33 (one port number
free on all three addresses), opened through a server that stays up while the
leader is killed.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from ui_harness import ARTIFACTS, ROOT, UI, stop_process

if TYPE_CHECKING:
    from playwright.sync_api import Playwright

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

IPS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
FORM_TIMEOUT = 40.0


def _port_free_on_all(ips: list[str]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((ips[0], 0))
            port: int = sock.getsockname()[1]
        ok = True
        for ip in ips:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((ip, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no port free on all cluster addresses")


@dataclass(eq=False)
class Server:
    name: str
    ip: str
    proc: subprocess.Popen[bytes]


@dataclass
class ThreeServers:
    servers: list[Server]
    http_port: int
    server_port: int

    def url(self, server: Server) -> str:
        return f"http://{server.ip}:{self.http_port}"

    def leader(self, via: Server) -> Server | None:
        try:
            addr = httpx.get(f"{self.url(via)}/v1/status/leader", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        for s in self.servers:
            if addr == f"{s.ip}:{self.server_port}":
                return s
        return None


@pytest.fixture
def three_servers(tmp_path: Path, playwright_instance: Playwright) -> Iterator[ThreeServers]:
    """Three servers; depends on the browser machinery so a missing Chromium skips before any start."""
    try:
        for ip in IPS:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((ip, 0))
    except OSError:
        pytest.skip("loopback addresses 127.0.0.31-33 are not usable here")
    http_port = _port_free_on_all(IPS)
    server_port = _port_free_on_all(IPS)
    while server_port == http_port:
        server_port = _port_free_on_all(IPS)
    serf_port = _port_free_on_all(IPS)
    while serf_port in (http_port, server_port):
        serf_port = _port_free_on_all(IPS)
    servers: list[Server] = []
    try:
        for i, ip in enumerate(IPS):
            name = f"ui-s{i + 1}"
            log_path = ARTIFACTS / f"cluster-{name}.log"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable, "-m", "muster", "agent", "-server", "-ui", "-bootstrap-expect=3",
                f"-data-dir={tmp_path / name}", f"-bind={ip}", f"-advertise={ip}", f"-client={ip}",
                f"-node={name}", f"-http-port={http_port}", f"-server-port={server_port}",
                f"-serf-lan-port={serf_port}", "-serf-wan-port=-1", "-dns-port=-1", "-grpc-port=-1", "-retry-interval=1s",
                "-hcl", "performance {\n  raft_multiplier = 1\n}\n",
                *[f"-retry-join={j}:{serf_port}" for j in IPS],
            ]  # fmt: skip
            with open(log_path, "wb") as log:
                log.write(("$ " + " ".join(cmd) + "\n").encode())
                log.flush()
                proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
                )
            servers.append(Server(name, ip, proc))
        cluster = ThreeServers(servers, http_port, server_port)
        deadline = time.monotonic() + FORM_TIMEOUT
        while time.monotonic() < deadline:
            dead = [srv.name for srv in servers if srv.proc.poll() is not None]
            if dead:
                pytest.fail(
                    f"cluster servers exited during startup: {dead} (logs in {ARTIFACTS})", pytrace=False
                )
            leaders = {cluster.leader(srv) for srv in servers}
            if len(leaders) == 1 and None not in leaders:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"3-server cluster did not agree on a leader within {FORM_TIMEOUT}s", pytrace=False)
        yield cluster
    finally:
        for server in servers:
            stop_process(server.proc)


def test_cluster_page_three_servers_and_leader_change(three_servers: ThreeServers, ui: UI) -> None:
    # three_servers comes first so that the page closes before the servers stop.
    page = ui.page
    cluster = three_servers
    leader = cluster.leader(cluster.servers[0])
    assert leader is not None
    observer = next(s for s in cluster.servers if s is not leader)
    base = cluster.url(observer)

    # Autopilot answers 429 (by contract) while the cluster is unhealthy:
    # right after formation (servers not yet stable) and after the kill below.
    ui.allow_console(r"status of 429 .*/v1/operator/autopilot/health")

    # Through the leader: roles, voters, failure tolerance from autopilot.
    page.goto(f"{cluster.url(leader)}/ui/#/cluster")
    rows = page.locator("#servers-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(f'#servers-table tr[data-server="{leader.name}"]')).to_have_attribute(
        "data-role", "leader"
    )
    expect(page.locator('#servers-table tr[data-role="follower"]')).to_have_count(2)
    expect(page.locator("#stat-voters")).to_have_text("3 of 3 servers")
    expect(page.locator("#stat-leader")).to_have_text(leader.name)
    expect(page.locator("#stat-tolerance")).to_have_text(
        "1 server", timeout=25_000
    )  # once autopilot calls it stable
    expect(page.locator("#stat-autopilot")).to_have_text("healthy")
    for s in cluster.servers:
        expect(page.locator(f'#servers-table tr[data-server="{s.name}"] td').nth(5)).to_have_text("0")  # lag
    ui.shot("cluster-3-servers")

    page.goto(f"{base}/ui/#/nodes")
    for s in cluster.servers:
        expect(page.locator(f'tr[data-node="{s.name}"] .badge-voter')).to_have_text("Voter")
    expect(page.locator(f'tr[data-node="{leader.name}"] .badge-leader')).to_have_text("Leader")
    expect(page.locator(".badge-leader")).to_have_count(1)

    # Kill the leader: the UI (served by a surviving server) records the change.
    page.goto(f"{base}/ui/#/cluster")
    expect(page.locator("#stat-leader")).to_have_text(leader.name)
    expect(page.locator("#leader-history li")).to_have_count(1)
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    history = page.locator("#leader-history li")
    expect(history).to_have_count(2, timeout=30_000)
    new_leader = cluster.leader(observer)
    assert new_leader is not None and new_leader is not leader
    expect(history.first).to_contain_text(f"{new_leader.name}")
    expect(history.first).to_contain_text(re.compile(rf"took over from {leader.name}"))
    expect(page.locator("#stat-leader")).to_have_text(new_leader.name)
    expect(page.locator(f'#servers-table tr[data-server="{new_leader.name}"]')).to_have_attribute(
        "data-role", "leader"
    )
    ui.shot("cluster-leader-change")
