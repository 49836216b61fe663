"""The recording side: outcome classification, fault hooks, PID safety, dump/load.

Servers here are tiny asyncio listeners in the test's own loop on 127.0.0.1; the processes
signalled are ``sleep`` children started by the test itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from muster_testkit.history import (
    FaultContext,
    History,
    ProcessFaults,
    TimedFaults,
    WorkloadConfig,
    arun_workload,
    check_recorded,
)
from muster_testkit.linearizability import Op, Verdict

from .test_buggy_servers import serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


async def test_refused_connections_are_definite_failures() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    cfg = WorkloadConfig(clients=2, keys=2, max_ops=40, max_seconds=10, seed=1)
    h = await arun_workload(url, cfg)
    assert len(h.ops) >= 40
    assert {op.status for op in h.ops} == {"fail"}, {op.error for op in h.ops}
    assert all(op.kind in ("read", "write") for op in h.ops)  # a CAS needs a successful GET first
    report = check_recorded(h)
    assert report.verdict is Verdict.LINEARIZABLE and report.fail == len(h.ops)


async def test_unanswered_requests_are_indeterminate_and_stay_open() -> None:
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # swallow the request, never answer
        await asyncio.sleep(30)

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = WorkloadConfig(clients=2, keys=2, max_ops=6, max_seconds=10, timeout=0.2, seed=2)
        t0 = time.monotonic()
        h = await arun_workload(f"http://127.0.0.1:{port}", cfg)
        assert time.monotonic() - t0 < 8
    finally:
        server.close()
    assert h.ops and all(op.status == "info" and math.isinf(op.ret) for op in h.ops)
    # Each client's process number changes after an indeterminate op (Jepsen's convention).
    for c in (0, 1):
        procs = [op.client for op in h.ops if op.client % 2 == c]
        assert len(set(procs)) == len(procs)


async def test_clients_move_away_from_a_dead_server() -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    async with serve(None) as live:
        cfg = WorkloadConfig(clients=4, keys=2, max_ops=200, max_seconds=20, seed=4)
        h = await arun_workload([dead, live], cfg)
    on_dead = [op for op in h.ops if op.server == dead]
    assert on_dead and all(op.status == "fail" for op in on_dead)
    assert len(on_dead) <= cfg.clients  # each client fails over after its first refusal
    assert check_recorded(h).verdict is Verdict.LINEARIZABLE


async def test_non_loopback_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await arun_workload("http://192.0.2.1:8500", WorkloadConfig(max_ops=1))
    with pytest.raises(ValueError, match="ratio"):
        await arun_workload("http://127.0.0.1:1", WorkloadConfig(read_ratio=0.9, write_ratio=0.5))


def test_process_faults_refuse_unsafe_pids() -> None:
    for pid in (0, 1, -1, -os.getpid(), os.getpid()):
        with pytest.raises(ValueError):
            ProcessFaults([pid])


async def test_process_faults_pause_resume_and_heal() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        events: list = []
        ctx = FaultContext(time.monotonic(), events)
        pf = ProcessFaults([proc.pid], interval=(0.01, 0.02), duration=(0.2, 0.2), max_rounds=2, seed=1)
        task = asyncio.create_task(pf.run(ctx))
        await asyncio.sleep(0.1)
        assert _state(proc.pid) == "T"  # stopped mid-pause
        await task
        assert _state(proc.pid) != "T"
        assert [e.kind for e in events] == ["SIGSTOP", "SIGCONT", "SIGSTOP", "SIGCONT"]
        # Stop the run in the middle of a pause: heal must resume the process.
        pf2 = ProcessFaults([proc.pid], interval=(0.0, 0.0), duration=(30, 30), max_rounds=1)
        ctx2 = FaultContext(time.monotonic(), [])
        task2 = asyncio.create_task(pf2.run(ctx2))
        await asyncio.sleep(0.1)
        assert _state(proc.pid) == "T"
        task2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task2
        await pf2.heal(ctx2)
        assert _state(proc.pid) != "T"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=5)


async def test_process_faults_kill_and_restart_only_our_pids() -> None:
    procs = [subprocess.Popen(["sleep", "30"])]

    async def restart(old: int) -> int:
        procs[-1].wait(timeout=5)  # reap the killed child
        procs.append(subprocess.Popen(["sleep", "30"]))
        return procs[-1].pid

    try:
        ctx = FaultContext(time.monotonic(), [])
        pf = ProcessFaults([procs[0].pid], mode="kill", interval=(0.0, 0.01), max_rounds=2, restart=restart)
        await pf.run(ctx)
        kinds = [e.kind for e in ctx._events]
        assert kinds == ["SIGKILL", "restart", "SIGKILL", "restart"]
        assert procs[0].returncode == -signal.SIGKILL and procs[1].returncode == -signal.SIGKILL
        assert list(pf.pool) == [procs[2].pid] and procs[2].poll() is None
        # A PID whose identity changed (start time differs) is never signalled.
        pf.pool[procs[2].pid] = -1
        assert pf._signal(ctx, procs[2].pid, signal.SIGSTOP) is False
        assert _state(procs[2].pid) != "T"
        with pytest.raises(ValueError, match="not one of ours"):
            pf._signal(ctx, procs[0].pid + 100000, signal.SIGSTOP)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)


async def test_timed_faults_fire_in_order_and_heal() -> None:
    fired: list[tuple[str, float]] = []
    t0 = time.monotonic()

    async def later() -> None:
        fired.append(("async", time.monotonic() - t0))

    faults = TimedFaults(
        [(0.2, "b", later), (0.05, "a", lambda: fired.append(("sync", time.monotonic() - t0)))],
        on_heal=lambda: fired.append(("heal", time.monotonic() - t0)),
    )
    ctx = FaultContext(t0, [])
    await faults.run(ctx)
    await faults.heal(ctx)
    assert [f[0] for f in fired] == ["sync", "async", "heal"]
    assert 0.05 <= fired[0][1] < fired[1][1] and fired[1][1] >= 0.2
    assert [e.kind for e in ctx._events] == ["a", "b", "heal"]


def test_history_dump_load_roundtrip(tmp_path: Path) -> None:
    h = History(
        ops=[
            Op(0, "k", "write", "info", 1.0, math.inf, value="a", client=3, error="ReadTimeout"),
            Op(1, "k", "read", "ok", 2.0, 3.0, value="a", version=7),
            Op(2, "k", "cas", "fail", 4.0, 5.0, value="b", expected="x", version=9, result=False),
        ],
        meta={"config": {"read_mode": "consistent"}, "seconds": 5.0},
    )
    h.anomalies.append("something odd")
    path = tmp_path / "h.jsonl"
    h.dump(path)
    back = History.load(path)
    assert back.ops == h.ops and back.meta == h.meta and back.anomalies == h.anomalies
    report = check_recorded(back)
    assert report.verdict is Verdict.LINEARIZABLE and report.info == 1 and report.read_mode == "consistent"


def test_cli_rechecks_a_dumped_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from muster_testkit.history import main

    good = History(
        ops=[Op(0, "k", "write", "ok", 0, 1, value="a"), Op(1, "k", "read", "ok", 2, 3, value="a")]
    )
    bad = History(
        ops=[Op(0, "k", "write", "ok", 0, 1, value="a"), Op(1, "k", "read", "ok", 2, 3, value=None)]
    )
    good.dump(tmp_path / "good.jsonl")
    bad.dump(tmp_path / "bad.jsonl")
    assert main(["--check", str(tmp_path / "good.jsonl")]) == 0
    assert main(["--check", str(tmp_path / "bad.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "not linearizable" in out and "read -> None" in out
