#!/usr/bin/env python3
"""CPU of two per-request costs outside the app, for the tree on ``PYTHONPATH``:

* ``log``: a ``-dev`` agent's ``Request finished`` debug line through ``setup_logging`` (stderr,
  redirect it to a file), with ``--conc`` tasks each logging once per event-loop turn, as
  requests under HTTP load do; ``--log-level info`` gives the same loop without the line;
  ``--direct`` writes it as the app does since ``logging_setup.log_line`` (no ``LogRecord``);
* ``protocol``: one keep-alive PUT (6 headers, 64-byte body) through the guarded uvicorn
  httptools protocol (``muster.http.guard``) on a fake transport, with a no-op ASGI app.

Compare trees by alternating them in one run (figures swing on a shared machine)::

    PYTHONPATH=<tree>/src .venv/bin/python bench/log_protocol_cost.py log --conc 64 [--direct] 2>/tmp/log.txt
    PYTHONPATH=<tree>/src .venv/bin/python bench/log_protocol_cost.py protocol --n 40000 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any


async def log_cost(level: str, conc: int, n: int, direct: bool = False) -> float:
    from muster.logging_setup import setup_logging

    setup_logging(level)
    log = logging.getLogger("muster.http")
    fmt = "Request finished: method=%s url=%s from=%s latency=%.3fms"
    if direct:  # as App.__call__ writes it since logging_setup.log_line
        from muster.logging_setup import log_line

    async def worker(k: int) -> None:
        for i in range(k):
            args = ("PUT", f"/v1/kv/bench/{i}", "127.0.0.1", 0.25)
            if not direct:
                log.debug(fmt, *args)
            elif log.isEnabledFor(logging.DEBUG) and not log_line(log, logging.DEBUG, fmt % args):
                log.debug(fmt, *args)
            await asyncio.sleep(0)

    async def run(total: int) -> None:
        await asyncio.gather(*(worker(total // conc) for _ in range(conc)))

    await run(n // 10)
    t0 = time.process_time()
    await run(n)
    spent = time.process_time() - t0
    for h in logging.getLogger().handlers:
        h.flush()
    return spent / n * 1e6


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8500)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"true"})


async def protocol_cost(n: int) -> float:
    import uvicorn
    from uvicorn.server import ServerState

    from muster.http.guard import ConnLimits, guarded_protocol

    cfg = uvicorn.Config(_app, loop="none", lifespan="off", log_level="warning", access_log=False,
                         server_header=False, proxy_headers=False)  # fmt: skip
    cfg.load()
    proto: Any = guarded_protocol(ConnLimits(0))(config=cfg, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    proto.connection_made(_Transport())
    req = (b"PUT /v1/kv/bench/k1 HTTP/1.1\r\nHost: 127.0.0.1:8500\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
           b"Content-Length: 64\r\nContent-Type: application/octet-stream\r\n\r\n" + b"x" * 64)  # fmt: skip
    # fed from a loop callback, outside any task, as a socket's reads are
    feed = asyncio.get_running_loop().call_soon
    for _ in range(n // 10):
        feed(proto.data_received, req)
        await asyncio.sleep(0)
    t0 = time.process_time()
    for _ in range(n):
        feed(proto.data_received, req)
        await asyncio.sleep(0)
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["log", "protocol"])
    ap.add_argument("--n", type=int, default=32000)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--log-level", default="debug")
    ap.add_argument("--direct", action="store_true", help="log: the line through logging_setup.log_line")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop (as the agent does when installed)")
    a = ap.parse_args()
    if a.uvloop:
        import uvloop

        uvloop.install()
    if a.what == "log":
        us = asyncio.run(log_cost(a.log_level, a.conc, a.n, a.direct))
        how = " log_line" if a.direct else ""
        print(f"log {a.log_level}{how} c={a.conc}: {us:.2f} us CPU per line and loop turn", file=sys.__stdout__)
    else:
        print(f"protocol: {asyncio.run(protocol_cost(a.n)):.2f} us CPU per request")


if __name__ == "__main__":
    main()
