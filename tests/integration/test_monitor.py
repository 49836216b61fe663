"""``/v1/agent/monitor`` and ``muster monitor`` against a real agent process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import IO

import pytest
from realagent import REPO_ROOT, AgentProcess, run_cli


def _put(agent: AgentProcess, key: str) -> None:
    req = urllib.request.Request(f"{agent.url}/v1/kv/{key}", data=b"v", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b"true"


def _lines(stream: IO[bytes]) -> queue.Queue[bytes]:
    q: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        try:
            for line in iter(stream.readline, b""):
                q.put(line)
        except (OSError, ValueError):
            pass  # the test closed the connection
        q.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_line(q: queue.Queue[bytes], needle: bytes, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        if needle in line:
            return line
        if line == b"":
            break
    raise AssertionError(f"no line containing {needle!r} within {timeout}s")


def test_monitor_endpoint_streams_the_put_line(muster_agent: AgentProcess, unique: str) -> None:
    req = urllib.request.Request(f"{muster_agent.url}/v1/agent/monitor?loglevel=debug")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        q = _lines(resp)
        time.sleep(0.3)  # the subscription is open once the headers are out; give it a moment
        _put(muster_agent, f"{unique}/mon")
        line = _wait_line(q, f"/v1/kv/{unique}/mon".encode())
        assert b"[DEBUG] http: Request finished: method=PUT" in line


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started_with_sigint_ignored", [False, True])
def test_monitor_cli_follows_the_log_until_interrupted(
    muster_agent: AgentProcess, unique: str, started_with_sigint_ignored: bool
) -> None:
    """Ctrl-C ends the monitor with 0, also when the CLI was started with SIGINT ignored (a
    background job of a non-interactive shell, as CI runs it): it takes the signal itself."""
    env = muster_agent.env()
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    proc = subprocess.Popen(
        [sys.executable, "-m", "muster", "monitor", "-log-level=debug", "-log-json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(REPO_ROOT),
        preexec_fn=_ignore_sigint if started_with_sigint_ignored else None,
    )
    try:
        assert proc.stdout is not None
        q = _lines(proc.stdout)
        deadline = time.monotonic() + 15
        found = b""
        n = 0
        while not found and time.monotonic() < deadline:  # the CLI needs a moment to connect
            n += 1
            _put(muster_agent, f"{unique}/cli{n}")
            try:
                found = _wait_line(q, f"/v1/kv/{unique}/cli".encode(), timeout=1.0)
            except AssertionError:
                continue
        assert b'"@level": "debug"' in found and b"Request finished: method=PUT" in found
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_monitor_cli_bad_level(muster_agent: AgentProcess) -> None:
    res = run_cli(["monitor", "-log-level=foo"], muster_agent, timeout=30)
    assert res.returncode == 1
    assert res.stderr.decode().strip() == "Error starting monitor: Unexpected response code: 400 (Unknown log level: foo)"


def test_agent_stderr_has_the_put_line_live_and_in_order_through_shutdown(
    agent_factory: Callable[..., AgentProcess], unique: str
) -> None:
    """The ``-dev`` agent's stderr (buffered once per loop turn, ``LoopBufferedHandler``) shows
    a PUT's ``Request finished`` line while the agent runs, with no later line needed to push it
    out, and after SIGTERM the log holds it once, before ``shutting down``."""
    agent = agent_factory(name="stderr-log")
    _put(agent, f"{unique}/stderr")
    needle = f"url=/v1/kv/{unique}/stderr".encode()
    deadline = time.monotonic() + 15
    while needle not in agent.log_path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert needle in agent.log_path.read_bytes(), agent.log_tail()
    assert agent.stop() == 0
    lines = agent.log_path.read_bytes().splitlines()
    put = [i for i, line in enumerate(lines) if needle in line]
    down = [i for i, line in enumerate(lines) if line.endswith(b"[INFO] muster.agent: shutting down")]
    assert len(put) == 1 and b"[DEBUG] muster.http: Request finished: method=PUT" in lines[put[0]]
    assert len(down) == 1 and put[0] < down[0]
