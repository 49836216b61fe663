"""The HTTP listener's guards on a real socket: per-client connection cap (429) and the
deadline for a client that never finishes its headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from muster.http.app import App, Route, Router
from muster.http.guard import CoalescingTransport, ConnLimits, guarded_protocol
from muster.http.request import Request, Response, StreamResponse
from muster.http.serve import Listener


def _app() -> App:
    router = Router()

    async def ok(req: Request) -> Response:
        return Response(200, b"ok", "text/plain")

    router.add(Route("/v1/status/leader", ("GET",), ok))
    return App(router)


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    return data


async def test_per_client_connection_cap_answers_429_and_frees_slots() -> None:
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(3))
    await lst.start()
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):
            _r, w = await asyncio.open_connection("127.0.0.1", lst.port)
            held.append(w)
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        assert data.endswith(b"please rate limit your calls\n")
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # and closed
        writer.close()
        for w in held:
            w.close()
        await asyncio.sleep(0.1)
        assert (await _get(lst.port)).startswith(b"HTTP/1.1 200")  # the slots were released
    finally:
        await lst.stop()


async def test_slow_headers_are_dropped_and_the_server_keeps_serving() -> None:
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(200), header_timeout=0.3)
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data == b""  # closed without an answer after the deadline
        writer.close()
        assert (await _get(lst.port)).startswith(b"HTTP/1.1 200")
    finally:
        await lst.stop()


async def test_slow_headers_of_a_later_keep_alive_request_are_dropped_too() -> None:
    """The deadline covers every request of a connection, not only its first one."""
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(200), header_timeout=0.3)
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        for _ in range(3):  # complete requests on one connection: all answered
            writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert await asyncio.wait_for(reader.readexactly(length), 5) == b"ok"
            await asyncio.sleep(0.2)
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        await writer.drain()
        assert await asyncio.wait_for(reader.read(4096), 5) == b""
        writer.close()
    finally:
        await lst.stop()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    """The keep-alive wait shares the connection's one timer with the header deadline: an idle
    connection is closed after ``timeout_keep_alive``, not before, and a request in time is served."""
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(200), header_timeout=5.0)
    lst.server.config.timeout_keep_alive = 0.4
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        loop = asyncio.get_running_loop()
        for _ in range(3):  # each wait shorter than the timeout: the connection stays open
            assert (await _answer(reader, writer)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.2)
        assert (await _answer(reader, writer)).startswith(b"HTTP/1.1 200")
        idle_from = loop.time()
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed by the server
        assert 0.35 <= loop.time() - idle_from < 4.0  # the keep-alive timeout, not the header deadline
        writer.close()
    finally:
        await lst.stop()


async def test_the_header_deadline_after_a_long_keep_alive_wait_is_still_the_header_timeout() -> None:
    """A header block that opens during a long keep-alive wait gets the (shorter) header deadline."""
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(200), header_timeout=0.3)
    lst.server.config.timeout_keep_alive = 30
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        loop = asyncio.get_running_loop()
        assert (await _answer(reader, writer)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.5)  # idle past the header timeout: kept open (keep-alive is 30 s)
        assert (await _answer(reader, writer)).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        await writer.drain()
        began = loop.time()
        assert await asyncio.wait_for(reader.read(4096), 5) == b""
        assert loop.time() - began < 2.0
        writer.close()
    finally:
        await lst.stop()


async def _exchange(port: int, *parts: bytes) -> bytes:
    """Send ``parts`` as separate writes (separate reads on the server when the network keeps
    them apart; the guard must hold however they are coalesced), half-close, read to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write_eof()
    except OSError:
        pass  # the server answered 431 and closed before taking every byte
    data = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    writer.close()
    return bytes(data)


