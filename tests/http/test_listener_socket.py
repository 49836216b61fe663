"""The HTTP listener's accepted connections have Nagle's algorithm off on every event loop.

asyncio (the stdlib loop) sets TCP_NODELAY on an accepted connection only when the listening
socket was created with ``proto=IPPROTO_TCP``; a socket made with proto 0 left Nagle on, and
uvicorn's separate header and body writes then waited for the client's delayed ACK (~40 ms per
keep-alive request on a plain install without uvloop). This pins the socket option itself, on
the loop pytest runs (the stdlib one), instead of timing requests.
"""

from __future__ import annotations

import asyncio
import socket

from muster.http.serve import Listener


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


async def test_accepted_connections_have_tcp_nodelay() -> None:
    assert "uvloop" not in type(asyncio.get_running_loop()).__module__
    lst = Listener(_app, "127.0.0.1", 0)
    assert lst.sock.proto == socket.IPPROTO_TCP
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        conns = list(lst.server.server_state.connections)
        assert len(conns) == 1
        server_sock = conns[0].transport.get_extra_info("socket")  # type: ignore[attr-defined]
        assert server_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        await writer.wait_closed()
    finally:
        await lst.stop()
