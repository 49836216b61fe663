"""Linearizability of a real ``muster agent -dev`` process under SIGSTOP/SIGCONT pauses.

The agent is our own subprocess on 127.0.0.1 with a free HTTP port; faults are signals to its
PID only.  A single server has no partitions, so pauses (requests time out, queue up, and are
applied after SIGCONT: indeterminate ops) are the fault that matters.  The negative control
re-checks the recorded real history with one read turned stale, proving the checker has teeth
on histories of this shape and size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from muster_testkit.history import (
    History,
    NoFaults,
    ProcessFaults,
    Report,
    WorkloadConfig,
    check_recorded,
    run_and_check,
)
from muster_testkit.linearizability import Op, Verdict, check_history

_FALLBACK = (
    "import sys; from muster.config import parse_agent_flags; from muster.process import run_agent; "
    "sys.exit(run_agent(parse_agent_flags(sys.argv[1:]), sys.argv[1:]))"
)


@dataclass
class Agent:
    url: str
    pid: int
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            r = httpx.get(f"{url}/v1/status/leader", timeout=1.0, trust_env=False)
            if r.status_code == 200 and r.json():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop our own child by PID: resume it (it may be paused), SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def dev_agent(tmp: Path) -> Iterator[Agent]:
    """Start ``muster agent -dev`` (``python -m muster`` if the CLI exists, else the documented
    fallback entry point) and stop it afterwards, whatever happens."""
    flags = ["-dev", "-client=127.0.0.1", "-dns-port=-1"]
    commands = []
    if importlib.util.find_spec("muster.cli") is not None:
        commands.append([sys.executable, "-m", "muster", "agent"])
    commands.append([sys.executable, "-c", _FALLBACK])
    failures = []
    for cmd in commands:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp / f"agent-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*cmd, *flags, f"-http-port={port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            if _wait_ready(proc, url, timeout=20.0):
                yield Agent(url, proc.pid, log)
                return
            failures.append(f"{cmd[:4]} did not become ready:\n{log.read_text()[-2000:]}")
        finally:
            _stop(proc)
    pytest.fail("could not start a dev agent:\n" + "\n".join(failures))


def _inject_stale_read(ops: list[Op]) -> tuple[list[Op], str] | None:
    """Turn one successful read stale: it returns u although u's write had finished before
    another acknowledged write x started, and x had finished before the read started."""
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    for key, kops in by_key.items():
        writers = sorted(
            (op for op in kops if op.status == "ok" and op.kind in ("write", "cas")), key=lambda o: o.call
        )
        for r in kops:
            if r.kind != "read" or r.status != "ok":
                continue
            done_before = [x for x in writers if x.ret < r.call]
            for x in done_before:
                olds = [u for u in writers if u.ret < x.call]
                if olds:
                    u = olds[0]
                    stale = Op(r.id, key, "read", "ok", r.call, r.ret, value=u.value, client=r.client)
                    return [stale if op.id == r.id else op for op in ops], key
    return None


def _assert_clean(report: Report, min_ops: int) -> None:
    summary = report.summary()
    assert report.verdict is Verdict.LINEARIZABLE, summary
    assert not report.violations and not report.unknown_keys, summary
    assert not report.anomalies, summary
    assert report.ops >= min_ops, summary
    assert report.stale_reads == 0, summary


def test_dev_agent_linearizable_under_pauses(tmp_path: Path) -> None:
    with dev_agent(tmp_path) as agent:
        faults = ProcessFaults(
            [agent.pid], mode="pause", interval=(0.5, 1.0), duration=(0.6, 0.9), max_rounds=60, seed=7
        )
        cfg = WorkloadConfig(clients=8, keys=10, ops_per_key=200, timeout=0.5, connect_timeout=0.3, seed=11)
        report = run_and_check([agent.url], ops=3000, seconds=90.0, faults=faults, config=cfg)
        print(report.summary())
        _assert_clean(report, 3000)
        kinds = [ev.kind for ev in report.faults]
        assert kinds.count("SIGSTOP") >= 3 and kinds.count("SIGSTOP") == kinds.count("SIGCONT"), kinds
        # The pauses outlast the request timeout, so they must show up as indeterminate or failed ops.
        assert report.info + report.fail > 0, report.summary()
        assert report.by_kind["cas"].get("ok", 0) > 50 and report.by_kind["write"].get("ok", 0) > 100
        # The agent is healthy after the schedule healed.
        r = httpx.get(f"{agent.url}/v1/status/leader", timeout=2.0, trust_env=False)
        assert r.status_code == 200

        # Negative control on the real history: one stale read must be caught.
        mutated = _inject_stale_read(report.history.ops)
        assert mutated is not None, "no read qualified for the stale-read mutation"
        ops, key = mutated
        res = check_history(ops)
        assert res.verdict is Verdict.NOT_LINEARIZABLE
        assert [v.key for v in res.violations] == [key]
        # And the dumped history re-checks to the same verdict.
        path = tmp_path / "history.jsonl"
        report.history.dump(path)
        again = check_recorded(History.load(path))
        assert again.verdict is Verdict.LINEARIZABLE and again.ops == report.ops


def test_dev_agent_default_reads_are_not_stale_on_a_single_server(tmp_path: Path) -> None:
    with dev_agent(tmp_path) as agent:
        cfg = WorkloadConfig(clients=8, keys=5, read_mode="default", timeout=2.0, seed=3)
        report = run_and_check([agent.url], ops=600, seconds=40.0, faults=NoFaults(), config=cfg)
        print(report.summary())
        _assert_clean(report, 600)
        assert report.info == 0, report.summary()


@pytest.mark.soak
@pytest.mark.timeout(2400)
def test_dev_agent_soak_100k_ops_under_pauses(tmp_path: Path) -> None:
    with dev_agent(tmp_path) as agent:
        faults = ProcessFaults(
            [agent.pid], mode="pause", interval=(2.0, 4.0), duration=(0.3, 1.5), max_rounds=1000, seed=1
        )
        cfg = WorkloadConfig(clients=8, keys=20, ops_per_key=200, timeout=0.5, connect_timeout=0.3, seed=5)
        report = run_and_check([agent.url], ops=100_000, seconds=1800.0, faults=faults, config=cfg)
        print(report.summary())
        if report.verdict is not Verdict.LINEARIZABLE:
            report.history.dump(tmp_path / "soak-history.jsonl")
        _assert_clean(report, 100_000)
        assert sum(1 for ev in report.faults if ev.kind == "SIGSTOP") >= 50