async def test_header_block_cap_counts_bytes_across_reads() -> None:
    """The cap on the header block (``max_header_bytes``; 431 past it) holds for blocks split
    over several reads, for many small lines and one big one, while a block at the cap and
    pipelined requests that share a read with a large block are served."""
    cap = 400
    lst = Listener(_app(), "127.0.0.1", 0, limits=ConnLimits(200), max_header_bytes=cap)
    await lst.start()
    try:
        line = b"GET /v1/status/leader HTTP/1.1\r\n"
        target = len(b"/v1/status/leader")
        small = b"X-A: b\r\n"  # 8 bytes counted per line
        over = [line, b"Host: x\r\n", small * 20, small * 20, small * 10, b"\r\n"]  # 17 + 9 + 400 > 400
        assert (await _exchange(lst.port, *over)).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        big = b"X-Big: " + b"a" * cap + b"\r\n"
        assert (await _exchange(lst.port, line, big[:100], big[100:], b"\r\n")).startswith(b"HTTP/1.1 431 ")
        at_cap = b"Host: x\r\n" + b"X-Big: " + b"a" * (cap - target - 9 - 9) + b"\r\n"
        answer = await _exchange(lst.port, line, at_cap[:50], at_cap[50:] + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100]
        # a read holding one block near the cap plus the next requests: over the cap as bytes
        # received, under it as a header block, so every request is answered
        pipelined = line + at_cap + b"\r\n" + (line + b"Host: x\r\n\r\n") * 5
        answer = await _exchange(lst.port, pipelined)
        assert answer.count(b"HTTP/1.1 200 OK\r\n") == 6, answer[:300]
    finally:
        await lst.stop()


# --- one write per response (CoalescingTransport) --------------------------------------------


