#!/usr/bin/env python3
"""CPU of answering one HTTP response with two socket writes (header block, then body: what
uvicorn does) against one joined write (what ``guard.CoalescingTransport`` makes of them).

Both ends of a loopback TCP connection live in this process under uvloop, so the figure is the
sender's ``send`` plus the kernel's loopback delivery plus the reader's ``recv``: the costs that
one write less per response saves on a ``-dev`` agent and on the load tool together.  Modes
alternate, ``--reps`` times; output is us of process CPU per response::

    .venv/bin/python bench/response_writes.py --n 20000 --reps 3
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from typing import Any

import uvloop

HEAD = (b"HTTP/1.1 200 OK\r\nx-consul-default-acl-policy: allow\r\ncontent-type: application/json\r\n"
        b"content-length: 4\r\n\r\n")  # fmt: skip
BODY = b"true"


async def measure(n: int, reps: int) -> None:
    loop = asyncio.get_running_loop()
    server_side: list[Any] = []

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            pass

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            server_side.append(transport)  # uvloop's TCPTransport (not an asyncio.Transport subclass)

    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen()
    server = await loop.create_server(Accept, sock=lsn)
    client, _ = await loop.create_connection(Sink, *lsn.getsockname())
    for _ in range(100):
        if server_side:
            break
        await asyncio.sleep(0.01)
    t = server_side[0]
    for rep in range(reps):
        for mode in ("two writes", "one write"):
            t0 = time.process_time()
            for i in range(n):
                if mode == "two writes":
                    t.write(HEAD)
                    t.write(BODY)
                else:
                    t.write(HEAD + BODY)
                if i % 16 == 0:
                    await asyncio.sleep(0)  # let the reader drain, as responses spread over loop turns
            spent = time.process_time() - t0
            await asyncio.sleep(0.1)
            print(f"rep {rep + 1} {mode}: {spent / n * 1e6:.2f} us CPU per response")
    client.close()
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    uvloop.run(measure(a.n, a.reps))


if __name__ == "__main__":
    main()
