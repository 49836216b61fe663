#!/usr/bin/env python3
"""CPU per KV PUT and per KV GET through a ``-dev`` agent's ASGI app, in process, for the tree
on ``PYTHONPATH`` (no sockets, no HTTP protocol layer: the app, the handlers, Raft and the store).

Like ``bench/put_path.py`` but with GETs too, two headers per request as wrk sends, and the
agent's own logging set up at ``LEVEL`` (``debug`` is what a ``-dev`` agent runs at; stderr is
the sink, redirect it).  Rounds alternate PUT and GET; the medians are printed::

    PYTHONPATH=<tree>/src .venv/bin/python bench/request_path.py info 2>/dev/null
    PYTHONPATH=<tree>/src .venv/bin/python bench/request_path.py debug 2>/dev/null
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from muster.config import config_from_dict
from muster.process import AgentProcess
from muster.runtime import Rng


async def main(level: str, rounds: int, n: int) -> None:
    try:
        from muster.logging_setup import setup_logging

        setup_logging(level)
    except ImportError:  # a tree without it
        pass
    proc = AgentProcess(config_from_dict({"node_name": "bench"}, dev=True), rng=Rng(1))
    await proc.server.start()
    await proc.agent.start()
    app = proc.app
    body = b"x" * 64

    async def send(msg: MutableMapping[str, Any]) -> None:
        pass

    async def one(method: str, path: str) -> None:
        sent = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body if method == "PUT" else b"", "more_body": False}

        scope = {"type": "http", "method": method, "path": path, "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1:8500"), (b"user-agent", b"wrk")],
                 "client": ("127.0.0.1", 1), "scheme": "http"}  # fmt: skip
        await app(scope, receive, send)

    for i in range(1000):
        await one("PUT", f"/v1/kv/bench/{i}")
    res: dict[str, list[float]] = {"PUT": [], "GET": []}
    for _ in range(rounds):
        for m in ("PUT", "GET"):
            t0 = time.process_time()
            for i in range(n):
                await one(m, f"/v1/kv/bench/{i % 1000}")
            res[m].append((time.process_time() - t0) / n * 1e6)
    out = ", ".join(f"{m} {statistics.median(v):.2f} (min {min(v):.2f})" for m, v in res.items())
    print(f"{level}: us CPU per request, median of {rounds}: {out}", file=sys.__stdout__)
    await proc.agent.stop()
    await proc.server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "info", 5, 10000))
