#!/usr/bin/env python3
"""What metrics cost on the KV PUT hot path: the same agent, instrumentation on and off, one run.

A ``-dev`` agent is built in process and KV PUTs are driven straight through its ASGI app (no
sockets, no load tool: what is left is the request path itself, where the instrumentation
lives).  Rounds alternate between "on" (as shipped: ``consul.api.http``, ``consul.kvs.apply``,
``consul.raft.apply``, ``consul.raft.fsm.apply`` recorded on every PUT) and "off" (the app's
metrics hook removed and every recording method of the registry replaced by a no-op), so noise
from other users of the machine hits both alike.  Rates are PUTs per second of this process's
CPU time (``time.process_time``), robust to a loaded machine.  Reported: per round, medians,
ratio, and the cost per PUT in microseconds.

    python bench/telemetry_cost.py [--rounds 5] [--puts 20000] [--prometheus]

``--prometheus`` runs the agent with ``telemetry.prometheus_retention_time = "60s"`` (the
Prometheus series are kept too); without it the agent has Consul's default (0: JSON view only).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from muster.config import config_from_dict
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.telemetry.metrics import METRICS, Series


async def drive(proc: AgentProcess, n: int, tag: str) -> float:
    app = proc.app
    sent: list[Any] = []

    async def send(msg: MutableMapping[str, Any]) -> None:
        sent.append(msg)

    body = b"x" * 64
    t0 = time.process_time()
    for i in range(n):
        delivered = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http", "method": "PUT", "path": f"/v1/kv/bench/{tag}/{i % 10000}", "query_string": b"",
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000), "scheme": "http",
        }  # fmt: skip
        await app(scope, receive, send)
        sent.clear()
    return n / (time.process_time() - t0)


class Off:
    """Instrumentation off: no app hook, every recording method (of the registry and of the
    call sites' ``Series`` handles) a no-op."""

    NAMES = ("incr", "gauge", "sample", "measure_since")
    SERIES_NAMES = ("incr", "sample", "measure_since")

    def __init__(self, proc: AgentProcess) -> None:
        self.proc = proc
        self.saved = {n: getattr(Series, n) for n in self.SERIES_NAMES}

    def __enter__(self) -> None:
        self.proc.app.metrics = None
        for n in self.NAMES:
            setattr(METRICS, n, lambda *a, **k: None)
        for n in self.SERIES_NAMES:
            setattr(Series, n, lambda *a, **k: None)

    def __exit__(self, *exc: object) -> None:
        self.proc.app.metrics = METRICS
        for n in self.NAMES:
            delattr(METRICS, n)  # back to the class's methods
        for n, fn in self.saved.items():
            setattr(Series, n, fn)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--puts", type=int, default=20000)
    ap.add_argument("--prometheus", action="store_true")
    a = ap.parse_args()
    conf: dict[str, Any] = {"node_name": "bench"}
    if a.prometheus:
        conf["telemetry"] = {"prometheus_retention_time": "60s"}
    proc = AgentProcess(config_from_dict(conf, dev=True), rng=Rng(1))
    await proc.server.start()
    await proc.agent.start()
    on: list[float] = []
    off: list[float] = []
    await drive(proc, 2000, "warm")
    for r in range(a.rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            if mode == "off":
                with Off(proc):
                    rate = await drive(proc, a.puts, "off")
                off.append(rate)
            else:
                rate = await drive(proc, a.puts, "on")
                on.append(rate)
            print(f"round {r + 1} {mode:3s} {rate:9.0f} PUT/CPU-s", flush=True)
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"median on {m_on:.0f} PUT/s, off {m_off:.0f} PUT/s, on/off = {m_on / m_off:.3f}x")
    print(f"cost per PUT: {(1 / m_on - 1 / m_off) * 1e6:.2f} us")
    await proc.agent.stop()
    await proc.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