class _Recorder(asyncio.Transport):
    """A fake connection transport that records every write and close, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[bytes | str] = []
        self.closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8500)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def test_coalescing_transport_keeps_order_and_never_keeps_bytes_past_release() -> None:
    real = _Recorder()
    t = CoalescingTransport(real)
    t.write(b"a")  # not held: at once
    t.hold()
    t.write(b"head")
    assert real.events == [b"a"]
    t.write(b"body")
    assert real.events == [b"a", b"headbody"]
    t.release()  # nothing held: nothing written
    t.hold()
    t.write(b"head-of-HEAD")  # a HEAD answer: no body write follows
    t.release()
    t.hold()
    t.release()  # nothing was written at all
    t.write(b"later")  # and the hold does not linger
    t.hold()
    t.write(b"h")
    t.close()  # close sends what is held first
    assert real.events == [b"a", b"headbody", b"head-of-HEAD", b"later", b"h", "close"]
    t2 = CoalescingTransport(_Recorder())
    t2.hold()
    t2.write(b"h")
    assert t2.get_write_buffer_size() == 1
    t2.abort()  # abort drops unsent data, the held bytes included
    assert t2._t.events == ["abort"]  # type: ignore[attr-defined]


async def test_a_keep_alive_response_leaves_in_one_write_through_the_guarded_protocol() -> None:
    """uvicorn writes the header block and the body separately; through the app they reach the
    connection as one write, byte for byte what the two writes carried, for GET, PUT and HEAD,
    and a streamed response still writes its header block at once."""
    import uvicorn
    from uvicorn.server import ServerState

    router = Router()

    async def ok(req: Request) -> Response:
        return Response(200, b"true", "application/json", [("X-Consul-Index", "7")])

    async def stream(req: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"line\n"
            await asyncio.Event().wait()  # never ends on its own

        return StreamResponse(200, chunks(), "text/plain")

    router.add(Route("/v1/kv/", ("GET", "PUT"), ok, prefix=True))
    router.add(Route("/v1/agent/monitor", ("GET",), stream))
    cfg = uvicorn.Config(App(router), loop="none", lifespan="off", log_level="warning", access_log=False,
                         server_header=False, proxy_headers=False)  # fmt: skip
    cfg.load()
    real = _Recorder()
    proto = guarded_protocol(ConnLimits(0))(config=cfg, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    proto.connection_made(real)
    head = (b"HTTP/1.1 200 OK\r\nx-consul-default-acl-policy: allow\r\ncontent-type: application/json\r\n"
            b"x-consul-index: 7\r\ncontent-length: 4\r\n\r\n")  # fmt: skip
    for method, body in ((b"GET", b""), (b"PUT", b"xx"), (b"HEAD", b"")):
        real.events.clear()
        req = method + b" /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        proto.data_received(req)  # type: ignore[attr-defined]
        for _ in range(20):
            if real.events:
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert real.events == [head + (b"" if method == b"HEAD" else b"true")], method
    real.events.clear()
    proto.data_received(b"GET /v1/agent/monitor HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]
    for _ in range(50):
        if len(real.events) >= 2:
            break
        await asyncio.sleep(0)
    first = real.events[0]
    assert isinstance(first, bytes) and first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first.endswith(b"transfer-encoding: chunked\r\n\r\n")  # the header block, sent at once
    assert b"line\n" in b"".join(e for e in real.events if isinstance(e, bytes))
    proto.connection_lost(None)  # type: ignore[attr-defined]
    await asyncio.sleep(0)


# --- a request started without a task ---------------------------------------------------------


async def test_a_request_runs_without_a_task_until_it_waits_then_in_a_tracked_task() -> None:
    """Fed from a loop callback (as a socket's reads are), a request that is answered without
    waiting leaves no task behind; one that waits continues in a task the server tracks, which
    sees the app's awaits through to the end and hands a cancellation down to the app."""
    import uvicorn
    from uvicorn.server import ServerState

    gate: asyncio.Future[None] | None = None
    seen: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        path = scope["path"]
        seen.append(f"{path} task={asyncio.current_task() is not None}")
        if path == "/wait":
            try:
                assert gate is not None
                await gate
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            await asyncio.sleep(0)
            seen.append(f"resumed task={asyncio.current_task() is not None}")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    cfg = uvicorn.Config(app, loop="none", lifespan="off", log_level="warning", access_log=False)
    cfg.load()
    state = ServerState()
    real = _Recorder()
    proto = guarded_protocol(ConnLimits(0))(config=cfg, server_state=state, app_state={})  # type: ignore[call-arg]
    proto.connection_made(real)
    loop = asyncio.get_running_loop()

    async def feed(path: bytes) -> None:
        loop.call_soon(proto.data_received, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]
        for _ in range(5):
            await asyncio.sleep(0)

    await feed(b"/now")
    assert seen == ["/now task=False"] and not state.tasks
    assert real.events[-1] == b"ok"
    gate = loop.create_future()
    await feed(b"/wait")
    assert len(state.tasks) == 1
    gate.set_result(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert seen[1:] == ["/wait task=False", "resumed task=True"] and not state.tasks
    assert real.events[-1] == b"ok"
    gate = loop.create_future()
    await feed(b"/wait")
    (task,) = state.tasks
    task.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert seen[-1] == "cancelled" and task.done()
    proto.connection_lost(None)  # type: ignore[attr-defined]


async def test_requests_started_in_one_turn_may_wait_on_one_shared_future() -> None:
    """Two requests whose first steps both run before any task picked up their wait, awaiting
    the same future (a batched ``?consistent`` read round does this): both must complete.

    A future's await marks it "blocking" until a task takes it; a second await in the same
    turn found the mark set and failed with "await wasn't used with future" (62k such 500s in
    a cluster benchmark) until the eager step handed the mark back to the task."""
    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.get_running_loop()
    shared: asyncio.Future[None] = loop.create_future()
    done: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        await shared
        done.append(str(scope["path"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    cfg = uvicorn.Config(app, loop="none", lifespan="off", log_level="warning", access_log=False)
    cfg.load()
    state = ServerState()
    protos, sinks = [], []
    for _ in range(3):
        sink = _Recorder()
        p = guarded_protocol(ConnLimits(0))(config=cfg, server_state=state, app_state={})  # type: ignore[call-arg]
        p.connection_made(sink)
        protos.append(p)
        sinks.append(sink)

    def feed_all() -> None:  # one loop turn: every connection's chunk arrives together
        for i, p in enumerate(protos):
            p.data_received(b"GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)  # type: ignore[attr-defined]

    loop.call_soon(feed_all)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(state.tasks) == 3
    shared.set_result(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert sorted(done) == ["/r0", "/r1", "/r2"] and not state.tasks
    assert all(s.events[-1] == b"ok" for s in sinks)
    for p in protos:
        p.connection_lost(None)  # type: ignore[attr-defined]
