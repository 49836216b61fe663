"""Shutting server RPC down is quiet: no "Exception in callback" traceback for the tasks that
serve accepted connections (docs in ``muster.server.rpc``, "Shutdown").

Each case runs its own event loop with ``asyncio.run``, as the agent does, and records what
reaches the loop's exception handler, including during the loop's final cancel-all; the peer is
a plain socket that stays connected until the loop is gone, as a peer server still running does.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from muster.server.rpc import HELLO, RPCNode, encode_frame


def _run(close_first: bool) -> list[dict[str, Any]]:
    reported: list[dict[str, Any]] = []
    peer: list[socket.socket] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        node = RPCNode("a", lambda: "", lambda _n: [])
        port = await node.listen("127.0.0.1", 0)
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        peer.append(sock)
        sock.sendall(encode_frame([HELLO, 0, "", "peer", {}]))
        await asyncio.sleep(0.2)  # the HELLO is answered; the node now waits for the next frame
        if close_first:
            await node.close()

    try:
        asyncio.run(main())
    finally:
        for s in peer:
            s.close()
    return reported


@pytest.mark.parametrize("close_first", [True, False], ids=["close-then-exit", "exit-without-close"])
def test_rpc_shutdown_reports_nothing(close_first: bool) -> None:
    reported = _run(close_first)
    assert [(c.get("message"), repr(c.get("exception"))) for c in reported] == []
