"""Start a real ``muster agent -dev`` process for end-to-end tests.

Reusable by any real-process test (import it from ``tests/integration`` or use the
``muster_agent`` / ``agent_factory`` fixtures of ``tests/integration/conftest.py``)::

    from realagent import start_agent

    agent = start_agent(name="my-test")
    try:
        ...  # agent.http_addr == "127.0.0.1:<port>", agent.url, agent.env()
    finally:
        agent.stop()

Every listener is on 127.0.0.1 with a free port (HTTP, server RPC, serf LAN/WAN); DNS and
gRPC are off unless asked for.  Startup waits (bounded) until ``/v1/status/leader`` names
a leader; the agent's output goes to ``test-artifacts/<name>-<port>.log``.  ``stop()``
sends SIGTERM to that one PID, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from muster_testkit.ports import free_port

__all__ = ["ARTIFACTS", "REPO_ROOT", "AgentProcess", "AgentStartError", "free_port", "start_agent", "run_cli"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
STARTUP_TIMEOUT = 45.0
STOP_GRACE = 10.0


class AgentStartError(RuntimeError):
    """The agent exited or never elected itself leader within the startup timeout."""


@dataclass
class AgentProcess:
    """A running agent subprocess."""

    proc: subprocess.Popen[bytes]
    http_port: int
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    _log: IO[bytes] | None = None

    @property
    def http_addr(self) -> str:
        """``127.0.0.1:<http port>`` (a CONSUL_HTTP_ADDR value)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<http port>``."""
        return f"http://{self.http_addr}"

    @property
    def pid(self) -> int:
        """The agent's PID."""
        return self.proc.pid

    def env(self, **extra: str) -> dict[str, str]:
        """A copy of ``os.environ`` pointing ``CONSUL_HTTP_ADDR`` at this agent."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        env["CONSUL_HTTP_ADDR"] = self.http_addr
        env.update(extra)
        return env

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the agent's log (for failure messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM this PID, SIGKILL after ``STOP_GRACE`` seconds; returns the exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_GRACE)
            return self.proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _leader(url: str) -> str:
    try:
        with urllib.request.urlopen(url + "/v1/status/leader", timeout=2) as resp:
            value = json.loads(resp.read() or b'""')
            return value if isinstance(value, str) else ""
    except (OSError, ValueError, urllib.error.URLError):
        return ""


def start_agent(
    extra_args: Sequence[str] = (),
    *,
    name: str = "agent",
    timeout: float = STARTUP_TIMEOUT,
    env: dict[str, str] | None = None,
) -> AgentProcess:
    """Start ``python -m muster agent -dev`` on free 127.0.0.1 ports and wait for a leader."""
    ports = {
        "http": free_port(),
        "server": free_port(),
        "serf_lan": free_port(),
        "serf_wan": free_port(),
    }
    argv = [
        sys.executable,
        "-m",
        "muster",
        "agent",
        "-dev",
        "-client=127.0.0.1",
        f"-http-port={ports['http']}",
        "-dns-port=-1",
        f"-server-port={ports['server']}",
        f"-serf-lan-port={ports['serf_lan']}",
        f"-serf-wan-port={ports['serf_wan']}",
        "-grpc-port=-1",
        *extra_args,
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"{name}-{ports['http']}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by AgentProcess.stop
    log.write(("$ " + " ".join(argv) + "\n").encode())
    log.flush()
    child_env = {k: v for k, v in (env or os.environ).items() if not k.startswith("CONSUL_")}
    src = str(REPO_ROOT / "src")
    child_env["PYTHONPATH"] = src + (
        os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else ""
    )
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=child_env,
        cwd=str(REPO_ROOT),
        start_new_session=True,
    )
    agent = AgentProcess(proc=proc, http_port=ports["http"], log_path=log_path, ports=ports, _log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not agent.alive():
            agent.stop()
            raise AgentStartError(
                f"agent exited with {proc.returncode} during startup; log {log_path}:\n{agent.log_tail()}"
            )
        if _leader(agent.url):
            return agent
        time.sleep(0.1)
    agent.stop()
    raise AgentStartError(f"agent had no leader after {timeout:.0f}s; log {log_path}:\n{agent.log_tail()}")


def run_cli(
    args: Sequence[str],
    agent: AgentProcess | None = None,
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m muster ARGS`` (pointed at ``agent`` via CONSUL_HTTP_ADDR) and capture it."""
    child_env = dict(env) if env is not None else (agent.env() if agent else dict(os.environ))
    src = str(REPO_ROOT / "src")
    child_env["PYTHONPATH"] = src + (
        os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else ""
    )
    return subprocess.run(
        [sys.executable, "-m", "muster", *args],
        input=b"" if input is None else input,
        capture_output=True,
        env=child_env,
        timeout=timeout,
        cwd=str(REPO_ROOT),
        check=False,
    )
